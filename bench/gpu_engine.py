"""Time Wan 2.2 TI2V 5B through kinema's engine: seconds per step, per video, MFU, memory.

The model is built at full size (30 blocks, width 3072, the 48-channel Wan 2.2 VAE) with
random weights, so nothing is downloaded: speed does not depend on the weight values. The
text encoder is a one-layer stand-in with the real output width (4096); the real UMT5-XXL
runs once per video and costs well under a second. One 1280x704, 121-frame, 50-step
image-to-video generation with classifier-free guidance is timed per speed option, after a
two-step warm-up (which also absorbs torch.compile's compilation).

    python -m bench.gpu_engine                          # on a GPU: every variant that applies
    python -m bench.gpu_engine --variants baseline,flash,compile
    python -m bench.gpu_engine --toy                    # tiny model on the CPU: checks the script

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
import sys
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

# Engine options per variant (the catalog keys of docs/gpu.md).
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "cudnn": {"attention_backend": "_native_cudnn"},
    "flash": {"attention_backend": "flash"},
    "sage": {"attention_backend": "sage"},
    "compile": {"compile": True},
    "flash+compile": {"attention_backend": "flash", "compile": True},
    "first_block": {"cache": "first_block", "cache_threshold": 0.05},
    "vae_tiling": {"vae_tiling": True},
    "offload_model": {"offload": "model"},
}
GPU_ONLY = {"cudnn", "flash", "sage", "flash+compile", "offload_model"}
PEAK_TFLOPS = 989.0  # H100 / H200 SXM, dense BF16


@dataclass
class Row:
    variant: str
    device: str
    width: int
    height: int
    frames: int
    steps: int
    seconds_per_step: float
    denoise_s: float
    decode_s: float
    video_s: float
    flop_limit_s: float | None
    mfu: float | None
    peak_memory_gib: float | None
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


def video_flops(config: dict[str, Any]) -> float:
    """All steps, two forward passes each (classifier-free guidance)."""
    transformer = config["transformer"]
    one = transformer_flops(
        tokens=video_tokens(config),
        text_tokens=config["text_tokens"],
        dim=transformer["num_attention_heads"] * transformer["attention_head_dim"],
        ffn_dim=transformer["ffn_dim"],
        layers=transformer["num_layers"],
    )
    return one * 2 * config["steps"]


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
    name: str, config: dict[str, Any], device: torch.device, peak_tflops: float | None
) -> Row:
    from kinema.engines.wan_ti2v import WanTI2VEngine
    from kinema.types import EngineRequest

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    size = f"{config['width']}x{config['height']}"
    options = {
        "weights": "(random, built in memory)",
        "device": str(device),
        "steps": config["steps"],
        "sizes": [size],
        "max_sequence_length": config["text_tokens"],
        "audio": "refuse",
        **VARIANTS[name],
    }
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

    # Warm-up: two steps (compiles, picks kernels, fills the allocator).
    timed = engine.options
    engine.options = dataclasses.replace(timed, steps=2)
    engine.run(request, lambda _: None, lambda: False)
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
    steps = [t for _, t in marks[: config["steps"]]]  # one mark per step, then the decode's
    step_times = [b - a for a, b in itertools.pairwise(steps)] or [video_s]
    decode_s = marks[-1][1] - steps[-1] if steps else 0.0
    denoise_s = steps[-1] - started if steps else video_s
    flops = video_flops(config)
    per_step = statistics.median(step_times)
    peak = None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1024**3
    limit = flops / (peak_tflops * 1e12) if peak_tflops else None
    mfu = flops / (per_step * config["steps"] * peak_tflops * 1e12) if peak_tflops else None
    row = Row(
        variant=name,
        device=_device_name(device),
        width=clip.width,
        height=clip.height,
        frames=clip.num_frames,
        steps=config["steps"],
        seconds_per_step=per_step,
        denoise_s=denoise_s,
        decode_s=decode_s,
        video_s=video_s,
        flop_limit_s=limit,
        mfu=mfu,
        peak_memory_gib=peak,
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
    if device.type == "cpu" and name in GPU_ONLY | {"compile"}:
        return False
    backend = VARIANTS[name].get("attention_backend")
    if backend in ("flash", "sage"):
        import importlib.util

        module = "flash_attn" if backend == "flash" else "sageattention"
        return importlib.util.find_spec(module) is not None
    return True


def table(rows: list[Row]) -> str:
    lines = [
        "| variant | s/step | denoise s | decode s | video s | x FLOP limit | MFU | peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.video_s / row.flop_limit_s:.2f}" if row.flop_limit_s else "n/a"
        mfu = f"{row.mfu:.1%}" if row.mfu is not None else "n/a"
        memory = f"{row.peak_memory_gib:.1f}" if row.peak_memory_gib is not None else "n/a"
        lines.append(
            f"| {row.variant} | {row.seconds_per_step:.3f} | {row.denoise_s:.1f} | "
            f"{row.decode_s:.1f} | {row.video_s:.1f} | {ratio} | {mfu} | {memory} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--variants", default="", help="comma-separated; default: all usable")
    parser.add_argument("--peak-tflops", type=float, default=None, help="default: 989 on a GPU")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
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

    flops = video_flops(config)
    print(
        f"{config['width']}x{config['height']}, {config['frames']} frames, {config['steps']} "
        f"steps with guidance: {video_tokens(config)} tokens, {flops:.3e} FLOPs"
        + (f", FLOP limit {flops / (peak * 1e12):.1f} s at {peak:g} TFLOP/s" if peak else ""),
        flush=True,
    )
    rows = []
    for name in names:
        row = run_variant(name, config, device, peak)
        print(json.dumps(asdict(row)), flush=True)
        rows.append(row)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
