"""Where a job's files live in storage: one directory per job, named files inside it.

Everything a job needs or makes is under ``job_prefix``, so deleting a job or expiring it
is one prefix removal. Output keys carry the attempt that wrote them: a late, fenced-out
attempt never overwrites what the committed attempt stored. The first output keeps the
names a one-video job always had, so older rows and links stay valid.
"""

from __future__ import annotations

import re

__all__ = [
    "input_key",
    "job_of_key",
    "job_prefix",
    "output_of_video_key",
    "output_thumbnail_key",
    "output_video_key",
    "spritesheet_key",
]

_JOB_FILE = re.compile(r"jobs/(?P<job>[0-9a-f]{32})/[^/]+")
_OUTPUT_VIDEO = re.compile(r"jobs/(?P<job>[0-9a-f]{32})/video-\d+(?:-(?P<index>[1-9]\d*))?\.mp4")


def job_prefix(job_id: str) -> str:
    """The storage directory holding one job's inputs and outputs."""
    return f"jobs/{job_id}/"


def job_of_key(key: str) -> str | None:
    """The id of the job whose file ``key`` is, or None for a key outside every job."""
    match = _JOB_FILE.fullmatch(key)
    return None if match is None else match["job"]


def input_key(job_id: str, name: str, extension: str) -> str:
    """A kept copy of one input (``first``, ``last``, ``reference-0``, ``video``...)."""
    return f"{job_prefix(job_id)}input-{name}.{extension}"


def _indexed(stem: str, index: int) -> str:
    return stem if index == 0 else f"{stem}-{index}"


def output_video_key(job_id: str, attempt: int, index: int = 0) -> str:
    return f"{job_prefix(job_id)}{_indexed(f'video-{attempt}', index)}.mp4"


def output_thumbnail_key(job_id: str, attempt: int, index: int = 0) -> str:
    return f"{job_prefix(job_id)}{_indexed(f'thumbnail-{attempt}', index)}.jpg"


def spritesheet_key(job_id: str, index: int = 0) -> str:
    """The spritesheet of output ``index``, built from its video on first request."""
    return f"{job_prefix(job_id)}{_indexed('spritesheet', index)}.jpg"


def output_of_video_key(key: str) -> tuple[str, int] | None:
    """``(job id, output index)`` of an output video's key, or None for any other key."""
    match = _OUTPUT_VIDEO.fullmatch(key)
    if match is None:
        return None
    return match["job"], int(match["index"] or 0)
