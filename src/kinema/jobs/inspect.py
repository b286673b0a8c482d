"""Read-only views of the jobs table for operators and metrics: every owner's jobs with
filters, and the queue's depth and age per model. Writes stay in ``JobStore``."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from kinema.jobs.rows import job_from_row
from kinema.schema import jobs
from kinema.types import Job, JobStatus, QueueStats


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JobInspector:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def list(
        self,
        *,
        states: Sequence[JobStatus] = (),
        models: Sequence[str] = (),
        owner: str | None = None,
        limit: int = 50,
    ) -> builtins.list[Job]:
        """The newest jobs of any owner, narrowed by state, model and owner (key id)."""
        query = select(jobs)
        if states:
            query = query.where(jobs.c.status.in_([s.value for s in states]))
        if models:
            query = query.where(jobs.c.model.in_(list(models)))
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [job_from_row(row) for row in connection.execute(query)]

    def find(self, job_id_or_prefix: str) -> builtins.list[Job]:
        """Jobs whose id is or starts with ``job_id_or_prefix`` (at most two, to tell an
        ambiguous prefix)."""
        text = job_id_or_prefix.strip().lower()
        if not text or text.strip("0123456789abcdef"):
            return []
        query = select(jobs).where(jobs.c.id.startswith(text)).limit(2)
        with self._engine.connect() as connection:
            return [job_from_row(row) for row in connection.execute(query)]

    def queues(self) -> builtins.list[QueueStats]:
        """Depth and oldest wait of every model's queue that has jobs waiting."""
        queued = jobs.c.status == JobStatus.QUEUED.value
        query = (
            select(jobs.c.model, func.count(), func.min(jobs.c.created_at))
            .where(queued, jobs.c.cancel_requested.is_(False))
            .group_by(jobs.c.model)
        )
        now = self._clock()
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        stats = []
        for model, depth, oldest in rows:
            if oldest is not None and oldest.tzinfo is None:  # an aggregate skips the type
                oldest = oldest.replace(tzinfo=UTC)
            age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
            stats.append(QueueStats(model=model, depth=int(depth), oldest_age_s=age))
        return stats
