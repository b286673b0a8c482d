"""What each diffusers model accepts, checked when the catalog loads (no torch imported).

A catalog whose engine asks for something its model cannot do fails at startup with a
message naming the engine and the option, instead of failing the first job on a GPU:

- ``sizes`` must be multiples of the model's spatial step (the VAE's compression times
  the transformer's patch): 16 for Wan 2.2 A14B, 32 for TI2V 5B (16x VAE, 2x2 patches),
  LTX-Video and LTX-2 (32x VAEs). Other sizes would be rounded by the pipeline, silently.
- LTX-Video and LTX-2 always pass a text attention mask, which the flash-attn and
  SageAttention kernels reject: those backends are refused for them.
- Options that only some models have (LTX-2's guidance version, LTX-Video's upsampler,
  Wan A14B's LoRA on its second expert) are refused on the others.
- A step cache needs its own settings where diffusers gives no default (MagCache's
  per-model ratios), and pinned timesteps need one per step.
- On a machine that may not download (``hub_offline``, from the settings), attention
  backends whose kernels come from the hub are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinema.engines.diffusion.options import DiffusionOptions
from kinema.errors import EngineError


@dataclass(frozen=True)
class ModelRules:
    size_multiple: int  # frame width and height are multiples of this (VAE x patch)
    text_mask: bool  # the transformer gets a text attention mask on every call
    batched_guidance: bool  # the pipeline runs both guidance branches in one batch
    sizes: tuple[tuple[int, int], ...]  # native (width, height)
    frame_step: int  # frame counts are frame_step * k + 1; one latent frame per step
    max_frames: int
    experts: int = 1  # denoisers (Wan 2.2 A14B has two)

    def tokens_per_frame(self, width: int, height: int) -> int:
        """Video tokens of one latent frame at this size."""
        return (width // self.size_multiple) * (height // self.size_multiple)


RULES: dict[str, ModelRules] = {
    "wan_ti2v": ModelRules(
        32,
        text_mask=False,
        batched_guidance=False,
        sizes=((1280, 704), (704, 1280)),
        frame_step=4,
        max_frames=121,
    ),
    "wan_i2v": ModelRules(
        16,
        text_mask=False,
        batched_guidance=False,
        sizes=((832, 480), (480, 832), (1280, 720), (720, 1280)),
        frame_step=4,
        max_frames=81,
        experts=2,
    ),
    "ltx": ModelRules(
        32,
        text_mask=True,
        batched_guidance=True,
        sizes=((1216, 704), (704, 1216), (768, 512), (512, 768)),
        frame_step=8,
        max_frames=257,
    ),
    "ltx2": ModelRules(
        32,
        text_mask=True,
        batched_guidance=True,
        sizes=((1280, 704), (704, 1280), (768, 512), (512, 768), (1920, 1088), (1088, 1920)),
        frame_step=8,
        max_frames=481,
    ),
}

# diffusers attention backends that raise on an attention mask (flash-attn 2/3/4 and
# SageAttention without varlen, and PyTorch's flash-only SDPA kernel).
MASKLESS_BACKENDS = frozenset(
    {
        "flash",
        "flash_hub",
        "flash_4_hub",
        "_flash_3",
        "_flash_3_hub",
        "aiter_fa2_hub",
        "sage",
        "sage_hub",
        "sage_blackwell_hub",
        "_sage_qk_int8_pv_fp8_cuda",
        "_sage_qk_int8_pv_fp8_cuda_sm90",
        "_sage_qk_int8_pv_fp16_cuda",
        "_sage_qk_int8_pv_fp16_triton",
        "_native_flash",
    }
)


def check_engine_options(
    kind: str, name: str, options: dict[str, Any], *, hub_offline: bool = False
) -> DiffusionOptions:
    """Parse an engine's catalog options and check them against its model (and, with
    ``hub_offline``, against a machine that cannot download); raise ``EngineError``
    naming the engine and option otherwise."""
    parsed = DiffusionOptions.parse(name, options)
    rules = RULES[kind]
    problem = _problem(kind, rules, parsed, hub_offline)
    if problem:
        raise EngineError(f"engine {name} (kind {kind}): {problem}")
    return parsed


def _problem(
    kind: str, rules: ModelRules, options: DiffusionOptions, hub_offline: bool
) -> str | None:
    step = rules.size_multiple
    wrong = [f"{w}x{h}" for w, h in options.sizes if w % step or h % step]
    if wrong:
        return (
            f"sizes {wrong} are not multiples of {step}, which this model needs "
            "(width and height each)"
        )
    if rules.text_mask and options.attention_backend in MASKLESS_BACKENDS:
        return (
            f"attention_backend {options.attention_backend!r} rejects the text attention mask "
            'this model passes on every call; use "native", "_native_cudnn", "flash_varlen" '
            'or "sage_varlen"'
        )
    if options.version is not None and kind != "ltx2":
        return "version applies to LTX-2 engines only (kind ltx2)"
    if options.stg_blocks and kind != "ltx2":
        return "stg_blocks applies to LTX-2 engines only (kind ltx2)"
    if options.upsampler is not None and kind != "ltx":
        return "upsampler applies to LTX-Video engines only (kind ltx)"
    if rules.experts < 2 and any(lora.transformer == "transformer_2" for lora in options.lora):
        return 'lora transformer = "transformer_2" needs a model with two experts (wan_i2v)'
    if options.guidance_scale_2 is not None and rules.experts < 2:
        return "guidance_scale_2 applies to Wan 2.2 A14B engines only (kind wan_i2v)"
    if options.timesteps:
        steps = options.steps
        if steps is None or steps != len(options.timesteps):
            return f"timesteps lists {len(options.timesteps)} values: set steps to that count"
        if list(options.timesteps) != sorted(options.timesteps, reverse=True):
            return "timesteps must go down, from most noise (1000) to least"
    if options.cache == "mag" and not (
        options.cache_config.get("mag_ratios") or options.cache_config.get("calibrate")
    ):
        return (
            'cache = "mag" needs the ratios measured for this model: cache_config = '
            "{ mag_ratios = [...] } (run once with cache_config = { calibrate = true } to "
            "print them)"
        )
    if options.cache == "faster":
        return (
            'cache = "faster" (FasterCache) does not apply to these models in diffusers 0.42: '
            "its unconditional-branch skip splits latents by frequency in (B, C, F, H, W) "
            "layout and these transformers take packed token sequences, and its attention "
            "reuse holds one output per layer, which mixes Wan's two separate guidance "
            "calls and finds no cached output on LTX; use first_block, mag or taylorseer"
        )
    if options.quantize == "fp8" and (options.device or "").startswith("cpu"):
        return 'quantize = "fp8" needs an NVIDIA GPU with float8 tensor cores (8.9+)'
    hub = _hub_backend_offline(options.attention_backend) if hub_offline else None
    if hub:
        return hub
    if len(options.devices) > 1:
        split = _context_parallel_problem(rules, options)
        if split:
            return split
    if len(options.devices) == 1:
        return 'devices lists one device: use device = "..." (devices is for two or more)'
    if options.devices and options.offload != "none":
        return "devices (one job across several GPUs) cannot be combined with offload"
    return None


# Attention backends whose kernels diffusers downloads from the Hugging Face hub on first use.
_HUB_SUFFIX = "_hub"
_VARLEN_BACKENDS = frozenset({"flash_varlen", "flash_varlen_hub", "sage_varlen", "_flash_varlen_3"})


def _hub_backend_offline(backend: str | None) -> str | None:
    """Why ``backend`` cannot run on a machine that may not download, if it cannot."""
    if backend is None or not backend.endswith(_HUB_SUFFIX):
        return None
    return (
        f"attention_backend {backend!r} downloads its kernel from the Hugging Face hub, "
        "and this server is offline (HF_HUB_OFFLINE); use the same backend without "
        '"_hub" (its package installed), or "_native_cudnn"'
    )


def _context_parallel_problem(rules: ModelRules, options: DiffusionOptions) -> str | None:
    world = len(options.devices)
    if rules.text_mask:  # LTX-Video and LTX-2
        return (
            "devices (context parallelism) cannot run this model in diffusers 0.42: its "
            "context-parallel plan splits the video tokens but not the per-token timesteps "
            "the image-to-video pipelines pass (the first frame is kept clean), so the "
            "first block fails on mismatched shapes; run it on one GPU per job"
        )
    if options.attention_backend in _VARLEN_BACKENDS:
        return (
            f"attention_backend {options.attention_backend!r} (packed variable-length "
            "sequences) cannot be combined with devices (context parallelism splits each "
            'sequence across the GPUs); use "_native_cudnn" or "flash"'
        )
    sizes = options.sizes or rules.sizes
    uneven = [f"{w}x{h}" for w, h in sizes if rules.tokens_per_frame(w, h) % world]
    if uneven:
        return (
            f"sizes {uneven} have a number of video tokens per frame that does not divide "
            f"by {world} devices (context parallelism splits the tokens evenly); list "
            "sizes whose tokens divide, or use fewer devices"
        )
    return None
