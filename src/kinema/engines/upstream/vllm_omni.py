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

from kinema.engines.upstream.videojobs import VideoJobsProtocol


class VllmOmniProtocol(VideoJobsProtocol):
    name = "vllm_omni"
