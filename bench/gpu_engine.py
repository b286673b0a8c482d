"""Time Wan 2.2 TI2V 5B through kinema's engine: seconds per step, per video, MFU, memory.

The model is built at full size (30 blocks, width 3072, the 48-channel Wan 2.2 VAE) with
random weights, so nothing is downloaded: speed does not depend on the weight values. The
text encoder is a one-layer stand-in with the real output width (4096); the real UMT5-XXL
runs once per video and costs well under a second. One 1280x704, 121-frame, 50-step
image-to-video generation with classifier-free guidance is timed per speed option, after a
two-step warm-up without the VAE decode (which also absorbs torch.compile's compilation).

    python -m bench.gpu_engine                          # on a GPU: every variant that applies
    python -m bench.gpu_engine --variants baseline,compile,few_step --steps 10 --json out.json
    python -m bench.gpu_engine --toy                    # tiny model on the CPU: checks the script

``--steps N`` times N steps instead of 50 (seconds per step and MFU do not need all 50;
the whole-video and FLOP-limit columns are then for N steps). Each variant runs in its own
process (``--isolate``, the default on a GPU): one that fails or runs out of memory
records its error in its row and the others still run; the JSON file is rewritten after
every row. The bf16 peak is measured in the same run on the same GPU (an 8192^3 matrix
product, best of 20) and reported beside the 989 TFLOP/s datasheet figure; the FLOP limit
and MFU are given against both.

The ``few_step`` variant is the distilled TI2V path (FastWan2.2-TI2V-5B's recipe: 3 steps,
no guidance, a consistency sampler at timesteps 1000, 757, 522): with random weights it
measures the speed of that recipe, not its quality.

FLOPs of one transformer forward pass (multiply-add = 2 FLOPs), with L video tokens, T text
tokens, width d, feed-forward width f and N blocks, per block:

    self-attention q, k, v, o projections    8 L d^2
    self-attention scores and mix (QK^T, AV) 4 L^2 d
    cross-attention q, o projections         4 L d^2
    cross-attention k, v projections         4 T d^2
    cross-attention scores and mix           4 L T d
    feed-forward d -> f -> d                 4 L d f
    ---------------------------------------------------------------
    block = 12 L d^2 + 4 L^2 d + 4 T d^2 + 4 L T d + 4 L d f;  forward = N * block

For 1280x704x121: L = 31 latent frames x (704/32) x (1280/32) = 27,280 tokens, T = 512,
d = 3072, f = 14336, N = 30, so one forward is 5.17e14 FLOPs; 50 steps with guidance
(two forwards a step) are 5.17e16 FLOPs, 52 s at 989 TFLOP/s (H100/H200 dense BF16): the
FLOP limit. MFU = FLOPs / (seconds x peak). Embeddings, norms, the VAE and the text
encoder are left out of the count (they are under 1% of the transformer's FLOPs, though
the VAE decode takes real time: it is reported separately).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

FULL = {
    "transformer": {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 24,
        "attention_head_dim": 128,
        "in_channels": 48,
        "out_channels": 48,
        "text_dim": 4096,
        "freq_dim": 256,
        "ffn_dim": 14336,
        "num_layers": 30,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": 1024,
    },
    "vae": {
        "base_dim": 160,
        "decoder_base_dim": 256,
        "z_dim": 48,
        "dim_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_scales": [],
        "temperal_downsample": [False, True, True],
        "in_channels": 12,
        "out_channels": 12,
        "patch_size": 2,
        "is_residual": True,
        "scale_factor_spatial": 16,
        "scale_factor_temporal": 4,
        "latents_mean": [0.0] * 48,
        "latents_std": [1.0] * 48,
    },
    "text_dim": 4096,
    "width": 1280,
    "height": 704,
    "frames": 121,
    "fps": 24,
    "steps": 50,
    "text_tokens": 512,
}

TOY = {
    "transformer": {
        **FULL["transformer"],
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "text_dim": 32,
        "ffn_dim": 32,
        "num_layers": 2,
        "rope_max_seq_len": 32,
    },
    "vae": {
        **FULL["vae"],
        "base_dim": 3,
        "decoder_base_dim": None,
        "dim_mult": [1, 1, 1, 1],
        "num_res_blocks": 1,
    },
    "text_dim": 32,
    "width": 64,
    "height": 32,
    "frames": 9,
    "fps": 8,
    "steps": 3,
    "text_tokens": 16,
}

FEW_STEP = {
    "steps": 3,
    "guidance_scale": 1.0,
    "scheduler": "FlowMatchLCMScheduler",
    "scheduler_config": {"shift": 1.0},
    "timesteps": [1000, 757, 522],
}

# Engine options per variant (the catalog keys of docs/gpu.md).
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "few_step": FEW_STEP,
    "compile+few_step": {**FEW_STEP, "compile": True},
    "fp8": {"quantize": "fp8"},
    "cudnn": {"attention_backend": "_native_cudnn"},
    "flash": {"attention_backend": "flash"},
    "sage": {"attention_backend": "sage"},
    "compile": {"compile": True},
    "flash+compile": {"attention_backend": "flash", "compile": True},
    "first_block": {"cache": "first_block", "cache_threshold": 0.05},
    "vae_tiling": {"vae_tiling": True},
    "offload_model": {"offload": "model"},
}
GPU_ONLY = {"cudnn", "flash", "sage", "flash+compile", "offload_model", "fp8"}
PEAK_TFLOPS = 989.0  # H100 / H200 SXM, dense BF16 (datasheet)
MATMUL_SIZE = 8192  # the product whose speed is the measured peak


@dataclass
class Row:
    variant: str
    device: str
    width: int
    height: int
    frames: int
    steps: int
    seconds_per_step: float | None
    denoise_s: float | None
    decode_s: float | None
    video_s: float | None
    flop_limit_s: float | None  # at the datasheet peak
    mfu: float | None
    peak_memory_gib: float | None
    forwards_per_step: int = 2
    measured_tflops: float | None = None  # bf16 matmul peak measured in this run
    flop_limit_measured_s: float | None = None
    mfu_measured: float | None = None
    error: str = ""
    note: str = ""


def transformer_flops(
    *, tokens: int, text_tokens: int, dim: int, ffn_dim: int, layers: int
) -> float:
    """FLOPs of one forward pass of the Wan transformer blocks (see the module docstring)."""
    length, text = tokens, text_tokens
    block = (
        12 * length * dim**2
        + 4 * length**2 * dim
        + 4 * text * dim**2
        + 4 * length * text * dim
        + 4 * length * dim * ffn_dim
    )
    return float(layers * block)


def video_tokens(config: dict[str, Any]) -> int:
    """Transformer tokens of one clip: latent frames x latent rows x latent columns / patch."""
    vae, transformer = config["vae"], config["transformer"]
    latent_frames = (config["frames"] - 1) // vae["scale_factor_temporal"] + 1
    _, patch_h, patch_w = transformer["patch_size"]
    rows = config["height"] // vae["scale_factor_spatial"] // patch_h
    columns = config["width"] // vae["scale_factor_spatial"] // patch_w
    return int(latent_frames * rows * columns)


def video_flops(config: dict[str, Any], steps: int | None = None, forwards: int = 2) -> float:
    """All steps, ``forwards`` passes each (two with classifier-free guidance)."""
    transformer = config["transformer"]
    one = transformer_flops(
        tokens=video_tokens(config),
        text_tokens=config["text_tokens"],
        dim=transformer["num_attention_heads"] * transformer["attention_head_dim"],
        ffn_dim=transformer["ffn_dim"],
        layers=transformer["num_layers"],
    )
    return one * forwards * (config["steps"] if steps is None else steps)


def measure_matmul_tflops(device: torch.device, size: int = MATMUL_SIZE) -> float | None:
    """TFLOP/s of a ``size``^3 bf16 matrix product on ``device``, best of 20 (the CPU:
    float32, as a check of the code)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for attempt in range(23):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if attempt >= 3:  # the first ones pick kernels
            best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e12


def build_pipeline(config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> Any:
    """Wan 2.2 TI2V with random weights, built directly on ``device``."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from tests.tiny_pipelines import word_tokenizer
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    with device:
        transformer = _cast(WanTransformer3DModel(**config["transformer"]), dtype)
        vae = _cast(AutoencoderKLWan(**config["vae"]), dtype)
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=64,
                d_model=config["text_dim"],
                d_kv=64,
                d_ff=256,
                num_layers=1,
                num_heads=2,
                relative_attention_num_buckets=8,
            )
        ).to(dtype)
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    return WanImageToVideoPipeline(
        tokenizer=word_tokenizer(max_length=config["text_tokens"]),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=transformer,
        expand_timesteps=True,
    )


def _cast(model: torch.nn.Module, dtype: torch.dtype) -> Any:
    """Cast as ``from_pretrained(dtype=...)`` does: the parts a model keeps in float32 stay."""
    torch.nn.Module.to(model, dtype)
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, module in model.named_modules():
        if any(part in keep for part in name.split(".")):
            torch.nn.Module.to(module, torch.float32)
    return model


def run_variant(
    name: str,
    config: dict[str, Any],
    device: torch.device,
    peak_tflops: float | None,
    measured_tflops: float | None = None,
    steps: int | None = None,
) -> Row:
    from kinema.engines.diffusion.wan_ti2v import WanTI2VEngine
    from kinema.types import EngineRequest

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    size = f"{config['width']}x{config['height']}"
    options = {
        "weights": "(random, built in memory)",
        "device": str(device),
        "steps": steps or config["steps"],
        "sizes": [size],
        "max_sequence_length": config["text_tokens"],
        "audio": "refuse",
        **VARIANTS[name],
    }
    steps = int(options["steps"])
    forwards = 1 if float(options.get("guidance_scale", 5.0)) <= 1.0 else 2
    engine = WanTI2VEngine(options, name=f"bench-{name}")
    engine.adopt(build_pipeline(config, device, dtype))
    request = EngineRequest(
        prompt="a red cat walks slowly in the park",
        width=config["width"],
        height=config["height"],
        fps=config["fps"],
        num_frames=config["frames"],
        generate_audio=False,
        seed=1,
        image=Image.new("RGB", (config["width"], config["height"]), (120, 90, 60)),
    )

    # Warm-up: a short denoise at the full shape (compiles, picks kernels, fills the
    # allocator), stopping at the latents: the VAE decode at 720p costs as much as many
    # steps, and its first call is timed as part of the decode.
    timed = engine.options
    if not timed.timesteps:  # pinned timesteps fix the step count
        engine.options = dataclasses.replace(timed, steps=2)
    warm = engine.plan(request)
    engine.generate(engine.pipeline, warm, lambda _: None, lambda: False, decode=False)
    engine.options = timed

    marks: list[tuple[float, float]] = []

    def on_progress(fraction: float) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        marks.append((fraction, time.perf_counter()))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    clip = engine.run(request, on_progress, lambda: False)
    video_s = time.perf_counter() - started
    ends = [t for _, t in marks[:steps]]  # one mark per step, then the decode's
    step_times = [b - a for a, b in itertools.pairwise([started, *ends])] or [video_s]
    decode_s = marks[-1][1] - ends[-1] if ends else 0.0
    denoise_s = ends[-1] - started if ends else video_s
    flops = video_flops(config, steps, forwards)
    # The first step also encodes the prompt and image: the median is the step's own cost.
    per_step = statistics.median(step_times[1:] or step_times)
    peak = None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1024**3

    def against(tflops: float | None) -> tuple[float | None, float | None]:
        if not tflops:
            return None, None
        return flops / (tflops * 1e12), flops / (per_step * steps * tflops * 1e12)

    limit, mfu = against(peak_tflops)
    limit_measured, mfu_measured = against(measured_tflops)
    row = Row(
        variant=name,
        device=_device_name(device),
        width=clip.width,
        height=clip.height,
        frames=clip.num_frames,
        steps=steps,
        seconds_per_step=per_step,
        denoise_s=denoise_s,
        decode_s=decode_s,
        video_s=video_s,
        flop_limit_s=limit,
        mfu=mfu,
        peak_memory_gib=peak,
        forwards_per_step=forwards,
        measured_tflops=measured_tflops,
        flop_limit_measured_s=limit_measured,
        mfu_measured=mfu_measured,
        note="random weights: cache hit rate not representative" if "first_block" in name else "",
    )
    engine.unload()
    del engine
    gc.collect()
    return row


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def _usable(name: str, device: torch.device) -> bool:
    if device.type == "cpu" and (name in GPU_ONLY or "compile" in name):
        return False
    backend = VARIANTS[name].get("attention_backend")
    if backend in ("flash", "sage"):
        import importlib.util

        module = "flash_attn" if backend == "flash" else "sageattention"
        return importlib.util.find_spec(module) is not None
    return True


def failed_row(
    name: str,
    config: dict[str, Any],
    device: torch.device,
    error: str,
    steps: int,
    measured_tflops: float | None = None,
) -> Row:
    return Row(
        variant=name,
        device=_device_name(device),
        width=config["width"],
        height=config["height"],
        frames=config["frames"],
        steps=int(VARIANTS.get(name, {}).get("steps", steps)),
        seconds_per_step=None,
        denoise_s=None,
        decode_s=None,
        video_s=None,
        flop_limit_s=None,
        mfu=None,
        peak_memory_gib=None,
        measured_tflops=measured_tflops,
        error=error,
    )


def run_isolated(
    name: str,
    argv: list[str],
    config: dict[str, Any],
    device: torch.device,
    timeout_s: float,
    steps: int,
) -> Row:
    """Run one variant in a child process; a crash, a hang or an error becomes its row."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "row.json"
        command = [sys.executable, "-m", "bench.gpu_engine", *argv, "--variants", name]
        command += ["--json", str(out), "--no-isolate"]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return failed_row(name, config, device, f"timed out after {timeout_s:.0f} s", steps)
        if out.exists():
            rows = json.loads(out.read_text())
            if rows:
                return Row(**rows[0])
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        message = f"exit {done.returncode}: {' | '.join(tail)}"
        return failed_row(name, config, device, message, steps)


def _cell(value: float | None, form: str) -> str:
    return "n/a" if value is None else format(value, form)


def table(rows: list[Row]) -> str:
    lines = [
        "| variant | steps | s/step | denoise s | decode s | video s | x FLOP limit "
        "(datasheet / measured) | MFU (datasheet / measured) | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.error:
            lines.append(f"| {row.variant} | {row.steps} | failed: {row.error} ||||||||")
            continue
        ratios = [
            f"{row.video_s / limit:.2f}" if row.video_s is not None and limit else "n/a"
            for limit in (row.flop_limit_s, row.flop_limit_measured_s)
        ]
        ratio = " / ".join(ratios)
        mfu = f"{_cell(row.mfu, '.1%')} / {_cell(row.mfu_measured, '.1%')}"
        lines.append(
            f"| {row.variant} | {row.steps} | {_cell(row.seconds_per_step, '.3f')} | "
            f"{_cell(row.denoise_s, '.1f')} | {_cell(row.decode_s, '.1f')} | "
            f"{_cell(row.video_s, '.1f')} | {ratio} | {mfu} | "
            f"{_cell(row.peak_memory_gib, '.1f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--variants", default="", help="comma-separated; default: all usable")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 50)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="default: 989 on a GPU")
    parser.add_argument("--measured-tflops", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="rows, rewritten after each")
    parser.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="each variant in its own process (default: on a GPU)",
    )
    parser.add_argument("--variant-timeout", type=float, default=600.0, help="seconds")
    args = parser.parse_args(argv)

    config = TOY if args.toy else FULL
    device = torch.device("cpu" if args.toy or not torch.cuda.is_available() else "cuda")
    if not args.toy and device.type == "cpu":
        parser.error("the full-size run needs a CUDA GPU; use --toy to check the script")
    peak = args.peak_tflops or (PEAK_TFLOPS if device.type == "cuda" else None)
    names = [n for n in args.variants.split(",") if n] or [
        n for n in VARIANTS if _usable(n, device)
    ]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    measured = args.measured_tflops
    if measured is None:
        measured = measure_matmul_tflops(device, MATMUL_SIZE if device.type == "cuda" else 256)

    steps = args.steps or config["steps"]
    flops = video_flops(config, steps)
    print(
        f"{config['width']}x{config['height']}, {config['frames']} frames, {steps} steps "
        f"with guidance: {video_tokens(config)} tokens, {flops:.3e} FLOPs"
        + (f", FLOP limit {flops / (peak * 1e12):.1f} s at {peak:g} TFLOP/s" if peak else "")
        + (f"; measured matmul peak {measured:.1f} TFLOP/s" if measured else ""),
        flush=True,
    )
    isolate = device.type == "cuda" if args.isolate is None else args.isolate
    child = ["--steps", str(steps), "--measured-tflops", str(measured)]
    child += ["--toy"] if args.toy else []
    child += ["--peak-tflops", str(peak)] if peak else []
    rows: list[Row] = []
    for name in names:
        if isolate:
            row = run_isolated(name, child, config, device, args.variant_timeout, steps)
        else:
            try:
                row = run_variant(name, config, device, peak, measured, steps)
            except Exception as error:  # one variant failing must not stop the others
                message = f"{type(error).__name__}: {error}"
                row = failed_row(name, config, device, message, steps, measured)
            finally:
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        print(json.dumps(asdict(row)), flush=True)
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
