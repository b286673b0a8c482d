"""Canonical value types shared by every layer: dialects, jobs, workers, engines, client.

Imports flow one way: ``types`` imports nothing from kinema but ``errors``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from PIL import Image


class JobStatus(enum.StrEnum):
    """Where a job is in its life. Dialects map these to their own words."""

    QUEUED = "queued"  # accepted and durable, waiting for a worker
    RUNNING = "running"  # a worker holds a lease on it and is generating
    SUCCEEDED = "succeeded"  # the video is in storage
    FAILED = "failed"  # generation failed for good; ``error_*`` says why
    CANCELLED = "cancelled"  # the owner asked to stop it before it finished
    EXPIRED = "expired"  # finished long ago; its files were removed

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)

AspectRatio = Literal["16:9", "9:16"]
Resolution = Literal["360p", "720p", "1080p", "4k"]
SourceKind = Literal["extend", "remix", "edit"]

# A reference to an output of an earlier job, as a wire source: ``job:<job id>#<index>``.
# It stands where an image or video source may (the picture or the video of that output)
# and is resolved, for the requesting owner only, when the job is accepted.
OUTPUT_REF_PREFIX = "job:"


def output_ref(job_id: str, index: int = 0) -> str:
    """The source string that names output ``index`` of job ``job_id``."""
    return f"{OUTPUT_REF_PREFIX}{job_id}#{index}"


def parse_output_ref(source: str) -> tuple[str, int] | None:
    """``(job id, output index)`` of a ``job:`` source, or None for any other source."""
    if not source.startswith(OUTPUT_REF_PREFIX):
        return None
    job_id, _, index = source.removeprefix(OUTPUT_REF_PREFIX).partition("#")
    return job_id, int(index) if index.isdigit() else 0


@dataclass(frozen=True)
class GenerationRequest:
    """One video to make, independent of the wire dialect it arrived in.

    Image fields hold *sources* when parsed from the wire (an http(s) URL, raw base64
    or a ``data:`` URI) and *storage keys* once the job is accepted (``inputs/...``).
    """

    model: str
    prompt: str
    duration_s: int
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    generate_audio: bool = True
    negative_prompt: str | None = None
    seed: int | None = None
    enhance_prompt: bool | None = None
    auto_fix: bool | None = None
    person_generation: str | None = None
    safety_level: int | None = None
    image: str | None = None
    last_image: str | None = None
    reference_images: tuple[str, ...] = ()
    size: str | None = None  # explicit "WxH" frame size; overrides resolution + aspect ratio
    resize_mode: str | None = None  # "crop" or "pad": how a picture of another shape is fitted
    callback_url: str | None = None
    priority: int = 0
    off_peak: bool = False  # runs at the lowest priority; auto-cancelled if still queued late
    sample_count: int = 1  # videos to make from this request, each from its own seed
    # An extension: the video this one continues (a ``job:`` reference or a ``data:`` URI
    # on the wire, a storage key once accepted); ``duration_s`` is what is added to it.
    video: str | None = None
    video_duration_s: float | None = None  # the source video's length, once accepted
    # The job this one was derived from (extended, remixed or edited), and how.
    source_job_id: str | None = None
    source_kind: SourceKind | None = None
    # What was changed to serve the request as sent, each {"field", "requested", "used",
    # "reason"} with the field named as the client spelled it; dialects report them.
    adjustments: tuple[dict[str, Any], ...] = ()
    # A folder of kinema's bucket (s3://) the caller named: each video is copied under it.
    storage_uri: str | None = None
    # The project and location a Vertex AI client named (``projects/p/locations/l``): the
    # job's operation name carries them. None: the fixed scope of express mode.
    wire_scope: str | None = None
    # What the client sent that its dialect answers back and nothing else reads (the
    # Interactions API's labels, webhook user metadata, previous interaction, delivery).
    echo: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["reference_images"] = list(self.reference_images)
        data["adjustments"] = [dict(a) for a in self.adjustments]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationRequest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["reference_images"] = tuple(known.get("reference_images") or ())
        known["adjustments"] = tuple(dict(a) for a in known.get("adjustments") or ())
        return cls(**known)


@dataclass(frozen=True)
class VideoResult:
    """One video a succeeded job produced (storage keys, not URLs)."""

    video_key: str
    thumbnail_key: str | None
    width: int
    height: int
    fps: float
    duration_s: float
    has_audio: bool
    size_bytes: int
    engine: str | None = None  # the catalog engine that made it (usage is counted by it)
    # The key of its copy under the folder the caller named (``storage_uri``), if any.
    delivered_key: str | None = None
    # What the engine could not do of what was asked (``Clip.notes``), for the caller.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """A row of the jobs table, as every layer above the store sees it."""

    id: str
    owner: str
    model: str
    status: JobStatus
    request: GenerationRequest
    attempt: int
    progress: float  # 0.0 .. 1.0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_until: datetime | None = None
    cancel_requested: bool = False
    priority: int = 0
    idempotency_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    result: VideoResult | None = None  # the first output
    dialect: str = "aimlapi"
    outputs: tuple[VideoResult, ...] = ()  # every output, ``result`` first; () until done
    base_url: str | None = None  # of the request that created the job: its links start so
    queue_turn: int = 1  # the owner's nth waiting job when queued (fair order across owners)
    engine: str | None = None  # the catalog engine that runs or ran it
    upstream: dict[str, Any] | None = None  # a forwarded job's operation at its provider


@dataclass  # not frozen: built on every poll (see ``kinema.views.OutputView``)
class JobSummary:
    """The part of a job that a status poll renders (read without the request or times)."""

    id: str
    model: str
    status: JobStatus
    progress: float
    error_code: str | None
    error_message: str | None
    result: VideoResult | None
    outputs: tuple[VideoResult, ...] = ()
    base_url: str | None = None


# --- engine-facing types: engines see pixels and numbers, never storage or HTTP ---


@dataclass(frozen=True)
class EngineRequest:
    """Everything an engine needs to render one clip."""

    prompt: str
    width: int
    height: int
    fps: int
    num_frames: int
    generate_audio: bool
    seed: int
    negative_prompt: str | None = None
    image: Image.Image | None = None  # first frame, RGB, any size (engine fits it)
    last_image: Image.Image | None = None
    reference_images: tuple[Image.Image, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # engine options from the catalog
    resize_mode: str | None = None  # "crop" or "pad" as the client asked; None: the engine's way
    # An extension: the last frames of the video this clip continues, oldest first (the
    # last of them is also ``image``). Engines may read the camera's motion from them.
    previous_frames: tuple[Image.Image, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


@dataclass
class Audio:
    """A mono or stereo PCM track: float32 samples in [-1, 1], shape (channels, n)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[-1]) / self.sample_rate


@dataclass
class Clip:
    """An engine's output: frames produced lazily (so memory stays bounded) plus audio.

    ``frames`` yields ``num_frames`` uint8 RGB arrays of shape (height, width, 3).
    ``notes`` say what the engine could not do of what the request asked (a line of
    dialogue in a language no voice speaks...), for the job's result.
    """

    width: int
    height: int
    fps: int
    num_frames: int
    frames: Iterable[np.ndarray]
    audio: Audio | None = None
    notes: tuple[str, ...] = ()


ProgressCallback = Callable[[float], None]  # fraction done, 0.0 .. 1.0
CancelCheck = Callable[[], bool]  # True once the job should stop


@dataclass(frozen=True)
class QueueStats:
    """One model's queue, as the metrics report it."""

    model: str
    depth: int  # jobs queued (not asked to cancel)
    oldest_age_s: float  # how long the oldest of them has waited; 0 when none
