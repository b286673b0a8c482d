"""Step caches: diffusers hooks that reuse transformer work between denoising steps.

- ``first_block``: when the first block's output barely changed since the last step
  (relative change under ``cache_threshold``), the other blocks are skipped and their last
  residual is reused.
- ``mag``: MagCache, the same idea driven by the magnitude ratios of successive residuals,
  measured once per model (``cache_config = { mag_ratios = [...] }``; run once with
  ``{ calibrate = true }`` to print them).
- ``taylorseer``: TaylorSeer, which computes the blocks every ``cache_interval`` steps and
  extrapolates their outputs in between with a Taylor series.

Each guidance branch keeps its own cache state (the pipelines run them in separate cache
contexts), so the caches apply with or without guidance.
- ``faster`` (FasterCache) is refused when the catalog loads (``checks``): it does not
  apply to these models in diffusers 0.42.

Settings other than the threshold come from ``cache_config`` with diffusers' own names.
"""

from __future__ import annotations

from typing import Any

from kinema.engines.diffusion.options import DiffusionOptions
from kinema.errors import EngineError


def enable_step_cache(
    pipe: Any, transformer: Any, options: DiffusionOptions, engine: str, steps: int
) -> None:
    """Put ``options.cache`` on one transformer (each expert gets its own state)."""
    if not hasattr(transformer, "enable_cache"):
        raise EngineError(f"engine {engine}: this transformer takes no step cache")
    try:
        config = _config(transformer, options, steps)
        transformer.enable_cache(config)
    except (TypeError, ValueError) as error:
        raise EngineError(
            f"engine {engine}: cache = {options.cache!r} with cache_config "
            f"{options.cache_config} cannot be applied: {error}"
        ) from None


def _config(transformer: Any, options: DiffusionOptions, steps: int) -> Any:
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    extra = dict(options.cache_config)
    if options.cache == "first_block":
        return FirstBlockCacheConfig(threshold=options.cache_threshold, **extra)
    if options.cache == "mag":
        extra.setdefault("threshold", options.cache_threshold)
        extra.setdefault("num_inference_steps", steps)
        return MagCacheConfig(**extra)
    if options.cache == "taylorseer":
        # diffusers' default patterns ("^blocks.*attn", matched whole) name no module of
        # the Wan and LTX transformers (their attentions are "blocks.N.attn1"): predict
        # each whole block instead.
        blocks = "blocks" if hasattr(transformer, "blocks") else "transformer_blocks"
        extra.setdefault("cache_identifiers", [rf"^{blocks}\.\d+$"])
        return TaylorSeerCacheConfig(**extra)
    raise EngineError(f"unknown cache {options.cache!r}")
