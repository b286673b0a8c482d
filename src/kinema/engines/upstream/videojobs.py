"""The job endpoints of the open GPU video servers (vLLM-Omni, SGLang Diffusion).

Both serve OpenAI's ``/v1/videos`` paths: ``POST /v1/videos`` takes the create form
(``videoform``) and answers the job record with its ``id``; ``GET /v1/videos/{id}`` reads
``status`` (``completed`` and ``failed`` end it; ``error: {code?, message}`` says why),
``GET /v1/videos/{id}/content`` is the MP4 and ``DELETE /v1/videos/{id}`` forgets the
job. An ``Authorization: Bearer`` key is sent when the engine names one. What differs
between them (where a finished video is) is each server's own module. Paths, words and
fields: the API's wire table, ``kinema.wire.videojobs``.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from kinema.engines.upstream.videoform import ServedModel, form
from kinema.wire import videojobs as wire


class VideoJobsProtocol(Protocol):
    """A server of the ``/v1/videos`` job endpoints; subclasses set ``name``."""

    last_frame = False  # one image: input_reference

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.served = ServedModel.from_options(options)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        answer = http.call("POST", wire.VIDEOS_PATH, files=form(submission, self.served))
        return str(answer[wire.ID])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", wire.VIDEO_PATH.format(video_id=ref), polling=True)
        status = str(body.get(wire.STATUS, ""))
        if status == wire.COMPLETED:
            return Status(done=True, progress=1.0, video_url=self.video_url(http, ref, body))
        if status == wire.FAILED:
            error = body.get(wire.ERROR) or {}
            message, code = error.get(wire.ERROR_MESSAGE), error.get(wire.ERROR_CODE)
            return failure(message, code, "the video failed")
        return Status(done=False, progress=progress_percent(body.get(wire.PROGRESS)))

    def video_url(self, http: UpstreamHTTP, ref: str, body: Mapping[str, Any]) -> str:
        """Where the finished video ``ref`` is: its ``/content`` path on the server."""
        return http.base_url + wire.CONTENT_PATH.format(video_id=ref)

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("DELETE", wire.VIDEO_PATH.format(video_id=ref))
        return True
