"""The poll's read: one SELECT compiled once and run straight on a DBAPI connection.

Polls are the hottest query of all; this skips SQLAlchemy's per-call statement handling
and the pool's checkout per call, while keeping its semantics (the dialect's SQL and
parameter order, each column's result processor).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from typing import Any

from sqlalchemy import Engine, Select

from kinema.types import VideoResult


class DirectQuery:
    """A SELECT compiled once and executed on a pooled DBAPI connection.

    It skips SQLAlchemy's per-call statement handling (about 140 us of a 160 us poll read
    on SQLite) but keeps its semantics: the SQL and parameter order come from the
    dialect's compiler, and each column goes through its type's result processor, so
    values come back exactly as a normal ``Connection.execute`` returns them.
    """

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self._engine = engine
        self._sql = str(compiled)
        self._order = compiled.positiontup  # None when the driver takes named parameters
        self._dialect = dialect
        self._columns = list(statement.selected_columns)
        # Built from the first cursor's description: some processors need the driver's
        # type code of the column (PostgreSQL numerics do).
        self._processors: list[tuple[str, Any]] | None = None
        self._local = threading.local()

    def _processors_for(self, description: Any) -> list[tuple[str, Any]]:
        if self._processors is None:
            dialect = self._dialect
            self._processors = [
                (
                    str(column.key),
                    column.type.dialect_impl(dialect).result_processor(dialect, info[1]),
                )
                for column, info in zip(self._columns, description, strict=True)
            ]
        return self._processors

    def one_or_none(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The row as ``{column key: value}``, or None."""
        row = self.row(params)
        if row is None:
            return None
        return {key: value for (key, _), value in zip(self._processors or (), row, strict=True)}

    def row(self, params: dict[str, Any]) -> list[Any] | None:
        """The row's values in column order, each through its type's processor, or None."""
        bound: Any = params if self._order is None else [params[k] for k in self._order]
        try:
            row, processors = self._run(self._connection(), bound)
        except Exception:
            # A dropped connection (a database restart): retry once on a new one.
            self._forget_connection()
            row, processors = self._run(self._connection(), bound)
        if row is None:
            return None
        return [
            value if process is None else process(value)
            for (_, process), value in zip(processors, row, strict=True)
        ]

    def _run(self, connection: Any, bound: Any) -> tuple[Any, list[tuple[str, Any]]]:
        cursor = connection.cursor()
        try:
            cursor.execute(self._sql, bound)
            row = cursor.fetchone()
            processors = self._processors_for(cursor.description)
        finally:
            cursor.close()
        connection.rollback()  # end the read (a no-op for SQLite in autocommit)
        return row, processors

    def _connection(self) -> Any:
        """This thread's own connection, taken out of the pool once and kept.

        A pool checkout and checkin cost more than the read itself; polls run on a
        few threads (the event loop above all), so each keeps one connection. It is
        detached from the pool, so it never counts against the pool's size.
        """
        connection = getattr(self._local, "connection", None)
        if connection is None:
            pooled = self._engine.raw_connection()
            pooled.detach()
            self._local.pooled = pooled  # owns the DBAPI connection: keep it alive
            connection = self._local.connection = pooled.dbapi_connection
        return connection

    def _forget_connection(self) -> None:
        connection = getattr(self._local, "pooled", None)
        self._local.connection = self._local.pooled = None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def summary_result(value: Any) -> VideoResult | None:
    """The result column as the summary read returns it: JSON text, or (drivers that
    parse JSON themselves) a dict."""
    if value is None:
        return None
    if isinstance(value, str):
        return _parsed_result(value)
    return video_result(value)


def summary_outputs(value: Any) -> tuple[VideoResult, ...]:
    """The outputs column as the summary read returns it (JSON text or a list)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return _parsed_outputs(value)
    return tuple(video_result(output) for output in value)


@functools.lru_cache(maxsize=1024)
def _parsed_outputs(text: str) -> tuple[VideoResult, ...]:
    # Outputs never change once written either.
    return tuple(video_result(output) for output in json.loads(text))


@functools.lru_cache(maxsize=4096)
def _parsed_result(text: str) -> VideoResult:
    # A result never changes once written, and VideoResult is immutable: safe to share.
    return video_result(json.loads(text))


def video_result(data: dict[str, Any]) -> VideoResult:
    fields = VideoResult.__dataclass_fields__
    known = {name: value for name, value in data.items() if name in fields}
    if "notes" in known:
        known["notes"] = tuple(known["notes"] or ())
    return VideoResult(**known)
