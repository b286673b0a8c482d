"""Vertex AI: Veo through ``predictLongRunning`` and ``fetchPredictOperation``.

Express mode (an API key, ``x-goog-api-key``) posts to
``/v1beta1/publishers/google/models/{model}:predictLongRunning``; project mode (options
``project`` and ``location``) posts under ``/v1beta1/projects/{P}/locations/{L}/...`` with
``Authorization: Bearer`` and the key variable holding an access token. A poll posts
``{"operationName": name}`` to ``{resource}:fetchPredictOperation``, where the resource is
the name before ``/operations/``. The video comes back inline (``bytesBase64Encoded``; a
large answer is decoded to a file as it arrives); ``gcsUri`` results (when a
``storageUri`` was configured) cannot be fetched by kinema.
"""

from __future__ import annotations

import base64
import binascii

from kinema.engines.upstream.errors import UpstreamUnavailable
from kinema.engines.upstream.gemini import filtered, operation_status, veo_body
from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.protocol import Protocol, Status, Submission
from kinema.engines.upstream.spool import SpooledVideo
from kinema.wire import vertex as wire


class VertexProtocol(Protocol):
    name = wire.NAME
    ref_slashes = True  # its operation names are paths
    references = True
    idempotent = True  # Google ignores the header; a kinema provider honours it

    @property
    def version(self) -> str:
        return str(self.options.get("api_version", wire.API_VERSIONS[0]))

    def _model_path(self, model: str) -> str:
        project, location = self.options.get("project"), self.options.get("location")
        return wire.model_resource(model, project, location or "us-central1")

    def auth_headers(self, key: str | None) -> dict[str, str]:
        if not key:
            return {}
        if self.options.get("project"):
            return {"Authorization": f"Bearer {key}"}
        return {"x-goog-api-key": key}

    def submit(self, http: UpstreamHTTP, submission: Submission) -> str:
        resource = self._model_path(submission.model)
        path = wire.PREDICT_PATH.format(version=self.version, resource=resource)
        body = http.call(
            "POST",
            path,
            json_body=veo_body(submission),
            headers=self.idempotency_headers(submission),
        )
        return str(body["name"])

    def poll(self, http: UpstreamHTTP, ref: str) -> Status:
        resource = wire.operation_resource(ref)
        body = http.call(
            "POST",
            wire.FETCH_PATH.format(version=self.version, resource=resource),
            json_body={wire.OPERATION_NAME_FIELD: ref},
            polling=True,
            inline=wire.VIDEO_BYTES,
        )
        status = operation_status(body)
        if status is not None:
            return status
        response = body.get("response") or {}
        videos = response.get(wire.VIDEOS) or []
        if not videos:
            return filtered(response) or Status(done=True, error="the operation returned no video")
        video = videos[0]
        if wire.VIDEO_BYTES not in video:
            raise UpstreamUnavailable(
                "the provider stored the video in Cloud Storage (gcsUri); kinema needs it "
                "inline: leave storageUri unset"
            )
        if isinstance(video[wire.VIDEO_BYTES], SpooledVideo):  # a large one, on disk
            return Status(done=True, progress=1.0, video_file=video[wire.VIDEO_BYTES].path)
        try:
            data = base64.b64decode(video[wire.VIDEO_BYTES], validate=True)
        except (binascii.Error, ValueError):
            raise UpstreamUnavailable("the provider's inline video is not valid base64") from None
        return Status(done=True, progress=1.0, video_bytes=data)

    def cancel(self, http: UpstreamHTTP, ref: str) -> bool:
        http.call("POST", wire.CANCEL_PATH.format(version=self.version, name=ref), json_body={})
        return True
