"""What one job may make, checked when it is accepted.

A request is small; what it asks for need not be: a 30-frame source at 4096x4096 with
four samples asks a CPU engine for thousands of 16-megapixel frames. Two bounds hold:

- an extension's output is its source's size, so a source may have at most as many
  pixels a frame as the model's largest frame;
- the pixels of every frame of every video a job makes (width x height x frames x
  samples, an extension's spliced source included) stay within the server's
  ``max_job_pixels``.

Either refusal is an ``InvalidRequest`` naming the field to change, so every dialect
answers its own 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kinema.catalog import Catalog
from kinema.catalog_models import FRAME_SIZES
from kinema.errors import InvalidRequest
from kinema.types import GenerationRequest

__all__ = ["OutputBudget"]


@dataclass(frozen=True)
class OutputBudget:
    fps: int  # the highest frame rate among the model's engines
    max_frame_pixels: int  # the model's largest frame (width x height)
    max_job_pixels: int  # the server's bound on all the pixels one job makes

    @classmethod
    def for_model(cls, catalog: Catalog, model_id: str, max_job_pixels: int) -> OutputBudget:
        spec = catalog.get(model_id)
        areas = [
            width * height
            for (resolution, ratio), (width, height) in FRAME_SIZES.items()
            if resolution in spec.resolutions and ratio in spec.aspect_ratios
        ]
        areas += [math.prod(int(side) for side in size.split("x")) for size in spec.sizes]
        return cls(
            fps=max(catalog.engines[name].fps for name in spec.engines),
            max_frame_pixels=max(areas, default=0),
            max_job_pixels=max_job_pixels,
        )

    def check_source(
        self, width: int, height: int, wire_names: Mapping[str, str]
    ) -> None:
        """An extension of a ``width`` x ``height`` source makes frames of that size."""
        if width * height > self.max_frame_pixels:
            raise InvalidRequest.for_field(
                wire_names.get("video", "video"),
                f"video is {width}x{height}; this model makes videos of at most "
                f"{self.max_frame_pixels:,} pixels a frame, so it cannot extend it",
            )

    def check(
        self,
        request: GenerationRequest,
        width: int,
        height: int,
        wire_names: Mapping[str, str],
    ) -> None:
        """Refuse ``request`` when its videos of ``width`` x ``height`` pass the bound."""
        seconds = request.duration_s + (request.video_duration_s or 0.0)
        frames = math.ceil(seconds * self.fps)
        samples = max(1, request.sample_count)
        pixels = width * height * frames * samples
        if pixels <= self.max_job_pixels:
            return
        field = "sample_count" if samples > 1 else ("video" if request.video else "duration")
        raise InvalidRequest.for_field(
            wire_names.get(field, field),
            f"this job would make {width}x{height} x {frames} frames x {samples} "
            f"video(s) = {pixels:,} pixels; this server makes at most "
            f"{self.max_job_pixels:,} per job: ask for fewer videos, or shorter or "
            "smaller ones",
        )
