"""A small catalog and helpers for tests of several outputs, extensions and remixes.

The test model renders 320x180 at 12 fps with the ``motion`` engine, so a clip takes a
fraction of a second even on a loaded machine, and takes every dialect's Google id.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from kinema.jobs.execute import Executor, RunControl
from kinema.runtime import Runtime
from kinema.types import Job

TINY = "veo-3.1-fast-generate-preview"  # the test catalog serves it small and fast
NO_EXTENSION = "veo-3.0-fast-generate-001"
FPS = 12
SIZE = "320x180"

CATALOG = f"""
[engines.motion]
kind = "motion"
fps = {FPS}

[models."{TINY}"]
dialects = ["gemini", "vertex", "openai", "v1", "aimlapi", "unified"]
engine = "motion"
inputs = "any"
durations = [1, 2, 4]
default_duration = 1
aspect_ratios = ["16:9", "9:16"]
resolutions = ["720p"]
sizes = ["{SIZE}"]
audio = true
default_audio = true
samples = 4
extension = {{ max_input_s = 4, max_output_s = 6 }}
options = ["duration", "size", "seed", "generate_audio", "aspect_ratio", "resolution"]

[models."{NO_EXTENSION}"]
dialects = ["gemini", "vertex", "openai", "v1"]
engine = "motion"
inputs = "any"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
sizes = ["{SIZE}"]
audio = false
default_audio = false
options = ["duration", "size", "seed"]
"""


def write_catalog(directory: Path) -> Path:
    path = directory / "catalog.toml"
    path.write_text(CATALOG)
    return path


def run_next(runtime: Runtime, control: RunControl | None = None) -> Job:
    """Claim the next queued job and run it here, to its end; returns the finished row."""
    job = runtime.store.claim_next(worker_id="test", lease_s=60)
    assert job is not None, "no queued job"
    executor = Executor(runtime.store, runtime.storage, runtime.catalog, runtime.engines)
    executor.execute(job, control or RunControl())
    return runtime.store.get_any(job.id)


def frames_of(data: bytes) -> list[np.ndarray]:
    """Every frame of an MP4 as RGB (BT.709, as kinema encodes)."""
    with av.open(io.BytesIO(data)) as container:
        return [
            frame.reformat(format="rgb24", src_colorspace=1, src_color_range=1).to_ndarray()
            for frame in container.decode(video=0)
        ]


def audio_of(data: bytes) -> np.ndarray:
    """The sound of an MP4 as mono float samples at its own rate."""
    with av.open(io.BytesIO(data)) as container:
        chunks = [frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)]
    return np.concatenate(chunks)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
