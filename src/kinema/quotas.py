"""Per-key quotas, checked once for every dialect when a job is created.

Two limits per key (``kinema keys quota``), each unset by default:

- ``max_active_jobs``: jobs of the key queued or running at once (a running job being
  cancelled no longer counts);
- ``max_video_s_per_day``: seconds of video requested in the last 24 hours (a rolling
  window; failed and cancelled jobs give their seconds back), counted as usage bills
  them (``billed_seconds``): every sample, and an extension's whole video, the source it
  continues included, since that is the video it delivers.

A create that would pass one raises ``QuotaExceeded``, which every dialect renders as its
own 429 with ``Retry-After``. The runtime checks twice: once before the create's images are
fetched (cheap refusals, an extension's source not yet measured), and again inside the
transaction that inserts the job, with the source measured, after locking the key's row
(PostgreSQL; SQLite's write transaction is already exclusive), so creates racing for a
key's last free slot cannot both pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from kinema.errors import QuotaExceeded
from kinema.schema import api_keys, jobs
from kinema.types import GenerationRequest, JobStatus

DAY = timedelta(hours=24)
_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_GIVEN_BACK = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)
ACTIVE_RETRY_S = 10.0  # a hint: jobs take seconds to minutes, so look again soon


def _utcnow() -> datetime:
    return datetime.now(UTC)


def billed_seconds(request: GenerationRequest) -> float:
    """Seconds of video ``request`` delivers, as ``kinema usage`` will count them: each of
    its samples is a video, and an extension's video is its source followed by the new
    seconds."""
    per_video = request.duration_s + (request.video_duration_s or 0.0)
    return max(1, request.sample_count) * per_video


def _billed(stored: Any) -> float:
    """``billed_seconds`` of a request as the jobs table holds it."""
    data = stored if isinstance(stored, dict) else {}
    per_video = float(data.get("duration_s") or 0) + float(data.get("video_duration_s") or 0)
    return max(1, int(data.get("sample_count") or 1)) * per_video


class QuotaGate:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def check(
        self, owner: str, request: GenerationRequest, connection: Connection | None = None
    ) -> None:
        """Raise ``QuotaExceeded`` if ``owner`` may not queue ``request`` now.

        Given the ``connection`` of the transaction that will insert the job, the key's row
        is locked first, so concurrent creates of one key check one after the other.
        """
        if connection is None:
            with self._engine.connect() as own:
                self._check(own, owner, request, lock=False)
        else:
            self._check(connection, owner, request, lock=True)

    def _check(
        self, connection: Connection, owner: str, request: GenerationRequest, *, lock: bool
    ) -> None:
        query = select(api_keys.c.max_active_jobs, api_keys.c.max_video_s_per_day).where(
            api_keys.c.id == owner
        )
        if lock and connection.dialect.name == "postgresql":
            query = query.with_for_update()
        limits = connection.execute(query).one_or_none()
        if limits is None or (limits[0] is None and limits[1] is None):
            return
        max_active_jobs, max_video_s_per_day = limits
        if max_active_jobs is not None:
            active = connection.scalar(
                select(func.count())
                .select_from(jobs)
                .where(
                    jobs.c.owner == owner,
                    jobs.c.status.in_(_ACTIVE),
                    jobs.c.cancel_requested.is_(False),
                )
            )
            if int(active or 0) >= max_active_jobs:
                raise QuotaExceeded(
                    f"quota max_active_jobs exceeded: this key may have at most "
                    f"{max_active_jobs} jobs queued or running at once and has "
                    f"{active}; wait for one to finish",
                    ACTIVE_RETRY_S,
                    quota="max_active_jobs",
                )
        if max_video_s_per_day is not None:
            self._check_daily(connection, owner, max_video_s_per_day, request)

    def _check_daily(
        self, connection: Connection, owner: str, limit: int, request: GenerationRequest
    ) -> None:
        now = self._clock()
        query = (
            select(jobs.c.created_at, jobs.c.request)
            .where(
                jobs.c.owner == owner,
                jobs.c.created_at > now - DAY,
                jobs.c.status.not_in(_GIVEN_BACK),
            )
            .order_by(jobs.c.created_at)
        )
        rows = [(row[0], _billed(row[1])) for row in connection.execute(query)]
        used = sum(s for _, s in rows)
        wanted = billed_seconds(request)
        if used + wanted <= limit + 1e-6:
            return
        # When enough of the window's oldest jobs age out for this one to fit.
        freed, retry_at = 0.0, now + DAY
        for created, s in rows:
            freed += s
            if used - freed + wanted <= limit + 1e-6:
                retry_at = created + DAY
                break
        raise QuotaExceeded(
            f"quota max_video_s_per_day exceeded: this key may request {limit} seconds of "
            f"video per 24 hours, has used {used:g} and asked for {wanted:g} more",
            max(1.0, math.ceil((retry_at - now).total_seconds())),
            quota="max_video_s_per_day",
        )
