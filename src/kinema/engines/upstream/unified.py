"""The unified task dialect of API gateways (``task-unified-...`` ids).

``POST /v1/videos/generations`` creates (with an ``Idempotency-Key``), ``GET
/v1/tasks/{id}`` polls (``pending``/``processing``/``completed``/``failed``, ``progress``
0..100, ``results[0]`` the video link), ``POST /v1/tasks/{id}/cancel`` cancels. The
published documents name no poll path, so ``create_path``, ``poll_path`` and
``cancel_path`` (with ``{id}``) may be set per engine for a gateway that differs.
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

FIELDS = {
    "duration": "duration",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "generate_audio": "generate_audio",
    "auto_fix": "auto_fix_prompt",
    "safety_level": "safety_level",
    "enhance_prompt": "enhance_prompt",
    "person_generation": "person_generation",
    "negative_prompt": "negative_prompt",
    "seed": "seed",
}


class UnifiedProtocol(Protocol):
    name = "unified"
    last_frame = False  # one image field: the first frame
    idempotent = True

    def _path(self, name: str, default: str, ref: str = "") -> str:
        return str(self.options.get(name, default)).replace("{id}", ref)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        body: dict[str, Any] = {"model": submission.model, "prompt": submission.request.prompt}
        if submission.image is not None:
            body["image_url"] = submission.image.data_uri
        for field, wire in FIELDS.items():
            value = submission.optional(field)
            if value is not None:
                body[wire] = value
        answer = http.call(
            "POST",
            self._path("create_path", "/v1/videos/generations"),
            json_body=body,
            headers=self.idempotency_headers(submission),
        )
        return str(answer["id"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", self._path("poll_path", "/v1/tasks/{id}", ref), polling=True)
        status = str(body.get("status", ""))
        if status == "completed":
            results = body.get("results") or []
            if not results:
                return Status(done=True, error="the task completed without a result")
            return Status(done=True, progress=1.0, video_url=str(results[0]))
        if status == "failed":
            error = body.get("error") or {}
            return failure(error.get("message"), error.get("code"), "the task failed")
        return Status(done=False, progress=progress_percent(body.get("progress")))

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("POST", self._path("cancel_path", "/v1/tasks/{id}/cancel", ref), json_body={})
        return True
