"""SGLang Diffusion's video API (``sglang serve --model-path MODEL``), as its code speaks it.

Read at sgl-project/sglang: ``python/sglang/multimodal_gen/runtime/entrypoints/openai/
video_api.py`` and ``protocol.py``, the revision with ``reference_url``, ``video_reference``
and ``extra_params`` (the search index holds that text without naming its commit; the
stored path's commit is 25f03e6ee4d4d099f99b2820ef1e7568cf2c25b4, an earlier revision whose
create form has only prompt, input_reference, model, seconds, size, fps, num_frames and
extra_body), and ``python/sglang/multimodal_gen/docs/openai_api.md`` (commit
c891644a712104e688ca8b96b64f8af9da521478).

- ``POST /v1/videos`` (JSON, or ``multipart/form-data`` as kinema sends it: ``videoform``):
  ``prompt`` (required), ``input_reference`` (the image file) or ``reference_url``,
  ``model``, ``n``, ``seconds`` (default 4), ``size``, ``fps`` (default 24), ``num_frames``
  (default ``fps * seconds``), ``seed``, ``negative_prompt``, ``guidance_scale``,
  ``guidance_scale_2``, ``true_cfg_scale``, ``num_inference_steps``, ``flow_shift``,
  ``max_sequence_length``..., and ``extra_params`` (a JSON object as a string, flattened
  into the request; malformed JSON is a 400 "extra_params is not valid JSON"). A model
  that needs an image answers 400 without one. The answer is the job record: ``id``,
  ``status: "queued"``, ``progress`` 0.
- ``GET /v1/videos/{id}``: ``status`` ``queued`` | ``completed`` | ``failed`` (``progress``
  100 once completed), ``error: {"message"}`` when failed, and ``url`` when the server
  uploads results to cloud storage.
- ``GET /v1/videos/{id}/content``: the MP4, or 400 when the video went to cloud storage
  (then ``url`` is where it is: another host, which the engine's ``allow_hosts`` must
  name).
- ``DELETE /v1/videos/{id}``: forgets the job; the server cannot abort a running one (its
  own TODO), so a cancelled job may still use the GPU there until it ends.

No idempotency keys, and no authentication of its own unless a proxy adds it (a key, when
``api_key_env`` is set, is sent as ``Authorization: Bearer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.videojobs import VideoJobsProtocol
from kinema.wire import videojobs as wire


class SGLangProtocol(VideoJobsProtocol):
    name = "sglang"

    def video_url(self, http: UpstreamHTTP, ref: str, body: Mapping[str, Any]) -> str:
        """The ``url`` the server uploaded the video to, when it uploads to cloud storage
        (its ``/content`` answers 400 then); else the ``/content`` path."""
        return str(body.get(wire.URL) or super().video_url(http, ref, body))
