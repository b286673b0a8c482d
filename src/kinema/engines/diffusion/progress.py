"""Progress and cancel checks hooked into one diffusers pipeline call.

Progress moves after every denoising step (``share`` of the bar; a model that denoises in
several passes gives each its ``stage``) and before every VAE decoder call (the rest).
Cancel is checked before every transformer call, after every step and before every
decoder call; the pipeline's interrupt flag is set too, so the step loop stops even if
something swallows the ``JobCancelled``.
"""

from __future__ import annotations

from typing import Any

import torch

from kinema.errors import JobCancelled
from kinema.types import CancelCheck, ProgressCallback


class StepProgress:
    """Step progress, decode progress and cancel checks, hooked into one pipeline call."""

    def __init__(
        self,
        pipe: Any,
        steps: int,
        share: float,
        decode_calls: int,
        on_progress: ProgressCallback,
        is_cancelled: CancelCheck,
        is_cancelled_while_decoding: CancelCheck,
    ) -> None:
        self.pipe = pipe
        self.steps = steps
        self.share = share
        self.span = (0.0, 1.0)  # the part of the denoising bar the current pass fills
        self.decode_calls = max(decode_calls, 1)
        self.decoded = 0
        self.on_progress = on_progress
        self.is_cancelled = is_cancelled
        self.is_cancelled_while_decoding = is_cancelled_while_decoding

    def stage(self, pipe: Any, start: float, width: float) -> None:
        """The next pipeline call (of a model with several) fills ``start..start+width``."""
        self.pipe = pipe
        self.span = (start, width)

    def attach(
        self, denoisers: list[torch.nn.Module], decoder: torch.nn.Module | None
    ) -> list[Any]:
        hooks = [module.register_forward_pre_hook(self._before_denoiser) for module in denoisers]
        if isinstance(decoder, torch.nn.Module):
            hooks.append(decoder.register_forward_pre_hook(self._before_decoder))
        return hooks

    def on_step_end(
        self, pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        total = getattr(pipe, "_num_timesteps", None) or self.steps
        start, width = self.span
        self.on_progress(self.share * (start + width * min((step + 1) / total, 1.0)))
        self._check(f"after step {step + 1} of {total}")
        return {}

    def _before_denoiser(self, module: torch.nn.Module, args: Any) -> None:
        self._check("while denoising")

    def _before_decoder(self, module: torch.nn.Module, args: Any) -> None:
        if self.is_cancelled_while_decoding():
            self.pipe._interrupt = True
            raise JobCancelled("cancelled while decoding")
        done = min(self.decoded / self.decode_calls, 0.99)
        self.decoded += 1
        self.on_progress(self.share + (1.0 - self.share) * done)

    def _check(self, where: str) -> None:
        if self.is_cancelled():
            # The interrupt flag stops the step loop even if something swallows the raise.
            self.pipe._interrupt = True
            raise JobCancelled(f"cancelled {where}")
