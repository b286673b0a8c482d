"""Per-key quotas, checked once for every dialect when a job is created.

Two limits per key (``kinema keys quota``), each unset by default:

- ``max_active_jobs``: jobs of the key queued or running at once (a running job being
  cancelled no longer counts);
- ``max_video_s_per_day``: seconds of video requested in the last 24 hours (a rolling
  window; failed and cancelled jobs give their seconds back).

A create that would pass one raises ``QuotaExceeded``, which every dialect renders as its
own 429 with ``Retry-After``. The check reads before the job is written, so two creates
racing on the last free slot may both pass: a quota can be overrun by the number of
creates in flight at the same moment for the key, never more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from kinema.errors import QuotaExceeded
from kinema.jobs.tables import jobs
from kinema.keys import KeyStore
from kinema.types import GenerationRequest, JobStatus

DAY = timedelta(hours=24)
_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_GIVEN_BACK = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)
ACTIVE_RETRY_S = 10.0  # a hint: jobs take seconds to minutes, so look again soon


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QuotaGate:
    def __init__(
        self, engine: Engine, keys: KeyStore, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._clock = clock

    def check(self, owner: str, request: GenerationRequest) -> None:
        """Raise ``QuotaExceeded`` if ``owner`` may not queue ``request`` now."""
        key = self._keys.get(owner)
        if key is None or (key.max_active_jobs is None and key.max_video_s_per_day is None):
            return
        with self._engine.connect() as connection:
            if key.max_active_jobs is not None:
                active = connection.scalar(
                    select(func.count())
                    .select_from(jobs)
                    .where(
                        jobs.c.owner == owner,
                        jobs.c.status.in_(_ACTIVE),
                        jobs.c.cancel_requested.is_(False),
                    )
                )
                if int(active or 0) >= key.max_active_jobs:
                    raise QuotaExceeded(
                        f"quota max_active_jobs exceeded: this key may have at most "
                        f"{key.max_active_jobs} jobs queued or running at once and has "
                        f"{active}; wait for one to finish",
                        ACTIVE_RETRY_S,
                        quota="max_active_jobs",
                    )
            if key.max_video_s_per_day is not None:
                self._check_daily(connection, owner, key.max_video_s_per_day, request)

    def _check_daily(
        self, connection: Connection, owner: str, limit: int, request: GenerationRequest
    ) -> None:
        now = self._clock()
        seconds = jobs.c.request["duration_s"].as_integer()
        query = (
            select(jobs.c.created_at, seconds)
            .where(
                jobs.c.owner == owner,
                jobs.c.created_at > now - DAY,
                jobs.c.status.not_in(_GIVEN_BACK),
            )
            .order_by(jobs.c.created_at)
        )
        rows = [(row[0], int(row[1] or 0)) for row in connection.execute(query)]
        used = sum(s for _, s in rows)
        wanted = request.duration_s
        if used + wanted <= limit:
            return
        # When enough of the window's oldest jobs age out for this one to fit.
        freed, retry_at = 0, now + DAY
        for created, s in rows:
            freed += s
            if used - freed + wanted <= limit:
                retry_at = created + DAY
                break
        raise QuotaExceeded(
            f"quota max_video_s_per_day exceeded: this key may request {limit} seconds of "
            f"video per 24 hours, has used {used} and asked for {wanted} more",
            max(1.0, math.ceil((retry_at - now).total_seconds())),
            quota="max_video_s_per_day",
        )
