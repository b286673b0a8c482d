"""Google's Gemini API for Veo: ``predictLongRunning``, its operations and file downloads.

Wire facts, checked against the ``google-genai`` SDK (2.x, the
last line whose ``generate_videos`` speaks the Gemini API; 3.x sends it to Vertex only):

Every route answers under ``/v1beta/`` (2.x's default) and ``/v1/`` (3.x's default).

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
served. ``gcsUri`` images and masks are refused with a 400 that says so.

Several videos: ``parameters.sampleCount`` (the SDK's ``number_of_videos``), up to the
model's ``samples`` in the catalog, gives that many ``generatedSamples``, each its own
file: ``files/{operation id}`` for the first, ``files/{operation id}s{n}`` for sample n.

Extension: ``instances[0].video`` names the video to continue, by ``uri`` (one this
server made for the same key: another key's is a 404, as it is to download) or inline
(``encodedVideo`` base64 with ``encoding``, as the SDK sends a downloaded video); with
both, the uri wins. The result is the source followed by ``durationSeconds`` more, as one
video; its frame size is the source's.

Extensions, which Google's clients ignore: ``parameters.callbackUrl`` (a URL that gets a
signed webhook when the operation ends; the SDK's ``webhookConfig`` with one uri does the
same, and its ``user_metadata`` comes back as ``user_metadata`` beside the operation in
the webhook's ``data``), ``seed`` and ``generateAudio`` for raw REST callers (the SDK
refuses to send them in Gemini mode), ``metadata {state, progressPercent}`` on operations, and
``DELETE /v1beta/{name}``, which removes a finished operation and its video.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from kinema.api.deps import IdempotencyKey, get_service
from kinema.api.dialect import Poll, alias_headers, path_param
from kinema.api.dialects import google
from kinema.api.dialects.google import GoogleOwner, Instance, Wire
from kinema.api.files import artifact_response
from kinema.errors import InvalidRequest, NotFound
from kinema.types import JobStatus, output_ref
from kinema.views import Creation, JobRef
from kinema.wire import gemini as wire
from kinema.wire import google as google_wire


class Parameters(Wire):
    sample_count: int | None = Field(
        default=None, description="Videos per request, up to the model's limit (often 4)"
    )
    duration_seconds: int | None = Field(default=None, examples=[4, 6, 8])
    aspect_ratio: str | None = Field(default=None, examples=["16:9", "9:16"])
    resolution: str | None = Field(default=None, examples=["720p", "1080p", "4k"])
    person_generation: str | None = Field(default=None, examples=["allow_all", "allow_adult"])
    negative_prompt: str | None = None
    enhance_prompt: bool | None = None
    seed: StrictInt | None = Field(
        default=None, description="Raw REST only: the SDK does not send it"
    )
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


class PredictLongRunningRequest(Wire):
    instances: list[Instance]
    parameters: Parameters | None = None
    webhook_config: WebhookConfig | None = None


class Operation(BaseModel):
    name: str = Field(examples=["models/veo-3.1-generate-preview/operations/0f1e2d3c..."])
    done: bool = False
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def video_source(video: dict[str, Any]) -> str:
    """``instances[0].video``: a job reference for a uri of ours, else the inline video."""
    google.video_fields(video, {"uri", "encodedVideo", "encoding"})
    uri = video.get("uri")
    if uri is not None:
        if not isinstance(uri, str) or "files/" not in uri:
            raise InvalidRequest.for_field(
                "instances[0].video.uri", "must be the uri of a video this server made"
            )
        name = uri.rpartition("files/")[2].partition(":")[0].partition("?")[0]
        try:
            job_id, index = wire.parse_file_name(name)
        except NotFound:
            raise NotFound(f"video {uri!r} is not found") from None
        return output_ref(job_id, index)
    return google.inline_video(
        video.get("encodedVideo"), video.get("encoding"), "instances[0].video.encodedVideo"
    )


def predict_model(request: Request, model_action: str) -> str:
    """The model of ``{model}:predictLongRunning``; 404 before the body is even read."""
    return google.served_model(request, model_action, Gemini.name, _unknown, "models/")


def _unknown(model: str, version: str, served: str) -> str:
    return (
        f"models/{model} is not found for API version {version}, or is not "
        f"supported for predictLongRunning; this server serves: {served}"
    )


PredictModel = Annotated[str, Depends(predict_model)]


def _timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


class Gemini(google.GoogleDialect):
    name = wire.NAME
    title = "Gemini API"
    prefixes = ("/v1beta", "/v1/models", "/v1/files")
    full_view = False
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)

    # --- translating a create ---

    def parse_create(
        self, body: PredictLongRunningRequest, model: str, idempotency_key: str | None
    ) -> Creation:
        fields = google.instance_fields(body.instances, video_source)
        parameters = body.parameters or Parameters()
        sent = parameters.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
        sent.pop("callbackUrl", None)
        fields |= google.parameter_fields(sent)
        callback_url, callback_field = self._callback_url(body)
        config = body.webhook_config
        metadata = None if config is None else config.user_metadata or config.userMetadata
        return Creation(
            model=model,
            fields=fields,
            wire_names=google_wire.WIRE_NAMES,
            callback_url=callback_url,
            callback_field=callback_field,
            idempotency_key=idempotency_key,
            echo=None if metadata is None else {"user_metadata": metadata},
        )

    @staticmethod
    def _callback_url(body: PredictLongRunningRequest) -> tuple[str | None, str]:
        """The webhook URL and the wire field it came in."""
        parameters = body.parameters or Parameters()
        if parameters.callback_url is not None:
            return parameters.callback_url, "parameters.callbackUrl"
        config = body.webhook_config
        if config is None:
            return None, ""
        if not config.uris:
            return None, ""
        if len(config.uris) != 1:
            raise InvalidRequest.for_field("webhookConfig.uris", "takes exactly one URI")
        return config.uris[0], "webhookConfig.uris[0]"

    # --- routes ---

    def polls(self) -> list[Poll]:
        def locate(request: Request, params: Mapping[str, str], body: Any) -> JobRef:
            return JobRef(id=wire.operation_id(params["operation_id"]), model=params["model"])

        return [
            Poll(
                _operation_route(version),
                locate,
                events=_operation_route(version) + "/events",
                summary="The operation's state; once done, its video uri or its error",
                parameters=(path_param("model"), path_param("operation_id")),
                response_model=Operation,
            )
            for version in wire.API_VERSIONS
        ]

    def add_routes(self, router: APIRouter) -> None:
        for version in wire.API_VERSIONS:
            self._add_version(router, version)

    def _add_version(self, router: APIRouter, version: str) -> None:

        model_route = wire.MODEL_PATH.format(version=version, model="{model_action}")

        @router.post(model_route, response_model=Operation)
        def predict_long_running(
            request: Request,
            owner: GoogleOwner,
            model: PredictModel,
            body: PredictLongRunningRequest,
            idempotency_key: IdempotencyKey = None,
        ) -> JSONResponse:
            """Start generating a video (``{model}:predictLongRunning``); returns an operation."""
            job = self.create(request, owner, self.parse_create(body, model, idempotency_key))
            name = wire.OPERATION_NAME.format(model=job.model, operation_id=job.id)
            catalog = get_service(request).catalog
            return JSONResponse({"name": name}, headers=alias_headers(catalog, job.model))

        @router.post(_operation_route(version))
        def cancel_operation(
            request: Request, model: str, operation_id: str, owner: GoogleOwner
        ) -> dict[str, Any]:
            """Cancel (``{name}:cancel``): a queued video ends now, a running one within
            moments."""
            action = google.split_action(operation_id, google_wire.CANCEL, version)
            job_id = wire.operation_id(action)
            service = get_service(request)
            service.find(owner, JobRef(id=job_id, model=model))
            service.cancel(owner, job_id)
            return {}

        @router.delete(_operation_route(version))
        def delete_operation(
            request: Request, model: str, operation_id: str, owner: GoogleOwner
        ) -> dict[str, Any]:
            """Remove a finished operation and its video (kinema extension); 400 while
            running."""
            service = get_service(request)
            job = service.find(owner, JobRef(id=wire.operation_id(operation_id), model=model))
            service.delete(owner, job.id)
            return {}

        @router.get(f"/{version}/files/{{file_path:path}}", response_model=None)
        def get_file(request: Request, file_path: str, owner: GoogleOwner) -> Response:
            """``files/{name}:download`` serves the video; ``files/{name}`` describes it.

            The SDK leaves an ``http://`` uri whole, so the path may read
            ``files/http://host/v1beta/files/{name}:download``: the name is what follows
            the last ``files/``.
            """
            name, colon, action = file_path.rpartition("files/")[2].partition(":")
            if colon and action != "download":
                raise NotFound(f"method {action!r} is not found for files")
            service = get_service(request)
            try:
                job_id, index = wire.parse_file_name(name)
                if colon:
                    return artifact_response(service.artifact(owner, job_id, "video", index))
                job = service.find(owner, JobRef(id=job_id))
            except NotFound:
                raise NotFound(f"files/{name} is not found: its operation has no video") from None
            if job.status is not JobStatus.SUCCEEDED or index >= len(job.outputs):
                raise NotFound(f"files/{name} is not found: its operation has no video")
            video = job.outputs[index]
            uri = wire.video_uri(name, service.link_base(job))
            return JSONResponse(
                {
                    "name": f"files/{name}",
                    "mimeType": "video/mp4",
                    "sizeBytes": str(video.size_bytes),
                    "createTime": _timestamp(job.finished_at or job.updated_at),
                    "updateTime": _timestamp(job.updated_at),
                    "uri": uri,
                    "downloadUri": uri,
                    "state": "ACTIVE",
                    "source": "GENERATED",
                    "videoMetadata": {"videoDuration": f"{video.duration_s:g}s"},
                }
            )


def _operation_route(version: str) -> str:
    """The route path of an operation: its name's model and id are path parameters."""
    return wire.OPERATION_PATH.format(version=version, name=wire.OPERATION_NAME)
