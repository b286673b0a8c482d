"""vLLM-Omni's video API (``vllm serve MODEL --omni``), as its code speaks it.

Read at vllm-project/vllm-omni: ``vllm_omni/entrypoints/openai/protocol/videos.py`` (commit
48e60262553e3b7d28a95e05fbcdd431c4ef04f0), ``serving_video.py`` (commit
856327bb9dae7c6e5c13fac24d91c993bd669f55) and ``docs/serving/videos_api.md`` (commit
b82abf662ab05c7303b39620596f7a4dff23694b).

- ``POST /v1/videos``, ``multipart/form-data`` (``videoform``): ``prompt`` (required),
  ``model``, ``seconds`` (``^[1-9]\\d*$``), ``size`` (``WxH``), ``width``/``height``,
  ``num_frames``, ``fps`` (default 24; ``num_frames`` defaults to ``seconds * fps``),
  ``seed``, ``negative_prompt``, ``num_inference_steps``, ``guidance_scale``,
  ``guidance_scale_2``, ``boundary_ratio``, ``flow_shift``, ``generate_sound``,
  ``input_reference`` (the image file), ``lora`` and ``extra_params`` (JSON objects as
  strings). It answers the job record: ``id`` (``video_gen_<hex>``), ``object: "video"``,
  ``status`` ``queued``.
- ``GET /v1/videos/{id}``: ``status`` ``queued`` | ``in_progress`` | ``completed`` |
  ``failed``, ``progress`` 0..100, ``error`` ``{code, message}`` when failed.
- ``GET /v1/videos/{id}/content``: the MP4 (``video/mp4``).
- ``DELETE /v1/videos/{id}``: deletes the job and its stored output
  (``{"id", "deleted": true, "object": "video.deleted"}``).
- ``POST /v1/videos/sync`` takes the same form and answers the MP4 bytes when generation
  ends. kinema does not use it: one HTTP request held open for the whole generation is
  cut by any proxy timeout and cannot be resumed by another worker; the job endpoints
  can (the operation is recorded before the first poll).

The server runs one model (``model`` is informational); ``--api-key`` makes it want
``Authorization: Bearer``. It keeps no idempotency keys, so a submission repeated after a
crash between its answer and kinema's record is a second job there.
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


class VllmOmniProtocol(Protocol):
    name = "vllm_omni"
    last_frame = False  # one image: input_reference

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.served = ServedModel.from_options(options)

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return bearer(key)

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        answer = http.call("POST", "/v1/videos", files=form(submission, self.served))
        return str(answer["id"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        body = http.call("GET", f"/v1/videos/{ref}", polling=True)
        status = str(body.get("status", ""))
        if status == "completed":
            url = f"{http.base_url}/v1/videos/{ref}/content"
            return Status(done=True, progress=1.0, video_url=url)
        if status == "failed":
            error = body.get("error") or {}
            return failure(error.get("message"), error.get("code"), "the video failed")
        return Status(done=False, progress=progress_percent(body.get("progress")))

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("DELETE", f"/v1/videos/{ref}")
        return True
