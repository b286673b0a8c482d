"""Vertex AI (Gemini Enterprise Agent Platform) for Veo, as ``google-genai`` 3.x sends it.

Since google-genai 3.0.0 (Python) and @google/genai 3.x (JS), ``generate_videos`` goes to
Vertex AI only, so this is the API today's Google SDKs speak. Wire facts, checked
against the 3.x SDK sources; every path answers under ``v1beta1``
(the SDK's default here) and ``v1``:

- Express mode (``vertexai=True, api_key=...``, header ``x-goog-api-key``):
  ``POST /{v}/publishers/google/models/{model}:predictLongRunning``.
- Project mode (``project=, location=, credentials=``, header ``Authorization: Bearer``):
  ``POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{model}:predictLongRunning``.
  The bearer token is a kinema API key: give the SDK a credential whose token is one.
- Body ``{"instances": [{prompt, image, lastFrame, referenceImages, video, mask}],
  "parameters": {sampleCount, storageUri, fps, durationSeconds, seed, aspectRatio,
  resolution, personGeneration, negativePrompt, enhancePrompt, generateAudio,
  compressionQuality, resizeMode, pubsubTopic}, "labels"}``; answered 200 with
  ``{"name": "projects/{p}/locations/{l}/publishers/google/models/{m}/operations/{id}"}``:
  in project mode the client's own project and location (kept with the job, so every
  answer names the operation alike); express mode has no project, so its names use
  ``projects/kinema/locations/global``. A project or location no Google id could be
  (1-63 letters, digits, ``.:_-``) is a 400 that does not repeat it.
- Poll: ``POST {resource}:fetchPredictOperation`` with ``{"operationName": name}``, where
  resource is the name before ``/operations/``. The job is found by the name's id and
  model (and the caller's key); its project and location are checked, not matched, so
  the fixed-scope names earlier versions answered in project mode still poll.
  Running: ``{"name", "done": false}``; done: ``{"name", "done": true, "response":
  {"videos": [{"bytesBase64Encoded", "mimeType": "video/mp4"}],
  "raiMediaFilteredCount": 0}}``, or ``error {code, message}`` with a google.rpc code.
  The video comes back inline (unless ``storageUri``): Python 3.x's ``files.download``
  refuses Vertex mode, so the bytes are what the SDK's ``video.save()`` writes.
- ``storageUri``: kinema writes videos only to the storage it is configured with. An
  ``s3://`` folder in that bucket (under its prefix, outside the ``jobs/`` and ``health/``
  folders kinema writes itself, a plain path of at most 512 bytes) is accepted. As
  Vertex AI does, each video is written under it, as ``{storageUri}/{operation id}/
  sample_{n}.mp4`` (n from 0), and the done operation lists those URIs as ``gcsUri``
  instead of inline bytes. The worker copies them (S3 CopyObject, within the bucket)
  before the job's success commits, so a done operation never names a missing copy. The
  copies are the caller's: deleting the job or its expiry removes only kinema's own
  files. Any other URI (``gs://`` included) is a 400 that says where this server stores;
  so is every ``storageUri`` when kinema stores in a local directory.
- Errors: ``{"error": {"code", "message", "status"}}`` with the matching HTTP status, for
  every path under ``/v1beta1/``, ``/v1/projects/`` and ``/v1/publishers/``, unknown ones
  included (the SDK shows anything else as "404 None").

Served: up to the model's ``samples`` per request (``sampleCount``; each is one entry of
``videos``), inline images (``bytesBase64Encoded``), ASSET reference images, and
extension: ``instances[0].video`` as ``bytesBase64Encoded`` + ``mimeType`` (what the SDK
sends for ``video=`` a video it received) or as ``gcsUri`` naming a video this server
wrote for the same key: the copy a ``storageUri`` answer named (the job's output records
it; another key's is a 404), or the job's own object in the bucket; the answer
is the source followed by ``durationSeconds`` more, as one video at the source's size.
Refused with a 400 that says so: ``gcsUri`` images, other ``gcsUri`` videos, masks,
``fps`` other than the model's, ``compressionQuality`` other than ``OPTIMIZED``,
``pubsubTopic``. ``resizeMode`` (``CROP``/``PAD``) is served where the model takes it.
``labels`` are accepted and echoed in the operation's ``metadata.labels``. The
google-genai 3.x ``source=`` form of ``generate_videos`` sends the same body as the
deprecated ``prompt=``/``image=``/``video=`` keywords.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt

from kinema.api.deps import IdempotencyKey, get_service
from kinema.api.dialect import Poll, alias_headers, path_param
from kinema.api.dialects import google
from kinema.api.dialects.google import GoogleOwner, Instance, Wire
from kinema.catalog import Catalog
from kinema.errors import InvalidRequest
from kinema.service import JobService
from kinema.types import output_ref
from kinema.views import Creation, JobRef
from kinema.wire import google as google_wire
from kinema.wire import vertex as wire


class Parameters(Wire):
    sample_count: int | None = Field(
        default=None, description="Videos per request, up to the model's limit (often 4)"
    )
    storage_uri: str | None = Field(
        default=None,
        description="An s3:// folder in the bucket this server stores to: each video is "
        "copied under it as {operation id}/sample_{n}.mp4",
    )
    fps: int | None = None
    duration_seconds: int | None = Field(default=None, examples=[4, 6, 8])
    seed: StrictInt | None = None
    aspect_ratio: str | None = Field(default=None, examples=["16:9", "9:16"])
    resolution: str | None = Field(default=None, examples=["720p", "1080p"])
    person_generation: str | None = Field(default=None, examples=["allow_adult", "dont_allow"])
    pubsub_topic: str | None = Field(default=None, description="Not supported")
    negative_prompt: str | None = None
    enhance_prompt: bool | None = None
    generate_audio: bool | None = None
    compression_quality: Literal["OPTIMIZED", "LOSSLESS"] | None = None
    resize_mode: str | None = Field(
        default=None,
        examples=["CROP", "PAD"],
        description="How a picture of another shape fits the frame: CROP (cover it; the "
        "motion engine crops around the faces) or PAD (fit it whole over a blurred fill)",
    )


class PredictLongRunningRequest(Wire):
    instances: list[Instance]
    parameters: Parameters | None = None
    labels: dict[str, str] | None = None


class PredictOperation(BaseModel):
    name: str
    done: bool = False
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def operation_scope(request: Request) -> str | None:
    """The checked scope of a project-mode path; None in express mode (no project)."""
    params = request.path_params
    if "project" not in params:
        return None
    return wire.wire_scope(params["project"], params["location"])


def _unsupported(sent: dict[str, Any], model_fps: int) -> None:
    if "fps" in sent and sent.pop("fps") != model_fps:
        raise InvalidRequest.for_field("parameters.fps", f"this model makes {model_fps} fps")
    if sent.pop("compressionQuality", "OPTIMIZED") != "OPTIMIZED":
        raise InvalidRequest.for_field("parameters.compressionQuality", "only OPTIMIZED")
    if "pubsubTopic" in sent:
        raise InvalidRequest.for_field("parameters.pubsubTopic", "is not supported")


def predict_model(request: Request, model_action: str) -> str:
    """The model of ``{model}:predictLongRunning``; 404 before the body is even read."""
    return google.served_model(request, model_action, Vertex.name, _unknown)


def _unknown(model: str, version: str, served: str) -> str:
    return f"Publisher Model `{wire.MODELS}/{model}` is not found; this server serves: {served}"


PredictModel = Annotated[str, Depends(predict_model)]
OperationScope = Annotated[str | None, Depends(operation_scope)]


class Vertex(google.GoogleDialect):
    name = wire.NAME
    title = "Vertex AI"
    prefixes = ("/v1beta1", "/v1/projects", "/v1/publishers")
    inline_video = wire.INLINE_VIDEO
    status_words = wire.STATUS_WORDS

    # --- rendering (the wire table's) ---

    render = staticmethod(wire.render)

    # --- translating a create ---

    def parse_create(
        self,
        service: JobService,
        owner: str,
        body: PredictLongRunningRequest,
        model: str,
        idempotency_key: str | None,
        scope: str | None = None,
    ) -> Creation:
        fields = google.instance_fields(
            body.instances, lambda video: self.video_source(service, owner, video)
        )
        parameters = body.parameters or Parameters()
        sent = parameters.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
        storage_uri = sent.pop("storageUri", None)
        if storage_uri is not None:
            try:
                service.check_storage_uri(storage_uri)
            except InvalidRequest as error:
                raise InvalidRequest.for_field("parameters.storageUri", error.message) from None
        engine = service.catalog.engines[service.catalog.get(model).engine]
        _unsupported(sent, engine.fps)
        fields |= google.parameter_fields(sent)
        return Creation(
            model=model,
            fields=fields,
            wire_names=google_wire.WIRE_NAMES,
            idempotency_key=idempotency_key,
            storage_uri=storage_uri,
            wire_scope=scope,
            echo=None if body.labels is None else {"labels": _labels(body.labels)},
        )

    @staticmethod
    def video_source(service: JobService, owner: str, video: dict[str, Any]) -> str:
        """``instances[0].video``: the inline video, or a job reference for the URI of a
        video this server wrote: the job's own object, or the copy a ``storageUri``
        answer named (recorded with the job's output, so only that key is taken)."""
        uri_field, bytes_field = wire.VIDEO_URI, wire.VIDEO_BYTES
        google.video_fields(video, {uri_field, bytes_field, google_wire.MIME_TYPE})
        uri = video.get(uri_field)
        if uri is None:
            return google.inline_video(
                video.get(bytes_field),
                video.get(google_wire.MIME_TYPE),
                f"instances[0].video.{bytes_field}",
            )
        output = service.output_of_uri(owner, uri) if isinstance(uri, str) else None
        if output is None:
            raise InvalidRequest.for_field(
                f"instances[0].video.{uri_field}",
                "only a video this server wrote can be named by URI; send bytesBase64Encoded",
            )
        return output_ref(*output)

    # --- routes ---

    def polls(self) -> list[Poll]:
        def locate(request: Request, params: Mapping[str, str], body: Any) -> JobRef:
            field = wire.OPERATION_NAME_FIELD
            name = body.get(field) if isinstance(body, dict) else None
            if not isinstance(name, str) or not name:
                raise InvalidRequest.for_field(field, "is required")
            if "project" in params:
                wire.wire_scope(params["project"], params["location"])
            return JobRef(id=wire.operation_id(name), model=params["model"])

        request_body = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": [wire.OPERATION_NAME_FIELD],
                        "properties": {wire.OPERATION_NAME_FIELD: {"type": "string"}},
                    }
                }
            },
        }
        polls = []
        for version in wire.API_VERSIONS:
            for scope in (wire.PROJECT_MODELS, wire.MODELS):
                params = [
                    path_param(n)
                    for n in ("project", "location", "model")
                    if "{" + n + "}" in scope + "/{model}"
                ]
                polls.append(
                    Poll(
                        wire.FETCH_PATH.format(version=version, resource=scope + "/{model}"),
                        locate,
                        method="POST",
                        summary="The operation's state; once done, the video inline",
                        parameters=tuple(params),
                        request_body=request_body,
                        response_model=PredictOperation,
                    )
                )
        return polls

    def add_routes(self, router: APIRouter) -> None:
        for version in wire.API_VERSIONS:
            for scope in (wire.PROJECT_MODELS, wire.MODELS):
                self._add_create(router, f"/{version}/{scope}/{{model_action}}")

    def _add_create(self, router: APIRouter, path: str) -> None:
        # The project and location are read by ``operation_scope`` (the operation's name
        # carries them); they are documented here since the handler does not take them.
        documented = [
            path_param(name)
            for name in ("project", "location")
            if "{" + name + "}" in path
        ]

        @router.post(
            path,
            response_model=PredictOperation,
            openapi_extra={"parameters": documented} if documented else None,
        )
        def predict_long_running(
            request: Request,
            owner: GoogleOwner,
            model: PredictModel,
            scope: OperationScope,
            body: PredictLongRunningRequest,
            idempotency_key: IdempotencyKey = None,
        ) -> JSONResponse:
            """Start generating a video (``{model}:predictLongRunning``); returns an
            operation whose name the SDK polls with ``:fetchPredictOperation``."""
            service = get_service(request)
            creation = self.parse_create(service, owner, body, model, idempotency_key, scope)
            job = self.create(request, owner, creation)
            name = wire.operation_name(job.model, job.id, job.request.wire_scope)
            return JSONResponse({"name": name}, headers=alias_headers(service.catalog, job.model))


def _labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` as the job keeps them; a lone surrogate (which cannot be stored) is a 400."""
    for name, value in labels.items():
        Catalog.check_text(name + value, "labels")
    return dict(labels)
