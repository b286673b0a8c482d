"""OpenAI-style ``/v1/videos`` with OpenAI's own fields: what gateways serve (vLLM-Omni and
SGLang Diffusion have their own protocols, ``vllm_omni`` and ``sglang``, which send the
frame count at the served model's rate and their sampling fields).

Create is multipart, as the ``openai`` SDK sends it (``prompt``, ``model``, ``seconds`` as
a string, ``size`` as ``WxH``, the first frame as the ``input_reference`` file part), with
an ``Idempotency-Key``. ``GET /v1/videos/{id}`` polls (``queued``/``in_progress``/
``completed``/``failed``, ``progress`` 0..100); the video is
``GET /v1/videos/{id}/content`` on the same host; ``DELETE /v1/videos/{id}`` cancels
(servers that cannot abort a running job ignore it, and the job ends cancelled here).
``seed`` and ``negative_prompt`` are sent when the model takes them (both servers accept
them as extra fields).
"""

from __future__ import annotations

from kinema.engines.upstream.aimlapi import bearer
from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.protocol import (
    Protocol,
    Status,
    Submission,
    failure,
    progress_percent,
)
from kinema.wire import openai_videos as wire

# kinema's extra create fields, in the order they are sent
EXTRA_FIELDS = (wire.SEED, wire.NEGATIVE_PROMPT, wire.GENERATE_AUDIO)


class OpenAIProtocol(Protocol):
    name = wire.NAME
    last_frame = False  # one image field: the first frame
    idempotent = True

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        form = {
            wire.MODEL: submission.model,
            wire.PROMPT: submission.request.prompt,
            wire.SECONDS: str(submission.request.duration_s),
            wire.SIZE: submission.size,
        }
        for field in EXTRA_FIELDS:
            value = submission.optional(field)
            if value is not None:
                form[field] = str(value).lower() if isinstance(value, bool) else str(value)
        # Every field as a multipart part (what the SDK sends, and what servers parse).
        parts: dict[str, tuple[str | None, bytes | str, str | None]] = {
            name: (None, value, None) for name, value in form.items()
        }
        if submission.image is not None:
            image = submission.image
            parts[wire.IMAGE] = (image.filename, image.data, image.mime_type)
        answer = http.call(
            "POST", wire.VIDEOS_PATH, files=parts, headers=self.idempotency_headers(submission)
        )
        return str(answer[wire.ID])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", wire.VIDEO_PATH.format(video_id=ref), polling=True)
        status = str(body.get(wire.STATUS, ""))
        if status == wire.COMPLETED:
            url = http.base_url + wire.CONTENT_PATH.format(video_id=ref)
            return Status(done=True, progress=1.0, video_url=url)
        if status == wire.FAILED:
            error = body.get(wire.ERROR) or {}
            message, code = error.get(wire.ERROR_MESSAGE), error.get(wire.ERROR_CODE)
            return failure(message, code, "the video failed")
        return Status(done=False, progress=progress_percent(body.get(wire.PROGRESS)))

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("DELETE", wire.VIDEO_PATH.format(video_id=ref))
        return True
