"""Step caches: diffusers hooks that reuse transformer work between denoising steps.

- ``first_block``: when the first block's output barely changed since the last step
  (relative change under ``cache_threshold``), the other blocks are skipped and their last
  residual is reused.
- ``mag``: MagCache, the same idea driven by the magnitude ratios of successive residuals,
  measured once per model (``cache_config = { mag_ratios = [...] }``; run once with
  ``{ calibrate = true }`` to print them).
- ``taylorseer``: TaylorSeer, which computes the blocks every ``cache_interval`` steps and
  extrapolates their outputs in between with a Taylor series.
- ``faster``: FasterCache, which reuses attention outputs between steps and skips the
  unconditional half of batched guidance on some steps (models that batch it: LTX).

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
        config = _config(pipe, options, steps)
        transformer.enable_cache(config)
    except (TypeError, ValueError) as error:
        raise EngineError(
            f"engine {engine}: cache = {options.cache!r} with cache_config "
            f"{options.cache_config} cannot be applied: {error}"
        ) from None


def _config(pipe: Any, options: DiffusionOptions, steps: int) -> Any:
    from diffusers.hooks import (
        FasterCacheConfig,
        FirstBlockCacheConfig,
        MagCacheConfig,
        TaylorSeerCacheConfig,
    )

    extra = dict(options.cache_config)
    if options.cache == "first_block":
        return FirstBlockCacheConfig(threshold=options.cache_threshold, **extra)
    if options.cache == "mag":
        extra.setdefault("threshold", options.cache_threshold)
        extra.setdefault("num_inference_steps", steps)
        return MagCacheConfig(**extra)
    if options.cache == "taylorseer":
        return TaylorSeerCacheConfig(**extra)
    if options.cache == "faster":
        extra.setdefault("current_timestep_callback", lambda: pipe.current_timestep)
        for key, value in list(extra.items()):
            if key.endswith("_range") and isinstance(value, list):
                extra[key] = tuple(value)  # TOML arrays for diffusers' (start, end) pairs
        return FasterCacheConfig(**extra)
    raise EngineError(f"unknown cache {options.cache!r}")
