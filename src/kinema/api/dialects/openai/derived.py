"""OpenAI Videos calls that make a video from another: extensions, remixes and edits.

Wire facts (the ``openai`` SDK's ``client.videos``; PROTOCOLS.md section 5):

* ``POST /v1/videos/extensions`` (``videos.extend``): multipart ``prompt``, ``seconds`` and
  ``video``, either the form field ``video[id]`` (a completed video of the same key) or an
  uploaded file. The answer is a new video: the source followed by ``seconds`` more, as
  one file at the source's size; its ``seconds`` is the joined length (as OpenAI reports
  extensions). Its model is the source's; for an upload, ``model`` (default ``sora-2``).
* ``POST /v1/videos/{id}/remix`` (``videos.remix``): JSON ``{"prompt"}``. A new video from
  the source's picture (the image it started from, else its first frame) with the new
  prompt and the source's model, length and size; ``remixed_from_video_id`` names the
  source.
* ``POST /v1/videos/edits`` (``videos.edit``): multipart ``prompt`` and ``video`` (id or
  file). kinema's engines re-film a picture rather than repaint a video, so an edit is a
  remix: of the source's picture for an id (``remixed_from_video_id`` set), of an
  uploaded video's first frame otherwise.
* ``POST /v1/videos/characters`` and ``GET /v1/videos/characters/{id}`` are Sora's own
  cameo feature: a 400 that says so.

Another key's video is a 404, as it is to retrieve. JSON bodies work for every call;
``seed``, ``generate_audio``, ``negative_prompt`` and ``callback_url`` are accepted as on
create (extensions to OpenAI's wire). ``Idempotency-Key`` is honoured.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from kinema.api.deps import BearerOwner, IdempotencyKey, get_service, request_base_url
from kinema.api.dialects.openai.bodies import read_form_or_json, unknown_parameter
from kinema.catalog_models import ModelSpec
from kinema.errors import InvalidRequest, NotFound
from kinema.media.fetch import format_size
from kinema.service import JobService
from kinema.types import output_ref
from kinema.views import Creation, JobRef, JobView
from kinema.wire import openai_videos as wire


class VideosDialect(Protocol):
    """What the derived routes need of the ``/v1/videos`` dialect that mounts them."""

    @property
    def name(self) -> str: ...

    def job_id(self, video_id: str) -> str: ...

    def model_spec(self, service: JobService, model: Any) -> ModelSpec: ...

    def poll_headers(self, view: JobView) -> dict[str, str]: ...

    def render(self, view: JobView) -> dict[str, Any]: ...


__all__ = ["add_derived_routes"]

VIDEO_ID = "video[id]"
_OPTIONAL = wire.EXTENSIONS
_SCALARS = (wire.PROMPT, wire.SECONDS, wire.MODEL, "callback_url", *_OPTIONAL)
CHARACTERS = (
    "Characters are a Sora feature: this server neither makes nor stores characters. "
    "Describe the person in the prompt, or start from a picture of them (input_reference)."
)


@dataclass
class DerivedBody:
    """An extension or edit request as sent: scalar fields and the source video."""

    fields: dict[str, Any]
    video_id: str | None  # ``video[id]``
    upload: str | None  # an uploaded video, as a data URI


def _body_schema(required: list[str], with_seconds: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"prompt": {"type": "string"}}
    if with_seconds:
        fields["seconds"] = {"type": "string", "description": "seconds to add"}
    fields["model"] = {"type": "string", "description": "for an uploaded video only"}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": required,
                    "properties": {
                        **fields,
                        VIDEO_ID: {"type": "string"},
                        "video": {"type": "string", "format": "binary"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": required,
                    "properties": {
                        **fields,
                        "video": {
                            "type": "object",
                            "properties": {"id": {"type": "string"}},
                            "required": ["id"],
                        },
                    },
                }
            },
        },
    }


EXTEND_BODY = _body_schema(["prompt", "seconds", "video"], with_seconds=True)
EDIT_BODY = _body_schema(["prompt", "video"], with_seconds=False)
REMIX_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["prompt"],
                "properties": {"prompt": {"type": "string"}},
            }
        }
    },
}


async def read_derived_body(request: Request, max_video_bytes: int) -> DerivedBody:
    return await read_form_or_json(
        request, lambda form: _read_form(form, max_video_bytes), _read_json
    )


async def _read_form(request: Request, max_video_bytes: int) -> DerivedBody:
    body = DerivedBody({}, None, None)
    async with request.form(max_part_size=math.ceil(max_video_bytes * 4 / 3)) as form:
        seen: set[str] = set()
        for key, value in form.multi_items():
            if key in seen:
                raise InvalidRequest.for_field(key, "was given more than once")
            seen.add(key)
            if key == "video" and isinstance(value, UploadFile):
                body.upload = await _upload_as_data_uri(value, max_video_bytes)
            elif isinstance(value, UploadFile):
                raise InvalidRequest.for_field(key, "must be a text field, not a file")
            elif key == VIDEO_ID:
                body.video_id = value
            elif key in _SCALARS:
                body.fields[key] = value
            else:
                raise unknown_parameter(key)
    return body


def _read_json(data: dict[str, Any]) -> DerivedBody:
    body = DerivedBody({}, None, None)
    for key, value in data.items():
        if key == "video":
            if not isinstance(value, dict) or set(value) != {"id"}:
                raise InvalidRequest.for_field("video", 'must be {"id": "<video id>"}')
            body.video_id = value["id"]
        elif key in _SCALARS:
            if value is not None:
                body.fields[key] = value
        else:
            raise unknown_parameter(key)
    return body


async def _upload_as_data_uri(upload: UploadFile, max_bytes: int) -> str:
    if upload.size is not None and upload.size > max_bytes:
        raise InvalidRequest.for_field(
            "video", f"video is {format_size(upload.size)}; the limit is {format_size(max_bytes)}"
        )
    data = await upload.read()
    mime = upload.content_type or "video/mp4"
    if not mime.startswith("video/"):
        mime = "video/mp4"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _source_id(dialect: VideosDialect, body: DerivedBody) -> str | None:
    """The job id of ``video[id]``, or None for an upload; 400 for neither or both."""
    if (body.video_id is None) == (body.upload is None):
        raise InvalidRequest.for_field(
            "video", "send one video: its id (video[id]) or the file itself"
        )
    if body.video_id is None:
        return None
    if not isinstance(body.video_id, str):
        raise InvalidRequest.for_field("video", "id must be a string")
    return dialect.job_id(body.video_id)


def _refuse(body: DerivedBody, *names: str) -> None:
    for name in names:
        if name in body.fields:
            raise unknown_parameter(name)


def _scalars(body: DerivedBody) -> tuple[dict[str, Any], str | None]:
    """Canonical fields of the scalars every derived call takes, and the callback URL."""
    fields = {k: body.fields[k] for k in ("prompt", *_OPTIONAL) if k in body.fields}
    callback = body.fields.get("callback_url")
    if callback is not None and (
        not isinstance(callback, str) or not callback.lower().startswith(("http://", "https://"))
    ):
        raise InvalidRequest.for_field("callback_url", "must be an http(s) URL")
    return fields, callback


def add_derived_routes(dialect: VideosDialect, router: APIRouter) -> None:
    """Add extensions, remix, edits and the refused character routes to ``router``."""

    def respond(request: Request, service: JobService, job: Any) -> JSONResponse:
        view = service.view(job)
        return JSONResponse(dialect.render(view), headers=dialect.poll_headers(view))

    def owned(service: JobService, owner: str, job_id: str, wire: str) -> Any:
        try:
            return service.find(owner, JobRef(id=job_id))
        except NotFound:
            raise NotFound(f"No video found with id '{wire}'.") from None

    def _extend(
        service: JobService,
        owner: str,
        body: DerivedBody,
        idempotency_key: str | None,
        base_url: str,
    ) -> Any:
        source_id = _source_id(dialect, body)
        fields, callback = _scalars(body)
        if "seconds" in body.fields:
            fields["duration"] = body.fields["seconds"]
        if source_id is not None:
            source = owned(service, owner, source_id, str(body.video_id))
            model = source.model
            fields["video"] = output_ref(source_id)
        else:
            model = dialect.model_spec(service, body.fields.get("model", "sora-2")).id
            fields["video"] = body.upload
        creation = Creation(
            model=model,
            fields=fields,
            wire_names={"video": "video", "duration": "seconds"},
            callback_url=callback,
            idempotency_key=idempotency_key,
            base_url=base_url,
        )
        return service.create(owner, dialect.name, creation)

    @router.post(
        "/v1/videos/extensions", response_model=None, openapi_extra={"requestBody": EXTEND_BODY}
    )
    async def extend_video(
        request: Request, owner: BearerOwner, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """Extend a completed video: the source, then ``seconds`` more, as one video."""
        service = get_service(request)
        body = await read_derived_body(request, service.settings.max_video_bytes)
        return await _in_thread(
            lambda: respond(
                request,
                service,
                _extend(service, owner, body, idempotency_key, request_base_url(request)),
            )
        )

    @router.post(
        "/v1/videos/{video_id}/remix",
        response_model=None,
        openapi_extra={"requestBody": REMIX_BODY},
    )
    async def remix_video(
        request: Request,
        video_id: str,
        owner: BearerOwner,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """A new video from this video's picture, with a new prompt."""
        service = get_service(request)
        body = await read_derived_body(request, service.settings.max_video_bytes)
        if body.video_id is not None or body.upload is not None:
            raise unknown_parameter("video")
        _refuse(body, "seconds", "model")  # a remix keeps the source's
        fields, callback = _scalars(body)
        creation = Creation(
            model="",
            fields=fields,
            wire_names={"video": "video_id", "image": "video_id"},
            callback_url=callback,
            idempotency_key=idempotency_key,
            base_url=request_base_url(request),
        )
        job_id = dialect.job_id(video_id)

        def remix() -> JSONResponse:
            owned(service, owner, job_id, video_id)
            job = service.remix(owner, dialect.name, output_ref(job_id), creation)
            return respond(request, service, job)

        return await _in_thread(remix)

    @router.post("/v1/videos/edits", response_model=None, openapi_extra={"requestBody": EDIT_BODY})
    async def edit_video(
        request: Request, owner: BearerOwner, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        """A new video from a video's picture (an id's, or an upload's first frame) with a
        new prompt: the engines here re-film a picture, they do not repaint a video."""
        service = get_service(request)
        body = await read_derived_body(request, service.settings.max_video_bytes)
        source_id = _source_id(dialect, body)
        _refuse(body, "seconds")  # an edit keeps the source's length
        if source_id is not None:
            _refuse(body, "model")  # ... and its model
        fields, callback = _scalars(body)

        def edit() -> JSONResponse:
            if source_id is not None:
                owned(service, owner, source_id, str(body.video_id))
                creation = Creation(
                    model="",
                    fields=fields,
                    wire_names={"video": "video", "image": "video"},
                    callback_url=callback,
                    idempotency_key=idempotency_key,
                    base_url=request_base_url(request),
                )
                source = output_ref(source_id)
                job = service.remix(owner, dialect.name, source, creation, kind="edit")
            else:
                spec = dialect.model_spec(service, body.fields.get("model", "sora-2"))
                creation = Creation(
                    model=spec.id,
                    fields={**fields, "image": body.upload},
                    wire_names={"image": "video"},
                    callback_url=callback,
                    idempotency_key=idempotency_key,
                    base_url=request_base_url(request),
                )
                job = service.create(owner, dialect.name, creation)
            return respond(request, service, job)

        return await _in_thread(edit)

    @router.post("/v1/videos/characters", response_model=None)
    def create_character(owner: BearerOwner) -> JSONResponse:
        """Sora's characters (cameos): not served, a 400 that says so."""
        raise InvalidRequest(CHARACTERS)

    @router.get("/v1/videos/characters/{character_id}", response_model=None)
    def get_character(character_id: str, owner: BearerOwner) -> JSONResponse:
        """Sora's characters (cameos): not served, a 400 that says so."""
        raise InvalidRequest(CHARACTERS)


async def _in_thread(work: Callable[[], JSONResponse]) -> JSONResponse:
    """Run blocking work (storage, database, video checks) off the event loop."""
    return await run_in_threadpool(work)
