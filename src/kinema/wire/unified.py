"""The unified task API's wire table (``task-unified-...`` ids, as API gateways sell Veo):
paths, status words, create fields, the id codec and the task object.

Read by the server dialect (``kinema.api.dialects.unified``) and the upstream protocol
(``kinema.engines.upstream.unified``). The gateways' documents name no poll path; these
are the ones such gateways serve. Paths are format strings over ``{task_id}``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kinema.errors import NotFound
from kinema.types import JobStatus
from kinema.views import JobRef
from kinema.wire.words import four_states

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "unified"
INLINE_VIDEO = False

CREATE_PATH = "/v1/videos/generations"
TASK_PATH = "/v1/tasks/{task_id}"  # poll (GET)
CANCEL_PATH = TASK_PATH + "/cancel"  # POST

STATUS_WORDS = four_states("pending", "processing", "completed", "failed")
COMPLETED = STATUS_WORDS[JobStatus.SUCCEEDED]
FAILED = STATUS_WORDS[JobStatus.FAILED]

MODEL = "model"
# canonical field -> the wire field a create sends it in
FIELDS = {
    "prompt": "prompt",
    "image": "image_url",
    "duration": "duration",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "generate_audio": "generate_audio",
    "auto_fix": "auto_fix_prompt",
    "safety_level": "safety_level",
    "enhance_prompt": "enhance_prompt",
    "person_generation": "person_generation",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
}
OPTIONS = tuple(name for name in FIELDS if name not in ("prompt", "image"))
# wire field -> canonical field, aliases included
WIRE_FIELDS = {wire: canonical for canonical, wire in FIELDS.items()} | {
    "image_urls": "image",  # with one entry
    "auto_fix": "auto_fix",
    "safety": "safety_level",
}

ID_PREFIX = "task-unified-"
_ID_HEX = 10  # job id hex digits carried by the 8 base32 characters (40 bits)
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_ID_TIME = re.compile(r"[0-9]{1,12}")  # ASCII digits: ``str.isdigit`` also takes "²"


def created(moment: datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp())


def wire_id(job_id: str, created_at: datetime | None) -> str:
    """``task-unified-<creation second>-<the id's first 40 bits in base32>``."""
    bits = int(job_id[:_ID_HEX], 16)
    chars = "".join(_BASE32[(bits >> shift) & 31] for shift in range(35, -1, -5))
    return f"{ID_PREFIX}{created(created_at)}-{chars}"


def job_ref(task_id: str) -> JobRef:
    """The job a task id names: the head of its id and its creation second."""
    head, _, chars = task_id.removeprefix(ID_PREFIX).partition("-")
    missing = NotFound(f"task {task_id!r} not found")
    if not task_id.startswith(ID_PREFIX) or not _ID_TIME.fullmatch(head) or len(chars) != 8:
        raise missing
    bits = 0
    for char in chars.lower():
        index = _BASE32.find(char)
        if index < 0:
            raise missing
        bits = bits << 5 | index
    return JobRef(id_prefix=f"{bits:0{_ID_HEX}x}", created_s=int(head))


def render(view: JobView) -> dict[str, Any]:
    """The task object (create, poll, cancel and webhook bodies)."""
    info: dict[str, Any] = {
        "can_cancel": not view.status.terminal and not view.cancel_requested,
        "video_duration": None if view.request is None else view.request.duration_s,
    }
    if view.queue_position is not None:
        info["queue_position"] = view.queue_position
    if view.workers_online is not None:  # scale-out: 0 says no worker serves this model
        info["workers_online"] = view.workers_online
    body: dict[str, Any] = {
        "created": created(view.created_at),
        "id": wire_id(view.id, view.created_at),
        "model": view.model,
        "object": "video.generation.task",
        "progress": view.percent,
        "status": STATUS_WORDS[view.status],
        "task_info": info,
        "type": "video",
    }
    if view.video_url is not None:
        body["results"] = [output.video_url for output in view.outputs]
        if view.notes:  # what the engine could not do, e.g. a line it could not speak
            info["notes"] = view.notes
    elif view.status is JobStatus.CANCELLED:
        message = view.error_message or "the task was cancelled"
        body["error"] = {"code": "request_cancelled", "message": message}
    elif view.status is JobStatus.EXPIRED:
        message = "the video was removed after retention; submit the task again"
        body["error"] = {"code": "result_expired", "message": message}
    elif view.status is JobStatus.FAILED:
        body["error"] = {
            "code": view.error_code or "generation_failed",
            "message": view.error_message or "generation failed",
        }
    return body
