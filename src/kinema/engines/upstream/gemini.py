"""The Gemini API (``generativelanguage.googleapis.com``): Google's own Veo endpoint.

``POST /v1beta/models/{model}:predictLongRunning`` with ``x-goog-api-key``; the answer
names an operation that ``GET /v1beta/{name}`` polls; a done operation carries
``response.generateVideoResponse.generatedSamples[].video.uri``, a download link on the
same host that wants the key too. Google's API takes no idempotency key; the
``Idempotency-Key`` header is sent anyway (Google ignores it, a kinema provider honours
it). Cancel is
``POST /v1beta/{name}:cancel``. Google's SDK does not send ``seed`` or ``generateAudio``
in this API, so neither is sent unless the engine sets ``all_parameters = true``.
"""

from __future__ import annotations

from typing import Any

from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.protocol import (
    Image,
    Protocol,
    Status,
    Submission,
    failure,
    progress_percent,
)
from kinema.wire import gemini as wire
from kinema.wire import google

# The options forwarded in ``parameters`` (wire names: ``kinema.wire.google.PARAMETERS``),
# in the order they are sent.
FORWARDED = (
    "duration",
    "aspect_ratio",
    "resolution",
    "negative_prompt",
    "enhance_prompt",
    "person_generation",
    "seed",
    "generate_audio",
)
_SDK_WITHHELD = frozenset({"seed", "generate_audio"})


def veo_body(submission: Submission, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The ``instances`` + ``parameters`` body that Veo takes on both Google APIs."""
    names = google.INSTANCE_FIELDS
    instance: dict[str, Any] = {}
    if submission.request.prompt:
        instance[names["prompt"]] = submission.request.prompt
    if submission.image is not None:
        instance[names["image"]] = _image(submission.image)
    if submission.last_image is not None:
        instance[names["last_image"]] = _image(submission.last_image)
    if submission.reference_images:
        instance[names["reference_images"]] = [
            {"image": _image(image), google.REFERENCE_TYPE: google.ASSET}
            for image in submission.reference_images
        ]
    parameters: dict[str, Any] = {google.PARAMETERS["sample_count"]: 1}
    for field in FORWARDED:
        value = submission.optional(field)
        if value is not None and field not in skip:
            parameters[google.PARAMETERS[field]] = value
    return {"instances": [instance], "parameters": parameters}


def _image(image: Image) -> dict[str, str]:
    return {google.IMAGE_BYTES: image.base64, google.MIME_TYPE: image.mime_type}


def operation_status(body: dict[str, Any]) -> Status | None:
    """The common part of a Google long-running operation: None while it runs."""
    metadata = body.get("metadata") or {}
    progress = metadata.get("progressPercent") if isinstance(metadata, dict) else None
    if not body.get("done"):
        return Status(done=False, progress=progress_percent(progress))
    error = body.get("error")
    if isinstance(error, dict):
        return failure(error.get("message"), error.get("code"), "the operation failed")
    return None


def filtered(response: dict[str, Any]) -> Status | None:
    """A done operation whose videos the provider's safety filter removed."""
    count = response.get(google.FILTERED_COUNT) or 0
    if not count:
        return None
    reasons = response.get(google.FILTERED_REASONS) or []
    message = "; ".join(map(str, reasons)) or "the provider's safety filter removed the video"
    return Status(done=True, error=message, refused=True)


class GeminiProtocol(Protocol):
    name = wire.NAME
    ref_slashes = True  # its operation names are paths
    references = True
    idempotent = True  # Google ignores the header; a kinema provider honours it

    @property
    def version(self) -> str:
        return str(self.options.get("api_version", wire.API_VERSIONS[0]))

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        path = wire.PREDICT_PATH.format(version=self.version, model=submission.model)
        skip = frozenset() if self.options.get("all_parameters") else _SDK_WITHHELD
        body = http.call(
            "POST",
            path,
            json_body=veo_body(submission, skip=skip),
            headers=self.idempotency_headers(submission),
        )
        return str(body["name"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call(
            "GET", wire.OPERATION_PATH.format(version=self.version, name=ref), polling=True
        )
        status = operation_status(body)
        if status is not None:
            return status
        response = body.get("response") or {}
        videos = response.get("generateVideoResponse") or {}
        samples = videos.get("generatedSamples") or []
        if not samples:
            return filtered(videos) or Status(done=True, error="the operation returned no video")
        return Status(done=True, progress=1.0, video_url=str(samples[0]["video"]["uri"]))

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("POST", wire.CANCEL_PATH.format(version=self.version, name=ref), json_body={})
        return True
