"""Where a job's files live in storage: one directory per job, named files inside it.

Everything a job needs or makes is under ``job_prefix``, so deleting a job or expiring it
is one prefix removal. Output keys carry the attempt that wrote them: a late, fenced-out
attempt never overwrites what the committed attempt stored. The first output keeps the
names a one-video job always had, so older rows and links stay valid.

A caller may also name a folder of the store for its videos (Vertex AI's ``storageUri``):
each video is then copied to ``delivered_video_key`` under it, outside every job's
directory, so removing the job leaves those copies to the caller.
"""

from __future__ import annotations

import re

__all__ = [
    "delivered_video_key",
    "folder_problem",
    "input_key",
    "job_of_key",
    "job_prefix",
    "output_of_delivered_key",
    "output_of_video_key",
    "output_thumbnail_key",
    "output_video_key",
    "spritesheet_key",
]

_JOB_FILE = re.compile(r"jobs/(?P<job>[0-9a-f]{32})/[^/]+")
_OUTPUT_VIDEO = re.compile(r"jobs/(?P<job>[0-9a-f]{32})/video-\d+(?:-(?P<index>[1-9]\d*))?\.mp4")
_DELIVERED_VIDEO = re.compile(r"(?:.+/)?(?P<job>[0-9a-f]{32})/sample_(?P<index>0|[1-9]\d*)\.mp4")
# Top-level folders kinema writes itself: a caller's folder may not be inside one.
_OWN_FOLDERS = ("jobs", "health")
_MAX_FOLDER = 512  # of 1,024 bytes an S3 key may have; the rest is the store's prefix and names
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def delivered_video_key(folder: str, job_id: str, index: int) -> str:
    """Where output ``index`` of job ``job_id`` is copied for a caller who named ``folder``
    (a key prefix; "" is the store's root): ``{folder}/{job id}/sample_{index}.mp4``, the
    layout Vertex AI writes under a ``storageUri``."""
    head = folder.strip("/")
    return f"{head}/{job_id}/sample_{index}.mp4" if head else f"{job_id}/sample_{index}.mp4"


def output_of_delivered_key(key: str) -> tuple[str, int] | None:
    """``(job id, output index)`` a key of ``delivered_video_key``'s form names, or None.
    The form alone proves nothing: the job's output records the key it was copied to."""
    match = _DELIVERED_VIDEO.fullmatch(key)
    if match is None:
        return None
    return match["job"], int(match["index"])


def folder_problem(folder: str) -> str | None:
    """Why ``folder`` (a key prefix a caller named) cannot hold copies, or None when it
    can: it must be a plain relative path, not too long, outside kinema's own folders."""
    head = folder.rstrip("/")
    if not head:
        return None
    parts = head.split("/")
    if len(folder.encode()) > _MAX_FOLDER:
        return f"the folder is longer than {_MAX_FOLDER} bytes"
    if _CONTROL.search(head) or "\\" in head or any(p in ("", ".", "..") for p in parts):
        return "the folder must be a plain path (no empty, '.' or '..' parts, no backslashes)"
    if parts[0] in _OWN_FOLDERS:
        return f"{parts[0]}/ holds this server's own files; name another folder"
    return None
