"""Stored files as the API hands them out: a local path, bytes, or a redirect.

One job's files are, for each of its outputs, a video, its thumbnail and a spritesheet
built on first request from the video (a grid of evenly spaced frames in one JPEG, kept
with the job's other files). A local store's files are served from disk; a remote
store's (S3) either as bytes (API downloads) or as a short-lived presigned URL (signed
links).
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kinema.errors import NotFound
from kinema.jobs.keys import job_prefix, spritesheet_key
from kinema.media.spritesheet import build_spritesheet
from kinema.storage import Storage
from kinema.types import Job, JobStatus

ArtifactKind = Literal["video", "thumbnail", "spritesheet"]
PRESIGNED_TTL_S = 900  # a redirect is followed at once; the signed link carries the real TTL


@dataclass(frozen=True)
class Artifact:
    """Exactly one of ``path``, ``data`` and ``redirect`` is set."""

    media_type: str
    filename: str
    path: Path | None = None
    data: bytes | None = None
    redirect: str | None = None


def stored_file(storage: Storage, key: str, media_type: str, filename: str) -> Artifact:
    """A stored file: its local path, else its bytes."""
    path = storage.local_path(key)
    if path is not None:
        return Artifact(media_type, filename, path=path)
    return Artifact(media_type, filename, data=storage.get_bytes(key))


def signed_file(storage: Storage, key: str) -> Artifact:
    """A file named by a verified signed link: local path, else a presigned redirect."""
    path = storage.local_path(key)
    if path is not None:
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Artifact(media_type, path.name, path=path)
    remote = storage.download_url(key, ttl_s=PRESIGNED_TTL_S)
    if remote is None:
        raise NotFound("this file no longer exists")
    return Artifact("application/octet-stream", key.rpartition("/")[2], redirect=remote)


def job_artifact(
    storage: Storage,
    job: Job,
    kind: ArtifactKind,
    still_exists: Callable[[], bool],
    index: int = 0,
) -> Artifact:
    """``kind`` of output ``index`` of a succeeded job; NotFound before it succeeded, for
    a missing file or an output the job does not have.

    ``still_exists`` is asked after a spritesheet is built: a delete that ran meanwhile
    must not leave the new file behind.
    """
    if job.status is not JobStatus.SUCCEEDED or not job.outputs:
        raise NotFound(f"the video has no content: it is {job.status.value}")
    if not 0 <= index < len(job.outputs):
        raise NotFound(f"the video has no output {index}: its job made {len(job.outputs)}")
    result = job.outputs[index]
    stem = job.id if index == 0 else f"{job.id}-{index}"
    if kind == "video":
        return stored_file(storage, result.video_key, "video/mp4", f"{stem}.mp4")
    if kind == "thumbnail":
        if result.thumbnail_key is None:
            raise NotFound("the video has no thumbnail")
        return stored_file(storage, result.thumbnail_key, "image/jpeg", f"{stem}.jpg")
    key = spritesheet_key(job.id, index)
    filename = f"{stem}-spritesheet.jpg"
    try:
        return stored_file(storage, key, "image/jpeg", filename)
    except NotFound:
        pass
    path = storage.local_path(result.video_key)
    source = path or io.BytesIO(storage.get_bytes(result.video_key))
    sheet = build_spritesheet(source, round(result.duration_s * result.fps))
    storage.put_bytes(key, sheet)
    if not still_exists():
        storage.delete_prefix(job_prefix(job.id))
        raise NotFound("the video was deleted")
    return stored_file(storage, key, "image/jpeg", filename)
