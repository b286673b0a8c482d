"""Accepting jobs: the insert of a new job, and the idempotent retries of one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select
from sqlalchemy.exc import IntegrityError

from kinema.db import begin_write
from kinema.errors import IdempotencyConflict, NotFound
from kinema.fingerprint import fingerprint
from kinema.jobs.rows import job_from_row
from kinema.jobs.store.base import QUEUED, StoreBase
from kinema.schema import jobs
from kinema.types import GenerationRequest, Job


def hash_request(request: GenerationRequest) -> str:
    """The default ``request_hash``: the fingerprint of ``request``'s canonical JSON.

    Callers that rewrite a request before submitting it (image sources replaced by
    storage keys) hash the body as it arrived instead (``views.creation_fingerprint``),
    so retries compare equal.
    """
    return fingerprint(request.to_json())


class Creates(StoreBase):
    """Accepting jobs (the store's part that inserts rows)."""

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
            "status": QUEUED,
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
                            jobs.c.status == QUEUED,
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

    def _find_by_key(self, owner: str, idempotency_key: str) -> Row[Any] | None:
        return self._read_one(
            select(jobs).where(jobs.c.owner == owner, jobs.c.idempotency_key == idempotency_key)
        )


def _same_request(row: Row[Any], request_hash: str) -> Job:
    if row.request_hash != request_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return job_from_row(row)
