"""OpenAI's Videos API (``/v1/videos``) wire table: paths, status words, ids, create
fields and the video object.

Read by the server dialect (``kinema.api.dialects.openai``) and the upstream protocol
(``kinema.engines.upstream.openai``); the GPU servers' table (``kinema.wire.videojobs``)
takes the paths, words and fields they share from here. Wire facts: the ``openai`` SDK's
source. Paths are format strings over ``{video_id}``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kinema.errors import NotFound
from kinema.types import JobStatus
from kinema.wire.words import four_states

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "openai"
INLINE_VIDEO = False

VIDEOS_PATH = "/v1/videos"  # create (POST) and list (GET)
VIDEO_PATH = VIDEOS_PATH + "/{video_id}"  # poll (GET), delete (DELETE)
CONTENT_PATH = VIDEO_PATH + "/content"  # the MP4 (and its variants)

STATUS_WORDS = four_states("queued", "in_progress", "completed", "failed")
COMPLETED = STATUS_WORDS[JobStatus.SUCCEEDED]
FAILED = STATUS_WORDS[JobStatus.FAILED]

ID_PREFIX = "video_"
# ``create_and_poll`` sleeps this header's milliseconds between polls of an unfinished video.
POLL_AFTER_HEADER = "openai-poll-after-ms"
POLL_AFTER_MS = 1000  # a clip takes seconds to make; polling faster only adds load

# Create fields (a multipart form from the SDK): the first frame is a file part.
MODEL, PROMPT, SECONDS, SIZE = "model", "prompt", "seconds", "size"
IMAGE = "input_reference"
# kinema's extra create fields (the SDK's ``extra_body``), named as the canonical fields.
SEED, GENERATE_AUDIO, NEGATIVE_PROMPT = "seed", "generate_audio", "negative_prompt"
EXTENSIONS = (SEED, GENERATE_AUDIO, NEGATIVE_PROMPT)

# The video object's fields that a client reads back (``render`` writes them all).
ID, STATUS, PROGRESS, ERROR = "id", "status", "progress", "error"
ERROR_CODE, ERROR_MESSAGE = "code", "message"  # inside ``error``

_HEX32 = re.compile(r"[0-9a-f]{32}")


def wire_id(job_id: str) -> str:
    return ID_PREFIX + job_id


def job_id(video_id: str) -> str:
    """The job id of a video id; NotFound in OpenAI's words for anything else."""
    hex_id = video_id.removeprefix(ID_PREFIX)
    if not video_id.startswith(ID_PREFIX) or not _HEX32.fullmatch(hex_id):
        raise NotFound(f"No video found with id '{video_id}'.")
    return hex_id


def poll_headers(view: JobView) -> dict[str, str]:
    return {} if view.status.terminal else {POLL_AFTER_HEADER: str(POLL_AFTER_MS)}


def render(view: JobView) -> dict[str, Any]:
    """The video object (every response about a video, and webhook bodies)."""
    if view.result is not None:
        width, height = view.result.width, view.result.height
    else:
        width, height = view.frame or (0, 0)
    completed_at = _unix(view.finished_at) if view.status.terminal else None
    expires_at = None
    if view.status is JobStatus.SUCCEEDED and completed_at is not None:
        expires_at = completed_at + view.url_ttl_s
    request = view.request
    return {
        ID: wire_id(view.id),
        "object": "video",
        "model": view.model,
        STATUS: STATUS_WORDS[view.status],
        PROGRESS: view.percent,
        "created_at": _unix(view.created_at),
        "completed_at": completed_at,
        "expires_at": expires_at,
        "prompt": None if request is None else request.prompt,
        "size": f"{width}x{height}",
        "seconds": _seconds(view),
        "remixed_from_video_id": _remixed_from(view),
        ERROR: _error(view),
    }


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _seconds(view: JobView) -> str:
    """The video's length; for an extension the joined length, as OpenAI reports it."""
    request = view.request
    if view.result is not None and request is not None and request.video is not None:
        return f"{round(view.result.duration_s, 2):g}"
    if request is None:
        return ""
    if request.video_duration_s is not None:
        return f"{round(request.video_duration_s + request.duration_s, 2):g}"
    return str(request.duration_s)


def _remixed_from(view: JobView) -> str | None:
    request = view.request
    if request is None or request.source_job_id is None:
        return None
    return wire_id(request.source_job_id) if request.source_kind in ("remix", "edit") else None


def _error(view: JobView) -> dict[str, str] | None:
    if view.status is JobStatus.CANCELLED:
        return {ERROR_CODE: "cancelled", ERROR_MESSAGE: "The video was cancelled."}
    if view.status is JobStatus.EXPIRED:
        message = "The video's files were removed after retention."
        return {ERROR_CODE: "expired", ERROR_MESSAGE: message}
    if view.status is JobStatus.FAILED:
        return {
            ERROR_CODE: view.error_code or "generation_failed",
            ERROR_MESSAGE: view.error_message or "Video generation failed.",
        }
    return None
