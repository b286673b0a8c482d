"""The embedded worker pool: threads in the server process claiming from the jobs table.

Each worker thread loops: claim the best queued job (a fenced UPDATE), execute it, repeat.
One supervisor thread renews the leases of running jobs, passes cancel requests to them,
and re-queues jobs whose lease ran out (their worker died), so a job accepted before a
crash still completes after a restart. With ``concurrency=0`` it only supervises: the
scale-out queue worker runs jobs through ``run`` and lets this pool keep their leases.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from kinema.errors import LeaseLost
from kinema.jobs.execute import Executor, RunControl
from kinema.jobs.store import JobStore
from kinema.jobs.submit import job_prefix
from kinema.observability.context import job_context
from kinema.types import Job

log = logging.getLogger(__name__)


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        executor: Executor,
        *,
        concurrency: int,
        lease_s: float,
        heartbeat_s: float,
        poll_s: float,
        max_attempts: int,
        off_peak_max_age_s: float = 48 * 3600,
        retention_s: float = 0.0,
        models: Collection[str] | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.off_peak_max_age_s = off_peak_max_age_s
        self.retention_s = retention_s
        self.models = models
        self.worker_id = worker_id or f"embedded-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: dict[str, tuple[Job, RunControl]] = {}
        self._running_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # --- life cycle ---

    def start(self) -> None:
        self._requeue_expired()
        for i in range(self.concurrency):
            self._spawn(self._claim_loop, f"kinema-worker-{i}")
        self._spawn(self._supervise_loop, "kinema-supervisor")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; running jobs are handed back to the queue for the next start."""
        self._stop.set()
        self._wake.set()
        with self._running_lock:
            for _, control in self._running.values():
                control.shutdown.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    def notify(self) -> None:
        """A job was just queued: wake an idle worker now instead of at its next poll."""
        self._wake.set()

    def interrupt(self, job_id: str) -> None:
        """Stop a running job now (its cancel was requested in this process)."""
        with self._running_lock:
            entry = self._running.get(job_id)
        if entry is not None:
            entry[1].cancelled.set()

    @property
    def running_jobs(self) -> list[str]:
        with self._running_lock:
            return list(self._running)

    # --- loops ---

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_next(
                    worker_id=self.worker_id, lease_s=self.lease_s, models=self.models
                )
            except Exception:
                log.exception("claiming a job failed; retrying")
                self._stop.wait(self.poll_s)
                continue
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            try:
                self.run(job)
            except Exception:  # this thread is a job slot: it must outlive any one job
                log.exception("job %s attempt %d: the worker failed", job.id, job.attempt)

    def run(self, job: Job, control: RunControl | None = None) -> None:
        """Execute ``job`` (claimed by this process) under this pool's heartbeats.

        The claim loops call it; so does a queue worker, whose pool has no claim loops of
        its own (``concurrency=0``) and only supervises.
        """
        control = control or RunControl()
        with self._running_lock:
            self._running[job.id] = (job, control)
        try:
            with job_context(job.id, job.owner):
                log.info("job %s attempt %d started (%s)", job.id, job.attempt, job.model)
                self.executor.execute(job, control)
        finally:
            with self._running_lock:
                self._running.pop(job.id, None)

    def _supervise_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self._expire_off_peak()  # first, so this round's heartbeat passes its cancels on
            self._heartbeat()
            self._requeue_expired()
            self._expire_finished()

    def _heartbeat(self) -> None:
        with self._running_lock:
            running = list(self._running.values())
        for job, control in running:
            try:
                if self.store.heartbeat(job.id, job.attempt, self.lease_s):
                    control.cancelled.set()
            except LeaseLost:
                control.lost.set()
            except Exception:
                log.exception(
                    "heartbeat for job %s failed",
                    job.id,
                    extra={"job_id": job.id, "key_id": job.owner},
                )

    def _expire_off_peak(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.off_peak_max_age_s)
        try:
            self.store.expire_off_peak(cutoff, on_finished=self.executor.count_finished)
        except Exception:
            log.exception("cancelling overdue off-peak jobs failed")

    def _expire_finished(self) -> None:
        """Retention: videos older than ``retention_s`` are removed and their jobs expire."""
        if self.retention_s <= 0:
            return
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention_s)
        try:
            for job_id in self.store.expire_finished(cutoff):
                self.executor.storage.delete_prefix(job_prefix(job_id))
        except Exception:
            log.exception("expiring finished jobs failed")

    def _requeue_expired(self) -> None:
        try:
            recovered = self.store.requeue_expired(
                max_attempts=self.max_attempts,
                on_finished=self.executor.count_finished,
                on_lost=self.executor.report_lost_lease,
            )
            if recovered:
                self._wake.set()
        except Exception:
            log.exception("re-queueing expired jobs failed")
