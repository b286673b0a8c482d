"""Vertex AI's wire table (Veo as ``google-genai`` 3.x sends it): paths, operation names
and scopes, and the operation a ``fetchPredictOperation`` poll answers.

Read by the server dialect (``kinema.api.dialects.vertex``) and the upstream protocol
(``kinema.engines.upstream.vertex``). Wire facts: the ``google-genai`` SDK 3.x sources.
Paths are format strings: ``{version}`` is one of ``API_VERSIONS``, ``{resource}`` a model
resource (``model_resource``), ``{name}`` an operation name (``operation_name``). The video
comes back inline: the body carries an ``InlineFile`` that its writer streams.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kinema.errors import InvalidRequest, NotFound
from kinema.types import JobStatus
from kinema.wire import google

if TYPE_CHECKING:
    from kinema.views import JobView

NAME = "vertex"
INLINE_VIDEO = True
STATUS_WORDS = google.STATUS_WORDS

API_VERSIONS = ("v1beta1", "v1")  # the SDK 3.x default first
EXPRESS_SCOPE = "projects/kinema/locations/global"  # names of express mode (no project)
MODELS = "publishers/google/models"
PROJECT_MODELS = f"projects/{{project}}/locations/{{location}}/{MODELS}"

PREDICT_PATH = "/{version}/{resource}:" + google.PREDICT
FETCH = "fetchPredictOperation"
FETCH_PATH = "/{version}/{resource}:" + FETCH  # POST {"operationName": name}
OPERATION_NAME_FIELD = "operationName"
CANCEL_PATH = "/{version}/{name}:" + google.CANCEL

RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
# A done operation's ``response.videos[]``: the MP4 inline, or the URI of its copy.
VIDEOS = "videos"
VIDEO_BYTES = google.IMAGE_BYTES
VIDEO_URI = "gcsUri"

_HEX32 = frozenset("0123456789abcdef")
# A project id (or number, or domain-scoped id) or a location: what Google's take, a bit wider.
_SEGMENT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:-]{0,61}[A-Za-z0-9])?")
_NAME_SCOPE = re.compile(r"projects/(?P<project>[^/]*)/locations/(?P<location>[^/]*)/")
_SHOWN = 120  # characters of a client's operation name an error repeats


def model_resource(model: str, project: str | None = None, location: str = "") -> str:
    """``publishers/google/models/{model}``, under ``projects/{p}/locations/{l}/`` when a
    project is given."""
    if project:
        return f"{PROJECT_MODELS.format(project=project, location=location)}/{model}"
    return f"{MODELS}/{model}"


def wire_scope(project: str, location: str) -> str:
    """``projects/{project}/locations/{location}``, once both are checked: a value that no
    project or location could be is a 400 that does not repeat it."""
    for what, value in (("project", project), ("location", location)):
        if not _SEGMENT.fullmatch(value):
            raise InvalidRequest(
                f"the {what} must be 1 to 63 letters, digits, '.', ':', '_' or '-', "
                "starting and ending with a letter or digit"
            )
    return f"projects/{project}/locations/{location}"


def operation_name(model: str, job_id: str, scope: str | None) -> str:
    """A job's operation name: in the client's project and location, or in express mode
    (no project) in the fixed ``EXPRESS_SCOPE``."""
    return f"{scope or EXPRESS_SCOPE}/{MODELS}/{model}{google.OPERATIONS}{job_id}"


def operation_resource(name: str) -> str:
    """The resource an operation name is under (what ``FETCH_PATH`` posts to)."""
    return name.rpartition(google.OPERATIONS)[0]


def operation_id(name: str) -> str:
    """The job id at the end of an operation name (``.../operations/{id}``).

    The name's project and location are checked, not matched: the job is found by its
    id, model and key, so the name a create answered and the fixed-scope form that
    earlier versions answered in both modes poll the same job."""
    scope = _NAME_SCOPE.match(name)
    if scope is not None:
        wire_scope(scope["project"], scope["location"])
    job_id = name.rpartition(google.OPERATIONS)[2]
    if len(job_id) != 32 or not _HEX32.issuperset(job_id):
        shown = name if len(name) <= _SHOWN else name[:_SHOWN] + "..."
        raise NotFound(f"operation {shown!r} is not found")
    return job_id


def render(view: JobView) -> dict[str, Any]:
    """The operation (poll and webhook bodies), each video inline or as its copy's URI."""
    scope = None if view.request is None else view.request.wire_scope
    body = google.operation(operation_name(view.model, view.id, scope), view)
    if view.status is JobStatus.SUCCEEDED:
        videos = []
        for output in view.outputs:
            video: dict[str, Any] = {google.MIME_TYPE: "video/mp4"}
            if output.video_object_uri is not None:
                video[VIDEO_URI] = output.video_object_uri
            elif output.inline is not None:  # streamed in by the body's writer
                video[VIDEO_BYTES] = output.inline
            videos.append(video)
        body["response"] = {"@type": RESPONSE_TYPE, VIDEOS: videos, google.FILTERED_COUNT: 0}
    error = google.operation_error(view)
    if error is not None:
        body["error"] = error
    return body
