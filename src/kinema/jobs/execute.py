"""Running one claimed job: inputs -> engine -> MP4 -> storage -> fenced finish.

``Executor.execute(job)`` is the one function every dispatcher calls (the embedded pool
and the procrastinate queue worker). It never raises for a job's own failure: the
outcome is written to the store, fenced by the job's attempt number, so a worker that
lost its lease cannot overwrite a newer attempt. A ``TransientError`` sends the attempt
back to the queue with exponential backoff until ``max_attempts``.

A model may list several engines: the job goes to the first available one (an upstream
engine under its ``max_in_flight``, a local engine this process can run) and falls back
to the next when one fails with a ``TransientError``. Upstream engines forward the job
to a provider through ``jobs.forward`` and return the provider's video, not frames.
"""

from __future__ import annotations

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
from kinema.engines.upstream import UpstreamEngine
from kinema.errors import JobCancelled, KinemaError, LeaseLost, TransientError
from kinema.jobs.forward import Forwarder, recorded_operation
from kinema.jobs.observer import JobObserver, NoObserver
from kinema.jobs.store import JobStore
from kinema.jobs.submit import job_prefix
from kinema.media.encode import encode_mp4
from kinema.media.images import decode_image
from kinema.observability.context import job_context
from kinema.storage import Storage
from kinema.types import Clip, EngineRequest, GenerationRequest, Job, JobStatus, VideoResult

log = logging.getLogger(__name__)

# Rendering and encoding overlap, so engine progress drives the bar up to here; the
# last stretch is muxing, storing and committing.
_ENGINE_SHARE = 0.97
_MAX_RETRY_DELAY_S = 300.0


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
        route_wait_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        observer: JobObserver | None = None,
    ) -> None:
        self.store = store
        self.observer: JobObserver = observer or NoObserver()
        self.storage = storage
        self.catalog = catalog
        self.engines = engines
        self.progress_interval_s = progress_interval_s
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.route_wait_s = route_wait_s  # how often a job waiting for an engine looks again
        self.forwarder = Forwarder(store, storage, catalog)
        self._clock = clock

    def execute(self, job: Job, control: RunControl) -> None:
        """Generate ``job`` (already claimed at ``job.attempt``) and record the outcome.

        Every log line meanwhile names the job and its key; the outcome is reported to
        the observer with the attempt's wall time."""
        with job_context(job.id, job.owner):
            started = self._clock()
            final = self._execute(job, control)
            if final is not None:
                state, video_s = final
                log.info("job %s attempt %d ended %s", job.id, job.attempt, state.value)
                self.observer.job_finished(
                    job,
                    engine=self._engine_name(job),
                    state=state,
                    generation_s=self._clock() - started,
                    video_s=video_s,
                )

    def _engine_name(self, job: Job) -> str:
        spec = self.catalog.models.get(job.model)
        return spec.engine if spec is not None else "unknown"

    def _execute(self, job: Job, control: RunControl) -> tuple[JobStatus, float | None] | None:
        """Run and record ``job``; its final state (and seconds of video), or None when
        this attempt did not end the job (lease lost, released, retried later)."""
        try:
            result = self._generate(job, control)
        except JobCancelled:
            if control.lost.is_set():
                log.warning("job %s attempt %d lost its lease; dropped", job.id, job.attempt)
                return None
            if control.shutdown.is_set() and not control.cancelled.is_set():
                # Not the owner's wish: put the job back so the next start runs it at once.
                self._record(lambda: self.store.release(job.id, job.attempt), job)
                return None
            if self._record(lambda: self.store.acknowledge_cancel(job.id, job.attempt), job):
                return JobStatus.CANCELLED, None
            return None
        except LeaseLost:
            log.warning("job %s attempt %d lost its lease; dropped", job.id, job.attempt)
            return None
        except TransientError as error:
            return self._retry_later(job, error)
        except KinemaError as error:
            log.info("job %s failed: %s", job.id, error.message)
            return self._fail(job, error.code, error.message)
        except Exception as error:  # an engine bug must fail the job, not the worker
            log.exception("job %s crashed", job.id)
            return self._fail(job, "engine_error", f"{type(error).__name__}: {error}")
        try:
            self.store.succeed(job.id, job.attempt, result)
        except Exception as error:
            # A newer attempt owns the job now, or the success could not be written (the
            # database is gone): this attempt's files must not survive. In the second case
            # the job keeps its lease until it lapses, then runs again.
            lost = isinstance(error, LeaseLost)
            why = "finished after losing its lease" if lost else "recording its success failed"
            log.warning("job %s attempt %d %s", job.id, job.attempt, why, exc_info=not lost)
            for key in (result.video_key, result.thumbnail_key):
                if key:
                    self.storage.delete(key)
            return None
        return JobStatus.SUCCEEDED, result.duration_s

    def _retry_later(self, job: Job, error: TransientError) -> tuple[JobStatus, None] | None:
        """Back to the queue with exponential backoff, until attempts run out."""
        if job.attempt >= self.max_attempts:
            log.info("job %s failed after %d attempts: %s", job.id, job.attempt, error.message)
            return self._fail(job, error.code, error.message)
        delay = min(self.retry_base_s * 2 ** (job.attempt - 1), _MAX_RETRY_DELAY_S)
        log.warning(
            "job %s attempt %d: %s; retrying in %.1f s", job.id, job.attempt, error.message, delay
        )
        self._record(lambda: self.store.release(job.id, job.attempt, retry_in_s=delay), job)
        return None

    def _fail(self, job: Job, code: str, message: str) -> tuple[JobStatus, None] | None:
        if self._record(lambda: self.store.fail(job.id, job.attempt, code, message), job):
            return JobStatus.FAILED, None
        return None

    def _record(self, write: Callable[[], object], job: Job) -> bool:
        """Make a fenced write; False when the attempt had lost its lease."""
        try:
            write()
        except LeaseLost:
            log.warning("job %s attempt %d: outcome dropped, lease lost", job.id, job.attempt)
            return False
        except Exception:  # the job keeps its lease until it lapses, then runs again
            log.exception("job %s attempt %d: recording its outcome failed", job.id, job.attempt)
            return False
        return True

    def _generate(self, job: Job, control: RunControl) -> VideoResult:
        """Route ``job`` through its model's engines: the first one available takes it,
        and a retryable failure (``TransientError``) falls back to the next.

        A job whose earlier attempt left an operation at a provider goes back to that
        engine first, whatever its load, so the operation is resumed, not resubmitted.
        """
        chain = list(self.catalog.get(job.request.model).engines)
        recorded = recorded_operation(job)
        resume = recorded.engine if recorded and recorded.ref and recorded.engine in chain else None
        if resume is not None:
            chain.remove(resume)
            chain.insert(0, resume)
        failure: TransientError | None = None
        while chain:
            name = self._route(job, chain, control, resume)
            try:
                return self._run_engine(job, name, control)
            except TransientError as error:
                chain.remove(name)
                failure = error
                if chain:
                    log.warning(
                        "job %s: engine %s failed (%s); falling back to %s",
                        job.id, name, error.message, chain[0],
                    )
        assert failure is not None
        raise failure

    def _route(self, job: Job, chain: list[str], control: RunControl, resume: str | None) -> str:
        """The first engine of ``chain`` that can take the job now, waiting while every
        upstream engine is at its ``max_in_flight``. An engine this process cannot set up
        (``NotSupported`` without torch, ``EngineError`` for a ``device = "cuda"`` engine on
        a machine without a GPU, an upstream key not in the environment) is dropped."""
        while True:
            unavailable: KinemaError | None = None
            for name in list(chain):
                try:
                    engine = self.engines.get(name)
                except KinemaError as error:  # cannot be built or set up in this process
                    log.info("job %s: engine %s is not available here: %s", job.id, name, error)
                    chain.remove(name)
                    unavailable = error
                    continue
                limit = None
                if isinstance(engine, UpstreamEngine) and name != resume:
                    limit = engine.max_in_flight
                if self.store.route(job.id, job.attempt, name, max_in_flight=limit):
                    return name
            if not chain:
                assert unavailable is not None
                raise unavailable
            if control.should_stop():
                raise JobCancelled("stopped while waiting for a free engine")
            time.sleep(self.route_wait_s)

    def _run_engine(self, job: Job, name: str, control: RunControl) -> VideoResult:
        engine: Engine = self.engines.get(name)
        on_progress = self._progress_writer(job, control)
        if isinstance(engine, UpstreamEngine):
            return self.forwarder.run(
                job,
                engine,
                on_progress=on_progress,
                cancel_requested=control.cancelled.is_set,
                stopping=lambda: control.lost.is_set() or control.shutdown.is_set(),
            )
        request = job.request
        config = self.catalog.engines[name]
        width, height = self.catalog.frame_size(request)
        engine_request = EngineRequest(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=width,
            height=height,
            fps=config.fps,
            num_frames=request.duration_s * config.fps,
            generate_audio=request.generate_audio,
            seed=_seed_for(job.id, request),
            image=self._image(request.image),
            last_image=self._image(request.last_image),
            reference_images=tuple(
                image for key in request.reference_images if (image := self._image(key))
            ),
            options=dict(config.options),
            resize_mode=request.resize_mode,
        )

        def is_cancelled() -> bool:
            return control.should_stop()

        clip = engine.run(engine_request, on_progress, is_cancelled)
        return self._store_clip(job, clip, control, name)

    def _image(self, key: str | None) -> Image.Image | None:
        return decode_image(self.storage.get_bytes(key)) if key else None

    def _progress_writer(self, job: Job, control: RunControl) -> Callable[[float], None]:
        # The first write waits one interval, so a job shorter than that writes no
        # progress at all (its success sets 1.0); once a bar is showing, its end is written.
        started = self._clock()
        last_write = [started]
        last_report: list[float | None] = [None]  # the first report's wait includes setup
        engine = self._engine_name(job)

        def on_progress(fraction: float) -> None:
            now = self._clock()
            previous = last_report[0]
            if previous is not None:
                self.observer.engine_step(engine, now - previous)
            last_report[0] = now
            due = now - last_write[0] >= self.progress_interval_s
            if not due and (fraction < 1.0 or last_write[0] == started):
                return
            last_write[0] = now
            try:
                self.store.set_progress(job.id, job.attempt, fraction * _ENGINE_SHARE)
            except LeaseLost:
                control.lost.set()

        return on_progress

    def _store_clip(self, job: Job, clip: Clip, control: RunControl, engine: str) -> VideoResult:
        scratch = self.storage.scratch_dir()
        video_path = scratch / f"{job.id}-{job.attempt}.mp4"
        thumb_path = scratch / f"{job.id}-{job.attempt}.jpg"
        try:
            # The encoder writes the thumbnail from the first frame, once the video is done.
            encoded = encode_mp4(clip, video_path, thumbnail_path=thumb_path)
            if control.should_stop():
                raise JobCancelled("job stopped while its video was being written")
            prefix = job_prefix(job.id)
            # Keys carry the attempt so a late, fenced-out attempt never overwrites the
            # output of the attempt that committed.
            video_key = f"{prefix}video-{job.attempt}.mp4"
            size = self.storage.put_file(video_key, video_path)
            thumb_key = None
            if thumb_path.exists():
                thumb_key = f"{prefix}thumbnail-{job.attempt}.jpg"
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
            engine=engine,
        )


def _seed_for(job_id: str, request: GenerationRequest) -> int:
    """The request's seed, or one derived from the job id so a retry renders the same."""
    return request.seed if request.seed is not None else zlib.crc32(job_id.encode())


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
