"""Google's Interactions API for video (Gemini Omni), as ``google-genai`` 3.x sends it.

Since 2026-10-22 the Gemini API makes video with Gemini Omni through the Interactions
API (``client.interactions`` in google-genai 3.x and @google/genai 3.x). Wire facts,
checked against the 3.6.1 SDK sources; every path answers under ``/v1/`` (3.x's default)
and ``/v1beta/``, with the caller's key in ``x-goog-api-key`` (or ``?key=``, or a bearer):

- ``POST /v1/interactions`` ``{"model", "background": true, "input", "response_format":
  {"type": "video", "aspect_ratio", "resolution", "duration", "delivery", "gcs_uri"},
  "generation_config": {"seed", "video_config": {"task"}}, "previous_interaction_id",
  "webhook_config": {"uris", "user_metadata"}, "labels", "store", "stream"}``; answered
  200 with the interaction. ``input`` is a string, the flat list of content items the JS
  SDK sends (``{"type": "text" | "image" | "video", ...}``), or the ``user_input`` turns
  the Python SDK wraps them in. Images come inline (``data`` + ``mime_type``) or as an
  http(s) ``uri``; a video inline, or by the ``uri`` of a video this server made.
- ``GET /v1/interactions/{id}`` (``stream=false``) reads it; status ``queued``,
  ``in_progress``, then ``completed``, ``failed``, ``cancelled`` or ``incomplete`` (a
  video removed after retention). A completed interaction's ``steps`` end with a
  ``model_output`` step whose content is the video, ``{"type": "video", "mime_type":
  "video/mp4", "data": <base64>}`` (``delivery: inline``, the default) or ``"uri"`` (a
  signed link, ``delivery: uri``): the SDKs derive ``output_video`` from it.
- ``GET ...?stream=true`` (and a create with ``"stream": true``) answers server-sent
  events, ``data: {"event_type", "event_id", ...}``: ``interaction.created``,
  ``interaction.status_update`` on each change, on success ``step.start`` /
  ``step.delta`` (the video) / ``step.stop``, an ``error`` event on failure, then
  ``interaction.completed`` with the interaction and ``data: [DONE]``. ``last_event_id``
  (or ``Last-Event-ID``) resumes after the event it names. ``include_input=true`` (on a
  read, not a stream) echoes the create's ``input`` back as it was sent, each inline image
  or video filled in from the copy the interaction keeps (an edited video uploaded inline
  is kept as its picture only, and echoed without ``data``; an ``incomplete`` one's inputs
  are gone, echoed without ``data`` too).
- ``POST .../{id}/cancel`` (what both SDKs send; ``{id}:cancel`` too) answers the
  interaction; ``DELETE .../{id}`` cancels an unfinished one, removes it and its video,
  and answers ``{}``.
- Errors: ``{"error": {"code": "<http status>", "message", "status": <google.rpc
  name>}}``; ``code`` is a string, as the SDKs' error model types it. An interaction of
  another key is a 404.

Tasks (``generation_config.video_config.task``), each onto kinema's own jobs:
``text_to_video`` (text only), ``image_to_video`` (the first frame), ``reference_to_video``
(every image a reference, up to the model's limit), ``extend`` (the video of
``previous_interaction_id``, or a video in ``input``, continued by ``duration``),
``edit`` (a video re-filmed as the prompt says: of ``previous_interaction_id`` or one in
``input``). Without a task: ``previous_interaction_id`` refines that video (a remix with
the new prompt; an ``edit`` of a 3-15 s source), a video in ``input`` is edited, several
images are references, one image is the first frame, text alone is text-to-video.
``upscale`` is a 400 that says so, as are output types other than video, tools, agents
and ``gcs_uri`` outside this server's storage. ``background: false`` answers the create
once the interaction has ended, as Google's API does (the video in the answer), holding
the request for at most ``KINEMA_SYNC_WAIT_S``; an interaction still running then is
answered as it stands (``queued`` or ``in_progress``: poll it), since every interaction is
a durable job. ``background: true``, or no ``background``, answers at once. ``store`` is
accepted and ignored: interactions are kept until deleted or expired.

Webhooks: ``webhook_config.uris`` (one URI) gets a signed webhook (Standard Webhooks)
when the interaction ends, kinema's event whose ``data`` is ``{"event_type":
"interaction.completed" | "interaction.failed" | "interaction.cancelled", "interaction":
{...}, "user_metadata": {...}}`` (the video as a ``uri``). ``labels`` are echoed in every
answer. Every answer about an interaction created with a retired id
(``gemini-omni-flash-preview``), its polls included, says which model serves it in the
``X-Kinema-Model-Alias`` header.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kinema.api.awaiting import job_end
from kinema.api.deps import IdempotencyKey, get_service, request_base_url
from kinema.api.dialect import (
    DETAILS_SCHEMA,
    Dialect,
    Poll,
    alias_headers,
    error_envelope_schema,
    query_value,
)
from kinema.api.dialects import google
from kinema.api.dialects.google import GoogleOwner
from kinema.api.events import job_event_stream
from kinema.errors import InvalidRequest, KinemaError, NotFound, UnknownModel
from kinema.inline_json import materialized
from kinema.jobs.keys import output_of_video_key
from kinema.service import JobService
from kinema.types import Job, SourceKind, output_ref
from kinema.views import Creation, JobRef, JobView
from kinema.wire import interactions as wire

API_VERSIONS = wire.API_VERSIONS
TASKS = ("text_to_video", "image_to_video", "reference_to_video", "edit", "extend", "upscale")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_DURATION = re.compile(r"([0-9]{1,3})(?:\.0+)?s?")
# Fields of a create that make sense for text or agents, not for a video: refused by name.
_UNSERVED = (
    "agent",
    "agent_config",
    "cached_content",
    "continuation_token",
    "environment",
    "system_instruction",
    "tools",
    "response_modalities",
    "response_mime_type",
    "safety_settings",
)
_UNSERVED_CONFIG = (
    "image_config",
    "max_output_tokens",
    "speech_config",
    "stop_sequences",
    "temperature",
    "thinking_level",
    "thinking_summaries",
    "tool_choice",
    "top_p",
    "transcription_config",
)
WIRE_NAMES = {
    "prompt": "input",
    "image": "input",
    "reference_images": "input",
    "video": "input",
    "duration": "response_format.duration",
    "aspect_ratio": "response_format.aspect_ratio",
    "resolution": "response_format.resolution",
    "seed": "generation_config.seed",
}

ERROR_SCHEMA = error_envelope_schema(
    ("code", "message", "status"),
    code="string",
    message="string",
    status="string",
    details=DETAILS_SCHEMA,
)


class VideoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(default=None, examples=list(TASKS))


class GenerationConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    seed: StrictInt | None = None
    video_config: VideoConfig | None = None


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uris: list[str] | None = Field(default=None, description="One URI: it gets a signed webhook")
    user_metadata: dict[str, Any] | None = Field(
        default=None, description="Returned in the webhook's body"
    )


class CreateInteraction(BaseModel):
    """A create, as the SDKs send it (the video subset; other fields are refused)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["gemini-omni-1.2-flash"])
    input: str | list[Any] | dict[str, Any] | None = Field(
        default=None,
        description="A string, a list of content items ({type: text|image|video}), or "
        "user_input turns holding them",
    )
    background: bool | None = None
    stream: bool | None = None
    store: bool | None = None
    response_format: dict[str, Any] | list[Any] | None = Field(
        default=None,
        examples=[{"type": "video", "aspect_ratio": "16:9", "resolution": "720p"}],
    )
    generation_config: GenerationConfig | None = None
    previous_interaction_id: str | None = None
    webhook_config: WebhookConfig | None = None
    labels: dict[str, str] | None = None


class Interaction(BaseModel):
    id: str
    object: str = "interaction"
    status: str = Field(examples=["queued", "in_progress", "completed", "failed", "cancelled"])
    model: str | None = None
    created: str | None = None
    updated: str | None = None
    steps: list[dict[str, Any]] | None = None
    previous_interaction_id: str | None = None
    labels: dict[str, str] | None = None
    input: str | list[Any] | dict[str, Any] | None = Field(
        default=None, description="The create's input, with include_input=true"
    )
    errors: list[dict[str, Any]] | None = None
    adjustments: list[dict[str, Any]] | None = Field(
        default=None, description="kinema extension: what was changed to serve the request"
    )


# --- reading a create ---


@dataclass
class Content:
    """The content items of ``input``, by kind, each with its wire path."""

    texts: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (source, path)
    videos: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def read_input(value: Any) -> Content:
    """``input`` as the Python SDK (``user_input`` turns), the JS SDK (a flat list of
    items) or a raw caller (a string, one item or one turn) sends it."""
    content = Content()
    if value is None:
        return content
    if isinstance(value, str):
        content.texts.append(value)
        return content
    items = [value] if isinstance(value, dict) else value
    for i, item in enumerate(items):
        path = f"input[{i}]"
        if isinstance(item, dict) and item.get("type") == "user_input":
            turn = item.get("content")
            if isinstance(turn, str):
                content.texts.append(turn)
                continue
            if not isinstance(turn, list):
                raise InvalidRequest.for_field(f"{path}.content", "must be a list of items")
            for j, inner in enumerate(turn):
                _read_item(inner, f"{path}.content[{j}]", content)
        else:
            _read_item(item, path, content)
    return content


def _read_item(item: Any, path: str, content: Content) -> None:
    if isinstance(item, str):
        content.texts.append(item)
        return
    if not isinstance(item, dict):
        raise InvalidRequest.for_field(path, "must be a content item: {type, ...}")
    kind = item.get("type", "text" if "text" in item else None)
    if kind == "text":
        text = item.get("text")
        if not isinstance(text, str):
            raise InvalidRequest.for_field(f"{path}.text", "must be a string")
        content.texts.append(text)
    elif kind == "image":
        content.images.append((_image_source(item, path), path))
    elif kind == "video":
        content.videos.append((item, path))
    else:
        raise InvalidRequest.for_field(
            f"{path}.type", f"{str(kind)[:40]!r} is not served: send text, image or video items"
        )


def _image_source(item: dict[str, Any], path: str) -> str:
    """An image item as a source the shared intake reads: a data URI or an http(s) URL."""
    data, uri = item.get("data"), item.get("uri")
    if isinstance(data, str) and data:
        mime = item.get("mime_type")
        kind = mime if isinstance(mime, str) and mime.startswith("image/") else "image/png"
        return f"data:{kind};base64,{data}"
    if isinstance(uri, str) and uri.startswith(("http://", "https://")):
        return uri
    if uri is not None:
        raise InvalidRequest.for_field(
            f"{path}.uri", "only http(s) image URIs are fetched: send the image as data"
        )
    raise InvalidRequest.for_field(f"{path}.data", "an image item needs data or a uri")


def video_source(item: dict[str, Any], path: str) -> str:
    """A video item: a ``job:`` reference for the uri of a video this server made (its
    signed link), else the video inline as a data URI."""
    uri, data = item.get("uri"), item.get("data")
    if isinstance(data, str) and data:
        return google.inline_video(data, item.get("mime_type"), f"{path}.data")
    if isinstance(uri, str):
        key = unquote(urlsplit(uri).path).partition("/files/")[2]
        output = output_of_video_key(key) if key else None
        if output is not None:
            return output_ref(*output)
        raise InvalidRequest.for_field(
            f"{path}.uri", "only the uri of a video this server made is read: send data"
        )
    raise InvalidRequest.for_field(f"{path}.data", "a video item needs data or a uri")


def video_format(value: Any) -> dict[str, Any]:
    """The ``video`` entry of ``response_format`` (an object or a list); {} for none."""
    formats = value if isinstance(value, list) else [value]
    chosen: dict[str, Any] = {}
    for i, entry in enumerate(formats):
        path = "response_format" if not isinstance(value, list) else f"response_format[{i}]"
        if entry is None:
            continue
        if not isinstance(entry, dict) or entry.get("type") != "video":
            raise InvalidRequest.for_field(
                f"{path}.type", "only video output is served by this model"
            )
        unknown = sorted(
            set(entry) - {"type", "aspect_ratio", "resolution", "duration", "delivery", "gcs_uri"}
        )
        if unknown:
            raise InvalidRequest.for_field(f"{path}.{unknown[0]}", "is not a video format field")
        chosen = entry
    return chosen


def duration_field(value: Any) -> Any:
    """``"8"``, ``"8s"`` or 8 as whole seconds; anything else as sent (the catalog says
    what is wrong with it)."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        return int(match[1]) if match else value
    return value


@dataclass(frozen=True)
class Plan:
    """What a create asks kinema to do: a new video, or one made from an earlier one."""

    creation: Creation
    derived: tuple[str, SourceKind] | None = None  # (source ``job:`` ref, kind): a remix


class Interactions(Dialect):
    name = wire.NAME
    title = "Interactions API"
    prefixes = tuple(wire.CREATE_PATH.format(version=version) for version in API_VERSIONS)
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS
    error_schema = ERROR_SCHEMA

    def owner(self, request: Request) -> str:
        return google.google_owner(request)

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)

    def render_poll(self, request: Request, view: JobView) -> dict[str, Any]:
        body = self.render(view)
        if query_value(request, "include_input") == "true":
            sent = wire.echoed_input(view)
            if sent is not None:
                body["input"] = sent
        return body

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        body = google.error_body(error)
        body["error"]["code"] = str(body["error"]["code"])
        return body

    # --- translating a create ---

    def plan(
        self, service: JobService, body: CreateInteraction, idempotency_key: str | None
    ) -> Plan:
        _refuse_unserved(body)
        model = self._model(service, body.model)
        content = read_input(body.input)
        config = body.generation_config or GenerationConfig()
        task = (config.video_config or VideoConfig()).task
        if task is not None and task not in TASKS:
            raise InvalidRequest.for_field(
                "generation_config.video_config.task", f"must be one of {', '.join(TASKS)}"
            )
        if task == "upscale":
            raise InvalidRequest.for_field(
                "generation_config.video_config.task", "upscale is not served by this server"
            )
        shape = video_format(body.response_format)
        fields: dict[str, Any] = {}
        if content.texts:
            fields["prompt"] = "\n".join(content.texts)
        for name in ("aspect_ratio", "resolution"):
            if shape.get(name) is not None:
                fields[name] = shape[name]
        if shape.get("duration") is not None:
            fields["duration"] = duration_field(shape["duration"])
        if config.seed is not None:
            fields["seed"] = config.seed
        delivery = shape.get("delivery", "inline")
        if delivery not in ("inline", "uri"):
            raise InvalidRequest.for_field("response_format.delivery", "must be inline or uri")
        storage_uri = self._storage_uri(service, shape.get("gcs_uri"))
        callback, echo = self._webhook(body)
        echo["delivery"] = delivery
        if body.labels is not None:
            _check_json(body.labels, "labels")
            echo["labels"] = dict(body.labels)
        previous = body.previous_interaction_id
        if previous is not None:
            echo["previous_interaction_id"] = previous
        if body.input is not None:
            echo["input"] = wire.input_skeleton(body.input)
        creation = Creation(
            model=model,
            fields=fields,
            wire_names=WIRE_NAMES,
            callback_url=callback,
            callback_field="webhook_config.uris[0]",
            idempotency_key=idempotency_key,
            storage_uri=storage_uri,
            echo=echo,
        )
        return self._task(creation, content, task, previous)

    def _task(
        self, creation: Creation, content: Content, task: str | None, previous: str | None
    ) -> Plan:
        """The plan for ``task`` (or the one the inputs imply), with the media placed."""
        fields = dict(creation.fields)
        names = dict(WIRE_NAMES)
        source = None
        if previous is not None:
            source = output_ref(_interaction_id(previous, "previous_interaction_id"))
            names["video"] = names["image"] = "previous_interaction_id"
        elif content.videos:
            item, path = content.videos[0]
            source = video_source(item, path)
            names["video"] = names["image"] = path
        if len(content.videos) > 1 or (content.videos and previous is not None):
            raise InvalidRequest.for_field("input", "takes one video (or previous_interaction_id)")
        if task is None:
            task = _implied_task(content, source)
        images = [image for image, _ in content.images]
        if task in ("edit", "extend", "refine"):
            if source is None:
                raise InvalidRequest.for_field(
                    "input", f"{task} needs a video: previous_interaction_id or a video item"
                )
            if images:
                raise InvalidRequest.for_field(
                    content.images[0][1], f"{task} takes no images, only the video"
                )
            if task == "extend":
                fields["video"] = source
                return Plan(_replace(creation, fields, names))
            kind: SourceKind = "edit" if task == "edit" else "remix"
            if not source.startswith("job:"):  # an uploaded video: its picture, re-filmed
                fields["image"] = source
                return Plan(_replace(creation, fields, names))
            return Plan(_replace(creation, fields, names), derived=(source, kind))
        if source is not None:
            raise InvalidRequest.for_field(
                names["video"], f"{task} takes no video: use task edit or extend"
            )
        if task == "text_to_video" and images:
            raise InvalidRequest.for_field(content.images[0][1], "text_to_video takes no images")
        if task == "image_to_video":
            if len(images) != 1:
                raise InvalidRequest.for_field("input", "image_to_video takes one image")
            fields["image"] = images[0]
        elif task == "reference_to_video":
            if not images:
                raise InvalidRequest.for_field("input", "reference_to_video needs images")
            fields["reference_images"] = images
        return Plan(_replace(creation, fields, names))

    @staticmethod
    def _model(service: JobService, model: str) -> str:
        name = model.removeprefix("models/")
        try:
            return service.catalog.get(name, dialect=Interactions.name).id
        except UnknownModel:
            served = ", ".join(service.catalog.model_ids(Interactions.name))
            raise NotFound(
                f"model {name[:100]!r} is not found for the Interactions API; this server "
                f"serves: {served}"
            ) from None

    @staticmethod
    def _storage_uri(service: JobService, uri: Any) -> str | None:
        if uri is None:
            return None
        if not isinstance(uri, str):
            raise InvalidRequest.for_field("response_format.gcs_uri", "must be a string")
        try:
            service.check_storage_uri(uri)
        except InvalidRequest as error:
            raise InvalidRequest.for_field("response_format.gcs_uri", error.message) from None
        return uri

    @staticmethod
    def _webhook(body: CreateInteraction) -> tuple[str | None, dict[str, Any]]:
        """The webhook URL and what is echoed of ``webhook_config``."""
        config = body.webhook_config
        if config is None:
            return None, {}
        echo: dict[str, Any] = {}
        if config.user_metadata is not None:
            _check_json(config.user_metadata, "webhook_config.user_metadata")
            echo["user_metadata"] = config.user_metadata
        if not config.uris:
            return None, echo
        if len(config.uris) != 1:
            raise InvalidRequest.for_field("webhook_config.uris", "takes exactly one URI")
        return config.uris[0], echo

    # --- answers ---

    def answer(self, request: Request, owner: str, job: Job, stream: bool) -> Response:
        """The interaction as created (or, with ``stream``, its events until it ends)."""
        service = get_service(request)
        headers = alias_headers(service.catalog, job.model)
        if not stream:
            return self.respond(request, job)
        ref = JobRef(id=job.id)
        view = service.status(owner, ref, inline_video=True)

        def read() -> JobView:
            return service.status(owner, ref, inline_video=True)

        response = self.events(request, view, read, created=True)
        response.headers.update(headers)
        return response

    def events(
        self,
        request: Request,
        first: JobView,
        read: Callable[[], JobView],
        *,
        created: bool = False,
    ) -> StreamingResponse:
        """The Interactions API's event stream of a job, followed until it ends."""
        storage = get_service(request).storage

        def encode(view: JobView, current: tuple[int, int], first_event: bool) -> bytes:
            event_id = f"{current[0]}.{current[1]}"  # run in a thread: it reads the video
            events = materialized(wire.events(view, created=created and first_event), storage)
            lines = [
                f"id: {event_id}\ndata: {json.dumps({**e, 'event_id': event_id})}\n\n"
                for e in events
            ]
            if view.status.terminal:
                lines.append("data: [DONE]\n\n")
            return "".join(lines).encode()

        return job_event_stream(request, first, read, self.render, encode=encode)

    # --- routes ---

    def polls(self) -> list[Poll]:
        def locate(request: Request, params: Mapping[str, str], body: Any) -> JobRef:
            return JobRef(id=_interaction_id(params["interaction_id"], "id"))

        return [
            Poll(
                f"/{version}/interactions/{{interaction_id}}",
                locate,
                events=f"/{version}/interactions/{{interaction_id}}/events",
                summary="The interaction; with stream=true, its events until it ends",
                parameters=(
                    _path_param("interaction_id"),
                    _query_param("stream", "boolean"),
                    _query_param("last_event_id", "string"),
                    _query_param("include_input", "boolean"),
                ),
                response_model=Interaction,
                stream=lambda request, view, read: self.events(request, view, read),
            )
            for version in API_VERSIONS
        ]

    def add_routes(self, router: APIRouter) -> None:
        for version in API_VERSIONS:
            self._add_version(router, version)

    def _add_version(self, router: APIRouter, version: str) -> None:

        @router.post(f"/{version}/interactions", response_model=Interaction)
        async def create_interaction(
            request: Request,
            owner: GoogleOwner,
            body: CreateInteraction,
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            """Create an interaction: a video from text, images or an earlier video;
            with ``background: false``, answered once it has ended."""
            job = await run_in_threadpool(self._start, request, owner, body, idempotency_key)
            if body.background is False and not body.stream:
                service = get_service(request)

                def read() -> Job:
                    return service.find(owner, JobRef(id=job.id))

                limit_s = service.settings.sync_wait_s
                job = await job_end(request, job, read, limit_s=limit_s)
            return await run_in_threadpool(self.answer, request, owner, job, bool(body.stream))

        @router.post(
            f"/{version}/interactions/{{interaction_id}}/cancel", response_model=Interaction
        )
        def cancel_interaction(
            request: Request, interaction_id: str, owner: GoogleOwner
        ) -> Response:
            """Cancel: a queued interaction ends now, a running one within moments."""
            return self._cancel(request, owner, interaction_id)

        @router.post(f"/{version}/interactions/{{interaction_action}}", response_model=Interaction)
        def cancel_interaction_colon(
            request: Request, interaction_action: str, owner: GoogleOwner
        ) -> Response:
            """``{id}:cancel``, the colon form of cancel."""
            interaction_id = google.split_action(interaction_action, "cancel", version)
            return self._cancel(request, owner, interaction_id)

        @router.delete(f"/{version}/interactions/{{interaction_id}}")
        def delete_interaction(
            request: Request, interaction_id: str, owner: GoogleOwner
        ) -> dict[str, Any]:
            """Delete the interaction and its video (an unfinished one is cancelled first)."""
            service = get_service(request)
            job_id = _interaction_id(interaction_id, "id")
            service.find(owner, JobRef(id=job_id))
            service.delete(owner, job_id, wait=True)
            return {}

    def _start(
        self,
        request: Request,
        owner: str,
        body: CreateInteraction,
        idempotency_key: str | None,
    ) -> Job:
        """The job ``body`` asks for: a new video, or one made from an earlier one."""
        service = get_service(request)
        plan = self.plan(service, body, idempotency_key)
        if plan.derived is None:
            return self.create(request, owner, plan.creation)
        source, kind = plan.derived
        creation = dataclasses.replace(plan.creation, base_url=request_base_url(request))
        return service.remix(owner, self.name, source, creation, kind=kind)

    def _cancel(self, request: Request, owner: str, interaction_id: str) -> Response:
        service = get_service(request)
        job_id = _interaction_id(interaction_id, "id")
        service.find(owner, JobRef(id=job_id))
        job = service.cancel(owner, job_id)
        return self.respond(request, job)


def _implied_task(content: Content, source: str | None) -> str:
    """The task a create without ``video_config.task`` asks for, from what it sends."""
    if source is not None:
        return "refine" if source.startswith("job:") else "edit"
    if len(content.images) > 1:
        return "reference_to_video"
    if content.images:
        return "image_to_video"
    return "text_to_video"


def _replace(creation: Creation, fields: dict[str, Any], names: dict[str, str]) -> Creation:
    return dataclasses.replace(creation, fields=fields, wire_names=names)


def _refuse_unserved(body: CreateInteraction) -> None:
    extra = body.model_extra or {}
    for name in _UNSERVED:
        if extra.get(name) is not None:
            raise InvalidRequest.for_field(name, "is not served: this server makes video only")
    unknown = sorted(name for name in extra if name not in _UNSERVED and name != "service_tier")
    if unknown:
        raise InvalidRequest.for_field(unknown[0][:60], "is not a field of an interaction")
    config = body.generation_config
    for name in sorted((config.model_extra or {}) if config is not None else {}):
        where = f"generation_config.{name[:60]}"
        if name in _UNSERVED_CONFIG:
            raise InvalidRequest.for_field(where, "is not served for video")
        raise InvalidRequest.for_field(where, "is not a field of generation_config")


def _check_json(value: Any, where: str) -> None:
    """Refuse what the job could not keep: more than 16 KiB, or a lone surrogate."""
    try:
        text = json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest.for_field(where, "is not valid Unicode (a lone surrogate)") from None
    except (TypeError, ValueError, RecursionError):
        raise InvalidRequest.for_field(where, "must be JSON") from None
    if len(text) > 16_384:
        raise InvalidRequest.for_field(where, "is larger than 16 KiB")


def _interaction_id(value: str, where: str) -> str:
    if not _HEX32.fullmatch(value):
        if where == "id":
            raise NotFound(f"interaction {value[:80]!r} is not found")
        raise NotFound(f"{where}: interaction {value[:80]!r} is not found")
    return value


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query_param(name: str, kind: Literal["boolean", "string"]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
