"""The scale-out worker: a procrastinate worker whose one task runs a kinema job.

``kinema worker --models a,b --concurrency N`` (and ``kinema serve`` under procrastinate
dispatch) runs one of these in a thread with its own event loop. For each procrastinate
job fetched from the models' queues, the task:

1. claims the job row with that procrastinate job's id (``JobStore.claim``): one fenced
   UPDATE that starts the next attempt, or finds the row cancelled, finished, running or
   awaiting another queue entry, and then does nothing;
2. runs it through the process's ``WorkerPool`` (``concurrency=0``), whose supervisor
   renews the attempt's lease, passes on cancel requests, and re-queues other workers'
   expired attempts (each re-queue defers one new procrastinate job in its transaction);
3. stops the engine when procrastinate reports an abort: a user cancel (notified by
   PostgreSQL the moment the cancel commits) or this worker shutting down (the job is
   released back to the queue).

Errors of the task itself (the database unreachable while claiming) are retried by
procrastinate with exponential backoff; a job's own outcome is never a procrastinate
failure, it is written to the job row. Beside procrastinate's own heartbeat, a loop
recovers procrastinate jobs left ``doing`` by dead workers: one whose row still waits
for it goes back to ``todo``; any other is closed as ``aborted`` (the row's lease recovery
re-queues the kinema job as a new procrastinate job, or ends it).

So procrastinate's own table reads: ``succeeded`` entries are deleted; ``failed`` means the
task itself failed (never a job's outcome, which lives in the job row); ``aborted`` is an
attempt given up, by a cancel, a shutdown or a lost worker, whose job carries on (or ended)
through its row. ``kinema jobs show`` has the job's truth.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from kinema.errors import TransientError
from kinema.jobs.dispatch import TASK_NAME, queue_name
from kinema.jobs.execute import RunControl
from kinema.jobs.pool import WorkerPool
from kinema.jobs.store import JobStore
from kinema.jobs.workers import WorkerRegistry

if TYPE_CHECKING:
    import procrastinate
    from procrastinate.job_context import AbortReason, JobContext

log = logging.getLogger(__name__)

# Task errors worth retrying: the job row is untouched, so a later run can claim it.
_TRANSIENT = (TransientError, OperationalError, InterfaceError)
_TASK_RETRIES = 6  # waits 2, 4, 8, 16, 32, 64 s
_TASK_RETRY_BASE_S = 2


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq (and so procrastinate) wants it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class _QueueControl(RunControl):
    """A run control that also listens to procrastinate's abort for this job."""

    def __init__(self, abort_reason: Callable[[], AbortReason | None]) -> None:
        super().__init__()
        self._abort_reason = abort_reason

    def should_stop(self) -> bool:
        reason = self._abort_reason()
        if reason is not None:
            shutdown = reason.value == "shutdown"
            (self.shutdown if shutdown else self.cancelled).set()
        return super().should_stop()


class QueueWorker:
    def __init__(
        self,
        *,
        database_url: str,
        store: JobStore,
        pool: WorkerPool,
        registry: WorkerRegistry,
        models: Collection[str] | None,
        concurrency: int,
        lease_s: float,
        heartbeat_s: float,
        poll_s: float,
        worker_id: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("a queue worker needs a concurrency of at least 1")
        self.database_url = database_url
        self.store = store
        self.pool = pool
        self.registry = registry
        self.models = None if models is None else sorted(models)
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.host = socket.gethostname()
        self.worker_id = worker_id or f"{self.host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._thread: threading.Thread | None = None
        self._beats: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker_task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._failure: BaseException | None = None

    @property
    def queues(self) -> list[str] | None:
        return None if self.models is None else [queue_name(m) for m in self.models]

    # --- life cycle ---

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect and start taking jobs in a background thread."""
        self._beat()  # first, so status polls see this worker as soon as it takes jobs
        self._thread = threading.Thread(target=self._main, name="kinema-queue", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or self._failure is not None:
            raise RuntimeError(f"the queue worker did not start: {self._failure!r}")
        self._beats = threading.Thread(target=self._beat_loop, name="kinema-beat", daemon=True)
        self._beats.start()
        log.info(
            "worker %s taking %s with %d slots",
            self.worker_id,
            ", ".join(self.models) if self.models else "every model",
            self.concurrency,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs; running ones are released to the queue for other workers."""
        self._stop.set()
        loop, task = self._loop, self._worker_task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        for thread in (self._thread, self._beats):
            if thread is not None:
                thread.join(timeout_s)
        try:
            self.registry.leave(self.worker_id)
        except Exception:
            log.exception("removing worker %s from the registry failed", self.worker_id)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- procrastinate ---

    def _app(self) -> procrastinate.App:
        import procrastinate

        app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=libpq_url(self.database_url),
                min_size=2,
                max_size=self.concurrency + 4,
            )
        )
        retry = procrastinate.RetryStrategy(
            max_attempts=_TASK_RETRIES,
            exponential_wait=_TASK_RETRY_BASE_S,
            retry_exceptions=list(_TRANSIENT),
        )

        @app.task(name=TASK_NAME, pass_context=True, retry=retry)
        def run_job(context: JobContext, job_id: str) -> None:
            self.run_job(context, job_id)

        return app

    def run_job(self, context: JobContext, job_id: str) -> None:
        """Claim ``job_id`` for this procrastinate job and execute it."""
        dispatch_id = context.job.id
        assert dispatch_id is not None
        job = self.store.claim(
            job_id, dispatch_id=dispatch_id, worker_id=self.worker_id, lease_s=self.lease_s
        )
        if job is None:
            log.info(
                "queue entry %d of job %s is not the one it waits for; skipped",
                dispatch_id,
                job_id,
                extra={"job_id": job_id},
            )
            return
        self.pool.run(job, _QueueControl(context.abort_reason))

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # surfaced by start(); logged for a running worker
            self._failure = error
            self._started.set()
            if not self._stop.is_set():
                log.exception("the queue worker stopped")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        app = self._app()
        async with app.open_async():
            self._worker_task = asyncio.create_task(
                app.run_worker_async(
                    queues=self.queues,  # type: ignore[arg-type]  # None: all queues
                    name=self.worker_id,
                    concurrency=self.concurrency,
                    # A NOTIFY wakes the worker on each defer; polling only catches
                    # delayed retries coming due and notifications lost to reconnects.
                    fetch_job_polling_interval=max(self.poll_s, 0.5),
                    abort_job_polling_interval=self.heartbeat_s,
                    update_heartbeat_interval=self.heartbeat_s,
                    stalled_worker_timeout=self.lease_s,
                    # Like the embedded pool: on stop, running jobs go back to the queue
                    # at once (their next frame sees the shutdown) for another worker.
                    shutdown_graceful_timeout=0,
                    delete_jobs="successful",
                    install_signal_handlers=False,
                )
            )
            recovery = asyncio.create_task(self._recover_stalled(app))
            if self._stop.is_set():
                self._worker_task.cancel()
            self._started.set()
            try:
                await self._worker_task
            except asyncio.CancelledError:
                pass
            finally:
                recovery.cancel()

    async def _recover_stalled(self, app: procrastinate.App) -> None:
        """Settle procrastinate jobs whose worker died (procrastinate leaves them 'doing')."""
        from procrastinate.jobs import Status

        while True:
            await asyncio.sleep(self.lease_s)
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    task_name=TASK_NAME, seconds_since_heartbeat=self.lease_s
                )
                for entry in stalled:
                    assert entry.id is not None
                    job_id = str(entry.task_kwargs.get("job_id"))
                    waiting = await asyncio.to_thread(self.store.awaits_dispatch, job_id, entry.id)
                    try:
                        if waiting:  # died between fetching and claiming: run it again
                            await app.job_manager.retry_job(entry)
                        else:  # the row's lease recovery re-queues or ends the job
                            await app.job_manager.finish_job(
                                entry, status=Status.ABORTED, delete_job=False
                            )
                    except Exception as error:  # another worker settled it first
                        log.debug("stalled queue entry %d: %s", entry.id, error)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recovering stalled queue entries failed")

    # --- registry ---

    def _beat(self) -> None:
        self.registry.beat(
            self.worker_id,
            host=self.host,
            models=self.models,
            concurrency=self.concurrency,
            stale_after_s=self.lease_s,
        )

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self._beat()
            except Exception:
                log.exception("worker heartbeat failed")
