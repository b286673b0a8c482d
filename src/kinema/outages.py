"""Which failures mean a part of the server is unavailable, decided in one place.

The database driver's connection errors (refused, dropped, a server shutting down or
starting up), object storage that cannot be reached (the stores raise ``Unavailable``
themselves) and a full disk are not a request's fault nor an engine's. ``as_outage``
turns them into ``Unavailable`` (503) or ``InsufficientStorage`` (507), each with a
``Retry-After``; the HTTP layer renders that in the dialect's envelope, and workers wait
for the part to come back (``jobs.patience``) instead of failing jobs.

The messages name the part, never its address, credentials or the driver's own text:
they reach unauthenticated callers. The cause is logged where the error is caught.
"""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy import exc as sa_exc

from kinema.errors import InsufficientStorage, KinemaError, Unavailable

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = "database or disk is full"
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,  # refused, dropped, "the database system is shutting down"
    sa_exc.InterfaceError,  # a connection closed under the driver
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free: the server is not answering
)
try:  # procrastinate talks to PostgreSQL through psycopg directly
    import psycopg

    _DATABASE_ERRORS += (psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # pragma: no cover - psycopg is a dependency
    pass

# Every kind of error ``as_outage`` may turn into an ``Unavailable`` (for handlers that
# are registered by exception class).
CANDIDATES: tuple[type[Exception], ...] = (
    Unavailable,
    OSError,
    sqlite3.Error,
    sa_exc.SQLAlchemyError,
    *_DATABASE_ERRORS,
)
DATABASE_RETRY_AFTER_S = 5.0
DISK_RETRY_AFTER_S = 30.0


def as_outage(error: BaseException) -> Unavailable | None:
    """``error`` (or an error it was raised from) as an ``Unavailable``, or None when it
    is not about an unavailable part of the server. A ``KinemaError`` other than
    ``Unavailable`` was raised on purpose and means what it says, whatever its cause."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KinemaError) and not isinstance(current, Unavailable):
            return None
        found = _classify(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _classify(error: BaseException) -> Unavailable | None:
    if isinstance(error, Unavailable):
        return error
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
        return disk_full()
    if isinstance(error, sa_exc.DBAPIError | sqlite3.OperationalError) and _SQLITE_FULL in str(
        error
    ):
        return disk_full()
    if isinstance(error, _DATABASE_ERRORS):
        return Unavailable(
            "the database is unreachable; retry later", retry_after_s=DATABASE_RETRY_AFTER_S
        )
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return Unavailable(
            "the database is unreachable; retry later", retry_after_s=DATABASE_RETRY_AFTER_S
        )
    return None


def disk_full() -> InsufficientStorage:
    return InsufficientStorage(
        "the server's disk is full; retry later", retry_after_s=DISK_RETRY_AFTER_S
    )
