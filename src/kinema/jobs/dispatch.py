"""Scale-out dispatch: procrastinate jobs written inside the job store's own transactions.

Under ``KINEMA_DISPATCH=procrastinate`` every transition of a job row into ``queued``
(submit, a release, a re-queue after a lost lease) also defers one procrastinate job
carrying the row's id, in the same PostgreSQL transaction, and records that job's id in
``jobs.dispatch_id``. A worker claims the row only with the procrastinate job named
there, so a row is never lost (both commit or neither does) and never run twice (a stale
or duplicate procrastinate job finds another id and does nothing).

Only procrastinate's SQL functions are used here, so the API process defers and aborts
jobs on its SQLAlchemy connection without importing procrastinate; ``kinema worker``
runs procrastinate itself (``queue_worker``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, text

TASK_NAME = "kinema.run_job"

# procrastinate notifies "procrastinate_queue_v1#<queue>" on every defer, and PostgreSQL
# refuses channel names of 64 bytes or more.
_CHANNEL_PREFIX = "procrastinate_queue_v1#"
QUEUE_NAME_MAX = 63 - len(_CHANNEL_PREFIX)

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    "CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer), "
    "NULL, NULL, CAST(:args AS jsonb), CAST(:scheduled_at AS timestamptz)"
    ")]::procrastinate_job_to_defer_v1[])) AS id"
)
_ABORT = text("SELECT procrastinate_cancel_job_v1(CAST(:id AS bigint), true, false)")


# procrastinate takes a queue's jobs by priority, then id. A job's procrastinate priority
# is its kinema priority scaled by TURN_SPAN, minus its turn (the owner's nth waiting
# job), so owners take turns within one kinema priority.
TURN_SPAN = 10_000


def dispatch_priority(priority: int, turn: int) -> int:
    """The procrastinate priority of a job of kinema ``priority`` and ``turn``."""
    return priority * TURN_SPAN - min(max(turn, 1), TURN_SPAN - 1)


def queue_name(model: str) -> str:
    """The procrastinate queue of ``model``: its id, or a hashed form when too long."""
    if len(model.encode()) <= QUEUE_NAME_MAX:
        return model
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    head = model.encode()[: QUEUE_NAME_MAX - 9].decode(errors="ignore")
    return f"{head}~{digest}"


class Dispatch(Protocol):
    """What the job store calls, inside its transactions, when a queue must learn of a job."""

    def enqueue(
        self,
        connection: Connection,
        *,
        job_id: str,
        model: str,
        priority: int,
        turn: int,
        delay_s: float,
    ) -> int:
        """Make ``job_id`` runnable (after ``delay_s``), behind jobs of a higher priority
        and, within its priority, of a lower turn; return the dispatch id to record."""
        ...

    def abort(self, connection: Connection, dispatch_id: int) -> None:
        """Withdraw a queued dispatch, or ask the worker running it to stop."""
        ...


class ProcrastinateDispatch:
    def enqueue(
        self,
        connection: Connection,
        *,
        job_id: str,
        model: str,
        priority: int,
        turn: int,
        delay_s: float,
    ) -> int:
        scheduled_at = None
        if delay_s > 0:
            scheduled_at = datetime.now(UTC) + timedelta(seconds=delay_s)
        dispatch_id = connection.scalar(
            _DEFER,
            {
                "queue": queue_name(model),
                "task": TASK_NAME,
                "priority": dispatch_priority(priority, turn),
                "args": json.dumps({"job_id": job_id}),
                "scheduled_at": scheduled_at,
            },
        )
        return int(dispatch_id)

    def abort(self, connection: Connection, dispatch_id: int) -> None:
        connection.execute(_ABORT, {"id": dispatch_id})


def install_procrastinate_schema(connection: Connection) -> bool:
    """Create procrastinate's tables and functions unless they exist; True if it did.

    Runs inside the caller's transaction (``migrate`` holds its advisory lock), with the
    schema file of the installed procrastinate version.
    """
    if connection.dialect.name != "postgresql":
        raise ValueError("procrastinate dispatch needs a postgresql:// database URL")
    if connection.scalar(text("SELECT to_regclass('procrastinate_jobs')")) is not None:
        return False
    from procrastinate.schema import SchemaManager

    cursor = connection.connection.cursor()
    try:
        cursor.execute(SchemaManager.get_schema())  # no parameters: '%' stays literal
    finally:
        cursor.close()
    return True
