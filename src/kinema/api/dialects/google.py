"""What Google's two Veo APIs share: the error envelope, auth, and the predict body (its
field names are the wire table's, ``kinema.wire.google``).

The Gemini API (``dialects.gemini``) and Vertex AI (``dialects.vertex``) take the same
``{"instances": [...], "parameters": {...}}`` body to ``{model}:predictLongRunning`` and
answer errors as ``{"error": {"code": <http status>, "message", "status": <google.rpc
name>}}`` (400s add a ``google.rpc.BadRequest`` detail listing each bad field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kinema.api.deps import bearer_token, get_authenticator, get_service
from kinema.api.dialect import DETAILS_SCHEMA, Dialect, error_envelope_schema, field_name
from kinema.errors import InvalidRequest, KinemaError, NotFound, Unauthenticated, UnknownModel
from kinema.wire import google as wire

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

# HTTP status of an error response -> its google.rpc status name
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    410: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    422: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}

ERROR_SCHEMA = error_envelope_schema(
    ("code", "message", "status"),
    code="integer",
    message="string",
    status="string",
    details=DETAILS_SCHEMA,
)


def error_body(error: KinemaError) -> dict[str, Any]:
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
    return {"error": body}


def api_key(request: Request) -> str | None:
    """The caller's key: ``x-goog-api-key``, then ``?key=``, then a bearer token."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if key and key.strip():
        return key.strip()
    return bearer_token(request)


def google_owner(request: Request) -> str:
    key = api_key(request)
    try:
        return get_authenticator(request).owner(key)
    except Unauthenticated:
        if key is None:
            raise Unauthenticated(
                "missing API key: send the header 'x-goog-api-key: <key>' "
                "(or 'Authorization: Bearer <key>')"
            ) from None
        raise


GoogleOwner = Annotated[str, Depends(google_owner)]


def split_action(segment: str, expected: str, api_version: str) -> str:
    """``"veo-3:predictLongRunning"`` -> ``"veo-3"``, or 404 for another method."""
    head, colon, action = segment.rpartition(":")
    if not colon or action != expected:
        raise NotFound(f"method {segment!r} is not found for API version {api_version}")
    return head


def served_model(
    request: Request,
    model_action: str,
    dialect: str,
    unknown: Callable[[str, str, str], str],
    prefix: str = "",
) -> str:
    """The model of ``{model}:predictLongRunning`` (less ``prefix``) that ``dialect``
    serves; 404 before the body is even read, worded by ``unknown(model, version,
    served)`` for a model it does not serve."""
    service = get_service(request)
    version = request.url.path.split("/")[1]
    model = split_action(model_action, wire.PREDICT, version).removeprefix(prefix)
    try:
        return service.catalog.get(model, dialect=dialect).id
    except UnknownModel as error:
        served = ", ".join(service.catalog.model_ids(dialect))
        raise NotFound(unknown(model, version, served)) from error


class GoogleDialect(Dialect):
    """What the Gemini API and Vertex AI dialects share: the caller's key and the error
    envelope."""

    error_schema = ERROR_SCHEMA

    def owner(self, request: Request) -> str:
        return google_owner(request)

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        return error_body(error)


# --- the predict body ---


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ImageInput(Wire):
    bytes_base64_encoded: str | None = Field(default=None, description="The image, base64-encoded")
    mime_type: str | None = Field(default=None, examples=["image/png", "image/jpeg", "image/webp"])
    gcs_uri: str | None = Field(default=None, description="Not supported: send bytesBase64Encoded")


class ReferenceImage(Wire):
    image: ImageInput
    reference_type: str | None = Field(default=None, examples=["ASSET"])


class Instance(Wire):
    prompt: str | None = None
    image: ImageInput | None = None
    last_frame: ImageInput | None = None
    reference_images: list[ReferenceImage] | None = None
    video: dict[str, Any] | None = Field(
        default=None,
        description="The video to extend: a video this server made (its uri) or the video "
        "inline (Gemini: uri | encodedVideo + encoding; Vertex: gcsUri | bytesBase64Encoded "
        "+ mimeType)",
    )
    mask: dict[str, Any] | None = Field(default=None, description="Not supported")


def image_source(image: ImageInput, field: str) -> str:
    """An inline image as a data URI, which the shared intake decodes and validates."""
    if image.gcs_uri is not None:
        raise InvalidRequest.for_field(
            f"{field}.gcsUri", "Cloud Storage images are not supported: send bytesBase64Encoded"
        )
    if not image.bytes_base64_encoded:
        raise InvalidRequest.for_field(f"{field}.bytesBase64Encoded", "is required")
    mime = image.mime_type or "application/octet-stream"
    return f"data:{mime};base64,{image.bytes_base64_encoded}"


VideoSource = Callable[[dict[str, Any]], str]


def instance_fields(instances: list[Instance], video_source: VideoSource) -> dict[str, Any]:
    """Canonical fields of the one instance a request may carry; ``video_source`` turns
    the dialect's own ``video`` object into a source (a ``job:`` reference or a data URI)."""
    if len(instances) != 1:
        raise InvalidRequest.for_field(
            "instances", f"exactly one instance is supported, not {len(instances)}"
        )
    instance = instances[0]
    if instance.mask is not None:
        raise InvalidRequest.for_field("instances[0].mask", "masks are not supported")
    fields: dict[str, Any] = {}
    if instance.prompt is not None:
        fields["prompt"] = instance.prompt
    if instance.video is not None:
        fields["video"] = video_source(instance.video)
    if instance.image is not None:
        fields["image"] = image_source(instance.image, wire.WIRE_NAMES["image"])
    if instance.last_frame is not None:
        fields["last_image"] = image_source(instance.last_frame, wire.WIRE_NAMES["last_image"])
    if instance.reference_images is not None:
        sources = []
        for i, reference in enumerate(instance.reference_images):
            field = f"{wire.WIRE_NAMES['reference_images']}[{i}]"
            if (reference.reference_type or wire.ASSET).upper() != wire.ASSET:
                raise InvalidRequest.for_field(
                    f"{field}.referenceType", "only ASSET reference images are supported"
                )
            sources.append(image_source(reference.image, f"{field}.image"))
        fields["reference_images"] = sources
    return fields


def parameter_fields(sent: dict[str, Any]) -> dict[str, Any]:
    """Canonical fields of ``parameters`` (wire names, unset and None left out)."""
    return {wire.PARAMETER_FIELDS[name]: value for name, value in sent.items()}


def inline_video(data: Any, mime: Any, field: str) -> str:
    """A video sent inline (base64) as a data URI, which the shared intake checks."""
    if not isinstance(data, str) or not data:
        raise InvalidRequest.for_field(field, "must be the video, base64-encoded")
    kind = mime if isinstance(mime, str) and mime.startswith("video/") else "video/mp4"
    return f"data:{kind};base64,{data}"


def video_fields(video: dict[str, Any], allowed: set[str]) -> None:
    """Refuse keys of a ``video`` object that the dialect does not define."""
    unknown = sorted(set(video) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise InvalidRequest.for_field(
            f"instances[0].video.{unknown[0]}", f"is not a field of video (use {known})"
        )
