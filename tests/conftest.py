"""Shared fixtures: databases (SQLite and a throwaway PostgreSQL database) and a fake clock.

PostgreSQL tests use the server at ``KINEMA_TEST_POSTGRES_URL`` (default: postgres on
127.0.0.1:5432); one database is created per test session and dropped at its end, and
each test starts on an empty schema. If it is unreachable they are skipped, saying why,
unless ``KINEMA_TEST_REQUIRE_POSTGRES=1`` or ``CI=true``: then they fail.

The suite never reads the caller's kinema or AWS settings: ``KINEMA_*`` (other than the
``KINEMA_TEST_*`` variables above) and ``AWS_*`` are removed from the environment before
any test or fixture runs, so a ``KINEMA_DATABASE_URL`` in the shell cannot make the suite
write into that database, and the subprocesses the tests start inherit none of them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from kinema.db import make_engine, migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "KINEMA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_SETTINGS_PREFIX = "KINEMA_TEST_"  # settings of the test suite itself, not of kinema


def postgres_required() -> bool:
    """Whether an unreachable PostgreSQL fails the PostgreSQL tests instead of skipping them."""
    flag = os.environ.get("KINEMA_TEST_REQUIRE_POSTGRES", "")
    return flag.lower() in ("1", "true", "yes") or os.environ.get("CI", "").lower() == "true"


def missing_tool(reason: str) -> NoReturn:
    """Skip a test whose tool (node, npm, openssl, scikit-image, a prepared SDK) is missing;
    under ``CI=true`` fail it instead, as an unreachable PostgreSQL does: CI must run all."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (required: CI is set)")
    pytest.skip(reason)


def inherited_settings(environ: Mapping[str, str]) -> list[str]:
    """Names of variables in ``environ`` that would configure kinema or its S3 client."""
    return sorted(
        name
        for name in environ
        if (name.startswith("KINEMA_") and not name.startswith(TEST_SETTINGS_PREFIX))
        or name.startswith("AWS_")
    )


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, so module- and session-scoped fixtures are covered too.
    for name in inherited_settings(os.environ):
        del os.environ[name]


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
        reason = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}"
        if postgres_required():
            pytest.fail(reason + " (required: KINEMA_TEST_REQUIRE_POSTGRES or CI is set)")
        pytest.skip(reason)
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
