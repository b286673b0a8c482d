"""The AI/ML API: ``POST /v2/video/generations``, polled with ``?generation_id=``.

Bearer key; ``Idempotency-Key`` on create. Statuses ``queued``/``generating`` (older:
``waiting``/``active``) run, ``completed`` carries ``video.url``, ``error`` carries
``error {name, message}``. The API has no cancel call, so a cancelled job simply stops
being polled there. Paths, words and fields: the API's wire table, ``kinema.wire.aimlapi``.
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
from kinema.wire import aimlapi as wire


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


class AimlapiProtocol(Protocol):
    name = wire.NAME
    ref_slashes = True  # ids name a model (``x:google/veo``); sent as a query
    references = True
    idempotent = True

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        fields = wire.FIELDS
        body: dict[str, Any] = {wire.MODEL: submission.model}
        if submission.request.prompt:
            body[fields["prompt"]] = submission.request.prompt
        if submission.image is not None:
            body[fields["image"]] = submission.image.data_uri
        if submission.last_image is not None:
            body[fields["last_image"]] = submission.last_image.data_uri
        if submission.reference_images:
            images = [image.data_uri for image in submission.reference_images]
            body[fields["reference_images"]] = images
        for option in wire.OPTIONS:
            value = submission.optional(option)
            if value is not None:
                body[fields[option]] = value
        answer = http.call(
            "POST",
            wire.GENERATIONS_PATH,
            json_body=body,
            headers=self.idempotency_headers(submission),
        )
        return str(answer["id"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call(
            "GET", wire.GENERATIONS_PATH, params={wire.ID_PARAMETER: ref}, polling=True
        )
        status = str(body.get("status", ""))
        if status == wire.COMPLETED:
            video = body.get("video") or {}
            return Status(done=True, progress=1.0, video_url=str(video["url"]))
        if status == wire.ERROR:
            error = body.get("error") or {}
            return failure(error.get("message"), error.get("name"), "the generation failed")
        return Status(done=False, progress=progress_percent(body.get("progress")))
