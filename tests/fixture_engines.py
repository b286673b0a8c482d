"""Tiny single-behaviour engines for worker tests (loaded through ``kind = "python"``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from kinema.errors import JobCancelled
from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback


class SlowEngine:
    """Grey frames, ``frame_s`` seconds each, honouring cancel between frames."""

    name = "slow"

    def __init__(self, options: dict[str, Any]) -> None:
        self.frame_s = float(options.get("frame_s", 0.05))

    def setup(self) -> None:
        pass

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        def frames() -> Iterator[np.ndarray]:
            for i in range(request.num_frames):
                if is_cancelled():
                    raise JobCancelled("cancelled")
                time.sleep(self.frame_s)
                on_progress((i + 1) / request.num_frames)
                yield np.full((request.height, request.width, 3), i % 255, np.uint8)

        return Clip(request.width, request.height, request.fps, request.num_frames, frames())


class CrashingEngine:
    """Fails every job with an ordinary Python exception (an engine bug)."""

    name = "crashing"

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def setup(self) -> None:
        pass

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        raise RuntimeError("the model exploded")


class FlakyEngine:
    """Raises ``TransientError`` on its first run (marked by a file), then renders grey."""

    name = "flaky"

    def __init__(self, options: dict[str, Any]) -> None:
        from pathlib import Path

        self.marker = Path(str(options["marker"]))

    def setup(self) -> None:
        pass

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        from kinema.errors import TransientError

        if not self.marker.exists():
            self.marker.write_text("failed once")
            raise TransientError("the upstream service answered 503")
        frames = (np.zeros((request.height, request.width, 3), np.uint8) for _ in range(2))
        return Clip(request.width, request.height, request.fps, 2, frames)


def model_toml(
    name: str,
    *,
    engine: str,
    dialect: str,
    durations: tuple[int, ...] = (1,),
    default_duration: int | None = None,
) -> str:
    """A catalog entry for a text-only 720p test model that takes ``duration``."""
    default = durations[0] if default_duration is None else default_duration
    return f"""
[models.{name}]
dialect = "{dialect}"
engine = "{engine}"
inputs = "text"
durations = [{", ".join(map(str, durations))}]
default_duration = {default}
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration"]
"""


class NoGPUEngine:
    """Fails its setup as a ``device = "cuda"`` engine does on a machine without a GPU."""

    name = "no-gpu"

    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def setup(self) -> None:
        from kinema.errors import EngineError

        raise EngineError("device 'cuda' asked for, but torch sees no CUDA GPU")

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        raise AssertionError("never set up")
