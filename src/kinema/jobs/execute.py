"""Running one claimed job: inputs -> engine -> MP4 -> storage -> fenced finish.

``Executor.execute(job)`` is the one function every dispatcher calls (the embedded pool
and the procrastinate queue worker). It never raises for a job's own failure: the
outcome is written to the store, fenced by the job's attempt number, so a worker that
lost its lease cannot overwrite a newer attempt. A ``TransientError`` sends the attempt
back to the queue with exponential backoff until ``max_attempts``.

A job asking for several samples runs the engine once per sample, each with its own
seed (``sample_seeds``), and stores each video with its own thumbnail. An extension
decodes its source video, hands the engine the source's last frame (and one from a
little earlier, for engines that continue a motion), and stores the source followed by
the new clip as one video.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from kinema.catalog import Catalog
from kinema.engines.base import Engine
from kinema.engines.registry import EngineHost
from kinema.errors import JobCancelled, KinemaError, LeaseLost, TransientError
from kinema.jobs.keys import output_thumbnail_key, output_video_key
from kinema.jobs.store import JobStore
from kinema.media.encode import encode_mp4
from kinema.media.images import decode_image
from kinema.media.source_video import SourceVideo, inspect_video
from kinema.media.splice import splice
from kinema.storage import Storage
from kinema.types import Clip, EngineRequest, GenerationRequest, Job, VideoResult

log = logging.getLogger(__name__)

# Rendering and encoding overlap, so engine progress drives the bar up to here; the
# last stretch is muxing, storing and committing.
_ENGINE_SHARE = 0.97
_MAX_RETRY_DELAY_S = 300.0
# Where, before a source's end, the earlier of its two closing pictures is taken: a share
# of its length, so an eased move shows a clear but small change (about a tenth of it).
_LOOK_BACK = 0.2


class RunControl:
    """Why a running job should stop: cancelled by its owner, lease lost, or shutdown."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.shutdown = threading.Event()

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set() or self.shutdown.is_set()


class Executor:
    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        catalog: Catalog,
        engines: EngineHost,
        *,
        progress_interval_s: float = 0.5,
        max_attempts: int = 3,
        retry_base_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.storage = storage
        self.catalog = catalog
        self.engines = engines
        self.progress_interval_s = progress_interval_s
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self._clock = clock

    def execute(self, job: Job, control: RunControl) -> None:
        """Generate ``job`` (already claimed at ``job.attempt``) and record the outcome."""
        try:
            outputs = self._generate(job, control)
        except JobCancelled:
            if control.lost.is_set():
                log.warning("job %s attempt %d lost its lease; dropped", job.id, job.attempt)
                return
            if control.shutdown.is_set() and not control.cancelled.is_set():
                # Not the owner's wish: put the job back so the next start runs it at once.
                self._record(lambda: self.store.release(job.id, job.attempt), job)
                return
            self._record(lambda: self.store.acknowledge_cancel(job.id, job.attempt), job)
            return
        except LeaseLost:
            log.warning("job %s attempt %d lost its lease; dropped", job.id, job.attempt)
            return
        except TransientError as error:
            self._retry_later(job, error)
            return
        except KinemaError as error:
            log.info("job %s failed: %s", job.id, error.message)
            self._fail(job, error.code, error.message)
            return
        except Exception as error:  # an engine bug must fail the job, not the worker
            log.exception("job %s crashed", job.id)
            self._fail(job, "engine_error", f"{type(error).__name__}: {error}")
            return
        try:
            self.store.succeed(job.id, job.attempt, outputs)
        except LeaseLost:
            # A newer attempt owns the job now; this attempt's files must not survive.
            log.warning("job %s attempt %d finished after losing its lease", job.id, job.attempt)
            self._discard(outputs)

    def _retry_later(self, job: Job, error: TransientError) -> None:
        """Back to the queue with exponential backoff, until attempts run out."""
        if job.attempt >= self.max_attempts:
            log.info("job %s failed after %d attempts: %s", job.id, job.attempt, error.message)
            self._fail(job, error.code, error.message)
            return
        delay = min(self.retry_base_s * 2 ** (job.attempt - 1), _MAX_RETRY_DELAY_S)
        log.warning(
            "job %s attempt %d: %s; retrying in %.1f s", job.id, job.attempt, error.message, delay
        )
        self._record(lambda: self.store.release(job.id, job.attempt, retry_in_s=delay), job)

    def _fail(self, job: Job, code: str, message: str) -> None:
        self._record(lambda: self.store.fail(job.id, job.attempt, code, message), job)

    def _record(self, write: Callable[[], object], job: Job) -> None:
        try:
            write()
        except LeaseLost:
            log.warning("job %s attempt %d: outcome dropped, lease lost", job.id, job.attempt)

    def _generate(self, job: Job, control: RunControl) -> list[VideoResult]:
        request = job.request
        spec = self.catalog.get(request.model)
        config = self.catalog.engines[spec.engine]
        engine: Engine = self.engines.get(spec.engine)
        width, height = self.catalog.frame_size(request)
        source: SourceVideo | None = None
        scratch_copy = False
        image = self._image(request.image)
        previous: tuple[Image.Image, ...] = ()
        if request.video:
            # 1. An extension: the new clip starts on the source's last frame, at its size.
            path = self.storage.local_path(request.video)
            if path is None:
                path, scratch_copy = self._scratch_copy(request.video, job), True
            try:
                facts, closing = inspect_video(path, look_back=_LOOK_BACK)
            except BaseException:
                if scratch_copy:
                    path.unlink(missing_ok=True)
                raise
            source = SourceVideo(path, facts)
            width, height = facts.width, facts.height
            image, previous = closing[-1], tuple(closing)
        base = EngineRequest(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=width,
            height=height,
            fps=config.fps,
            num_frames=request.duration_s * config.fps,
            generate_audio=request.generate_audio,
            seed=_seed_for(job.id, request),
            image=image,
            last_image=self._image(request.last_image),
            reference_images=tuple(
                picture for key in request.reference_images if (picture := self._image(key))
            ),
            options=dict(config.options),
            previous_frames=previous,
        )

        def is_cancelled() -> bool:
            return control.should_stop()

        # 2. One engine run per sample, each from its own seed, stored as it is done.
        count = max(1, request.sample_count)
        report = self._progress_writer(job, control)
        outputs: list[VideoResult] = []
        try:
            for index, seed in enumerate(sample_seeds(base.seed, count)):

                def on_progress(fraction: float, done: int = index) -> None:
                    report((done + fraction) / count)

                engine_request = dataclasses.replace(base, seed=seed)
                clip = engine.run(engine_request, on_progress, is_cancelled)
                if source is not None:
                    clip = splice(source, clip)
                outputs.append(self._store_clip(job, index, clip, control))
        except BaseException:
            self._discard(outputs)
            raise
        finally:
            if source is not None and scratch_copy:
                source.path.unlink(missing_ok=True)
        return outputs

    def _scratch_copy(self, key: str, job: Job) -> Path:
        """A local file holding ``key`` of a remote store, to decode it from."""
        copy = self.storage.scratch_dir() / f"{job.id}-{job.attempt}-source.mp4"
        copy.write_bytes(self.storage.get_bytes(key))
        return copy

    def _discard(self, outputs: list[VideoResult]) -> None:
        for output in outputs:
            for key in (output.video_key, output.thumbnail_key):
                if key:
                    self.storage.delete(key)

    def _image(self, key: str | None) -> Image.Image | None:
        return decode_image(self.storage.get_bytes(key)) if key else None

    def _progress_writer(self, job: Job, control: RunControl) -> Callable[[float], None]:
        # The first write waits one interval, so a job shorter than that writes no
        # progress at all (its success sets 1.0); once a bar is showing, its end is written.
        started = self._clock()
        last_write = [started]

        def on_progress(fraction: float) -> None:
            now = self._clock()
            due = now - last_write[0] >= self.progress_interval_s
            if not due and (fraction < 1.0 or last_write[0] == started):
                return
            last_write[0] = now
            try:
                self.store.set_progress(job.id, job.attempt, fraction * _ENGINE_SHARE)
            except LeaseLost:
                control.lost.set()

        return on_progress

    def _store_clip(self, job: Job, index: int, clip: Clip, control: RunControl) -> VideoResult:
        scratch = self.storage.scratch_dir()
        video_path = scratch / f"{job.id}-{job.attempt}-{index}.mp4"
        thumb_path = scratch / f"{job.id}-{job.attempt}-{index}.jpg"
        try:
            # The encoder writes the thumbnail from the first frame, once the video is done.
            encoded = encode_mp4(clip, video_path, thumbnail_path=thumb_path)
            if control.should_stop():
                raise JobCancelled("job stopped while its video was being written")
            # Keys carry the attempt so a late, fenced-out attempt never overwrites the
            # output of the attempt that committed.
            video_key = output_video_key(job.id, job.attempt, index)
            size = self.storage.put_file(video_key, video_path)
            thumb_key = None
            if thumb_path.exists():
                thumb_key = output_thumbnail_key(job.id, job.attempt, index)
                self.storage.put_file(thumb_key, thumb_path)
        finally:
            _remove(video_path, thumb_path)
        return VideoResult(
            video_key=video_key,
            thumbnail_key=thumb_key,
            width=encoded.width,
            height=encoded.height,
            fps=encoded.fps,
            duration_s=encoded.duration_s,
            has_audio=encoded.has_audio,
            size_bytes=size,
        )


def _seed_for(job_id: str, request: GenerationRequest) -> int:
    """The request's seed, or one derived from the job id so a retry renders the same."""
    return request.seed if request.seed is not None else zlib.crc32(job_id.encode())


def sample_seeds(seed: int, count: int) -> list[int]:
    """The seed of each of ``count`` samples: the first is ``seed`` itself (so one sample
    renders as a request without a count does), the others follow from it, the same for
    the same ``seed`` every time."""
    return [seed] + [zlib.crc32(f"{seed}/{index}".encode()) for index in range(1, count)]


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
