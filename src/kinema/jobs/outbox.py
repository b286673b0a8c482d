"""The webhook outbox: one row per event to deliver, written with the job's terminal state.

``enqueue`` runs inside the store's terminal-state transaction, so a job that finished has
its event recorded, or neither happened. Deliverers claim due events with a short lease
(one UPDATE, like job claims), so several API processes never send the same attempt twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from kinema.db import begin_write
from kinema.schema import webhook_events

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

EVENT_TYPES = {
    "succeeded": "generation.completed",
    "failed": "generation.failed",
    "cancelled": "generation.cancelled",
}


@dataclass(frozen=True)
class WebhookEvent:
    id: str  # the webhook-id header: the same on every retry
    job_id: str
    owner: str
    dialect: str
    event_type: str
    url: str
    attempts: int
    created_at: datetime
    body: bytes | None


def enqueue(connection: Connection, *, job_row: Any, status: str, now: datetime) -> str | None:
    """Record the terminal event of ``job_row`` if its request named a callback URL."""
    url = (job_row.request or {}).get("callback_url")
    if not url or status not in EVENT_TYPES:
        return None
    event_id = f"msg_{uuid.uuid4().hex}"
    connection.execute(
        insert(webhook_events).values(
            id=event_id,
            job_id=job_row.id,
            owner=job_row.owner,
            dialect=job_row.dialect,
            event_type=EVENT_TYPES[status],
            url=url,
            status=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
    return event_id


class Outbox:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))

    def claim_due(
        self, *, lease_s: float, skip: Callable[[str], bool] | None = None, scan: int = 200
    ) -> WebhookEvent | None:
        """Take the oldest due pending event for ``lease_s`` seconds, or None.

        ``skip(url)`` passes over events for receivers the caller has no room for now
        (the ``scan`` oldest due events are looked at). Each claim is one conditional
        UPDATE, so concurrent deliverers never take the same event.
        """
        now = self._clock()
        unlocked = or_(webhook_events.c.locked_until.is_(None), webhook_events.c.locked_until < now)
        due = (
            select(webhook_events.c.id, webhook_events.c.url)
            .where(webhook_events.c.status == PENDING, webhook_events.c.next_attempt_at <= now)
            .where(unlocked)
            .order_by(webhook_events.c.next_attempt_at)
            .limit(scan)
        )
        with self._engine.connect() as connection:
            candidates = connection.execute(due).all()
        for candidate in candidates:
            if skip is not None and skip(candidate.url):
                continue
            claim = (
                update(webhook_events)
                .where(
                    webhook_events.c.id == candidate.id,
                    webhook_events.c.status == PENDING,
                    unlocked,
                )
                .values(locked_until=now + timedelta(seconds=lease_s))
                .returning(*webhook_events.c)
            )
            with begin_write(self._engine) as connection:
                row = connection.execute(claim).one_or_none()
            if row is not None:
                return _event(row)
        return None

    def set_body(self, event_id: str, body: bytes) -> None:
        """Keep the rendered body so every retry sends the same bytes."""
        self._update(event_id, body=body)

    def delivered(self, event_id: str, status_code: int) -> None:
        self._finish(event_id, DELIVERED, f"HTTP {status_code}")

    def failed(self, event_id: str, reason: str) -> None:
        self._finish(event_id, FAILED, reason)

    def retry_later(self, event_id: str, at: datetime, reason: str) -> None:
        self._update(
            event_id,
            attempts=webhook_events.c.attempts + 1,
            next_attempt_at=at,
            locked_until=None,
            last_error=reason,
        )

    def get(self, event_id: str) -> WebhookEvent:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(webhook_events).where(webhook_events.c.id == event_id)
            ).one()
        return _event(row)

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of a job with its delivery state (for status pages and tests)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(webhook_events)
                .where(webhook_events.c.job_id == job_id)
                .order_by(webhook_events.c.created_at)
            ).all()
        return [dict(row._mapping) for row in rows]

    def _finish(self, event_id: str, status: str, note: str) -> None:
        self._update(
            event_id,
            status=status,
            attempts=webhook_events.c.attempts + 1,
            finished_at=self._clock(),
            locked_until=None,
            last_error=note,
        )

    def _update(self, event_id: str, **values: Any) -> None:
        with begin_write(self._engine) as connection:
            connection.execute(
                update(webhook_events).where(and_(webhook_events.c.id == event_id)).values(**values)
            )


def _event(row: Any) -> WebhookEvent:
    return WebhookEvent(
        id=row.id,
        job_id=row.job_id,
        owner=row.owner,
        dialect=row.dialect,
        event_type=row.event_type,
        url=row.url,
        attempts=row.attempts,
        created_at=row.created_at,
        body=row.body,
    )
