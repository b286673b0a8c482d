"""Inputs taken from earlier jobs: the video an extension continues, the picture a remix
re-films. Resolved while the client waits, for the requesting owner only.

A reference names an output of one of the owner's jobs (``job:<id>#<index>``, see
``kinema.types.output_ref``); another owner's job is as not-found as a missing one. What is
taken is copied into the new job's own directory, so the new job no longer depends on
its source: the source may expire or be deleted while the new job waits or runs.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

from PIL import Image

from kinema.catalog_models import ExtensionLimits
from kinema.errors import InvalidRequest, NotFound
from kinema.jobs.store import JobStore
from kinema.media.source_video import (
    InvalidVideo,
    VideoFacts,
    first_frame,
    inspect_video,
    video_duration_problem,
)
from kinema.storage import Storage
from kinema.types import Job, JobStatus, VideoResult, parse_output_ref

__all__ = ["AcceptedVideo", "SourceResolver"]

FieldPath = str | tuple[str | int, ...]
_VIDEO_MIMES = ("video/mp4", "video/quicktime", "video/webm", "application/octet-stream")


@dataclass(frozen=True)
class AcceptedVideo:
    """A source video accepted for an extension: its bytes, facts and where it came from."""

    data: bytes
    facts: VideoFacts
    source_job_id: str | None  # None for a video sent inline


class SourceResolver:
    def __init__(self, store: JobStore, storage: Storage, *, max_video_bytes: int) -> None:
        self.store = store
        self.storage = storage
        self.max_video_bytes = max_video_bytes

    def output(self, owner: str, source: str, field: FieldPath) -> tuple[Job, VideoResult]:
        """The finished output a ``job:`` reference names, or NotFound / InvalidRequest."""
        parsed = parse_output_ref(source)
        if parsed is None:
            raise InvalidRequest.for_field(field, "is not a reference to a video")
        job_id, index = parsed
        try:
            job = self.store.get(owner, job_id)
        except NotFound:
            raise NotFound(f"video {job_id} not found") from None
        if job.status is JobStatus.EXPIRED:
            raise InvalidRequest.for_field(field, "that video was removed after retention")
        if job.status is not JobStatus.SUCCEEDED or not job.outputs:
            raise InvalidRequest.for_field(
                field, f"that video is {job.status.value}; only a finished video can be used"
            )
        if index >= len(job.outputs):
            raise NotFound(f"video {job_id} has no output {index}")
        return job, job.outputs[index]

    def video(
        self, owner: str, source: str, field: FieldPath, limits: ExtensionLimits, adds_s: float
    ) -> AcceptedVideo:
        """The video an extension continues: checked, measured and read into memory."""
        source_job_id = None
        if parse_output_ref(source) is not None:
            job, output = self.output(owner, source, field)
            data = self.storage.get_bytes(output.video_key)
            source_job_id = job.id
        else:
            data = self._inline(source, field)
        facts, _ = inspect_video(data, field=field)
        problem = video_duration_problem(facts, limits.max_input_s)
        if problem is None and facts.duration_s + adds_s > limits.max_output_s + 1e-6:
            problem = (
                f"video is {facts.duration_s:.2f} s long; adding {adds_s:g} s would pass this "
                f"model's {limits.max_output_s:g} s limit"
            )
        if problem is not None:
            raise InvalidVideo.for_field(field, problem)
        return AcceptedVideo(data, facts, source_job_id)

    def picture(self, owner: str, source: str, field: FieldPath) -> tuple[bytes, str]:
        """The picture of a referenced video (a remix starts from it) and its job id: the
        image its job started from, else the first frame of its video, as PNG."""
        job, output = self.output(owner, source, field)
        if job.request.image:
            try:
                return self.storage.get_bytes(job.request.image), job.id
            except NotFound:
                pass
        picture = first_frame(self.storage.get_bytes(output.video_key), field=field)
        return _png(picture), job.id

    def inline_picture(self, source: str, field: FieldPath) -> bytes:
        """The first frame, as PNG, of a video sent inline (an edit of an uploaded video)."""
        return _png(first_frame(self._inline(source, field), field=field))

    def _inline(self, source: str, field: FieldPath) -> bytes:
        """A video sent in the request: a ``data:`` URI or raw base64."""
        payload = source
        if source.startswith("data:"):
            header, comma, payload = source.partition(",")
            mime = header.removeprefix("data:").split(";")[0].strip().lower()
            if not comma or ";base64" not in header:
                raise InvalidVideo.for_field(field, "a data URI video must be base64-encoded")
            if mime and mime not in _VIDEO_MIMES:
                raise InvalidVideo.for_field(field, f"{mime!r} is not a video type")
        elif source.startswith(("http://", "https://", "gs://")):
            raise InvalidVideo.for_field(
                field, "video URLs are not fetched: send the video inline or name a video of yours"
            )
        if len(payload) > self.max_video_bytes * 4 // 3 + 4:
            raise InvalidVideo.for_field(field, "video is larger than this server accepts")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidVideo.for_field(field, "is not valid base64") from None
        if not data:
            raise InvalidVideo.for_field(field, "video is empty")
        return data



def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()
