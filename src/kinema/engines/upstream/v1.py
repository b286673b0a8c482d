"""``/v1/video/generations`` as New-API-style gateways serve Veo.

``POST /v1/video/generations`` (``images`` = first and optional last frame, ``seconds``,
``size`` = the resolution word) with an ``Idempotency-Key``; ``GET
/v1/video/generations/{id}`` polls (``queued``/``in_progress``/``succeeded``/``failed``/
``cancelled``; ``url`` once done); ``POST /v1/video/generations/{id}/cancel`` cancels.
"""

from __future__ import annotations

from typing import Any

from kinema.engines.upstream.aimlapi import bearer
from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.protocol import (
    Protocol,
    Status,
    Submission,
    failure,
    progress_percent,
)
from kinema.wire import v1_generations as wire

# canonical option -> the wire field it is sent in (those that pass straight through)
OPTIONS = {canonical: name for name, canonical in wire.WIRE_FIELDS.items() if name != "prompt"}


class V1Protocol(Protocol):
    name = wire.NAME
    idempotent = True

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        body: dict[str, Any] = {wire.MODEL: submission.model, "prompt": submission.request.prompt}
        images = [i.data_uri for i in (submission.image, submission.last_image) if i is not None]
        if images:
            body[wire.IMAGES] = images
        if "duration" in submission.options:
            body[wire.SECONDS] = str(submission.request.duration_s)
        if "resolution" in submission.options:
            body[wire.SIZE] = submission.request.resolution
        for option, name in OPTIONS.items():
            value = submission.optional(option)
            if value is not None:
                body[name] = value
        answer = http.call(
            "POST", wire.CREATE_PATH, json_body=body, headers=self.idempotency_headers(submission)
        )
        return str(answer.get("task_id") or answer["id"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", wire.TASK_PATH.format(task_id=ref), polling=True)
        status = str(body.get("status", ""))
        if status in wire.SUCCEEDED:
            url = body.get("url") or body.get("video_url")
            if not url:
                return Status(done=True, error="the task succeeded without a video url")
            return Status(done=True, progress=1.0, video_url=str(url))
        if status in wire.ENDED:
            error = body.get("error") or {}
            return failure(error.get("message"), error.get("code"), f"the task {status}")
        return Status(done=False, progress=progress_percent(body.get("progress")))

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("POST", wire.CANCEL_PATH.format(task_id=ref), json_body={})
        return True
