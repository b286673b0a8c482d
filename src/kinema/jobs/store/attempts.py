"""A worker's attempt at a job, from its claim to its outcome.

A claim starts an attempt (the job's ``attempt`` grows by one); every later write of
that attempt (heartbeat, progress, route, outcome) is fenced by it through
``StoreBase._fenced``, so a worker whose lease ran out changes nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, update

from kinema.db import begin_write
from kinema.errors import LeaseLost
from kinema.jobs.rows import job_from_row
from kinema.jobs.store.base import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, StoreBase
from kinema.schema import jobs
from kinema.types import Job, VideoResult


class Attempts(StoreBase):
    """What workers do to jobs: claim, keep the lease, report, and finish or release."""

    def claim_next(
        self, *, worker_id: str, lease_s: float, models: Collection[str] | None = None
    ) -> Job | None:
        """Take the best queued job and start its attempt: highest priority, then lowest
        turn (owners take turns), then oldest.

        One UPDATE whose WHERE picks the job: SQLite runs it under the database write
        lock, PostgreSQL's ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass over
        a row another one is taking. Either way each job is claimed exactly once.
        """
        if models is not None and not models:
            return None
        candidate = jobs.alias("candidate")
        pick = select(candidate.c.id).where(
            candidate.c.status == QUEUED, candidate.c.cancel_requested.is_(False)
        )
        if models is not None:
            pick = pick.where(candidate.c.model.in_(list(models)))
        pick = (
            pick.order_by(
                candidate.c.priority.desc(),
                candidate.c.queue_turn,
                candidate.c.created_at,
                candidate.c.id,
            )
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return self._start_attempt(
            [jobs.c.id == pick.scalar_subquery(), jobs.c.status == QUEUED],
            worker_id=worker_id,
            lease_s=lease_s,
        )

    def claim(self, job_id: str, *, dispatch_id: int, worker_id: str, lease_s: float) -> Job | None:
        """Start the next attempt of queued job ``job_id`` for the queue entry ``dispatch_id``.

        None when the job is not queued any more (cancelled, finished, or already running)
        or when ``dispatch_id`` is not the entry its last queueing recorded: a duplicate
        or stale queue entry must not run it.
        """
        return self._start_attempt(
            [
                jobs.c.id == job_id,
                jobs.c.status == QUEUED,
                jobs.c.cancel_requested.is_(False),
                jobs.c.dispatch_id == dispatch_id,
            ],
            worker_id=worker_id,
            lease_s=lease_s,
        )

    def _start_attempt(self, where: list[Any], *, worker_id: str, lease_s: float) -> Job | None:
        """The job ``where`` picks, running its next attempt under ``worker_id``'s lease;
        None when no row matched."""
        now = self._clock()
        claim = (
            update(jobs)
            .where(*where)
            .values(
                status=RUNNING,
                attempt=jobs.c.attempt + 1,
                progress=0.0,
                worker_id=worker_id,
                lease_until=now + timedelta(seconds=lease_s),
                started_at=now,
                updated_at=now,
            )
            .returning(*jobs.c)
        )
        row = self._write_one(claim)
        return None if row is None else job_from_row(row)

    def awaits_dispatch(self, job_id: str, dispatch_id: int) -> bool:
        """Whether queued job ``job_id`` can only be started by the queue entry ``dispatch_id``."""
        query = select(jobs.c.id).where(
            jobs.c.id == job_id, jobs.c.status == QUEUED, jobs.c.dispatch_id == dispatch_id
        )
        return self._read_one(query) is not None

    def dispatch_waiting(self) -> int:
        """Give a queue entry to every queued job that has none (queued while dispatch
        was embedded); returns how many. A no-op without a dispatch."""
        if self._dispatch is None:
            return 0
        waiting = select(jobs).where(jobs.c.status == QUEUED, jobs.c.dispatch_id.is_(None))
        with begin_write(self._engine) as connection:
            rows = connection.execute(waiting.with_for_update(skip_locked=True)).all()
            self._announce(connection, rows)
        return len(rows)

    def heartbeat(self, job_id: str, attempt: int, lease_s: float) -> bool:
        """Extend the lease of a running attempt; True once its owner asked to cancel."""
        now = self._clock()
        job = self._fenced(job_id, attempt, lease_until=now + timedelta(seconds=lease_s))
        return job.cancel_requested

    def set_progress(self, job_id: str, attempt: int, progress: float) -> None:
        """Record progress (clamped to 0..1); a lower value than stored is ignored."""
        if math.isnan(progress):
            return
        value = min(1.0, max(0.0, float(progress)))
        self._fenced(
            job_id,
            attempt,
            progress=case((jobs.c.progress < value, value), else_=jobs.c.progress),
            updated_at=self._clock(),
        )

    def route(
        self, job_id: str, attempt: int, engine: str, *, max_in_flight: int | None = None
    ) -> bool:
        """Give a running attempt to catalog engine ``engine``; False if it is full.

        With ``max_in_flight``, the write happens only while fewer other running jobs use
        ``engine``: one conditional UPDATE, so on SQLite (one writer at a time) two
        workers never both take the last slot. On PostgreSQL the routes to one engine
        first take a transaction-scoped advisory lock named after it, so they run one
        after another and each counts the slots the ones before it committed.
        """
        mine = and_(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == RUNNING)
        statement = update(jobs).where(mine)
        if max_in_flight is not None:
            other = jobs.alias("other")
            busy = (
                select(func.count())
                .select_from(other)
                .where(other.c.status == RUNNING, other.c.engine == engine, other.c.id != job_id)
                .scalar_subquery()
            )
            statement = statement.where(busy < max_in_flight)
        statement = statement.values(engine=engine, updated_at=self._clock())
        with begin_write(self._engine) as connection:
            if max_in_flight is not None and connection.dialect.name == "postgresql":
                slot = func.hashtext(f"kinema route {engine}")
                connection.execute(select(func.pg_advisory_xact_lock(slot)))
            routed = connection.execute(statement).rowcount
            if not routed and connection.scalar(select(jobs.c.id).where(mine)) is None:
                raise LeaseLost(f"job {job_id} attempt {attempt} no longer holds its lease")
        return bool(routed)

    def record_upstream(self, job_id: str, attempt: int, operation: dict[str, Any]) -> None:
        """Commit a forwarded job's provider operation (fenced), before it is polled."""
        self._fenced(job_id, attempt, upstream=operation, updated_at=self._clock())

    def succeed(
        self, job_id: str, attempt: int, result: VideoResult | Sequence[VideoResult]
    ) -> Job:
        """Finish attempt ``attempt`` with its video, or its videos in sample order."""
        outputs = [result] if isinstance(result, VideoResult) else list(result)
        if not outputs:
            raise ValueError("a succeeded job needs at least one output")
        now = self._clock()
        return self._fenced(
            job_id,
            attempt,
            status=SUCCEEDED,
            progress=1.0,
            usage_s=sum(output.duration_s for output in outputs),
            result=dataclasses.asdict(outputs[0]),
            outputs=[dataclasses.asdict(output) for output in outputs],
            lease_until=None,
            finished_at=now,
            updated_at=now,
        )

    def fail(self, job_id: str, attempt: int, code: str, message: str) -> Job:
        now = self._clock()
        return self._fenced(
            job_id,
            attempt,
            status=FAILED,
            error_code=code,
            error_message=message,
            lease_until=None,
            finished_at=now,
            updated_at=now,
        )

    def acknowledge_cancel(self, job_id: str, attempt: int) -> Job:
        """The worker stopped a running job because its owner cancelled it."""
        now = self._clock()
        return self._fenced(
            job_id, attempt, status=CANCELLED, lease_until=None, finished_at=now, updated_at=now
        )

    def release(self, job_id: str, attempt: int, *, retry_in_s: float = 0.0) -> Job:
        """Hand a running job back to the queue (its worker is shutting down, or it met a
        transient failure and should run again in ``retry_in_s`` seconds).

        A job whose cancel was requested meanwhile becomes cancelled instead, since no
        worker would ever claim it again. The attempt stays counted: fencing needs it to
        only grow, so releases count toward ``max_attempts`` like lost workers do. The
        delay applies to dispatched jobs; the embedded pool claims released jobs at once.
        """
        now = self._clock()
        asked = jobs.c.cancel_requested.is_(True)
        return self._fenced(
            job_id,
            attempt,
            _delay_s=retry_in_s,
            status=case((asked, CANCELLED), else_=QUEUED),
            finished_at=case((asked, now), else_=None),
            progress=case((asked, jobs.c.progress), else_=0.0),
            worker_id=None,
            lease_until=None,
            updated_at=now,
        )
