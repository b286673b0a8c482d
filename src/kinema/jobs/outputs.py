"""The one step that keeps a finished video as a job's output, whoever made it.

A clip rendered here and an MP4 a provider made both end the same way: the video and its
thumbnail stored under keys that carry the attempt (a late, fenced-out attempt never
overwrites the output of the attempt that committed), described by a ``VideoResult``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from kinema.jobs.keys import output_thumbnail_key, output_video_key
from kinema.storage import Storage
from kinema.types import Job, VideoResult


class VideoFacts(Protocol):
    """What the encoder wrote, or what a probe of a provider's MP4 found."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def duration_s(self) -> float: ...

    @property
    def has_audio(self) -> bool: ...


def keep_output(
    storage: Storage,
    job: Job,
    index: int,
    video: Path,
    thumbnail: Path | None,
    facts: VideoFacts,
    engine: str,
) -> VideoResult:
    """Move ``video`` (and ``thumbnail``, if it was written) into storage as output
    ``index`` of ``job``'s current attempt."""
    video_key = output_video_key(job.id, job.attempt, index)
    size = storage.put_file(video_key, video)
    thumb_key = None
    if thumbnail is not None and thumbnail.exists():
        thumb_key = output_thumbnail_key(job.id, job.attempt, index)
        storage.put_file(thumb_key, thumbnail)
    return VideoResult(
        video_key=video_key,
        thumbnail_key=thumb_key,
        width=facts.width,
        height=facts.height,
        fps=facts.fps,
        duration_s=facts.duration_s,
        has_audio=facts.has_audio,
        size_bytes=size,
        engine=engine,
    )
