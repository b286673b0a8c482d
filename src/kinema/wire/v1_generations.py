"""The ``/v1/video/generations`` wire table (New-API-style gateways serving Veo): paths,
status words, create fields, ids and the task object.

Read by the server dialect (``kinema.api.dialects.v1_generations``) and the upstream
protocol (``kinema.engines.upstream.v1``). Paths are format strings over ``{task_id}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.errors import NotFound
from kinema.types import JobStatus

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "v1"
INLINE_VIDEO = False

CREATE_PATH = "/v1/video/generations"
TASK_PATH = CREATE_PATH + "/{task_id}"  # poll (GET)
CANCEL_PATH = TASK_PATH + "/cancel"  # POST

STATUS_WORDS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "failed",
}
# Words of a finished task; ``completed`` is what some gateways say for ``succeeded``.
SUCCEEDED = frozenset({STATUS_WORDS[JobStatus.SUCCEEDED], "completed"})
ENDED = frozenset({STATUS_WORDS[JobStatus.FAILED], STATUS_WORDS[JobStatus.CANCELLED]})

MODEL = "model"
IMAGES = "images"  # the first frame and optionally the last
SECONDS = "seconds"
SIZE = "size"  # a resolution word (720p, 1080p, 4k) or a pixel size
# wire field -> canonical field, for the fields that pass straight through
WIRE_FIELDS = {
    "prompt": "prompt",
    "aspect_ratio": "aspect_ratio",
    "generate_audio": "generate_audio",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
    "enhance_prompt": "enhance_prompt",
    "person_generation": "person_generation",
}

ID_PREFIX = "task_"


def wire_id(job_id: str) -> str:
    return ID_PREFIX + job_id


def job_id(task_id: str) -> str:
    """The job id of a task id; NotFound for anything else."""
    job_id = task_id.strip().removeprefix(ID_PREFIX)
    if len(job_id) != 32 or job_id.strip("0123456789abcdef"):
        raise NotFound(f"task {task_id!r} not found")
    return job_id


def render(view: JobView) -> dict[str, Any]:
    """The task object (create, poll, cancel and webhook bodies)."""
    width, height = view.frame or (0, 0)
    request = view.request
    body: dict[str, Any] = {
        "id": wire_id(view.id),
        "task_id": wire_id(view.id),
        "object": "video",
        "model": view.model,
        "status": STATUS_WORDS[view.status],
        "progress": view.percent,
        "created_at": 0 if view.created_at is None else int(view.created_at.timestamp()),
        "completed_at": int(view.finished_at.timestamp()) if view.finished_at else None,
        "seconds": "" if request is None else str(request.duration_s),
        "size": f"{width}x{height}",
        "off_peak": False if request is None else request.off_peak,
        "error": None,
    }
    if view.queue_position is not None:
        body["queue_position"] = view.queue_position
    if view.workers_online is not None:
        body["workers_online"] = view.workers_online
    if view.adjustments:
        body["adjustments"] = view.adjustments
    if view.notes:  # what the engine could not do, e.g. a line it could not speak
        body["notes"] = view.notes
    result = view.result
    if view.video_url is not None and result is not None:
        body |= {
            "videos": [
                {"url": o.video_url, "duration": round(o.result.duration_s, 3)}
                for o in view.outputs
            ],
            "url": view.video_url,
            "video_url": view.video_url,
            "expires_at": view.link_expires_at,
            "format": "mp4",
            "metadata": {
                "duration": round(result.duration_s, 3),
                "fps": result.fps,
                "width": result.width,
                "height": result.height,
                "has_audio": result.has_audio,
            },
        }
    else:
        body["error"] = _error(view)
    return body


def _error(view: JobView) -> dict[str, str] | None:
    if view.status is JobStatus.CANCELLED:
        return {
            "code": view.error_code or "cancelled",
            "message": view.error_message or "the generation was cancelled",
        }
    if view.status is JobStatus.EXPIRED:
        return {
            "code": "expired",
            "message": "the video was removed after retention; submit the task again",
        }
    if view.status is JobStatus.FAILED:
        return {
            "code": view.error_code or "generation_failed",
            "message": view.error_message or "generation failed",
        }
    return None
