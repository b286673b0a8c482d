"""The AI/ML API dialect: ``/v2/video/generations`` and its legacy Google path.

Wire facts (the gateway's own API documents): create and poll share one response shape
``{id, status, video, error, meta}`` with statuses queued / generating / completed / error;
ids look like ``<uuid>:<model>`` (so they contain ``:`` and ``/``); HTTP errors use the
envelope ``{message, path, requestId, statusCode, timestamp}``.

``meta.usage`` carries ``seconds`` (the video's length) and the seed's ``tokens_used``,
counted as 15000 per second of video (the seed's example: 8 s, 120000 tokens), and
``engine``, the catalog engine that made it (kinema extension; ``kinema usage`` sums the
seconds per key and engine).

Extensions, which strict clients ignore: ``progress`` (0..100) on every response,
``details`` (one entry per problem) on 400 responses, and ``meta.adjustments`` listing what
was changed to serve a request as sent: the AI/ML API's own Veo 3 example asks
``duration: "5"`` of a model that makes 4, 6 and 8 second videos; such a duration is made
as the next longer one (6) and reported there, rather than refused.

Extension: ``extend_from`` (kinema extension) names an earlier completed generation of
the same key (its ``id``); the new generation is that video followed by ``duration``
more seconds, as one video at its size (models with extension limits in the catalog).
Another key's generation is a 404. A completed generation lists every video it made in
``videos`` (``video`` is the first of them).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kinema.api.deps import BearerOwner, IdempotencyKey
from kinema.api.dialect import Dialect, Poll, query_value
from kinema.errors import InvalidRequest, KinemaError, NotFound
from kinema.types import JobStatus, output_ref
from kinema.views import Creation, JobRef, JobView

TOKENS_PER_SECOND = 15_000

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
POLL_PATHS = ("/v2/video/generations", "/v2/generate/video/google/generation")


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
    seed: StrictInt | None = None
    negative_prompt: str | None = None
    enhance_prompt: bool | None = None
    auto_fix: bool | None = None
    callback_url: str | None = Field(
        None,
        description="kinema extension: a URL that receives a signed webhook (Standard "
        "Webhooks) when the generation ends",
    )
    extend_from: str | None = Field(
        None,
        description="kinema extension: the id of a completed generation of this key to "
        "extend by `duration` seconds (the result holds both, as one video)",
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
    videos: list[GenerationVideo] | None = Field(
        None, description="kinema extension: every video made (completed), the first is video"
    )
    duration: float | None = None
    error: GenerationError | None = None
    meta: dict[str, Any] | None = None
    progress: int = Field(0, description="kinema extension: percent done, 0..100")


class AimlApi(Dialect):
    name = "aimlapi"
    title = "AI/ML API"
    prefixes = ("/v2",)
    full_view = False
    status_words = {
        JobStatus.QUEUED: "queued",
        JobStatus.RUNNING: "generating",
        JobStatus.SUCCEEDED: "completed",
        JobStatus.FAILED: "error",
        JobStatus.CANCELLED: "error",
        JobStatus.EXPIRED: "error",
    }
    error_schema = {
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

    # --- ids ---

    @staticmethod
    def wire_id(job_id: str, model: str) -> str:
        """``<uuid>:<model>`` (the job id, 32 hex digits, in the UUID's dashed form)."""
        h = job_id
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}:{model}"

    @staticmethod
    def job_ref(generation_id: str) -> JobRef:
        head = generation_id.split(":", 1)[0].strip()
        try:
            return JobRef(id=uuid.UUID(head).hex)
        except ValueError:
            raise NotFound(f"generation {generation_id!r} not found") from None

    # --- rendering ---

    def render(self, view: JobView) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.wire_id(view.id, view.model),
            "status": self.status_words[view.status],
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

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": error.message,
            "path": request.url.path,
            "requestId": str(uuid.uuid4()),
            "statusCode": error.status,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if isinstance(error, InvalidRequest):
            body["message"] = "Body validation error!"
            body["details"] = [
                {"path": list(p.path), "message": p.message} for p in error.problems
            ] or [{"path": [], "message": error.message}]
        return body

    # --- translating a create ---

    @staticmethod
    def parse_create(body: CreateGeneration, idempotency_key: str | None) -> Creation:
        sent = body.model_dump(exclude_unset=True)
        model = sent.pop("model")
        callback_url = sent.pop("callback_url", None)
        fields: dict[str, Any] = {}
        wire_names = dict(_DEFAULT_WIRE)
        extend_from = sent.pop("extend_from", None)
        if extend_from is not None:
            fields["video"] = output_ref(AimlApi.job_ref(extend_from).id or "")
            wire_names["video"] = "extend_from"
        for wire, value in sent.items():
            canonical = WIRE_FIELDS.get(wire, wire)
            fields[canonical] = value
            wire_names[canonical] = wire
        return Creation(
            model=model,
            fields=fields,
            wire_names=wire_names,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )

    # --- routes ---

    def polls(self) -> list[Poll]:
        def locate(request: Request, params: Mapping[str, str], body: Any) -> JobRef:
            generation_id = query_value(request, "generation_id")
            if not generation_id:
                raise InvalidRequest.for_field("generation_id", "is required")
            return self.job_ref(generation_id)

        parameter = {
            "name": "generation_id",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "The id returned on create (contains ':' and '/').",
        }
        return [
            Poll(
                path,
                locate,
                events=path + "/events" if path == POLL_PATHS[0] else None,
                summary="Fetch a video generation: once `completed`, `video.url` is a signed link",
                parameters=(parameter,),
                response_model=Generation,
            )
            for path in POLL_PATHS
        ]

    def add_routes(self, router: APIRouter) -> None:

        @router.post("/v2/video/generations", response_model=Generation)
        def create_generation(
            request: Request,
            body: CreateGeneration,
            owner: BearerOwner,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Create a video generation task; poll it with GET and ``generation_id``."""
            job = self.create(request, owner, self.parse_create(body, idempotency_key))
            return self.respond(request, job)

        @router.post(
            "/v2/generate/video/google/generation", response_model=Generation, status_code=201
        )
        def create_generation_legacy(
            request: Request,
            body: CreateGeneration,
            owner: BearerOwner,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Legacy path of the same create call (documented upstream as 201)."""
            job = self.create(request, owner, self.parse_create(body, idempotency_key))
            return self.respond(request, job, status_code=201)
