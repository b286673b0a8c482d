"""OpenAI's Videos API (``/v1/videos``), as the official ``openai`` SDK's ``client.videos``
speaks it: point the SDK's ``base_url`` at ``<kinema>/v1`` and nothing else changes.

Wire facts (checked against the SDK's source):

* Create is ``multipart/form-data`` from the SDK: ``prompt``, ``model``, ``seconds`` as a
  string ("4"), ``size`` as "WxH", and ``input_reference`` as a file part, or as the
  form field ``input_reference[image_url]`` (the SDK refuses a dict for
  ``input_reference`` itself, so it sends one only through ``extra_body``). JSON bodies
  work too, with ``input_reference`` either ``{"image_url": ...}`` or a plain string (an
  http(s) URL, a ``data:`` URI or raw base64). ``model`` defaults to ``sora-2`` and, for
  the models that list it among their sizes, ``size`` to "720x1280" (OpenAI's defaults);
  other models default to their own frame (Veo: 1280x720).
* Every response is a video object with all its nullable fields present.
* ``create_and_poll`` sleeps for the ``openai-poll-after-ms`` header of each response while
  the video is queued or in progress; kinema sends ``POLL_AFTER_MS`` (its wire table's) on
  both create and retrieve responses of unfinished videos.
* Errors are ``{"error": {"message", "type", "param", "code"}}``.

Choices where OpenAI's behaviour is not kinema's:

* A cancelled video reads ``status: "failed"`` with ``error.code: "cancelled"``; one whose
  files were removed after retention reads ``failed`` with ``error.code: "expired"``.
* ``expires_at`` is ``completed_at`` plus the download link lifetime (``url_ttl_s``).
* ``DELETE`` of a queued or running video cancels it, waits briefly for the worker to stop
  and then deletes it with its files. A video still running after that wait (a worker on
  another machine that has not seen the cancel yet) is a 409, which the SDK retries.
* ``GET .../content`` is a 404 until the video is completed. ``variant=spritesheet`` is
  built on first request from the MP4 (a grid of evenly spaced frames in one JPEG, see
  ``kinema.media.spritesheet``) and kept in storage with the job's other files.
* The list and retrieve calls show every video of the API key, whichever dialect created
  it: there is one job table, and a job made through another API is still a video (of a
  job that made several, the first).
* Extensions, remixes and edits (``kinema.api.dialects.openai.derived``) are new videos:
  ``remixed_from_video_id`` names the source of a remix or an edit of a video id, and an
  extension's ``seconds`` is its joined length (the source plus what was added).

Extensions, which OpenAI clients never send: ``callback_url`` (a per-request webhook; OpenAI
configures webhooks per project), and ``seed``, ``generate_audio`` and ``negative_prompt``
for the models that take them (see the catalog). Send them with the SDK's ``extra_body``.
Create honours an ``Idempotency-Key`` header like kinema's other dialects.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from kinema.api.deps import BearerOwner, IdempotencyKey, get_service
from kinema.api.dialect import Dialect, Poll, error_envelope_schema, id_poll
from kinema.api.dialects.openai.bodies import read_form_or_json, unknown_parameter
from kinema.api.dialects.openai.derived import add_derived_routes
from kinema.api.files import artifact_response
from kinema.catalog_models import FRAME_SIZES, ModelSpec
from kinema.errors import (
    FieldProblem,
    InvalidImage,
    InvalidRequest,
    JobStillRunning,
    KinemaError,
    NotFound,
    UnknownModel,
)
from kinema.media.fetch import format_size
from kinema.service import JobService
from kinema.views import Creation, JobRef
from kinema.wire import openai_videos as wire

DEFAULT_MODEL = "sora-2"  # what OpenAI uses when ``model`` is omitted
DEFAULT_SIZE = "720x1280"  # OpenAI's default, for models that list it among their sizes
DEFAULT_PAGE = 20
MAX_PAGE = 100

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    410: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_ERROR_CODES = {"unauthenticated": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}

# Sizes that are one of kinema's standard frames: "WxH" -> (resolution, aspect ratio).
STANDARD_SIZES = {f"{w}x{h}": key for key, (w, h) in FRAME_SIZES.items()}
_SIZE = re.compile(r"(\d{2,5})x(\d{2,5})")

# Canonical fields that create takes besides the image, by wire name.
_SCALARS = (wire.PROMPT, wire.MODEL, wire.SECONDS, wire.SIZE, "callback_url", *wire.EXTENSIONS)
_IMAGE_URL = f"{wire.IMAGE}[image_url]"
_FILE_ID = f"{wire.IMAGE}[file_id]"


def _param_name(path: tuple[str | int, ...]) -> str:
    head, *rest = path
    return str(head) + "".join(f"[{part}]" for part in rest)


# --- schemas, for the OpenAPI document ---


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    id: str = Field(examples=["video_3f2a9c..."])
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(description="percent done, 0..100")
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    size: str = Field(examples=["1280x720"])
    seconds: str = Field(examples=["4"])
    remixed_from_video_id: str | None = None
    error: VideoError | None


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool


_CREATE_FIELDS: dict[str, Any] = {
    "prompt": {"type": "string"},
    "model": {"type": "string", "default": DEFAULT_MODEL},
    "seconds": {"type": "string", "enum": ["4", "8", "12"], "description": "per model"},
    "size": {"type": "string", "examples": ["1280x720", "720x1280"]},
    "callback_url": {"type": "string", "description": "kinema extension: webhook URL"},
}
CREATE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    **_CREATE_FIELDS,
                    "input_reference": {"type": "string", "format": "binary"},
                    _IMAGE_URL: {"type": "string"},
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    **_CREATE_FIELDS,
                    "input_reference": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "object", "properties": {"image_url": {"type": "string"}}},
                        ]
                    },
                },
            }
        },
    },
}


# --- ids ---


wire_id = wire.wire_id


def job_ref(video_id: str) -> JobRef:
    return JobRef(id=wire.job_id(video_id))


# --- reading a create body ---


class CreateBody:
    """A create request as sent, multipart or JSON: wire fields and the image source."""

    def __init__(self, fields: dict[str, Any], image: str | None, image_param: str) -> None:
        self.fields = fields
        self.image = image
        self.image_param = image_param


async def read_create_body(request: Request) -> CreateBody:
    max_image_bytes = get_service(request).settings.max_image_bytes
    return await read_form_or_json(
        request, lambda form: _read_form(form, max_image_bytes), _read_json
    )


async def _read_form(request: Request, max_image_bytes: int) -> CreateBody:
    # A data: URI in ``input_reference[image_url]`` is a form field, not a file part.
    max_field = math.ceil(max_image_bytes * 4 / 3) + 1024
    async with request.form(max_part_size=max_field) as form:
        items = form.multi_items()
        _refuse_repeats([key for key, _ in items])
        fields: dict[str, Any] = {}
        image: str | None = None
        image_param = wire.IMAGE
        for key, value in items:
            if key == wire.IMAGE and isinstance(value, UploadFile):
                image = await _upload_as_data_uri(value, max_image_bytes)
            elif isinstance(value, UploadFile):
                raise InvalidRequest.for_field(key, "must be a text field, not a file")
            elif key in (wire.IMAGE, _IMAGE_URL):
                image, image_param = value, key
            elif key == _FILE_ID:
                raise _file_id_unsupported(key)
            elif key in _SCALARS:
                fields[key] = value
            else:
                raise unknown_parameter(key)
    return CreateBody(fields, image, image_param)


def _read_json(body: dict[str, Any]) -> CreateBody:
    fields: dict[str, Any] = {}
    image: str | None = None
    image_param = wire.IMAGE
    for key, value in body.items():
        if key == wire.IMAGE:
            if isinstance(value, dict):
                unknown = set(value) - {"image_url", "file_id"}
                if unknown:
                    raise unknown_parameter(f"input_reference.{sorted(unknown)[0]}")
                if "file_id" in value:
                    raise _file_id_unsupported("input_reference.file_id")
                image, image_param = value.get("image_url"), "input_reference.image_url"
            else:
                image = value
            if image is not None and not isinstance(image, str):
                raise InvalidRequest.for_field(image_param, "must be a string")
        elif key in _SCALARS:
            if value is not None:
                fields[key] = value
        else:
            raise unknown_parameter(key)
    return CreateBody(fields, image, image_param)


async def _upload_as_data_uri(upload: UploadFile, max_bytes: int) -> str:
    """A file part as a ``data:`` URI, the form the shared Submitter validates."""
    if upload.size is not None and upload.size > max_bytes:
        raise InvalidImage.for_field(
            wire.IMAGE,
            f"image is {format_size(upload.size)}; the limit is {format_size(max_bytes)}",
        )
    data = await upload.read()
    mime = upload.content_type or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _refuse_repeats(keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise InvalidRequest.for_field(key, "was given more than once")
        seen.add(key)


def _file_id_unsupported(name: str) -> InvalidRequest:
    return InvalidRequest.for_field(
        name, "file ids are not supported here; upload the image or send its image_url"
    )


# --- create ---


def _size_fields(spec: ModelSpec, size: Any) -> dict[str, Any]:
    """Canonical fields for a wire ``size``.

    Models with explicit ``sizes`` in the catalog get ``size`` itself, which the catalog
    checks against them. Others get the resolution and aspect ratio that make that
    frame, when it is one of kinema's standard frames that the model makes.
    """
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        raise InvalidRequest.for_field("size", "must be WIDTHxHEIGHT, for example 1280x720")
    standard = STANDARD_SIZES.get(size)
    if spec.sizes:
        fields: dict[str, Any] = {"size": size}
        if size in spec.sizes and "aspect_ratio" in spec.options:
            width, height = int(match[1]), int(match[2])
            fields["aspect_ratio"] = (
                standard[1] if standard else ("16:9" if width >= height else "9:16")
            )
        return fields
    allowed = [
        f"{w}x{h}"
        for (resolution, aspect), (w, h) in FRAME_SIZES.items()
        if resolution in spec.resolutions and aspect in spec.aspect_ratios
    ]
    if standard is None or size not in allowed:
        raise InvalidRequest.for_field(
            "size", f"{size!r} is not one of {', '.join(allowed)} for model {spec.id}"
        )
    return {"resolution": standard[0], "aspect_ratio": standard[1]}


def _model_spec(service: JobService, model: Any) -> ModelSpec:
    if not isinstance(model, str) or not model:
        raise InvalidRequest.for_field("model", "must be a model id string")
    try:
        return service.catalog.get(model, dialect=OpenAIVideos.name)
    except UnknownModel as error:
        raise UnknownModel(error.message, [FieldProblem(("model",), error.message)]) from None


def _callback_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.lower().startswith(("http://", "https://")):
        raise InvalidRequest.for_field("callback_url", "must be an http(s) URL")
    return value


Variant = Literal["video", "thumbnail", "spritesheet"]
INDEX_HELP = "kinema extension: which video of a job that made several (default 0, the first)"
CreateBodyDep = Annotated[CreateBody, Depends(read_create_body)]


class OpenAIVideos(Dialect):
    name = wire.NAME
    title = "OpenAI Videos"
    prefixes = (wire.VIDEOS_PATH,)
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS
    error_schema = error_envelope_schema(
        ("message", "type"),
        message="string",
        type="string",
        param=["string", "null"],
        code=["string", "null"],
    )

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)
    poll_headers = staticmethod(wire.poll_headers)

    @staticmethod
    def job_id(video_id: str) -> str:
        """The job id of a wire video id; NotFound in OpenAI's words for anything else."""
        return job_ref(video_id).id or ""

    @staticmethod
    def model_spec(service: JobService, model: Any) -> ModelSpec:
        return _model_spec(service, model)

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        param = None
        if isinstance(error, InvalidRequest) and error.problems:
            param = _param_name(error.problems[0].path)
        status = error.status
        return {
            "error": {
                "message": error.message,
                "type": _ERROR_TYPES.get(
                    status, "server_error" if status >= 500 else "invalid_request_error"
                ),
                "param": param,
                "code": _ERROR_CODES.get(error.code, error.code),
            }
        }

    # --- translating a create ---

    def parse_create(
        self, service: JobService, body: CreateBody, idempotency_key: str | None
    ) -> Creation:
        sent = dict(body.fields)
        spec = _model_spec(service, sent.pop(wire.MODEL, DEFAULT_MODEL))
        callback_url = _callback_url(sent.pop("callback_url", None))
        fields: dict[str, Any] = {k: sent[k] for k in (wire.PROMPT, *wire.EXTENSIONS) if k in sent}
        if wire.SECONDS in sent:
            fields["duration"] = sent[wire.SECONDS]
        if wire.SIZE not in sent and DEFAULT_SIZE in spec.sizes:
            sent[wire.SIZE] = DEFAULT_SIZE
        if wire.SIZE in sent:
            fields.update(_size_fields(spec, sent[wire.SIZE]))
        if body.image is not None:
            fields["image"] = body.image
        wire_names = {
            "image": body.image_param,
            "duration": wire.SECONDS,
            "size": wire.SIZE,
            "resolution": wire.SIZE,
            "aspect_ratio": wire.SIZE,
        }
        return Creation(
            model=spec.id,
            fields=fields,
            wire_names=wire_names,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )

    # --- routes ---

    def polls(self) -> list[Poll]:
        return [
            id_poll(
                wire.VIDEO_PATH,
                "video_id",
                job_ref,
                summary="A video's status and metadata",
                response_model=Video,
                headers=self.poll_headers,
            )
        ]

    def add_routes(self, router: APIRouter) -> None:
        add_derived_routes(self, router)

        @router.post(
            wire.VIDEOS_PATH, response_model=Video, openapi_extra={"requestBody": CREATE_BODY}
        )
        def create_video(
            request: Request,
            owner: BearerOwner,
            body: CreateBodyDep,
            idempotency_key: IdempotencyKey = None,
        ) -> JSONResponse:
            """Create a video from a prompt and an optional first-frame image."""
            service = get_service(request)
            creation = self.parse_create(service, body, idempotency_key)
            job = self.create(request, owner, creation)
            view = service.view(job)
            return JSONResponse(self.render(view), headers=self.poll_headers(view))

        @router.get(wire.VIDEOS_PATH, response_model=VideoList)
        def list_videos(
            request: Request,
            owner: BearerOwner,
            after: Annotated[
                str | None, Query(min_length=1, description="id of the last video seen")
            ] = None,
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
            order: Annotated[Literal["asc", "desc"], Query()] = "desc",
        ) -> dict[str, Any]:
            """The key's videos by creation time, newest first unless ``order=asc``."""
            service = get_service(request)
            cursor = None
            if after is not None:
                try:
                    cursor = job_ref(after).id
                except NotFound:
                    raise InvalidRequest.for_field("after", f"no video {after!r}") from None
            try:
                jobs = service.jobs(owner, limit=limit + 1, after=cursor, order=order)
            except InvalidRequest:
                raise InvalidRequest.for_field("after", f"no video {after!r}") from None
            data = [self.render(service.view(job)) for job in jobs[:limit]]
            return {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(jobs) > limit,
            }

        @router.delete(wire.VIDEO_PATH, response_model=VideoDeleted)
        def delete_video(request: Request, video_id: str, owner: BearerOwner) -> dict[str, Any]:
            """Delete a video and its files; a queued or running one is cancelled first.

            A video still running after a short wait (its worker on another machine has
            not seen the cancel yet) is a 409, which the SDK retries."""
            service = get_service(request)
            try:
                job = service.delete(owner, job_ref(video_id).id or "", wait=True)
            except JobStillRunning:
                raise JobStillRunning(
                    f"Video '{video_id}' is being cancelled; retry the delete in a moment."
                ) from None
            return {"id": wire_id(job.id), "object": "video.deleted", "deleted": True}

        @router.get(
            wire.CONTENT_PATH,
            response_class=Response,
            responses={
                200: {
                    "content": {"video/mp4": {}, "image/jpeg": {}},
                    "description": "The MP4, or a JPEG for the thumbnail and spritesheet variants",
                }
            },
        )
        def download_content(
            request: Request,
            video_id: str,
            owner: BearerOwner,
            variant: Annotated[Variant, Query()] = "video",
            index: Annotated[int, Query(ge=0, le=99, description=INDEX_HELP)] = 0,
        ) -> Response:
            """The video (with HTTP range support), its thumbnail or a spritesheet of its
            frames (built on first request and kept with the video's files)."""
            service = get_service(request)
            job_id = job_ref(video_id).id or ""
            try:
                artifact = service.artifact(owner, job_id, variant, index)
            except NotFound as error:
                if error.message.startswith("job "):  # no such video for this key
                    raise
                detail = error.message.removeprefix("the video ")
                raise NotFound(f"Video '{video_id}' {detail}.") from None
            return artifact_response(artifact)
