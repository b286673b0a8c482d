"""The worker's side of an upstream engine: what it hands over, and what it keeps.

``ForwardedJobs.run`` builds the engine's ``Forwarding`` from a claimed job (its images read
from storage, the operation an earlier attempt recorded, a callback that commits a new
operation on the job, fenced by the attempt) and turns the MP4 the engine downloaded
into kinema's own result: probed with PyAV, thumbnailed, put in storage under this
attempt's keys, so kinema's links outlive the provider's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kinema.catalog import Catalog
from kinema.engines.base import Forwarder
from kinema.engines.upstream import Forwarding, Operation, UpstreamUnavailable
from kinema.engines.upstream.protocol import Image
from kinema.errors import EngineError, JobCancelled
from kinema.jobs.outputs import keep_output
from kinema.jobs.store import JobStore
from kinema.media.encode import write_thumbnail
from kinema.media.probe import probe_video
from kinema.storage import Storage
from kinema.types import CancelCheck, Job, ProgressCallback, VideoResult

log = logging.getLogger(__name__)

_MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


def recorded_operation(job: Job) -> Operation | None:
    """The provider operation an earlier attempt of ``job`` committed, if any."""
    return None if not job.upstream else Operation.from_json(job.upstream)


class ForwardedJobs:
    def __init__(self, store: JobStore, storage: Storage, catalog: Catalog) -> None:
        self.store = store
        self.storage = storage
        self.catalog = catalog

    def run(
        self,
        job: Job,
        engine: Forwarder,
        *,
        on_progress: ProgressCallback,
        cancel_requested: CancelCheck,
        stopping: CancelCheck,
    ) -> VideoResult:
        request = job.request
        spec = self.catalog.get(request.model)
        width, height = self.catalog.frame_size(request)

        def record(operation: Operation) -> None:
            self.store.record_upstream(job.id, job.attempt, operation.to_json())

        forwarding = Forwarding(
            job_id=job.id,
            request=request,
            width=width,
            height=height,
            options=spec.options,
            operation=recorded_operation(job),
            record=record,
            on_progress=on_progress,
            cancel_requested=cancel_requested,
            stopping=stopping,
            scratch=self.storage.scratch_dir(),
            image=self._image(request.image),
            last_image=self._image(request.last_image),
            reference_images=tuple(
                image for key in request.reference_images if (image := self._image(key))
            ),
        )
        path = engine.forward(forwarding)
        try:
            if cancel_requested() or stopping():
                raise JobCancelled("job stopped while its video was being downloaded")
            return self._keep(job, path, engine.name)
        finally:
            path.unlink(missing_ok=True)

    def _image(self, key: str | None) -> Image | None:
        if not key:
            return None
        extension = key.rpartition(".")[2].lower()
        return Image(self.storage.get_bytes(key), _MIME_TYPES.get(extension, "image/png"))

    def _keep(self, job: Job, path: Path, engine: str) -> VideoResult:
        """Probe the provider's MP4 and store it (and a thumbnail) as this attempt's."""
        try:
            video = probe_video(path)
        except EngineError as error:  # the provider's fault: another engine may do better
            raise UpstreamUnavailable(
                f"{engine} returned an unreadable video: {error.message}"
            ) from None
        thumb_path = path.with_suffix(".jpg")
        try:
            write_thumbnail(video.first_frame, thumb_path)
            kept = keep_output(self.storage, job, 0, path, thumb_path, video, engine)
        finally:
            thumb_path.unlink(missing_ok=True)
        log.info("job %s: %s delivered %.2f s of video", job.id, engine, video.duration_s)
        return kept
