"""What Google's two Veo APIs share on the wire: the predict body's field names, operation
states and google.rpc codes, and the parts of an operation both render.

The Gemini API (``kinema.wire.gemini``) and Vertex AI (``kinema.wire.vertex``) take the
same ``{"instances": [...], "parameters": {...}}`` body to ``{model}:predictLongRunning``
and answer long-running operations ``{name, done, metadata, response | error}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.types import JobStatus

if TYPE_CHECKING:
    from kinema.views import JobView

PREDICT = "predictLongRunning"  # the create method, after the model's ``:``
CANCEL = "cancel"
OPERATIONS = "/operations/"  # between a resource and an operation id in a name

# A job's status as an operation's ``metadata.state``; a queued one is ``PENDING``.
STATUS_WORDS = {status: status.name for status in JobStatus}
STATES = STATUS_WORDS | {JobStatus.QUEUED: "PENDING"}

# google.rpc.Code numbers used in a failed operation's ``error.code``
CANCELLED, INVALID_ARGUMENT, NOT_FOUND, INTERNAL, UNAVAILABLE = 1, 3, 5, 13, 14
FAILURE_CODES = {
    "invalid_request": INVALID_ARGUMENT,
    "invalid_image": INVALID_ARGUMENT,
    "worker_lost": UNAVAILABLE,
    "upstream_refused": INVALID_ARGUMENT,  # the provider refused the forwarded request
    "upstream_unavailable": UNAVAILABLE,
}

# canonical field -> its key in ``instances[0]``
INSTANCE_FIELDS = {
    "prompt": "prompt",
    "image": "image",
    "last_image": "lastFrame",
    "reference_images": "referenceImages",
    "video": "video",
}
# canonical field -> its key in ``parameters``
PARAMETERS = {
    "duration": "durationSeconds",
    "aspect_ratio": "aspectRatio",
    "resolution": "resolution",
    "person_generation": "personGeneration",
    "negative_prompt": "negativePrompt",
    "enhance_prompt": "enhancePrompt",
    "seed": "seed",
    "generate_audio": "generateAudio",
    "resize_mode": "resizeMode",
    "sample_count": "sampleCount",
}
PARAMETER_FIELDS = {wire: canonical for canonical, wire in PARAMETERS.items()}
# canonical field -> wire path, as messages and ``fieldViolations`` name it
WIRE_NAMES = {canonical: f"instances[0].{wire}" for canonical, wire in INSTANCE_FIELDS.items()} | {
    canonical: f"parameters.{wire}" for canonical, wire in PARAMETERS.items()
}

# An inline image (``image``, ``lastFrame``, a reference's ``image``) and a reference.
IMAGE_BYTES = "bytesBase64Encoded"
MIME_TYPE = "mimeType"
REFERENCE_TYPE = "referenceType"
ASSET = "ASSET"  # the one reference type served

# A done operation's count of videos a safety filter removed, and why (a provider's).
FILTERED_COUNT = "raiMediaFilteredCount"
FILTERED_REASONS = "raiMediaFilteredReasons"


def operation_error(view: JobView) -> dict[str, Any] | None:
    """A finished operation's ``error`` (google.rpc code and message), or None."""
    if view.status is JobStatus.CANCELLED:
        return {"code": CANCELLED, "message": view.error_message or "the operation was cancelled"}
    if view.status is JobStatus.EXPIRED:
        return {"code": NOT_FOUND, "message": "the video was removed after retention"}
    if view.status is JobStatus.FAILED:
        return {
            "code": FAILURE_CODES.get(view.error_code or "", INTERNAL),
            "message": view.error_message or "generation failed",
        }
    return None


def operation_metadata(view: JobView) -> dict[str, Any]:
    return {"state": STATES[view.status], "progressPercent": view.percent}


def operation(name: str, view: JobView) -> dict[str, Any]:
    """The head of an operation both APIs answer: ``name``, ``done`` and ``metadata``."""
    return {"name": name, "done": view.status.terminal, "metadata": operation_metadata(view)}
