"""The Interactions API's wire table (Gemini Omni through ``client.interactions``): paths,
status words, and the interaction, its server-sent events and its webhook body.

Read by the server dialect (``kinema.api.dialects.interactions``, whose docstring holds
the wire facts) and by the webhook deliverer. Wire facts: the ``google-genai`` 3.6.1 and
``@google/genai`` 3.6.1 SDK sources (``google/genai/_gaos/``). Paths are format strings:
``{version}`` is one of ``API_VERSIONS``, ``{id}`` an interaction id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kinema.types import JobStatus
from kinema.views import InlineFile
from kinema.wire import google

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "interactions"
INLINE_VIDEO = True  # delivery "inline" (the default) answers the MP4 in the body
API_VERSIONS = ("v1", "v1beta")  # the SDK 3.x default first

CREATE_PATH = "/{version}/interactions"
INTERACTION_PATH = "/{version}/interactions/{id}"  # GET (?stream=true), DELETE
CANCEL_PATH = INTERACTION_PATH + "/cancel"  # what both SDKs send; "{id}:cancel" too

STATUS_WORDS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "incomplete",  # its video was removed after retention
}
WEBHOOK_EVENTS = {
    JobStatus.SUCCEEDED: "interaction.completed",
    JobStatus.CANCELLED: "interaction.cancelled",
}  # any other end: "interaction.failed"
MP4 = "video/mp4"


def echo(view: JobView) -> Mapping[str, Any]:
    """What the create sent that the interaction answers back (labels, ...)."""
    request = view.request
    return (request.echo or {}) if request is not None else {}


def render(view: JobView) -> dict[str, Any]:
    """The interaction (create, poll and cancel bodies), the video as its delivery says."""
    return interaction(view, inline=True)


def render_webhook(view: JobView) -> dict[str, Any]:
    """The webhook body: the interaction (its video as a link) with its event type and the
    ``webhook_config.user_metadata`` the create sent."""
    body: dict[str, Any] = {
        "event_type": WEBHOOK_EVENTS.get(view.status, "interaction.failed"),
        "interaction": interaction(view, inline=False),
    }
    metadata = echo(view).get("user_metadata")
    if metadata is not None:
        body["user_metadata"] = metadata
    return body


def interaction(view: JobView, *, inline: bool) -> dict[str, Any]:
    """The interaction; ``inline`` puts the MP4 itself where the create asked for it."""
    sent = echo(view)
    body: dict[str, Any] = {
        "id": view.id,
        "object": "interaction",
        "status": STATUS_WORDS[view.status],
        "model": view.model,
    }
    if view.created_at is not None:
        body["created"] = _timestamp(view.created_at)
        body["updated"] = _timestamp(view.finished_at or view.created_at)
    for name in ("previous_interaction_id", "labels"):
        if sent.get(name) is not None:
            body[name] = sent[name]
    videos = [video(view, output.index, inline=inline) for output in view.outputs]
    body["steps"] = [{"type": "model_output", "content": videos}] if videos else []
    error = google.operation_error(view)
    if error is not None and view.status is not JobStatus.CANCELLED:
        body["errors"] = [{"code": str(error["code"]), "message": error["message"]}]
    if view.adjustments:
        body["adjustments"] = view.adjustments
    return body


def video(view: JobView, index: int, *, inline: bool) -> dict[str, Any]:
    """Output ``index`` as a video content item: its copy's URI, the MP4 inline (an
    ``InlineFile`` its writer streams), or its signed link."""
    output = view.outputs[index]
    item: dict[str, Any] = {"type": "video", "mime_type": MP4}
    if output.video_object_uri is not None:
        item["uri"] = output.video_object_uri
    elif inline and echo(view).get("delivery", "inline") == "inline" and output.inline:
        item["data"] = output.inline
    else:
        item["uri"] = output.video_url
    return item


def events(view: JobView, *, created: bool) -> list[dict[str, Any]]:
    """The server-sent events one change of the job makes: ``interaction.created`` first
    on a create's stream, a status update, and once it ends the video's step and
    ``interaction.completed`` (an ``error`` event before it for a failure)."""
    found: list[dict[str, Any]] = []
    if created:
        found.append({"event_type": "interaction.created", "interaction": brief(view)})
    status = STATUS_WORDS[view.status]
    found.append(
        {"event_type": "interaction.status_update", "interaction_id": view.id, "status": status}
    )
    if not view.status.terminal:
        return found
    for output in view.outputs:
        step = {"type": "model_output", "content": []}
        found.append({"event_type": "step.start", "index": output.index, "step": step})
        delta = video(view, output.index, inline=True)
        found.append({"event_type": "step.delta", "index": output.index, "delta": delta})
        found.append({"event_type": "step.stop", "index": output.index})
    if view.status is JobStatus.FAILED:
        error = google.operation_error(view) or {}
        failure = {"code": str(error.get("code")), "message": error.get("message")}
        found.append({"event_type": "error", "error": failure})
    found.append({"event_type": "interaction.completed", "interaction": brief(view)})
    return found


def brief(view: JobView) -> dict[str, Any]:
    """The interaction without its video (events carry the video in ``step.delta``)."""
    body = interaction(view, inline=False)
    body.pop("steps", None)
    return body


# --- the create's input, echoed (``include_input``) ---

_IMAGE_MIMES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def input_skeleton(value: Any) -> Any:
    """``input`` as the create sent it, kept with the interaction for ``include_input``:
    each inline media item's ``data`` is None, its bytes being in the copy the job keeps
    of each input (``echoed_input`` puts them back), so nothing is stored twice."""
    if isinstance(value, list):
        return [input_skeleton(item) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("type") == "user_input" and isinstance(value.get("content"), list):
        return {**value, "content": input_skeleton(value["content"])}
    if value.get("type") not in ("image", "video"):
        return value
    item = {name: part for name, part in value.items() if name != "data"}
    if isinstance(value.get("data"), str) and value["data"]:
        item["data"] = None
    return item


def echoed_input(view: JobView) -> Any:
    """The create's ``input`` as sent, each inline image (or extension's video) as the
    ``InlineFile`` of its kept copy; None where the create sent none (or predates this).
    A video whose copy is not its bytes (an edit keeps its picture) or is gone (an
    expired job's inputs are removed) is echoed without ``data``."""
    skeleton = echo(view).get("input")
    request = view.request
    if skeleton is None or request is None:
        return None
    kept = view.status is not JobStatus.EXPIRED
    images = list(request.reference_images) or ([request.image] if request.image else [])
    seen = {"image": 0, "video": 0}

    def fill(item: dict[str, Any]) -> dict[str, Any]:
        kind = item["type"]
        index = seen[kind]
        seen[kind] += 1
        key = None
        if kind == "image" and index < len(images):
            key = images[index]
        elif kind == "video" and index == 0:
            key = request.video
        if "data" not in item:  # sent by uri: echoed as sent
            return item
        if not kept or key is None:
            return {name: part for name, part in item.items() if name != "data"}
        mime = MP4 if kind == "video" else _IMAGE_MIMES.get(key.rpartition(".")[2], "image/png")
        # The size is not needed: the writer streams the file whole.
        return {**item, "mime_type": mime, "data": InlineFile(key, 0)}

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(item) for item in value]
        if not isinstance(value, dict):
            return value
        if value.get("type") == "user_input" and isinstance(value.get("content"), list):
            return {**value, "content": walk(value["content"])}
        if value.get("type") in ("image", "video"):
            return fill(value)
        return value

    return walk(skeleton)


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
