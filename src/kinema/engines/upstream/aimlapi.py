"""The AI/ML API: ``POST /v2/video/generations``, polled with ``?generation_id=``.

Bearer key; ``Idempotency-Key`` on create. Statuses ``queued``/``generating`` (older:
``waiting``/``active``) run, ``completed`` carries ``video.url``, ``error`` carries
``error {name, message}``. The API has no cancel call, so a cancelled job simply stops
being polled there.
"""

from __future__ import annotations

from typing import Any

from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.protocol import (
    Protocol,
    Status,
    Submission,
    failure,
    progress_percent,
)

# canonical optional field -> wire name
FIELDS = {
    "duration": "duration",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "generate_audio": "generate_audio",
    "seed": "seed",
    "negative_prompt": "negative_prompt",
    "enhance_prompt": "enhance_prompt",
    "auto_fix": "auto_fix",
}
PATH = "/v2/video/generations"


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


class AimlapiProtocol(Protocol):
    name = "aimlapi"
    ref_slashes = True  # ids name a model (``x:google/veo``); sent as a query
    references = True
    idempotent = True

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        body: dict[str, Any] = {"model": submission.model}
        if submission.request.prompt:
            body["prompt"] = submission.request.prompt
        if submission.image is not None:
            body["image_url"] = submission.image.data_uri
        if submission.last_image is not None:
            body["last_image_url"] = submission.last_image.data_uri
        if submission.reference_images:
            body["image_urls"] = [image.data_uri for image in submission.reference_images]
        for field, wire in FIELDS.items():
            value = submission.optional(field)
            if value is not None:
                body[wire] = value
        answer = http.call(
            "POST", PATH, json_body=body, headers=self.idempotency_headers(submission)
        )
        return str(answer["id"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", PATH, params={"generation_id": ref}, polling=True)
        status = str(body.get("status", ""))
        if status == "completed":
            video = body.get("video") or {}
            return Status(done=True, progress=1.0, video_url=str(video["url"]))
        if status == "error":
            error = body.get("error") or {}
            return failure(error.get("message"), error.get("name"), "the generation failed")
        return Status(done=False, progress=progress_percent(body.get("progress")))
