"""Seconds of video delivered, per API key and per engine (``kinema usage``).

Each succeeded job records ``usage_s`` (the duration of the video it delivered, measured
from the file) and ``engine`` (the catalog engine that made it, local or upstream), so a
report is one grouped read of the jobs table, served by the ``finished_at`` index when
it starts at a date. Expired jobs still count: their video was delivered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from kinema.errors import InvalidRequest
from kinema.schema import jobs

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class UsageLine:
    owner: str  # the API key id
    engine: str  # "" for jobs that finished before engines were recorded
    jobs: int
    seconds: float


def usage(
    db: Engine, *, owner: str | None = None, since: datetime | None = None
) -> list[UsageLine]:
    """Delivered seconds grouped by key and engine, for ``owner`` and ``since`` if given."""
    engine = func.coalesce(jobs.c.engine, "")
    query = (
        select(jobs.c.owner, engine, func.count(), func.sum(jobs.c.usage_s))
        .where(jobs.c.usage_s.is_not(None))
        .group_by(jobs.c.owner, engine)
        .order_by(jobs.c.owner, engine)
    )
    if owner is not None:
        query = query.where(jobs.c.owner == owner)
    if since is not None:
        query = query.where(jobs.c.finished_at >= since)
    with db.connect() as connection:
        rows = connection.execute(query).all()
    return [UsageLine(row[0], str(row[1]), int(row[2]), float(row[3] or 0.0)) for row in rows]


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``12h``, ``30m`` (that long ago) or an ISO date or time (UTC if no zone)."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.fullmatch(text.strip().lower())
    if relative:
        return now - timedelta(seconds=float(relative[1]) * _UNIT_S[relative[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest.for_field(
            "since", f"{text!r} is neither a duration (7d, 12h, 30m) nor an ISO date"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
