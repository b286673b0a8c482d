"""Noise schedules: the scheduler a model runs with, its shift, and pinned timesteps.

Few-step models are trained for one schedule: LightX2V's 4-step Wan 2.2 LoRAs for an Euler
flow-matching scheduler with shift 5 at timesteps 1000, 750, 500, 250; FastVideo's DMD
checkpoints for a consistency (LCM-style) sampler at 1000, 757, 522, which predicts the
clean video and adds fresh noise for the next step. The catalog names the scheduler class
(``scheduler``), its settings (``scheduler_config``) and the timesteps (``timesteps``);
they replace what the weights' ``scheduler/`` folder says.

Pipelines call ``scheduler.set_timesteps(steps)`` and ``scheduler.step(...)`` without a
generator; pinned timesteps are passed as sigmas (timestep / 1000, shifted as the
scheduler shifts its own), and a scheduler that draws noise in ``step`` gets the job's
seeded generator, so a seed makes the same video and every rank of a group draws the same
noise.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kinema.engines.diffusion.options import DiffusionOptions
from kinema.errors import EngineError


def apply(pipe: Any, options: DiffusionOptions, engine: str) -> None:
    """Replace or reconfigure the pipeline's scheduler as the catalog says."""
    if options.scheduler or options.scheduler_config:
        import diffusers

        name = options.scheduler or type(pipe.scheduler).__name__
        scheduler_type = getattr(diffusers, name, None)
        if scheduler_type is None or not hasattr(scheduler_type, "from_config"):
            raise EngineError(f"engine {engine}: scheduler {name!r} is not a diffusers scheduler")
        try:
            pipe.scheduler = scheduler_type.from_config(
                pipe.scheduler.config, **options.scheduler_config
            )
        except (TypeError, ValueError) as error:
            raise EngineError(
                f"engine {engine}: scheduler {name} with {options.scheduler_config}: {error}"
            ) from None
    if options.timesteps:
        pin_timesteps(pipe.scheduler, options.timesteps, engine)


def pin_timesteps(scheduler: Any, timesteps: tuple[float, ...], engine: str) -> None:
    """Make every ``set_timesteps`` call of ``scheduler`` use these timesteps."""
    original = scheduler.set_timesteps
    if "sigmas" not in inspect.signature(original).parameters:
        raise EngineError(
            f"engine {engine}: {type(scheduler).__name__} cannot take pinned timesteps; "
            "use a flow-matching scheduler (FlowMatchEulerDiscreteScheduler, "
            "FlowMatchLCMScheduler)"
        )
    total = float(scheduler.config.get("num_train_timesteps", 1000))
    sigmas = [t / total for t in timesteps]

    def pinned(num_inference_steps: int | None = None, device: Any = None, **kwargs: Any) -> Any:
        return original(device=device, sigmas=sigmas, mu=kwargs.get("mu"))

    scheduler.set_timesteps = pinned


@contextmanager
def seeded_steps(scheduler: Any, generator: Any) -> Iterator[None]:
    """While a clip is made, a scheduler that draws noise in ``step`` draws it from
    ``generator``."""
    original = scheduler.step
    if "generator" not in inspect.signature(original).parameters:
        yield
        return
    scheduler.step = functools.partial(original, generator=generator)
    try:
        yield
    finally:
        del scheduler.step  # the class's method again
