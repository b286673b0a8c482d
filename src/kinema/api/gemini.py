"""Google's Gemini API for Veo: ``predictLongRunning``, its operations and file downloads.

Wire facts (PROTOCOLS.md section 4), checked against the ``google-genai`` SDK (2.x, the
last line whose ``generate_videos`` speaks the Gemini API; 3.x sends it to Vertex only):

- ``POST /v1beta/models/{model}:predictLongRunning`` with one instance and ``parameters``
  returns ``{"name": "models/{model}/operations/{id}"}``; the SDK polls ``GET /v1beta/{name}``.
- A done operation carries ``response.generateVideoResponse.generatedSamples[].video.uri``
  or ``error {code, message}`` with a google.rpc code (1 CANCELLED, 13 INTERNAL, ...).
- ``files.download`` keeps the ``[a-z0-9]+`` after ``files/`` in an ``https://`` uri and
  fetches ``GET /v1beta/files/{name}:download?alt=media``. It leaves an ``http://`` uri
  whole, so the path then reads ``/v1beta/files/http://host/v1beta/files/{name}:download``;
  the download route takes the name after the last ``files/`` and serves both forms.
- The SDK treats every status but 200 as an error, so every success here is a 200.
- Errors: ``{"error": {"code": <http status>, "message", "status": <google.rpc name>}}``,
  with a ``google.rpc.BadRequest`` detail listing each bad field on 400s.

Auth: the ``x-goog-api-key`` header, the ``key`` query parameter, or a bearer token.
An unknown model is a 404 NOT_FOUND, as Google answers; the message lists the models
served. Only ``sampleCount`` 1 is served; ``gcsUri`` images, ``video`` extension and
masks are refused with a 400 that says so.

Extensions, which Google's clients ignore: ``parameters.callbackUrl`` (a URL that gets a
signed webhook when the operation ends; the SDK's ``webhookConfig`` with one uri does the
same), ``seed`` and ``generateAudio`` for raw REST callers (the SDK refuses to send them
in Gemini mode), ``metadata {state, progressPercent}`` on operations, and
``DELETE /v1beta/{name}``, which removes a finished operation and its video.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kinema.api.deps import RuntimeDep, bearer_token, get_authenticator, public_base_url
from kinema.api.errors import dialect_route, error_headers
from kinema.api.events import job_event_stream
from kinema.errors import (
    FieldProblem,
    InvalidRequest,
    KinemaError,
    NotFound,
    Unauthenticated,
    UnknownModel,
)
from kinema.jobs.submit import request_fingerprint
from kinema.runtime import Runtime
from kinema.types import Job, JobStatus, JobSummary, VideoResult

DIALECT = "gemini"
API_VERSION = "v1beta"
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

# HTTP status of an error response -> its google.rpc status name
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "NOT_FOUND",
    422: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}

# google.rpc.Code numbers used in a failed operation's ``error.code``
CANCELLED, INVALID_ARGUMENT, NOT_FOUND, INTERNAL, UNAVAILABLE = 1, 3, 5, 13, 14
_FAILURE_CODES = {
    "invalid_request": INVALID_ARGUMENT,
    "invalid_image": INVALID_ARGUMENT,
    "worker_lost": UNAVAILABLE,
}

# canonical field -> wire path, as messages and ``fieldViolations`` name it
WIRE_NAMES = {
    "prompt": "instances[0].prompt",
    "image": "instances[0].image",
    "last_image": "instances[0].lastFrame",
    "reference_images": "instances[0].referenceImages",
    "duration": "parameters.durationSeconds",
    "aspect_ratio": "parameters.aspectRatio",
    "resolution": "parameters.resolution",
    "person_generation": "parameters.personGeneration",
    "negative_prompt": "parameters.negativePrompt",
    "enhance_prompt": "parameters.enhancePrompt",
    "seed": "parameters.seed",
    "generate_audio": "parameters.generateAudio",
    "resize_mode": "parameters.resizeMode",
}
# parameters field -> canonical field
PARAMETER_FIELDS = {
    "durationSeconds": "duration",
    "aspectRatio": "aspect_ratio",
    "resolution": "resolution",
    "personGeneration": "person_generation",
    "negativePrompt": "negative_prompt",
    "enhancePrompt": "enhance_prompt",
    "seed": "seed",
    "generateAudio": "generate_audio",
    "resizeMode": "resize_mode",
}

_JOB_ID = re.compile(r"[0-9a-f]{32}")


def field_name(path: tuple[str | int, ...]) -> str:
    """``("instances", 0, "image")`` -> ``instances[0].image``."""
    name = ""
    for part in path:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else part
    return name


def render_error(request: Request, error: KinemaError) -> JSONResponse:
    body: dict[str, Any] = {
        "code": error.status,
        "message": error.message,
        "status": RPC_STATUS.get(error.status, "UNKNOWN"),
    }
    if isinstance(error, InvalidRequest) and error.problems:
        violations = [
            {"field": field_name(p.path), "description": p.message} for p in error.problems
        ]
        body["message"] = "; ".join(f"{v['field']}: {v['description']}" for v in violations)
        body["details"] = [{"@type": BAD_REQUEST_TYPE, "fieldViolations": violations}]
    return JSONResponse({"error": body}, status_code=error.status, headers=error_headers(error))


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}
router = APIRouter(route_class=dialect_route(render_error), tags=["Gemini API"])


# --- auth ---


def api_key(request: Request) -> str | None:
    """The caller's key: ``x-goog-api-key``, then ``?key=``, then a bearer token."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key and key.strip():
        return key.strip()
    return bearer_token(request)


def request_owner(request: Request) -> str:
    key = api_key(request)
    try:
        return get_authenticator(request).owner(key)
    except Unauthenticated:
        if key is None:
            raise Unauthenticated(
                "missing API key: send the header 'x-goog-api-key: <key>' "
                "or the query parameter 'key'"
            ) from None
        raise


GeminiOwner = Annotated[str, Depends(request_owner)]


# --- request bodies ---


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ImageInput(_Wire):
    bytes_base64_encoded: str | None = Field(default=None, description="The image, base64-encoded")
    mime_type: str | None = Field(default=None, examples=["image/png", "image/jpeg", "image/webp"])
    gcs_uri: str | None = Field(default=None, description="Not supported: send bytesBase64Encoded")


class ReferenceImage(_Wire):
    image: ImageInput
    reference_type: str | None = Field(default=None, examples=["ASSET"])


class Instance(_Wire):
    prompt: str | None = None
    image: ImageInput | None = None
    last_frame: ImageInput | None = None
    reference_images: list[ReferenceImage] | None = None
    video: dict[str, Any] | None = Field(
        default=None, description="Not supported (video extension)"
    )
    mask: dict[str, Any] | None = Field(default=None, description="Not supported")


class Parameters(_Wire):
    sample_count: int | None = Field(
        default=None, description="Videos per request; only 1 is served"
    )
    duration_seconds: int | None = Field(default=None, examples=[4, 6, 8])
    aspect_ratio: str | None = Field(default=None, examples=["16:9", "9:16"])
    resolution: str | None = Field(default=None, examples=["720p", "1080p", "4k"])
    person_generation: str | None = Field(default=None, examples=["allow_all", "allow_adult"])
    negative_prompt: str | None = None
    enhance_prompt: bool | None = None
    seed: int | None = Field(default=None, description="Raw REST only: the SDK does not send it")
    generate_audio: bool | None = Field(default=None, description="Raw REST only (Veo 3)")
    resize_mode: str | None = Field(
        default=None,
        examples=["CROP", "PAD"],
        description="How a picture of another shape fits the frame: CROP (cover it; the "
        "motion engine crops around the faces) or PAD (fit it whole over a blurred fill)",
    )
    callback_url: str | None = Field(
        default=None,
        description="kinema extension: a URL that receives a signed webhook (Standard "
        "Webhooks) when the operation ends",
    )


class WebhookConfig(BaseModel):
    """The SDK's ``GenerateVideosConfig.webhook_config`` (sent with snake_case keys)."""

    model_config = ConfigDict(extra="forbid")

    uris: list[str] | None = None
    user_metadata: dict[str, Any] | None = None
    userMetadata: dict[str, Any] | None = None


class PredictLongRunningRequest(_Wire):
    instances: list[Instance]
    parameters: Parameters | None = None
    webhook_config: WebhookConfig | None = None


# --- responses ---


class Operation(BaseModel):
    name: str = Field(examples=["models/veo-3.1-generate-preview/operations/0f1e2d3c..."])
    done: bool = False
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def operation_name(job: Job | JobSummary) -> str:
    return f"models/{job.model}/operations/{job.id}"


def video_uri(job_id: str, base_url: str) -> str:
    return f"{base_url}/{API_VERSION}/files/{job_id}:download?alt=media"


def render_operation(job: Job | JobSummary, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": operation_name(job), "done": job.status.terminal}
    state = "PENDING" if job.status is JobStatus.QUEUED else job.status.name
    body["metadata"] = {"state": state, "progressPercent": round(job.progress * 100)}
    if job.status is JobStatus.SUCCEEDED:
        sample = {"video": {"uri": video_uri(job.id, base_url)}}
        body["response"] = {
            "@type": RESPONSE_TYPE,
            "generateVideoResponse": {"generatedSamples": [sample]},
        }
    elif job.status is JobStatus.CANCELLED:
        message = job.error_message or "the operation was cancelled"
        body["error"] = {"code": CANCELLED, "message": message}
    elif job.status is JobStatus.EXPIRED:
        body["error"] = {"code": NOT_FOUND, "message": "the video was removed after retention"}
    elif job.status is JobStatus.FAILED:
        body["error"] = {
            "code": _FAILURE_CODES.get(job.error_code or "", INTERNAL),
            "message": job.error_message or "generation failed",
        }
    return body


# --- translating a request ---


def _image_source(image: ImageInput, field: str) -> str:
    """An inline image as a data URI, which the shared intake decodes and validates."""
    if image.gcs_uri is not None:
        raise InvalidRequest.for_field(
            f"{field}.gcsUri", "Cloud Storage images are not supported: send bytesBase64Encoded"
        )
    if not image.bytes_base64_encoded:
        raise InvalidRequest.for_field(f"{field}.bytesBase64Encoded", "is required")
    mime = image.mime_type or "application/octet-stream"
    return f"data:{mime};base64,{image.bytes_base64_encoded}"


def _instance_fields(instance: Instance) -> dict[str, Any]:
    if instance.video is not None:
        raise InvalidRequest.for_field("instances[0].video", "video extension is not supported")
    if instance.mask is not None:
        raise InvalidRequest.for_field("instances[0].mask", "masks are not supported")
    fields: dict[str, Any] = {}
    if instance.prompt is not None:
        fields["prompt"] = instance.prompt
    if instance.image is not None:
        fields["image"] = _image_source(instance.image, WIRE_NAMES["image"])
    if instance.last_frame is not None:
        fields["last_image"] = _image_source(instance.last_frame, WIRE_NAMES["last_image"])
    if instance.reference_images is not None:
        sources = []
        for i, reference in enumerate(instance.reference_images):
            field = f"{WIRE_NAMES['reference_images']}[{i}]"
            if (reference.reference_type or "ASSET").upper() != "ASSET":
                raise InvalidRequest.for_field(
                    f"{field}.referenceType", "only ASSET reference images are supported"
                )
            sources.append(_image_source(reference.image, f"{field}.image"))
        fields["reference_images"] = sources
    return fields


def _parameter_fields(parameters: Parameters) -> dict[str, Any]:
    sent = parameters.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
    count = sent.pop("sampleCount", 1)
    if count != 1:
        raise InvalidRequest.for_field(
            "parameters.sampleCount", f"{count} videos per request asked; only 1 is supported"
        )
    sent.pop("callbackUrl", None)
    return {PARAMETER_FIELDS[wire]: value for wire, value in sent.items()}


def _callback_url(body: PredictLongRunningRequest) -> tuple[str | None, str]:
    """The webhook URL and the wire field it came in."""
    parameters = body.parameters or Parameters()
    if parameters.callback_url is not None:
        return parameters.callback_url, "parameters.callbackUrl"
    config = body.webhook_config
    if config is None:
        return None, ""
    if config.user_metadata is not None or config.userMetadata is not None:
        raise InvalidRequest.for_field(
            "webhookConfig.user_metadata", "webhook user metadata is not supported"
        )
    if not config.uris:
        return None, ""
    if len(config.uris) != 1:
        raise InvalidRequest.for_field("webhookConfig.uris", "takes exactly one URI")
    return config.uris[0], "webhookConfig.uris[0]"


def _split_action(segment: str, expected: str) -> str:
    """``"veo-3:predictLongRunning"`` -> ``"veo-3"``, or 404 for another method."""
    head, colon, action = segment.rpartition(":")
    if not colon or action != expected:
        raise NotFound(f"method {segment!r} is not found for API version {API_VERSION}")
    return head


def _job_id(operation_id: str) -> str:
    if _JOB_ID.fullmatch(operation_id) is None:
        raise NotFound(f"operation {operation_id!r} is not found")
    return operation_id


def _owned_summary(runtime: Runtime, owner: str, model: str, operation_id: str) -> JobSummary:
    job = runtime.store.summary(owner, _job_id(operation_id))
    if job.model != model:
        raise NotFound(f"operation models/{model}/operations/{operation_id} is not found")
    return job


def predict_model(model_action: str, runtime: RuntimeDep) -> str:
    """The model of ``{model}:predictLongRunning``; 404 before the body is even read."""
    model = _split_action(model_action, "predictLongRunning").removeprefix("models/")
    try:
        return runtime.catalog.get(model, dialect=DIALECT).id
    except UnknownModel as error:
        served = ", ".join(runtime.catalog.model_ids(DIALECT))
        raise NotFound(
            f"models/{model} is not found for API version {API_VERSION}, or is not supported "
            f"for predictLongRunning; this server serves: {served}"
        ) from error


PredictModel = Annotated[str, Depends(predict_model)]


# --- routes ---


@router.post("/v1beta/models/{model_action}", response_model=Operation)
def predict_long_running(
    owner: GeminiOwner,
    model: PredictModel,
    body: PredictLongRunningRequest,
    runtime: RuntimeDep,
) -> JSONResponse:
    """Start generating a video (``{model}:predictLongRunning``); returns an operation."""
    if len(body.instances) != 1:
        raise InvalidRequest(
            f"instances: exactly one instance is supported, not {len(body.instances)}",
            [FieldProblem(("instances",), "exactly one instance is supported")],
        )
    fields = _instance_fields(body.instances[0])
    fields |= _parameter_fields(body.parameters or Parameters())
    callback_url, callback_field = _callback_url(body)
    job = runtime.create(
        owner=owner,
        model=model,
        fields=fields,
        dialect=DIALECT,
        wire_names=WIRE_NAMES,
        callback_url=callback_url,
        callback_field=callback_field,
        request_hash=request_fingerprint(body.model_dump(exclude_unset=True)),
    )
    return JSONResponse({"name": operation_name(job)})


@router.get("/v1beta/models/{model}/operations/{operation_id}", response_model=Operation)
async def get_operation(request: Request, model: str, operation_id: str) -> JSONResponse:
    """The operation's state; once done, its video uri or its error.

    Polling is the hottest path, so this reads the key cache and one indexed row on
    the event loop, like the AI/ML API poll, without a thread hop.
    """
    runtime: Runtime = request.app.state.runtime
    owner = request_owner(request)
    job = _owned_summary(runtime, owner, model, operation_id)
    return JSONResponse(render_operation(job, public_base_url(request, runtime)))


@router.get(
    "/v1beta/models/{model}/operations/{operation_id}/events", response_class=StreamingResponse
)
def operation_events(
    request: Request, model: str, operation_id: str, owner: GeminiOwner, runtime: RuntimeDep
) -> StreamingResponse:
    """kinema extension: server-sent events for one operation (the operation on every
    change, then a final ``done`` event); resumable with ``Last-Event-ID``."""
    _owned_summary(runtime, owner, model, operation_id)
    base_url = public_base_url(request, runtime)
    return job_event_stream(
        request,
        lambda: runtime.store.summary(owner, operation_id),
        lambda job: render_operation(job, base_url),
    )


@router.post("/v1beta/models/{model}/operations/{operation_id}")
def cancel_operation(
    model: str, operation_id: str, owner: GeminiOwner, runtime: RuntimeDep
) -> dict[str, Any]:
    """Cancel (``{name}:cancel``, so ``operation_id`` ends in ``:cancel``): a queued video
    ends now, a running one within moments."""
    operation_id = _split_action(operation_id, "cancel")
    _owned_summary(runtime, owner, model, operation_id)
    runtime.cancel(owner, operation_id)
    return {}


@router.delete("/v1beta/models/{model}/operations/{operation_id}")
def delete_operation(
    model: str, operation_id: str, owner: GeminiOwner, runtime: RuntimeDep
) -> dict[str, Any]:
    """Remove a finished operation and its video (kinema extension); 400 while running."""
    _owned_summary(runtime, owner, model, operation_id)
    runtime.delete(owner, operation_id)
    return {}


def _file_video(runtime: Runtime, owner: str, name: str) -> tuple[Job, VideoResult]:
    job = runtime.store.get(owner, _job_id(name))
    if job.status is not JobStatus.SUCCEEDED or job.result is None:
        raise NotFound(f"files/{name} is not found: its operation has no video")
    return job, job.result


@router.get("/v1beta/files/{file_path:path}", response_model=None)
def get_file(request: Request, file_path: str, owner: GeminiOwner, runtime: RuntimeDep) -> Response:
    """``files/{name}:download`` serves the video; ``files/{name}`` describes it."""
    name, colon, action = file_path.rpartition("files/")[2].partition(":")
    if colon and action != "download":
        raise NotFound(f"method {action!r} is not found for files")
    job, video = _file_video(runtime, owner, name)
    base = public_base_url(request, runtime)
    if colon:
        path = runtime.storage.local_path(video.video_key)
        if path is None:
            return RedirectResponse(base + runtime.signer.path_for(video.video_key))
        return FileResponse(path, media_type="video/mp4", filename=f"{name}.mp4")
    return JSONResponse(
        {
            "name": f"files/{name}",
            "mimeType": "video/mp4",
            "sizeBytes": str(video.size_bytes),
            "createTime": _timestamp(job.finished_at or job.updated_at),
            "updateTime": _timestamp(job.updated_at),
            "uri": video_uri(name, base),
            "downloadUri": video_uri(name, base),
            "state": "ACTIVE",
            "source": "GENERATED",
            "videoMetadata": {"videoDuration": f"{video.duration_s:g}s"},
        }
    )


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
