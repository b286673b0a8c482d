"""What an owner does to a job of theirs besides reading it: cancel it, delete it."""

from __future__ import annotations

from sqlalchemy import Update, and_, delete, select, update

from kinema.db import begin_write
from kinema.errors import InvalidRequest, NotFound
from kinema.jobs.rows import job_from_row
from kinema.jobs.store.base import CANCELLED, QUEUED, RUNNING, TERMINAL
from kinema.jobs.store.reads import Reads
from kinema.schema import jobs
from kinema.types import Job


class Owners(Reads):
    """Cancel and delete (a cancel that keeps losing a race ends with a plain read)."""

    def cancel(self, owner: str, job_id: str) -> Job:
        """Stop ``owner``'s job: queued ones at once, running ones at their next heartbeat.

        A finished job comes back unchanged, so cancelling twice is harmless.
        """
        mine = and_(jobs.c.id == job_id, jobs.c.owner == owner)
        for _ in range(3):  # only repeats if the job changed state between statements
            now = self._clock()
            attempts: list[Update] = [
                update(jobs)
                .where(mine, jobs.c.status == QUEUED)
                .values(status=CANCELLED, finished_at=now, updated_at=now),
                update(jobs)
                .where(mine, jobs.c.status == RUNNING)
                .values(cancel_requested=True, updated_at=now),
            ]
            with begin_write(self._engine) as connection:
                for statement in attempts:
                    row = connection.execute(statement.returning(*jobs.c)).one_or_none()
                    if row is not None:
                        self._announce(connection, [row])
                        if self._dispatch is not None and row.dispatch_id is not None:
                            # Drops a waiting queue entry; a running one's worker is
                            # notified at commit and stops within a frame.
                            self._dispatch.abort(connection, row.dispatch_id)
                        return job_from_row(row)
                row = connection.execute(select(jobs).where(mine)).one_or_none()
            if row is None:
                raise NotFound(f"job {job_id} not found")
            job = job_from_row(row)
            if job.status.terminal:
                return job
        return self.get(owner, job_id)

    def delete(self, owner: str, job_id: str) -> Job:
        """Remove a finished job's row and return it (its files are the caller's to remove)."""
        mine = and_(jobs.c.id == job_id, jobs.c.owner == owner)
        with begin_write(self._engine) as connection:
            row = connection.execute(
                delete(jobs).where(mine, jobs.c.status.in_(TERMINAL)).returning(*jobs.c)
            ).one_or_none()
            if row is not None:
                return job_from_row(row)
            exists = connection.scalar(select(jobs.c.id).where(mine))
        if exists is None:
            raise NotFound(f"job {job_id} not found")
        raise InvalidRequest("job is still running; cancel it first")
