"""The open GPU video servers' job API (vLLM-Omni, SGLang Diffusion) wire table: paths,
status words, create form fields and the job record's fields.

Read by the upstream protocols that forward to those servers
(``kinema.engines.upstream.videojobs``, ``videoform``, ``sglang``). The servers serve
OpenAI's ``/v1/videos`` wire, so its paths, status words, OpenAI's create fields and the
video object's fields are OpenAI's table's (``kinema.wire.openai_videos``); what is theirs
alone is written here: the create form's extensions and SGLang's ``url``. No kinema
dialect serves this API (kinema's own ``/v1/videos`` is OpenAI's), so it has no status
object. Wire facts: the servers' code, cited in ``engines/upstream/vllm_omni.py`` and
``sglang.py``. Paths are format strings over ``{video_id}``.
"""

from __future__ import annotations

from kinema.wire import openai_videos as videos

VIDEOS_PATH = videos.VIDEOS_PATH  # create (POST)
VIDEO_PATH = videos.VIDEO_PATH  # poll (GET), forget (DELETE)
CONTENT_PATH = videos.CONTENT_PATH  # the MP4

# queued, in_progress (vLLM-Omni only), completed, failed: the last two end a job.
COMPLETED = videos.COMPLETED
FAILED = videos.FAILED

# Create form (multipart/form-data): OpenAI's fields, the first frame a file part...
MODEL, PROMPT, SECONDS, SIZE = videos.MODEL, videos.PROMPT, videos.SECONDS, videos.SIZE
IMAGE = videos.IMAGE
# ...and the servers' own: the frame count and rate (which win over ``seconds``), the
# sampling fields a catalog entry adds by name, and ``extra_params``, a JSON object in a
# string of model-specific parameters.
NUM_FRAMES, FPS = "num_frames", "fps"
SEED, NEGATIVE_PROMPT = "seed", "negative_prompt"
GENERATE_SOUND = "generate_sound"
EXTRA_PARAMS = "extra_params"

# The job record (create's answer and every poll's): OpenAI's video object's fields...
ID, STATUS, PROGRESS, ERROR = videos.ID, videos.STATUS, videos.PROGRESS, videos.ERROR
ERROR_CODE, ERROR_MESSAGE = videos.ERROR_CODE, videos.ERROR_MESSAGE  # inside ``error``
# ...and SGLang's: where a video it uploaded to cloud storage is (its ``/content``
# answers 400 then).
URL = "url"
