"""The durable job store: the only code that writes job rows.

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

import builtins
import dataclasses
import math
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Text,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError

from kinema.db import begin_write
from kinema.errors import IdempotencyConflict, InvalidRequest, LeaseLost, NotFound
from kinema.fingerprint import fingerprint
from kinema.jobs.direct import DirectQuery, summary_outputs, summary_result
from kinema.jobs.dispatch import Dispatch
from kinema.jobs.outbox import enqueue
from kinema.jobs.rows import job_from_row
from kinema.schema import jobs
from kinema.types import GenerationRequest, Job, JobStatus, JobSummary, VideoResult

Clock = Callable[[], datetime]

_QUEUED = JobStatus.QUEUED.value
_RUNNING = JobStatus.RUNNING.value
_SUCCEEDED = JobStatus.SUCCEEDED.value
_FAILED = JobStatus.FAILED.value
_CANCELLED = JobStatus.CANCELLED.value
_EXPIRED = JobStatus.EXPIRED.value
_TERMINAL = tuple(status.value for status in JobStatus if status.terminal)

WORKER_LOST = "worker_lost"  # error_code of a job whose workers kept disappearing
OFF_PEAK_TIMEOUT = "off_peak_timeout"  # error_code of an off-peak job cancelled for age


def _utcnow() -> datetime:
    return datetime.now(UTC)


def hash_request(request: GenerationRequest) -> str:
    """The default ``request_hash``: the fingerprint of ``request``'s canonical JSON.

    Callers that rewrite a request before submitting it (image sources replaced by
    storage keys) hash the body as it arrived instead (``views.creation_fingerprint``),
    so retries compare equal.
    """
    return fingerprint(request.to_json())


class JobStore:
    def __init__(
        self, engine: Engine, *, clock: Clock = _utcnow, dispatch: Dispatch | None = None
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._dispatch = dispatch
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

    # --- accepting jobs ---

    def submit(
        self,
        *,
        owner: str,
        request: GenerationRequest,
        dialect: str,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        base_url: str | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> tuple[Job, bool]:
        """Queue ``request`` for ``owner``; returns the job and whether it was created.

        ``guard``, when given, runs first in the inserting transaction and may refuse the
        job by raising (the per-key quotas do, so their count and the insert are atomic).

        With an ``idempotency_key`` the owner already used, the earlier job comes back
        (created False) if ``request_hash`` matches, else ``IdempotencyConflict``: the
        unique index lets only one insert win, and the loser reads the winner's row (the
        job service answers a plain retry before this, from ``find_idempotent``).

        ``base_url`` is the base URL of the request that created the job: the links of
        its responses and webhooks start with it (unless a public base URL is configured).
        The job's ``queue_turn`` is 1 + the owner's jobs of the same model and priority
        already waiting, so a new owner's first job goes before another's second.
        """
        request_hash = request_hash or hash_request(request)
        now = self._clock()
        new_id = job_id or uuid.uuid4().hex
        rank = request.priority if priority is None else priority
        values: dict[str, Any] = {
            "id": new_id,
            "owner": owner,
            "model": request.model,
            "dialect": dialect,
            "status": _QUEUED,
            "attempt": 0,
            "priority": rank,
            "progress": 0.0,
            "request": request.to_json(),
            "request_hash": request_hash,
            "idempotency_key": idempotency_key,
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
            "source_job_id": request.source_job_id,
            "source_kind": request.source_kind,
            "base_url": base_url,
        }
        try:
            with begin_write(self._engine) as connection:
                values["queue_turn"] = 1 + int(
                    connection.scalar(
                        select(func.count())
                        .select_from(jobs)
                        .where(
                            jobs.c.owner == owner,
                            jobs.c.status == _QUEUED,
                            jobs.c.model == request.model,
                            jobs.c.priority == rank,
                        )
                    )
                    or 0
                )
                if guard is not None:
                    guard(connection)
                if self._dispatch is not None:  # the row and its queue entry, or neither
                    values["dispatch_id"] = self._dispatch.enqueue(
                        connection,
                        job_id=new_id,
                        model=request.model,
                        priority=rank,
                        turn=values["queue_turn"],
                        delay_s=0.0,
                    )
                row = connection.execute(
                    insert(jobs).values(values).returning(*jobs.c)
                ).one_or_none()
        except IntegrityError:
            if idempotency_key is None:
                raise
            earlier = self._find_by_key(owner, idempotency_key)
            if earlier is None:
                raise
            return _same_request(earlier, request_hash), False
        assert row is not None
        return job_from_row(row), True

    def find_idempotent(
        self, owner: str, idempotency_key: str, *, request_hash: str | None = None
    ) -> Job | None:
        """The job ``owner`` submitted with ``idempotency_key``, if any.

        Lets the API answer a retry before doing the slow part of accepting it again.
        With ``request_hash``, the same decision ``submit`` makes: the earlier job if the
        hashes match, else ``IdempotencyConflict``.
        """
        row = self._find_by_key(owner, idempotency_key)
        if row is None:
            return None
        return job_from_row(row) if request_hash is None else _same_request(row, request_hash)

    def request_hash(self, job_id: str) -> str:
        """The ``request_hash`` stored with a job (what idempotent retries compare)."""
        with self._engine.connect() as connection:
            value = connection.scalar(select(jobs.c.request_hash).where(jobs.c.id == job_id))
        if value is None:
            raise NotFound(f"job {job_id} not found")
        return str(value)

    # --- reading ---

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
                jobs.c.status == _QUEUED,
                jobs.c.model == job.model,
                jobs.c.cancel_requested.is_(False),
                ahead,
            )
        )
        with self._engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    # --- workers ---

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
            candidate.c.status == _QUEUED, candidate.c.cancel_requested.is_(False)
        )
        if models is not None:
            pick = pick.where(candidate.c.model.in_(builtins.list(models)))
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
        now = self._clock()
        claim = (
            update(jobs)
            .where(jobs.c.id == pick.scalar_subquery(), jobs.c.status == _QUEUED)
            .values(
                status=_RUNNING,
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

    def claim(self, job_id: str, *, dispatch_id: int, worker_id: str, lease_s: float) -> Job | None:
        """Start the next attempt of queued job ``job_id`` for the queue entry ``dispatch_id``.

        None when the job is not queued any more (cancelled, finished, or already running)
        or when ``dispatch_id`` is not the entry its last queueing recorded: a duplicate
        or stale queue entry must not run it.
        """
        now = self._clock()
        claim = (
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.status == _QUEUED,
                jobs.c.cancel_requested.is_(False),
                jobs.c.dispatch_id == dispatch_id,
            )
            .values(
                status=_RUNNING,
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
            jobs.c.id == job_id, jobs.c.status == _QUEUED, jobs.c.dispatch_id == dispatch_id
        )
        return self._read_one(query) is not None

    def dispatch_waiting(self) -> int:
        """Give a queue entry to every queued job that has none (queued while dispatch
        was embedded); returns how many. A no-op without a dispatch."""
        if self._dispatch is None:
            return 0
        waiting = select(jobs).where(jobs.c.status == _QUEUED, jobs.c.dispatch_id.is_(None))
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
        mine = and_(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == _RUNNING)
        statement = update(jobs).where(mine)
        if max_in_flight is not None:
            other = jobs.alias("other")
            busy = (
                select(func.count())
                .select_from(other)
                .where(other.c.status == _RUNNING, other.c.engine == engine, other.c.id != job_id)
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
        outputs = [result] if isinstance(result, VideoResult) else builtins.list(result)
        if not outputs:
            raise ValueError("a succeeded job needs at least one output")
        now = self._clock()
        return self._fenced(
            job_id,
            attempt,
            status=_SUCCEEDED,
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
            status=_FAILED,
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
            job_id, attempt, status=_CANCELLED, lease_until=None, finished_at=now, updated_at=now
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
            status=case((asked, _CANCELLED), else_=_QUEUED),
            finished_at=case((asked, now), else_=None),
            progress=case((asked, jobs.c.progress), else_=0.0),
            worker_id=None,
            lease_until=None,
            updated_at=now,
        )

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
        expired = and_(jobs.c.status == _RUNNING, jobs.c.lease_until < now)
        asked = jobs.c.cancel_requested.is_(True)
        not_asked = jobs.c.cancel_requested.is_(False)
        gone = {"lease_until": None, "updated_at": now}
        outcomes = [
            update(jobs).where(expired, asked).values(status=_CANCELLED, finished_at=now, **gone),
            update(jobs)
            .where(expired, not_asked, jobs.c.attempt >= max_attempts)
            .values(
                status=_FAILED,
                error_code=WORKER_LOST,
                error_message=(
                    f"the worker running this job stopped responding ({max_attempts} attempts)"
                ),
                finished_at=now,
                **gone,
            ),
            update(jobs)
            .where(expired, not_asked, jobs.c.attempt < max_attempts)
            .values(status=_QUEUED, progress=0.0, worker_id=None, **gone),
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
            if on_finished is not None and row.status in _TERMINAL:
                on_finished(job)
        return len(rows)

    def expire_finished(self, finished_before: datetime) -> builtins.list[str]:
        """Mark succeeded jobs that finished before ``finished_before`` as expired and
        return their ids; the caller removes their files (retention)."""
        now = self._clock()
        statement = (
            update(jobs)
            .where(jobs.c.status == _SUCCEEDED, jobs.c.finished_at < finished_before)
            .values(status=_EXPIRED, expires_at=now, updated_at=now)
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
            .where(stale, jobs.c.status == _QUEUED)
            .values(status=_CANCELLED, finished_at=now, **reason),
            update(jobs)
            .where(stale, jobs.c.status == _RUNNING, jobs.c.cancel_requested.is_(False))
            .values(cancel_requested=True, **reason),
        ]
        return self._apply_all(outcomes, on_finished)

    # --- owners ---

    def cancel(self, owner: str, job_id: str) -> Job:
        """Stop ``owner``'s job: queued ones at once, running ones at their next heartbeat.

        A finished job comes back unchanged, so cancelling twice is harmless.
        """
        mine = and_(jobs.c.id == job_id, jobs.c.owner == owner)
        for _ in range(3):  # only repeats if the job changed state between statements
            now = self._clock()
            attempts: builtins.list[Update] = [
                update(jobs)
                .where(mine, jobs.c.status == _QUEUED)
                .values(status=_CANCELLED, finished_at=now, updated_at=now),
                update(jobs)
                .where(mine, jobs.c.status == _RUNNING)
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
                delete(jobs).where(mine, jobs.c.status.in_(_TERMINAL)).returning(*jobs.c)
            ).one_or_none()
            if row is not None:
                return job_from_row(row)
            exists = connection.scalar(select(jobs.c.id).where(mine))
        if exists is None:
            raise NotFound(f"job {job_id} not found")
        raise InvalidRequest("job is still running; cancel it first")

    # --- plumbing ---

    def _fenced(self, job_id: str, attempt: int, _delay_s: float = 0.0, **values: Any) -> Job:
        """Apply ``values`` to attempt ``attempt`` of a running job, or raise LeaseLost."""
        statement = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == _RUNNING)
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
        statements: builtins.list[Update],
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
                if row.status in _TERMINAL:
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
            if row.status in _TERMINAL:
                enqueue(connection, job_row=row, status=row.status, now=now)
            elif row.status == _QUEUED and self._dispatch is not None:
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

    def _find_by_key(self, owner: str, idempotency_key: str) -> Row[Any] | None:
        return self._read_one(
            select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == idempotency_key)
        )

    def _read_one(self, statement: Any) -> Row[Any] | None:
        with self._engine.connect() as connection:
            return connection.execute(statement).one_or_none()

    def _write_one(self, statement: Any) -> Row[Any] | None:
        with begin_write(self._engine) as connection:
            return connection.execute(statement).one_or_none()


def _same_request(row: Row[Any], request_hash: str) -> Job:
    if row.request_hash != request_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return job_from_row(row)
