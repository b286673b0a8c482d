"""Running one claimed job: inputs -> engine -> MP4 -> storage -> fenced finish.

``Executor.execute(job)`` is the one function every dispatcher calls (the embedded pool
and the procrastinate queue worker). It never raises for a job's own failure: the
outcome is written to the store, fenced by the job's attempt number, so a worker that
lost its lease cannot overwrite a newer attempt. A ``TransientError`` of an engine sends
the attempt back to the queue with exponential backoff until ``max_attempts``. An outage
of the database, the bucket or the disk is waited out in place (``jobs.patience``): the
attempt's storage calls and outcome writes are repeated, and a render that met one (a
full disk under the encoder) is made again, for ``outage_wait_s``; no attempt is spent.

A model may list several engines: the job goes to the first available one (an upstream
engine under its ``max_in_flight``, a local engine this process can run) and falls back
to the next when one fails with a ``TransientError``. Upstream engines forward the job
to a provider through ``jobs.forward`` and return the provider's video, not frames.

A job asking for several samples runs the engine once per sample, each with its own
seed (``sample_seeds``), and stores each video with its own thumbnail. An extension
decodes its source video, hands the engine the source's last frame (and one from a
little earlier, for engines that continue a motion), and stores the source followed by
the new clip as one video. A job whose caller named a folder of the store
(``storage_uri``) has each video copied there before its success is written.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from PIL import Image

from kinema.catalog import Catalog
from kinema.engines.base import Engine, Forwarder
from kinema.engines.registry import EngineHost
from kinema.errors import (
    InvalidRequest,
    JobCancelled,
    KinemaError,
    LeaseLost,
    NotSupported,
    TransientError,
)
from kinema.jobs.forward import ForwardedJobs, recorded_operation
from kinema.jobs.keys import delivered_video_key, output_thumbnail_key, output_video_key
from kinema.jobs.observer import JobObserver, NoObserver
from kinema.jobs.outputs import keep_output
from kinema.jobs.patience import Patience, PatientStorage
from kinema.jobs.progress import ProgressWriter, SampleProgress
from kinema.jobs.store import JobStore
from kinema.media.encode import encode_mp4
from kinema.media.images import decode_image
from kinema.media.source_video import SourceVideo, VideoFacts, inspect_video
from kinema.media.splice import splice
from kinema.observability.context import job_context
from kinema.storage import Storage
from kinema.types import Clip, EngineRequest, GenerationRequest, Job, JobStatus, VideoResult

log = logging.getLogger(__name__)

_MAX_RETRY_DELAY_S = 300.0
_COPY_CHUNK_BYTES = 2**20  # a remote source video is copied to scratch this much at a time
# Where, before a source's end, the earlier of its two closing pictures is taken: a share
# of its length, so an eased move shows a clear but small change (about a tenth of it).
_LOOK_BACK = 0.2


class RunControl:
    """Why a running job should stop: cancelled by its owner, lease lost, or shutdown."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.shutdown = threading.Event()
        self.engine: str | None = None  # the engine the job was routed to last

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
        outage_wait_s: float = 300.0,
    ) -> None:
        self.store = store
        self.observer: JobObserver = observer or NoObserver()
        self.patience = Patience(outage_wait_s)
        self.storage = PatientStorage(storage, self.patience)
        self.catalog = catalog
        self.engines = engines
        self.progress_interval_s = progress_interval_s
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.route_wait_s = route_wait_s  # how often a job waiting for an engine looks again
        self.forwarder = ForwardedJobs(store, self.storage, catalog)
        self._clock = clock

    def execute(self, job: Job, control: RunControl) -> None:
        """Generate ``job`` (already claimed at ``job.attempt``) and record the outcome.

        Every log line meanwhile names the job and its key; the outcome is reported to
        the observer with the attempt's wall time."""
        with job_context(job.id, job.owner), self.patience.watching(control.should_stop):
            started = self._clock()
            final = self._execute(job, control)
            if final is not None:
                state, video_s = final
                log.info("job %s attempt %d ended %s", job.id, job.attempt, state.value)
                self.observer.job_finished(
                    job,
                    engine=control.engine or self._engine_name(job),
                    state=state,
                    generation_s=self._clock() - started,
                    video_s=video_s,
                )

    def count_finished(self, job: Job) -> None:
        """Report a job the supervisor ended (a lost worker's job failed or cancelled, an
        overdue off-peak job cancelled), which no attempt of this executor reports."""
        assert job.status.terminal, job.status
        self.observer.job_finished(job, engine=self._engine_name(job), state=job.status)

    def report_lost_lease(self, job: Job, worker_id: str | None) -> None:
        """Say that ``job``'s lease ran out on ``worker_id`` (the worker died or hung)
        and what became of it: back in the queue, failed (no attempts left) or cancelled."""
        outcome = {
            JobStatus.QUEUED: f"re-queued for attempt {job.attempt + 1}",
            JobStatus.FAILED: f"failed ({job.error_code}: no attempts left)",
            JobStatus.CANCELLED: "cancelled (its owner had asked)",
        }.get(job.status, job.status.value)
        log.warning(
            "job %s attempt %d: lease expired on worker %s; %s",
            job.id, job.attempt, worker_id or "unknown", outcome,
        )  # fmt: skip
        self.observer.lease_expired(job, worker_id=worker_id or "unknown")

    def _engine_name(self, job: Job) -> str:
        """The engine that ran ``job`` (its row's), else its model's first."""
        if job.engine is not None:
            return job.engine
        spec = self.catalog.models.get(job.model)
        return spec.engine if spec is not None else "unknown"

    def _execute(self, job: Job, control: RunControl) -> tuple[JobStatus, float | None] | None:
        """Run and record ``job``; its final state (and seconds of video), or None when
        this attempt did not end the job (lease lost, released, retried later)."""
        try:
            outputs = self.patience.call(
                lambda: self._produce(job, control), f"job {job.id}", control.should_stop
            )
        except JobCancelled:
            if control.lost.is_set():
                log.warning("job %s attempt %d lost its lease; dropped", job.id, job.attempt)
                return None
            if control.shutdown.is_set() and not control.cancelled.is_set():
                # Not the owner's wish: put the job back so the next start runs it at once.
                release = partial(self.store.release, job.id, job.attempt)
                self._record(release, job, patient=False)
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
            self.patience.call(
                lambda: self.store.succeed(job.id, job.attempt, outputs),
                f"recording job {job.id}'s success",
                lambda: control.lost.is_set() or control.shutdown.is_set(),
            )
        except Exception as error:
            # A newer attempt owns the job now, or the success could not be written (the
            # database is gone): this attempt's files must not survive. In the second case
            # the job keeps its lease until it lapses, then runs again.
            lost = isinstance(error, LeaseLost)
            why = "finished after losing its lease" if lost else "recording its success failed"
            log.warning("job %s attempt %d %s", job.id, job.attempt, why, exc_info=not lost)
            self._discard(outputs)
            return None
        self._remove_earlier_attempts(job)
        return JobStatus.SUCCEEDED, sum(output.duration_s for output in outputs)

    def _remove_earlier_attempts(self, job: Job) -> None:
        """Files an earlier attempt stored before its worker died (killed between storing
        a video and recording it): no one will ever name them, so they go now."""
        count = max(1, job.request.sample_count)
        self._remove_keys(
            key
            for attempt in range(1, job.attempt)
            for index in range(count)
            for key in (
                output_video_key(job.id, attempt, index),
                output_thumbnail_key(job.id, attempt, index),
            )
        )

    def _produce(self, job: Job, control: RunControl) -> list[VideoResult]:
        outputs = self._generate(job, control)
        if job.request.storage_uri is not None:
            outputs = self._deliver(job, outputs)
        return outputs

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

    def _record(self, write: Callable[[], object], job: Job, *, patient: bool = True) -> bool:
        """Make a fenced write (waiting out a database outage unless not ``patient``: a
        shutdown does not wait); False when the attempt had lost its lease or the write
        could not be made."""
        try:
            what = f"recording job {job.id}'s outcome"
            self.patience.call(write, what, lambda: not patient)
        except LeaseLost:
            log.warning("job %s attempt %d: outcome dropped, lease lost", job.id, job.attempt)
            return False
        except Exception:  # the job keeps its lease until it lapses, then runs again
            log.exception("job %s attempt %d: recording its outcome failed", job.id, job.attempt)
            return False
        return True

    def _generate(self, job: Job, control: RunControl) -> list[VideoResult]:
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
                    forwarder = engine if isinstance(engine, Forwarder) else None
                    if forwarder is not None:
                        _check_forwardable(job, name)
                except KinemaError as error:  # cannot be built or set up in this process
                    log.info("job %s: engine %s is not available here: %s", job.id, name, error)
                    chain.remove(name)
                    unavailable = error
                    continue
                limit = None
                if forwarder is not None and name != resume:
                    limit = forwarder.max_in_flight
                if self.store.route(job.id, job.attempt, name, max_in_flight=limit):
                    return name
            if not chain:
                assert unavailable is not None
                raise unavailable
            if control.should_stop():
                raise JobCancelled("stopped while waiting for a free engine")
            time.sleep(self.route_wait_s)

    def _run_engine(self, job: Job, name: str, control: RunControl) -> list[VideoResult]:
        control.engine = name
        engine = self.engines.get(name)
        writer = self._progress_writer(job, name, control)
        if isinstance(engine, Forwarder):
            _check_forwardable(job, name)
            return [
                self.forwarder.run(
                    job,
                    engine,
                    on_progress=writer.forwarded,
                    cancel_requested=control.cancelled.is_set,
                    stopping=lambda: control.lost.is_set() or control.shutdown.is_set(),
                )
            ]
        assert isinstance(engine, Engine)  # an engine either forwards or renders
        request = job.request
        config = self.catalog.engines[name]
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
                facts, closing = closing_pictures(path)
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
            resize_mode=request.resize_mode,
            previous_frames=previous,
        )

        def is_cancelled() -> bool:
            return control.should_stop()

        # 2. One engine run per sample, each from its own seed, stored as it is done.
        count = max(1, request.sample_count)
        outputs: list[VideoResult] = []
        try:
            for index, seed in enumerate(sample_seeds(base.seed, count)):
                progress = SampleProgress(writer, index, count)
                engine_request = dataclasses.replace(base, seed=seed)
                clip = engine.run(engine_request, progress.engine, is_cancelled)
                if source is not None:
                    clip = splice(source, clip)
                outputs.append(self._store_clip(job, index, clip, control, name, progress))
        except BaseException:
            self._discard(outputs)
            raise
        finally:
            if source is not None and scratch_copy:
                source.path.unlink(missing_ok=True)
        return outputs

    def _deliver(self, job: Job, outputs: list[VideoResult]) -> list[VideoResult]:
        """Copy each video under the folder the caller named (``storage_uri``), before the
        success is written, and record each copy's key with its output.

        Copying here, as part of finishing the job, makes the copies durable: a job that
        succeeded has them, and a crash before the success commits leaves a job that runs
        again (and copies again, to the same keys), never an answer naming a missing
        object. The keys are the job's, not the attempt's (Vertex AI's layout): a late,
        fenced-out attempt may overwrite a copy with its own render of the same request,
        which is why a failed success (or a copy failing part way) leaves the copies in
        place rather than deleting what the committed attempt may have written; a retry
        writes the same keys again. Copies are the caller's: deleting or expiring the job
        removes only its own directory.
        """
        uri = job.request.storage_uri or ""
        folder = self.storage.key_of_uri(uri.rstrip("/") + "/")
        try:
            if folder is None:
                raise InvalidRequest(f"{uri[:200]} is no longer storage this server writes to")
            delivered = []
            for index, output in enumerate(outputs):
                key = delivered_video_key(folder, job.id, index)
                self.storage.copy(output.video_key, key)
                delivered.append(dataclasses.replace(output, delivered_key=key))
        except BaseException:
            self._discard(outputs)
            raise
        return delivered

    def _scratch_copy(self, key: str, job: Job) -> Path:
        """A local file holding ``key`` of a remote store, to decode it from: streamed (a
        source video may be hundreds of megabytes), and copied again from the start when
        the store goes away part way, for as long as the attempt waits out an outage."""
        copy = self.storage.scratch_dir() / f"{job.id}-{job.attempt}-source.mp4"

        def fetch() -> Path:
            try:
                with self.storage.open_read(key) as source, copy.open("wb") as target:
                    shutil.copyfileobj(source, target, _COPY_CHUNK_BYTES)
            except BaseException:
                copy.unlink(missing_ok=True)
                raise
            return copy

        return self.patience.call(fetch, f"reading {key}")

    def _discard(self, outputs: list[VideoResult]) -> None:
        """Remove an attempt's files; one that cannot be removed now is logged (the job's
        directory goes when the job is deleted or expires)."""
        self._remove_keys(
            key for output in outputs for key in (output.video_key, output.thumbnail_key) if key
        )

    def _remove_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                self.storage.delete(key)
            except Exception as error:
                log.warning("could not remove %s: %s", key, error)

    def _image(self, key: str | None) -> Image.Image | None:
        return decode_image(self.storage.get_bytes(key)) if key else None

    def _progress_writer(self, job: Job, engine: str, control: RunControl) -> ProgressWriter:
        return ProgressWriter(
            self.store,
            job.id,
            job.attempt,
            engine=engine,
            observer=self.observer,
            lost=control.lost,
            interval_s=self.progress_interval_s,
            clock=self._clock,
        )

    def _store_clip(
        self,
        job: Job,
        index: int,
        clip: Clip,
        control: RunControl,
        engine: str,
        progress: SampleProgress,
    ) -> VideoResult:
        scratch = self.storage.scratch_dir()
        video_path = scratch / f"{job.id}-{job.attempt}-{index}.mp4"
        thumb_path = scratch / f"{job.id}-{job.attempt}-{index}.jpg"
        try:
            # The encoder writes the thumbnail from the first frame, once the video is done.
            progress.encoding()
            encoded = encode_mp4(
                clip,
                video_path,
                thumbnail_path=thumb_path,
                on_written=partial(progress.written, total=clip.num_frames),
            )
            if control.should_stop():
                raise JobCancelled("job stopped while its video was being written")
            kept = keep_output(self.storage, job, index, video_path, thumb_path, encoded, engine)
            progress.stored()
            return dataclasses.replace(kept, notes=tuple(clip.notes))
        finally:
            _remove(video_path, thumb_path)


def closing_pictures(path: Path) -> tuple[VideoFacts, list[Image.Image]]:
    """A source video's facts and the pictures an extension continues from: the frame
    ``_LOOK_BACK`` of its length before the last, then the last."""
    return inspect_video(path, look_back=_LOOK_BACK)


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


def _check_forwardable(job: Job, engine: str) -> None:
    """Upstream engines forward one new video per job: an extension or several samples
    go to the model's next engine (``NotSupported`` drops this one from the route)."""
    if job.request.video or job.request.sample_count > 1:
        raise NotSupported(
            f"engine {engine!r} forwards one new video per job: extensions and several "
            "samples are made by this server's own engines"
        )
