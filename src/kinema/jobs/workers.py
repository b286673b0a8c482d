"""Which worker processes are alive and what they serve (for scale-out status reports).

Every ``kinema worker`` renews its row each heartbeat and removes it on a clean stop; a
row not renewed within a lease belongs to a dead process: it is ignored, listed as dead by
``kinema workers``, and deleted once it is ``PRUNE_AFTER_LEASES`` leases old (by the next
live worker's heartbeat, or ``kinema workers --prune`` at once). A
status poll of a queued job asks ``serving(model)`` so a client can see that no worker
holds its model, instead of waiting on a queue nobody reads.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import JSON, Engine, delete, insert, select, update

from kinema.db import begin_write
from kinema.schema import workers

PRUNE_AFTER_LEASES = 4  # a dead worker's row is listed this many leases, then deleted


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WorkerRegistry:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def beat(
        self,
        worker_id: str,
        *,
        host: str,
        models: Collection[str] | None,
        concurrency: int,
        stale_after_s: float,
    ) -> None:
        """Record that ``worker_id`` is alive; prune workers silent for ``stale_after_s``."""
        now = self._clock()
        # JSON null, not SQL NULL, for "every model": the column is NOT NULL.
        listed: object = JSON.NULL if models is None else sorted(models)
        with begin_write(self._engine) as connection:
            renewed = connection.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(last_seen=now, models=listed, concurrency=concurrency)
            ).rowcount
            if not renewed:
                connection.execute(
                    insert(workers).values(
                        id=worker_id,
                        host=host,
                        models=listed,
                        concurrency=concurrency,
                        started_at=now,
                        last_seen=now,
                    )
                )
            cutoff = now - timedelta(seconds=stale_after_s * PRUNE_AFTER_LEASES)
            connection.execute(delete(workers).where(workers.c.last_seen < cutoff))

    def leave(self, worker_id: str) -> None:
        with begin_write(self._engine) as connection:
            connection.execute(delete(workers).where(workers.c.id == worker_id))

    def serving(self, model: str, *, within_s: float) -> int:
        """How many jobs of ``model`` live workers can run at once (0: nobody serves it)."""
        cutoff = self._clock() - timedelta(seconds=within_s)
        query = select(workers.c.models, workers.c.concurrency).where(workers.c.last_seen >= cutoff)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return sum(row.concurrency for row in rows if row.models is None or model in row.models)

    def live(self, *, within_s: float) -> builtins.list[dict[str, object]]:
        """Every live worker's row, for operators."""
        cutoff = self._clock() - timedelta(seconds=within_s)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(workers).where(workers.c.last_seen >= cutoff).order_by(workers.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]

    def listing(self, *, live_within_s: float) -> builtins.list[dict[str, object]]:
        """Every row, live or dead, each with ``live``: whether it beat within the lease."""
        cutoff = self._clock() - timedelta(seconds=live_within_s)
        with self._engine.connect() as connection:
            rows = connection.execute(select(workers).order_by(workers.c.id)).all()
        return [{**row._mapping, "live": row.last_seen >= cutoff} for row in rows]

    def prune(self, *, dead_after_s: float) -> int:
        """Delete the rows of workers silent for ``dead_after_s``; returns how many."""
        cutoff = self._clock() - timedelta(seconds=dead_after_s)
        with begin_write(self._engine) as connection:
            return connection.execute(delete(workers).where(workers.c.last_seen < cutoff)).rowcount
