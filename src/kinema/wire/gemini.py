"""The Gemini API's wire table (Veo through ``generativelanguage``): paths, operation and
file names, and the operation a poll answers.

Read by the server dialect (``kinema.api.dialects.gemini``) and the upstream protocol
(``kinema.engines.upstream.gemini``). Wire facts: the ``google-genai`` SDK 2.x sources.
Paths are format strings: ``{version}`` is one of ``API_VERSIONS``, ``{name}`` an
operation name (``OPERATION_NAME``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinema.errors import NotFound
from kinema.types import JobStatus
from kinema.wire import google

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "gemini"
INLINE_VIDEO = False
STATUS_WORDS = google.STATUS_WORDS

API_VERSIONS = ("v1beta", "v1")  # the SDK 2.x default first
FILES_VERSION = "v1beta"  # video uris name this version; the file routes answer under both

MODEL_PATH = "/{version}/models/{model}"
PREDICT_PATH = MODEL_PATH + ":" + google.PREDICT
OPERATION_NAME = "models/{model}/operations/{operation_id}"
OPERATION_PATH = "/{version}/{name}"  # GET polls it
CANCEL_PATH = OPERATION_PATH + ":" + google.CANCEL
FILE_DOWNLOAD = "{base_url}/{version}/files/{name}:download?alt=media"

RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
# A done operation's ``response.generateVideoResponse.generatedSamples[].video.uri``.
VIDEO_RESPONSE = "generateVideoResponse"
SAMPLES = "generatedSamples"

_HEX32 = frozenset("0123456789abcdef")


def operation_id(value: str) -> str:
    """The job id an operation id is; NotFound for anything else."""
    if len(value) != 32 or not _HEX32.issuperset(value):
        raise NotFound(f"operation {value!r} is not found")
    return value


def file_name(job_id: str, index: int = 0) -> str:
    """The ``files/`` name of output ``index`` of a job (``[a-z0-9]+``, as the SDK needs)."""
    return job_id if index == 0 else f"{job_id}s{index}"


def parse_file_name(name: str) -> tuple[str, int]:
    """``(job id, output index)`` of a ``files/`` name; NotFound for anything else."""
    job_id, s, index = name.partition("s")
    if s and not (index.isdigit() and index[0] != "0"):
        raise NotFound(f"files/{name} is not found")
    return operation_id(job_id), int(index) if s else 0


def video_uri(name: str, base_url: str) -> str:
    return FILE_DOWNLOAD.format(base_url=base_url, version=FILES_VERSION, name=name)


def render(view: JobView) -> dict[str, Any]:
    """The operation (poll and webhook bodies)."""
    name = OPERATION_NAME.format(model=view.model, operation_id=view.id)
    body = google.operation(name, view)
    if view.status is JobStatus.SUCCEEDED:
        samples = [
            {"video": {"uri": video_uri(file_name(view.id, output.index), view.base_url)}}
            for output in view.outputs
        ]
        body["response"] = {"@type": RESPONSE_TYPE, VIDEO_RESPONSE: {SAMPLES: samples}}
    error = google.operation_error(view)
    if error is not None:
        body["error"] = error
    return body
