"""Shared fixtures: databases (SQLite and a throwaway PostgreSQL database) and a fake clock.

PostgreSQL tests use the server at ``KINEMA_TEST_POSTGRES_URL`` (default: postgres on
127.0.0.1:5432); one database is created per test session and dropped at its end, and
each test starts on an empty schema. They are skipped, saying why, if it is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from kinema.db import make_engine, migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as psycopg wants it (no ``+driver``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database that exists only for this test session."""
    admin = _libpq(POSTGRES_ADMIN_URL)
    try:
        psycopg.connect(admin, connect_timeout=3, autocommit=True).close()
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}")
    name = f"kinema_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def reset_postgres(url: str) -> None:
    """Empty a test database: drop every table kinema (or a test) created."""
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind kinema supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'kinema.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database migrated to the current schema."""
    built = make_engine(db_url)
    migrate(built)
    try:
        yield built
    finally:
        built.dispose()


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
