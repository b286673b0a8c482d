"""The AI/ML API dialect: ``/v2/video/generations`` and its legacy Google path.

Wire facts (PROTOCOLS.md section 1): create and poll share one response shape
``{id, status, video, error, meta}`` with statuses queued / generating / completed / error;
ids look like ``<uuid>:<model>`` (so they contain ``:`` and ``/``); HTTP errors use the
envelope ``{message, path, requestId, statusCode, timestamp}``.

Extensions, which strict clients ignore: ``progress`` (0..100) on every response and
``details`` (one entry per problem) on 400 responses.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from kinema.api.deps import (
    BearerOwner,
    IdempotencyKey,
    RuntimeDep,
    bearer_token,
    get_authenticator,
    public_base_url,
)
from kinema.api.errors import dialect_route, error_headers
from kinema.api.events import job_event_stream
from kinema.errors import InvalidRequest, KinemaError, NotFound
from kinema.jobs.submit import request_fingerprint
from kinema.runtime import Runtime
from kinema.types import Job, JobStatus, JobSummary

DIALECT = "aimlapi"

STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "generating",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "error",
    JobStatus.CANCELLED: "error",
    JobStatus.EXPIRED: "error",
}

# wire field -> canonical field
WIRE_FIELDS = {
    "prompt": "prompt",
    "image_url": "image",
    "last_image_url": "last_image",
    "tail_image_url": "last_image",
    "image_urls": "reference_images",
    "duration": "duration",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "generate_audio": "generate_audio",
    "seed": "seed",
    "negative_prompt": "negative_prompt",
    "enhance_prompt": "enhance_prompt",
    "auto_fix": "auto_fix",
}
_DEFAULT_WIRE = {canonical: wire for wire, canonical in WIRE_FIELDS.items()}
_DEFAULT_WIRE["last_image"] = "last_image_url"


def render_error(request: Request, error: KinemaError) -> JSONResponse:
    body: dict[str, Any] = {
        "message": error.message,
        "path": request.url.path,
        "requestId": str(uuid.uuid4()),
        "statusCode": error.status,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if isinstance(error, InvalidRequest):
        body["message"] = "Body validation error!"
        body["details"] = [{"path": list(p.path), "message": p.message} for p in error.problems]
        if not error.problems:
            body["details"] = [{"path": [], "message": error.message}]
    return JSONResponse(body, status_code=error.status, headers=error_headers(error))


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message", "path", "requestId", "statusCode", "timestamp"],
    "properties": {
        "message": {"type": "string"},
        "path": {"type": "string"},
        "requestId": {"type": "string"},
        "statusCode": {"type": "integer"},
        "timestamp": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
router = APIRouter(route_class=dialect_route(render_error), tags=["AI/ML API"])


class CreateGeneration(BaseModel):
    """A create request; which optional fields apply depends on ``model`` (see the catalog)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(
        examples=["google/veo-3.1-i2v-fast"],
        description="A model id of `kinema models` for this API; the fields that apply, "
        "their values and defaults depend on it",
    )
    prompt: str | None = None
    image_url: str | None = Field(None, description="http(s) URL, raw base64 or data: URI")
    last_image_url: str | None = None
    tail_image_url: str | None = None
    image_urls: list[str] | None = None
    duration: int | str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    generate_audio: bool | str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    enhance_prompt: bool | None = None
    auto_fix: bool | None = None
    callback_url: str | None = Field(
        None,
        description="kinema extension: a URL that receives a signed webhook (Standard "
        "Webhooks) when the generation ends",
    )


class GenerationVideo(BaseModel):
    url: str
    duration: float | None = None


class GenerationError(BaseModel):
    name: str
    message: str


class Generation(BaseModel):
    id: str
    status: str = Field(examples=["queued", "generating", "completed", "error"])
    video: GenerationVideo | None = None
    duration: float | None = None
    error: GenerationError | None = None
    meta: dict[str, Any] | None = None
    progress: int = Field(0, description="kinema extension: percent done, 0..100")


def wire_id(job: Job | JobSummary) -> str:
    return f"{uuid.UUID(hex=job.id)}:{job.model}"


def job_id_from_wire(generation_id: str) -> str:
    head = generation_id.split(":", 1)[0].strip()
    try:
        return uuid.UUID(head).hex
    except ValueError:
        raise NotFound(f"generation {generation_id!r} not found") from None


def render_job(job: Job | JobSummary, runtime: Runtime, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": wire_id(job),
        "status": STATUS[job.status],
        "video": None,
        "error": None,
        "meta": None,
        "progress": round(job.progress * 100),
    }
    if job.status is JobStatus.SUCCEEDED and job.result is not None:
        duration = round(job.result.duration_s, 3)
        url = base_url + runtime.signer.path_for(job.result.video_key)
        body["video"] = {"url": url, "duration": duration}
        body["duration"] = duration
        # Seconds of video delivered, and the engine that made it (usage is counted by it).
        body["meta"] = {"usage": {"seconds": duration, "engine": job.result.engine}}
    elif job.status is JobStatus.CANCELLED:
        body["error"] = {"name": "Cancelled", "message": "the generation was cancelled"}
    elif job.status is JobStatus.EXPIRED:
        body["error"] = {"name": "Expired", "message": "the video was removed after retention"}
    elif job.status is JobStatus.FAILED:
        body["error"] = {
            "name": job.error_code or "error",
            "message": job.error_message or "generation failed",
        }
    return body


def _create(
    request: Request,
    body: CreateGeneration,
    owner: str,
    runtime: Runtime,
    idempotency_key: str | None,
    status_code: int,
) -> JSONResponse:
    sent = body.model_dump(exclude_unset=True)
    model = sent.pop("model")
    callback_url = sent.pop("callback_url", None)
    fields: dict[str, Any] = {}
    wire_names = dict(_DEFAULT_WIRE)
    for wire, value in sent.items():
        canonical = WIRE_FIELDS.get(wire, wire)
        fields[canonical] = value
        wire_names[canonical] = wire
    job = runtime.create(
        owner=owner,
        model=model,
        fields=fields,
        dialect=DIALECT,
        wire_names=wire_names,
        callback_url=callback_url,
        idempotency_key=idempotency_key,
        request_hash=request_fingerprint(body.model_dump(exclude_unset=True)),
    )
    return JSONResponse(
        render_job(job, runtime, public_base_url(request, runtime)), status_code=status_code
    )


async def fetch_generation(request: Request) -> Response:
    """GET ``?generation_id=``: the task's status, with a signed ``video.url`` once done.

    Polling is the hottest path of the service (every client, every few seconds), so it
    is a plain Starlette endpoint: no dependency injection, no thread hop. Its reads are
    one cached-key check and one indexed row. Documented in OpenAPI by ``POLL_OPERATION``.
    """
    try:
        runtime: Runtime = request.app.state.runtime
        owner = get_authenticator(request).owner(bearer_token(request))
        generation_id = request.query_params.get("generation_id")
        if not generation_id:
            raise InvalidRequest.for_field("generation_id", "is required")
        job = runtime.store.summary(owner, job_id_from_wire(generation_id))
        return JSONResponse(render_job(job, runtime, public_base_url(request, runtime)))
    except KinemaError as error:
        return render_error(request, error)


@router.get("/v2/video/generations/events", response_class=StreamingResponse)
def generation_events(
    request: Request,
    generation_id: Annotated[str, Query(min_length=1)],
    owner: BearerOwner,
    runtime: RuntimeDep,
) -> StreamingResponse:
    """kinema extension: server-sent events for one generation (progress, then done).

    Each event's data is the same object the poll returns; reconnect with
    ``Last-Event-ID`` to resume.
    """
    base_url = public_base_url(request, runtime)
    job_id = job_id_from_wire(generation_id)
    return job_event_stream(
        request,
        lambda: runtime.store.summary(owner, job_id),
        lambda job: render_job(job, runtime, base_url),
    )


POLL_OPERATION: dict[str, Any] = {
    "tags": ["AI/ML API"],
    "summary": "Fetch a video generation",
    "description": "The task's status; once `completed`, `video.url` is a signed link.",
    "parameters": [
        {
            "name": "generation_id",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "The id returned on create (contains ':' and '/').",
        }
    ],
    "responses": {
        "200": {
            "description": "The generation",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Generation"}}
            },
        },
        "400": {"description": "Missing generation_id"},
        "401": {"description": "Missing or invalid API key"},
        "404": {"description": "No such generation for this key"},
    },
    "security": [{"bearer": []}],
}
POLL_PATHS = ("/v2/video/generations", "/v2/generate/video/google/generation")


@router.post("/v2/video/generations", response_model=Generation)
def create_generation(
    request: Request,
    body: CreateGeneration,
    owner: BearerOwner,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a video generation task; poll it with GET and ``generation_id``."""
    return _create(request, body, owner, runtime, idempotency_key, 200)


@router.post("/v2/generate/video/google/generation", response_model=Generation, status_code=201)
def create_generation_legacy(
    request: Request,
    body: CreateGeneration,
    owner: BearerOwner,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Legacy path of the same create call (documented upstream as 201)."""
    return _create(request, body, owner, runtime, idempotency_key, 201)


for _path in POLL_PATHS:
    router.add_route(_path, fetch_generation, methods=["GET"], include_in_schema=False)
