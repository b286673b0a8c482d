"""The AI/ML API's wire table: paths, status words, fields, ids and the status object.

Read by the server dialect (``kinema.api.dialects.aimlapi``), the upstream protocol that
forwards to such a server (``kinema.engines.upstream.aimlapi``) and the Python client
(``kinema.client``), so the three never disagree. Wire facts: the gateway's own API
documents (create and poll share one ``{id, status, video, error, meta}`` object).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from kinema.errors import NotFound
from kinema.types import JobStatus
from kinema.wire.words import four_states

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "aimlapi"
INLINE_VIDEO = False

GENERATIONS_PATH = "/v2/video/generations"  # create (POST) and poll (GET)
LEGACY_PATH = "/v2/generate/video/google/generation"  # the same calls, older
POLL_PATHS = (GENERATIONS_PATH, LEGACY_PATH)
ID_PARAMETER = "generation_id"  # the poll's query parameter

STATUS_WORDS = four_states("queued", "generating", "completed", "error")
COMPLETED = STATUS_WORDS[JobStatus.SUCCEEDED]
ERROR = STATUS_WORDS[JobStatus.FAILED]
# Words of a generation still under way, with the older ``waiting`` / ``active``.
IN_PROGRESS = frozenset({"queued", "generating", "waiting", "active"})

TOKENS_PER_SECOND = 15_000  # meta.usage.tokens_used per second of video

MODEL = "model"
# The options a model may take, each sent under its canonical name.
OPTIONS = (
    "duration",
    "aspect_ratio",
    "resolution",
    "generate_audio",
    "seed",
    "negative_prompt",
    "enhance_prompt",
    "auto_fix",
)
# canonical field -> the wire field a create sends it in
FIELDS = {
    "prompt": "prompt",
    "image": "image_url",
    "last_image": "last_image_url",
    "reference_images": "image_urls",
    **{option: option for option in OPTIONS},
}
# wire field -> canonical field, the older ``tail_image_url`` included
WIRE_FIELDS = {wire: canonical for canonical, wire in FIELDS.items()} | {
    "tail_image_url": "last_image"
}


def wire_id(job_id: str, model: str) -> str:
    """``<uuid>:<model>`` (the job id, 32 hex digits, in the UUID's dashed form)."""
    h = job_id
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}:{model}"


_DASHED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def job_id(generation_id: str) -> str:
    """The job id of a generation id; NotFound for anything that is not one."""
    head = generation_id.split(":", 1)[0].strip()
    if _DASHED.fullmatch(head):  # as ``wire_id`` writes it (every poll): no UUID object
        return head.replace("-", "")
    try:
        return uuid.UUID(head).hex
    except ValueError:
        raise NotFound(f"generation {generation_id!r} not found") from None


def render(view: JobView) -> dict[str, Any]:
    """The generation object (create, poll and webhook bodies)."""
    body: dict[str, Any] = {
        "id": wire_id(view.id, view.model),
        "status": STATUS_WORDS[view.status],
        "video": None,
        "error": None,
        "meta": None,
        "progress": view.percent,
    }
    if view.video_url is not None and view.result is not None:
        duration = round(view.result.duration_s, 3)
        body["video"] = {"url": view.video_url, "duration": duration}
        body["videos"] = [
            {"url": output.video_url, "duration": round(output.result.duration_s, 3)}
            for output in view.outputs
        ]
        body["duration"] = duration
        usage: dict[str, Any] = {
            "seconds": duration,
            "tokens_used": round(duration * TOKENS_PER_SECOND),
            "engine": view.result.engine,  # the catalog engine that made it (kinema)
        }
        body["meta"] = {"usage": usage}
    elif view.status is JobStatus.CANCELLED:
        body["error"] = {"name": "Cancelled", "message": "the generation was cancelled"}
    elif view.status is JobStatus.EXPIRED:
        body["error"] = {"name": "Expired", "message": "the video was removed after retention"}
    elif view.status is JobStatus.FAILED:
        body["error"] = {
            "name": view.error_code or "error",
            "message": view.error_message or "generation failed",
        }
    if view.adjustments:
        body["meta"] = {**(body["meta"] or {}), "adjustments": view.adjustments}
    return body
