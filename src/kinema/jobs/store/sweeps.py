"""The periodic passes over every job: recovering lost leases, expiring finished jobs
(retention) and cancelling off-peak jobs that waited too long."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, select, update

from kinema.db import begin_write
from kinema.jobs.rows import job_from_row
from kinema.jobs.store.base import (
    CANCELLED,
    EXPIRED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    StoreBase,
)
from kinema.schema import jobs
from kinema.types import Job

WORKER_LOST = "worker_lost"  # error_code of a job whose workers kept disappearing
OFF_PEAK_TIMEOUT = "off_peak_timeout"  # error_code of an off-peak job cancelled for age


class Sweeps(StoreBase):
    """The sweeps (a worker pool's supervisor runs them at every heartbeat)."""

    def requeue_expired(
        self,
        *,
        max_attempts: int,
        on_finished: Callable[[Job], None] | None = None,
        on_lost: Callable[[Job, str | None], None] | None = None,
    ) -> int:
        """Recover running jobs whose lease ran out (their worker died); returns how many.

        Back to the queue while attempts remain, failed with ``worker_lost`` after
        ``max_attempts``, cancelled if the owner asked for it. Each outcome is one UPDATE
        conditioned on the lease still being expired, so a heartbeat that lands first
        keeps its job, and one that lands after finds the attempt gone (``LeaseLost``).
        Once committed, ``on_lost`` gets each recovered job (in its new state) with the
        id of the worker that lost it, and ``on_finished`` each job this ended (the
        metrics count them).
        """
        now = self._clock()
        expired = and_(jobs.c.status == RUNNING, jobs.c.lease_until < now)
        asked = jobs.c.cancel_requested.is_(True)
        not_asked = jobs.c.cancel_requested.is_(False)
        gone = {"lease_until": None, "updated_at": now}
        outcomes = [
            update(jobs).where(expired, asked).values(status=CANCELLED, finished_at=now, **gone),
            update(jobs)
            .where(expired, not_asked, jobs.c.attempt >= max_attempts)
            .values(
                status=FAILED,
                error_code=WORKER_LOST,
                error_message=(
                    f"the worker running this job stopped responding ({max_attempts} attempts)"
                ),
                finished_at=now,
                **gone,
            ),
            update(jobs)
            .where(expired, not_asked, jobs.c.attempt < max_attempts)
            .values(status=QUEUED, progress=0.0, worker_id=None, **gone),
        ]
        with begin_write(self._engine) as connection:
            # Who held each lease, read before the UPDATEs clear it (same transaction).
            holders = {
                row.id: row.worker_id
                for row in connection.execute(select(jobs.c.id, jobs.c.worker_id).where(expired))
            }
            if not holders:
                return 0
            rows = [
                row
                for statement in outcomes
                for row in connection.execute(statement.returning(*jobs.c)).all()
            ]
            self._announce(connection, rows)
        for row in rows:
            job = job_from_row(row)
            if on_lost is not None:
                on_lost(job, holders.get(row.id))
            if on_finished is not None and row.status in TERMINAL:
                on_finished(job)
        return len(rows)

    def expire_finished(self, finished_before: datetime) -> list[str]:
        """Mark succeeded jobs that finished before ``finished_before`` as expired and
        return their ids; the caller removes their files (retention)."""
        now = self._clock()
        statement = (
            update(jobs)
            .where(jobs.c.status == SUCCEEDED, jobs.c.finished_at < finished_before)
            .values(status=EXPIRED, expires_at=now, updated_at=now)
            .returning(jobs.c.id)
        )
        with begin_write(self._engine) as connection:
            return [row.id for row in connection.execute(statement)]

    def expire_off_peak(
        self, older_than: datetime, on_finished: Callable[[Job], None] | None = None
    ) -> int:
        """Cancel off-peak jobs created before ``older_than`` that have not finished.

        Queued ones end cancelled at once (each handed to ``on_finished`` once
        committed); running ones get a cancel request that their worker sees on its next
        heartbeat. Both carry ``error_code`` ``off_peak_timeout`` so a status poll can say
        why. Returns how many jobs were affected.
        """
        now = self._clock()
        hours = (now - older_than).total_seconds() / 3600
        window = f"{hours:g} h" if hours >= 1 else f"{hours * 3600:g} s"
        reason = {
            "error_code": OFF_PEAK_TIMEOUT,
            "error_message": (
                f"off-peak job not finished within {window} of its creation; "
                "cancelled automatically"
            ),
            "updated_at": now,
        }
        stale = and_(
            jobs.c.created_at < older_than,
            jobs.c.request["off_peak"].as_boolean().is_(True),
        )
        outcomes = [
            update(jobs)
            .where(stale, jobs.c.status == QUEUED)
            .values(status=CANCELLED, finished_at=now, **reason),
            update(jobs)
            .where(stale, jobs.c.status == RUNNING, jobs.c.cancel_requested.is_(False))
            .values(cancel_requested=True, **reason),
        ]
        return self._apply_all(outcomes, on_finished)
