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
from kinema.errors import InvalidRequest, KinemaError
from kinema.types import output_ref
from kinema.views import Creation, JobRef
from kinema.wire import aimlapi as wire


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
    name = wire.NAME
    title = "AI/ML API"
    prefixes = ("/v2",)
    full_view = False
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS
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

    # --- ids and rendering (the wire table's) ---

    wire_id = staticmethod(wire.wire_id)
    render = staticmethod(wire.render)

    @staticmethod
    def job_ref(generation_id: str) -> JobRef:
        return JobRef(id=wire.job_id(generation_id))

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
        wire_names = dict(wire.FIELDS)
        extend_from = sent.pop("extend_from", None)
        if extend_from is not None:
            fields["video"] = output_ref(AimlApi.job_ref(extend_from).id or "")
            wire_names["video"] = "extend_from"
        for sent_as, value in sent.items():
            canonical = wire.WIRE_FIELDS.get(sent_as, sent_as)
            fields[canonical] = value
            wire_names[canonical] = sent_as
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
            generation_id = query_value(request, wire.ID_PARAMETER)
            if not generation_id:
                raise InvalidRequest.for_field(wire.ID_PARAMETER, "is required")
            return self.job_ref(generation_id)

        parameter = {
            "name": wire.ID_PARAMETER,
            "in": "query",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "description": "The id returned on create (contains ':' and '/').",
        }
        return [
            Poll(
                path,
                locate,
                events=path + "/events" if path == wire.GENERATIONS_PATH else None,
                summary="Fetch a video generation: once `completed`, `video.url` is a signed link",
                parameters=(parameter,),
                response_model=Generation,
            )
            for path in wire.POLL_PATHS
        ]

    def add_routes(self, router: APIRouter) -> None:

        @router.post(wire.GENERATIONS_PATH, response_model=Generation)
        def create_generation(
            request: Request,
            body: CreateGeneration,
            owner: BearerOwner,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Create a video generation task; poll it with GET and ``generation_id``."""
            job = self.create(request, owner, self.parse_create(body, idempotency_key))
            return self.respond(request, job)

        @router.post(wire.LEGACY_PATH, response_model=Generation, status_code=201)
        def create_generation_legacy(
            request: Request,
            body: CreateGeneration,
            owner: BearerOwner,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Legacy path of the same create call (documented upstream as 201)."""
            job = self.create(request, owner, self.parse_create(body, idempotency_key))
            return self.respond(request, job, status_code=201)
