"""The ``/v1/video/generations`` dialect, as New-API-style gateways document and serve Veo.

- ``POST /v1/video/generations``: create.
- ``GET /v1/video/generations/{task_id}``: poll.
- ``POST /v1/video/generations/{task_id}/cancel``: cancel (queued: at once; running:
  within moments). Cancelling a finished task returns it unchanged.

Request: ``model`` (the Google ids, e.g. ``veo-3.0-fast-generate-001``), ``prompt`` (at most
5000 characters), ``aspect_ratio`` (16:9 when omitted), ``images`` (a list: first frame, and
optionally a last frame; each an http(s) URL, raw base64 or a ``data:`` URI; ``image`` and
``input_reference`` are accepted for a single first frame), ``seconds`` (alias
``duration``; int or string: 4/6/8, Veo 2 5..8, default 8), ``size`` (``720p`` default,
``1080p``, ``4k``, or a pixel size ``1280x720``, ``720x1280``, ``1920x1080``, ``1080x1920``,
``3840x2160``, ``2160x3840``, which also sets the aspect ratio; any other pixel size is a
400), and the model's optional fields (generate_audio, negative_prompt, seed,
enhance_prompt, person_generation). Images are optional: without one the model works from
the prompt alone. Veo 3.1 with a first frame makes 8-second videos only: as the seed
says, ``seconds`` "is fixed to 8" then, so another value is made as 8, reported in
``seconds`` and listed in ``adjustments``. Kinema extensions: ``callback_url`` and ``off_peak``
(lowest priority; cancelled automatically when unfinished 48 h after creation), and
``extend_from``: the ``task_id`` of a succeeded task of the same key, which the new task
continues by ``seconds`` (one video: the source, then the new seconds, at the source's
size; the models with extension limits in the catalog; another key's task is a 404).
A succeeded task lists every video it made in ``videos`` (``url`` is the first).

Response (create, poll and cancel)::

    {"id": "task_<32 hex>", "task_id": <same>, "object": "video", "model",
     "status": "queued" | "in_progress" | "succeeded" | "failed" | "cancelled",
     "progress": 0..100, "created_at": <unix>, "completed_at": <unix> | null,
     "seconds": "8", "size": "1280x720", "off_peak": false,
     "queue_position": <int> (only while queued),
     "workers_online": <int> (queued, scale-out dispatch: 0 = no worker serves the model),
     "error": {"code", "message"} | null,
     "adjustments": [{"field", "requested", "used", "reason"}] (only when a field was changed),
     "url", "video_url", "expires_at", "format": "mp4", "metadata": {...} (when succeeded)}

``url`` and ``video_url`` are the same signed link, valid for 24 hours. A cancelled task
says why in ``error``: ``cancelled`` by its owner, or ``off_peak_timeout``.

HTTP errors (OpenAI's envelope): ``{"error": {"message", "type", "param", "code"}}``;
``type`` is ``invalid_request_error``, ``authentication_error``, ``permission_error``,
``not_found_error``, ``rate_limit_error`` (429, with ``Retry-After``) or ``server_error``;
``code`` is kinema's error code; 400s add ``details`` (one entry per problem).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kinema.api.deps import BearerOwner, IdempotencyKey, get_service
from kinema.api.dialect import (
    DETAILS_SCHEMA,
    Dialect,
    Poll,
    error_envelope_schema,
    id_poll,
    param_details,
)
from kinema.catalog_models import FRAME_SIZES
from kinema.errors import InvalidRequest, KinemaError
from kinema.types import output_ref
from kinema.views import Creation, JobRef
from kinema.wire import v1_generations as wire

# Models whose first-frame videos are always 8 seconds long upstream.
EIGHT_SECONDS_WITH_IMAGE = frozenset({"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview"})

PIXEL_SIZES = {f"{w}x{h}": key for key, (w, h) in FRAME_SIZES.items()}
_PIXEL_SIZE = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")

_SPECIAL = frozenset(
    {
        wire.MODEL,
        wire.IMAGES,
        "image",
        "input_reference",
        wire.SECONDS,
        "duration",
        wire.SIZE,
        "resolution",
        "callback_url",
        "off_peak",
        "extend_from",
    }
)

_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class CreateVideoGeneration(BaseModel):
    """A create request; which optional fields apply depends on ``model`` (see the catalog)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["veo-3.0-fast-generate-001"])
    prompt: str | None = Field(None, description="at most 5000 characters")
    aspect_ratio: str | None = Field(None, examples=["16:9", "9:16"])
    images: list[str] | str | None = Field(
        None, description="first frame (and optionally last): http(s) URL, base64 or data: URI"
    )
    image: str | None = Field(None, description="alternative to images: the first frame")
    input_reference: str | None = Field(None, description="alternative to images")
    seconds: int | str | None = Field(None, examples=[8, "8"])
    duration: int | str | None = Field(None, description="alias of seconds")
    size: str | None = Field(None, examples=["720p", "1080p", "4k", "1280x720"])
    resolution: str | None = Field(None, description="alternative to size: 720p/1080p/4k")
    generate_audio: bool | str | None = None
    negative_prompt: str | None = None
    seed: StrictInt | str | None = None
    enhance_prompt: bool | str | None = None
    person_generation: str | None = None
    callback_url: str | None = Field(
        None, description="kinema extension: receives a signed webhook when the task ends"
    )
    off_peak: bool = Field(
        False,
        description="kinema extension: run at the lowest priority; cancelled automatically "
        "if not finished 48 h after creation",
    )
    extend_from: str | None = Field(
        None,
        description="kinema extension: the task_id of a succeeded task of this key to "
        "continue by `seconds` (the result holds both, as one video)",
    )


class GenerationError(BaseModel):
    code: str
    message: str


class VideoGeneration(BaseModel):
    id: str = Field(examples=["task_5f0c3e6a9b2d4c1e8f7a6b5c4d3e2f10"])
    task_id: str
    object: str = "video"
    model: str
    status: str = Field(examples=["queued", "in_progress", "succeeded", "failed", "cancelled"])
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None = None
    seconds: str
    size: str
    off_peak: bool
    queue_position: int | None = Field(None, description="tasks ahead of this one (queued)")
    workers_online: int | None = Field(
        None,
        description="job slots of live workers that serve this model (queued, scale-out "
        "dispatch only); 0: no worker serves it, so the task waits until one starts",
    )
    error: GenerationError | None = None
    adjustments: list[dict[str, Any]] | None = Field(
        None, description="what was changed to serve the request (e.g. seconds fixed to 8)"
    )
    videos: list[dict[str, Any]] | None = Field(
        None, description="every video made, {url, duration} (succeeded); url is the first"
    )
    url: str | None = Field(None, description="signed video link (succeeded), valid 24 h")
    video_url: str | None = Field(None, description="the same link as url")
    expires_at: int | None = Field(None, description="when the link stops working")
    format: str | None = None
    metadata: dict[str, Any] | None = None


def _images(sent: dict[str, Any], fields: dict[str, Any], wire_names: dict[str, str]) -> None:
    given = [name for name in (wire.IMAGES, "image", "input_reference") if name in sent]
    if len(given) > 1:
        message = f"send the first frame once, not also in {given[0]}"
        raise InvalidRequest.for_field(given[1], message)
    if not given:
        return
    name = given[0]
    value = sent[name]
    frames = value if isinstance(value, list) else [value]
    if name == wire.IMAGES and len(frames) > 2:
        raise InvalidRequest.for_field(name, "takes a first frame and at most a last frame")
    if frames:
        fields["image"] = frames[0]
        wire_names["image"] = f"{name}[0]" if isinstance(value, list) else name
    if len(frames) == 2:
        fields["last_image"] = frames[1]
        wire_names["last_image"] = f"{name}[1]"


def _seconds(sent: dict[str, Any], fields: dict[str, Any], wire_names: dict[str, str]) -> None:
    given = [name for name in (wire.SECONDS, "duration") if sent.get(name) is not None]
    if len(given) == 2 and str(sent[wire.SECONDS]) != str(sent["duration"]):
        raise InvalidRequest.for_field("duration", "differs from seconds; send one of them")
    if given:
        fields["duration"] = sent[given[0]]
        wire_names["duration"] = given[0]


def _size(sent: dict[str, Any], fields: dict[str, Any], wire_names: dict[str, str]) -> None:
    size, resolution = sent.get(wire.SIZE), sent.get("resolution")
    if size is None:
        if resolution is not None:
            fields["resolution"] = resolution
            wire_names["resolution"] = "resolution"
        return
    match = _PIXEL_SIZE.match(size)
    if match is None:
        chosen = size.strip().lower()
    else:
        pixels = f"{match[1]}x{match[2]}"
        if pixels not in PIXEL_SIZES:
            known = ", ".join(PIXEL_SIZES)
            raise InvalidRequest.for_field(
                "size", f"{size!r} is not a size this server makes; use 720p, 1080p, 4k or {known}"
            )
        chosen, aspect = PIXEL_SIZES[pixels]
        if fields.get("aspect_ratio", aspect) != aspect:
            raise InvalidRequest.for_field(
                "aspect_ratio", f"{fields['aspect_ratio']!r} contradicts size {pixels} ({aspect})"
            )
        fields["aspect_ratio"] = aspect
    if resolution is not None and str(resolution).strip().lower() != chosen:
        raise InvalidRequest.for_field("resolution", f"contradicts size {size!r}; send one")
    fields["resolution"] = chosen


wire_id = wire.wire_id
job_id_from_wire = wire.job_id


def _fixed_seconds(
    model: str, fields: dict[str, Any], wire_names: dict[str, str]
) -> tuple[dict[str, Any], ...]:
    """Veo 3.1 with a first frame: ``seconds`` "is fixed to 8" (the gateway's Veo
    image-to-video page)."""
    if model not in EIGHT_SECONDS_WITH_IMAGE or "image" not in fields:
        return ()
    requested = fields.get("duration")
    fields["duration"] = 8
    if requested is None or str(requested).strip().removesuffix("s") == "8":
        return ()
    reason = "Veo 3.1 with a first frame image makes 8-second videos only"
    field = wire_names["duration"]
    return ({"field": field, "requested": requested, "used": 8, "reason": reason},)


TaskId = Annotated[str, Path(examples=["task_5f0c3e6a9b2d4c1e8f7a6b5c4d3e2f10"])]


class VideoGenerations(Dialect):
    name = wire.NAME
    title = "/v1/video/generations"
    prefixes = (wire.CREATE_PATH,)
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS
    error_schema = error_envelope_schema(
        ("message", "type", "code"),
        message="string",
        type="string",
        param=["string", "null"],
        code="string",
        details=DETAILS_SCHEMA,
    )

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        fallback = "invalid_request_error" if error.status < 500 else "server_error"
        body: dict[str, Any] = {
            "message": error.message,
            "type": _ERROR_TYPES.get(error.status, fallback),
            "param": None,
            "code": error.code,
        }
        return {"error": body | param_details(error)}

    # --- translating a create ---

    @staticmethod
    def parse_create(body: CreateVideoGeneration, idempotency_key: str | None) -> Creation:
        sent = body.model_dump(exclude_unset=True)
        fields: dict[str, Any] = {}
        wire_names = {canonical: name for name, canonical in wire.WIRE_FIELDS.items()}
        wire_names |= {"image": wire.IMAGES, "last_image": wire.IMAGES, "duration": wire.SECONDS}
        wire_names["resolution"] = wire.SIZE
        for name, value in sent.items():
            if name not in _SPECIAL:
                fields[wire.WIRE_FIELDS.get(name, name)] = value
        _images(sent, fields, wire_names)
        _seconds(sent, fields, wire_names)
        if body.extend_from is not None:
            fields["video"] = output_ref(job_id_from_wire(body.extend_from))
            wire_names["video"] = "extend_from"
        _size(sent, fields, wire_names)
        adjustments = _fixed_seconds(body.model, fields, wire_names)
        return Creation(
            model=body.model,
            fields=fields,
            wire_names=wire_names,
            callback_url=body.callback_url,
            off_peak=body.off_peak,
            idempotency_key=idempotency_key,
            adjustments=adjustments,
        )

    # --- routes ---

    def polls(self) -> list[Poll]:
        return [
            id_poll(
                wire.TASK_PATH,
                "task_id",
                lambda task_id: JobRef(id=job_id_from_wire(task_id)),
                summary="The task's status; once succeeded, url is a signed link to the MP4",
                response_model=VideoGeneration,
            )
        ]

    def add_routes(self, router: APIRouter) -> None:

        @router.post(wire.CREATE_PATH, response_model=VideoGeneration)
        def create_generation(
            request: Request,
            body: CreateVideoGeneration,
            owner: BearerOwner,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Submit a video task; poll ``GET /v1/video/generations/{task_id}`` until
            ``succeeded``."""
            job = self.create(request, owner, self.parse_create(body, idempotency_key))
            return self.respond(request, job)

        @router.post(wire.CANCEL_PATH, response_model=VideoGeneration)
        def cancel_generation(
            request: Request, task_id: TaskId, owner: BearerOwner
        ) -> Response:
            """Cancel a task: a queued one ends now, a running one within moments."""
            service = get_service(request)
            job = service.cancel(owner, job_id_from_wire(task_id))
            return self.respond(request, job)
