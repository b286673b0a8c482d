"""What every write of the job store goes through: the attempt fence and the announce.

Every state change is one conditional UPDATE fenced by the job id, the attempt and the
status it expects, and checked by what it matched. When a worker's job was re-queued
(its lease ran out) and claimed again, the job's attempt has moved on, so the old
worker's writes match nothing and raise ``LeaseLost``: a presumed-dead worker can never
overwrite a newer attempt. Timestamps come from one injectable clock so tests can move
time; on PostgreSQL with many machines their clocks should agree to well within a lease.

With a ``dispatch`` (scale-out), every write that puts a row into ``queued`` also hands
the job to the queue in the same transaction, and a cancel withdraws it there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Update, update

from kinema.db import begin_write
from kinema.errors import LeaseLost
from kinema.jobs.dispatch import Dispatch
from kinema.jobs.outbox import enqueue
from kinema.jobs.rows import job_from_row
from kinema.schema import jobs
from kinema.types import Job, JobStatus

Clock = Callable[[], datetime]

QUEUED = JobStatus.QUEUED.value
RUNNING = JobStatus.RUNNING.value
SUCCEEDED = JobStatus.SUCCEEDED.value
FAILED = JobStatus.FAILED.value
CANCELLED = JobStatus.CANCELLED.value
EXPIRED = JobStatus.EXPIRED.value
TERMINAL = tuple(status.value for status in JobStatus if status.terminal)


def utcnow() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """The engine, the clock and the dispatch, and the helpers every part of the store
    writes through (``JobStore`` is this and its parts, one per concept)."""

    def __init__(
        self, engine: Engine, *, clock: Clock = utcnow, dispatch: Dispatch | None = None
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._dispatch = dispatch

    def _fenced(self, job_id: str, attempt: int, _delay_s: float = 0.0, **values: Any) -> Job:
        """Apply ``values`` to attempt ``attempt`` of a running job, or raise LeaseLost."""
        statement = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == RUNNING)
            .values(**values)
            .returning(*jobs.c)
        )
        with begin_write(self._engine) as connection:
            row = connection.execute(statement).one_or_none()
            if row is not None:
                self._announce(connection, [row], delay_s=_delay_s)
        if row is None:
            raise LeaseLost(f"job {job_id} attempt {attempt} no longer holds its lease")
        return job_from_row(row)

    def _apply_all(
        self,
        statements: list[Update],
        on_finished: Callable[[Job], None] | None = None,
    ) -> int:
        """Run several UPDATEs in one transaction; announce the jobs they finished, and
        after the commit hand each of them to ``on_finished``."""
        with begin_write(self._engine) as connection:
            rows = [
                row
                for statement in statements
                for row in connection.execute(statement.returning(*jobs.c)).all()
            ]
            self._announce(connection, rows)
        if on_finished is not None:
            for row in rows:
                if row.status in TERMINAL:
                    on_finished(job_from_row(row))
        return len(rows)

    def _announce(
        self, connection: Connection, rows: Sequence[Row[Any]], *, delay_s: float = 0.0
    ) -> None:
        """In the transaction that changed ``rows``: write the webhook event of every row
        that reached a terminal state (the outbox's guarantee), and hand every row that
        went back to ``queued`` to the dispatch (exactly one new queue entry each)."""
        now = self._clock()
        for row in rows:
            if row.status in TERMINAL:
                enqueue(connection, job_row=row, status=row.status, now=now)
            elif row.status == QUEUED and self._dispatch is not None:
                dispatch_id = self._dispatch.enqueue(
                    connection,
                    job_id=row.id,
                    model=row.model,
                    priority=row.priority,
                    turn=row.queue_turn,
                    delay_s=delay_s,
                )
                connection.execute(
                    update(jobs).where(jobs.c.id == row.id).values(dispatch_id=dispatch_id)
                )

    def _read_one(self, statement: Any) -> Row[Any] | None:
        with self._engine.connect() as connection:
            return connection.execute(statement).one_or_none()

    def _write_one(self, statement: Any) -> Row[Any] | None:
        with begin_write(self._engine) as connection:
            return connection.execute(statement).one_or_none()
