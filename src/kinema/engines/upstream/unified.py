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
from kinema.wire import unified as wire

# A path option's ``{id}``: the provider's task id.
_DEFAULT_PATHS = {
    "create_path": wire.CREATE_PATH,
    "poll_path": wire.TASK_PATH.format(task_id="{id}"),
    "cancel_path": wire.CANCEL_PATH.format(task_id="{id}"),
}


class UnifiedProtocol(Protocol):
    name = wire.NAME
    last_frame = False  # one image field: the first frame
    idempotent = True

    def _path(self, name: str, ref: str = "") -> str:
        return str(self.options.get(name, _DEFAULT_PATHS[name])).replace("{id}", ref)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        fields = wire.FIELDS
        body: dict[str, Any] = {
            wire.MODEL: submission.model,
            fields["prompt"]: submission.request.prompt,
        }
        if submission.image is not None:
            body[fields["image"]] = submission.image.data_uri
        for option in wire.OPTIONS:
            value = submission.optional(option)
            if value is not None:
                body[fields[option]] = value
        answer = http.call(
            "POST",
            self._path("create_path"),
            json_body=body,
            headers=self.idempotency_headers(submission),
        )
        return str(answer["id"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", self._path("poll_path", ref), polling=True)
        status = str(body.get("status", ""))
        if status == wire.COMPLETED:
            results = body.get("results") or []
            if not results:
                return Status(done=True, error="the task completed without a result")
            return Status(done=True, progress=1.0, video_url=str(results[0]))
        if status == wire.FAILED:
            error = body.get("error") or {}
            return failure(error.get("message"), error.get("code"), "the task failed")
        return Status(done=False, progress=progress_percent(body.get("progress")))

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("POST", self._path("cancel_path", ref), json_body={})
        return True
