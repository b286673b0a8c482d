"""Reading jobs: one job (an owner's, or any for workers), a poll's summary, pages of an
owner's jobs, and a queued job's place in its queue."""

from __future__ import annotations

import builtins
from typing import Literal

from sqlalchemy import Engine, Text, and_, bindparam, func, or_, select, type_coerce

from kinema.errors import InvalidRequest, NotFound
from kinema.jobs.direct import DirectQuery, summary_outputs, summary_result
from kinema.jobs.dispatch import Dispatch
from kinema.jobs.rows import job_from_row
from kinema.jobs.store.base import QUEUED, Clock, StoreBase, utcnow
from kinema.schema import jobs
from kinema.types import Job, JobStatus, JobSummary


class Reads(StoreBase):
    """Reading jobs; nothing here writes."""

    def __init__(
        self, engine: Engine, *, clock: Clock = utcnow, dispatch: Dispatch | None = None
    ) -> None:
        super().__init__(engine, clock=clock, dispatch=dispatch)
        # Polls are the hottest query of all: compiled once, run on the driver directly,
        # reading only the columns a status response renders.
        owned = and_(jobs.c.id == bindparam("job_id"), jobs.c.owner == bindparam("owner"))
        self._summary_query = DirectQuery(
            engine,
            select(
                jobs.c.id,
                jobs.c.model,
                jobs.c.status,
                jobs.c.progress,
                jobs.c.error_code,
                jobs.c.error_message,
                # As stored (JSON text on SQLite): parsed by ``summary_result`` and
                # ``summary_outputs``, which remember recent ones, since a finished job
                # is polled again and again.
                type_coerce(jobs.c.result, Text),
                jobs.c.base_url,
                type_coerce(jobs.c.outputs, Text),
            ).where(owned),
        )
        self._owned_job = select(jobs).where(owned)

    def get(self, owner: str, job_id: str) -> Job:
        """``owner``'s job; someone else's job is as not-found as a missing one."""
        with self._engine.connect() as connection:
            row = connection.execute(
                self._owned_job, {"job_id": job_id, "owner": owner}
            ).one_or_none()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return job_from_row(row)

    def summary(self, owner: str, job_id: str) -> JobSummary:
        """What a status poll needs of ``owner``'s job; the cheapest read the store has."""
        row = self._summary_query.row({"job_id": job_id, "owner": owner})
        if row is None:
            raise NotFound(f"job {job_id} not found")
        ident, model, status, progress, error_code, error_message, result, base_url, more = row
        outputs = summary_outputs(more)
        first = summary_result(result)
        return JobSummary(
            id=ident,
            model=model,
            status=JobStatus(status),
            progress=progress,
            error_code=error_code,
            error_message=error_message,
            result=first,
            base_url=base_url,
            outputs=outputs or (() if first is None else (first,)),
        )

    def get_any(self, job_id: str) -> Job:
        """A job whoever owns it: for workers, which act on every owner's jobs."""
        row = self._read_one(select(jobs).where(jobs.c.id == job_id))
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return job_from_row(row)

    def list(
        self,
        owner: str,
        *,
        limit: int = 20,
        after: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> builtins.list[Job]:
        """A page of ``owner``'s jobs by creation time; ``after`` is the last id seen."""
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        created, ident = jobs.c.created_at, jobs.c.id
        query = select(jobs).where(jobs.c.owner == owner)
        with self._engine.connect() as connection:
            if after is not None:
                cursor = connection.scalar(
                    select(created).where(ident == after, jobs.c.owner == owner)
                )
                if cursor is None:
                    raise InvalidRequest.for_field("after", f"no job {after}")
                if order == "desc":
                    query = query.where(
                        or_(created < cursor, and_(created == cursor, ident < after))
                    )
                else:
                    query = query.where(
                        or_(created > cursor, and_(created == cursor, ident > after))
                    )
            if order == "desc":
                query = query.order_by(created.desc(), ident.desc())
            else:
                query = query.order_by(created, ident)
            rows = connection.execute(query.limit(limit)).all()
        return [job_from_row(row) for row in rows]

    def find_by_id_prefix(self, owner: str, prefix: str) -> builtins.list[Job]:
        """``owner``'s jobs whose id starts with ``prefix`` (lowercase hex), oldest first.

        For wire ids that carry only the head of a job id. Served by the primary key:
        the range bounds every id that can start with ``prefix``, the LIKE keeps exactly
        those that do.
        """
        if not prefix or prefix.strip("0123456789abcdef"):
            return []
        query = (
            select(jobs)
            .where(
                jobs.c.owner == owner,
                jobs.c.id >= prefix,
                jobs.c.id <= prefix + "f" * 64,
                jobs.c.id.startswith(prefix),
            )
            .order_by(jobs.c.created_at, jobs.c.id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [job_from_row(row) for row in rows]

    def queue_position(self, job: Job) -> int | None:
        """How many queued jobs for the same model will be claimed before ``job``.

        None unless ``job`` is queued. Mirrors the order jobs are taken in (priority, then
        turn, then age: ``claim_next`` and the dispatch queues), so it is exact for workers
        that take this model; served by the fair-queue index.
        """
        if job.status is not JobStatus.QUEUED:
            return None
        ahead = or_(
            jobs.c.priority > job.priority,
            and_(
                jobs.c.priority == job.priority,
                or_(
                    jobs.c.queue_turn < job.queue_turn,
                    and_(
                        jobs.c.queue_turn == job.queue_turn,
                        or_(
                            jobs.c.created_at < job.created_at,
                            and_(jobs.c.created_at == job.created_at, jobs.c.id < job.id),
                        ),
                    ),
                ),
            ),
        )
        query = (
            select(func.count())
            .select_from(jobs)
            .where(
                jobs.c.status == QUEUED,
                jobs.c.model == job.model,
                jobs.c.cancel_requested.is_(False),
                ahead,
            )
        )
        with self._engine.connect() as connection:
            return int(connection.scalar(query) or 0)
