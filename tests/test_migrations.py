"""Migrations and engine set-up: the migrated schema is exactly ``tables.metadata``."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from kinema.db import MIGRATIONS_DIR, alembic_config, begin_write, make_engine, migrate
from kinema.jobs.store import JobStore
from kinema.schema import metadata
from kinema.types import GenerationRequest


@pytest.fixture
def bare_engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty, unmigrated database."""
    built = make_engine(db_url)
    try:
        yield built
    finally:
        built.dispose()


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def kinema_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_builds_exactly_the_declared_schema(bare_engine: Engine):
    migrate(bare_engine)

    assert current_revision(bare_engine) == head()
    assert kinema_tables(bare_engine) == set(metadata.tables)
    with bare_engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_upgrading_again_is_a_no_op_that_keeps_data(bare_engine: Engine):
    migrate(bare_engine)
    store = JobStore(bare_engine)
    job, _ = store.submit(
        owner="o", request=GenerationRequest(model="m", prompt="p", duration_s=4), dialect="x"
    )

    migrate(bare_engine)

    assert current_revision(bare_engine) == head()
    assert store.get("o", job.id) == job


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(bare_engine: Engine):
    migrate(bare_engine)
    with begin_write(bare_engine) as connection:
        command.downgrade(alembic_config(connection), "base")

    assert kinema_tables(bare_engine) == set()
    assert current_revision(bare_engine) is None
    migrate(bare_engine)
    assert kinema_tables(bare_engine) == set(metadata.tables)


def test_concurrent_first_starts_all_succeed(db_url: str):
    engines = [make_engine(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            migrate(engine)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == []
        assert current_revision(engines[0]) == head()
    finally:
        for engine in engines:
            engine.dispose()


def test_migration_scripts_live_inside_the_package():
    assert MIGRATIONS_DIR.parent == Path(__import__("kinema").__file__).parent
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert any((MIGRATIONS_DIR / "versions").glob("0001_*.py"))


# --- engine set-up ---


def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'kinema.db'}")
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            }
    finally:
        engine.dispose()
    assert (tmp_path / "a" / "b" / "kinema.db").is_file()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 10000,
        "synchronous": 1,
        "foreign_keys": 1,
    }


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgresql+psycopg://u@h/db", "postgres://u@h/db"]
)
def test_postgres_urls_use_psycopg_3(url: str):
    engine = make_engine(url)
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    # Idle connections are pinged before use (not every checkout): see
    # test_dispatch.py::test_an_idle_connection_that_died_is_replaced_on_checkout.


def test_other_databases_are_refused():
    with pytest.raises(ValueError, match="sqlite or postgresql"):
        make_engine("mysql://u:secret@h/db")
    with pytest.raises(ValueError, match="in-memory"):
        make_engine("sqlite://")


def test_sqlite_write_transactions_take_the_lock_before_their_first_read(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'kinema.db'}")
    entered = threading.Event()
    try:
        with begin_write(engine) as first:
            first.exec_driver_sql("SELECT 1")

            def second_writer() -> None:
                with begin_write(engine):
                    entered.set()

            thread = threading.Thread(target=second_writer)
            thread.start()
            assert not entered.wait(0.3)  # queued behind the first, not failing
        thread.join(5)
        assert entered.is_set()
    finally:
        engine.dispose()


def test_upgrade_gives_each_finished_job_its_video_as_its_one_output(bare_engine: Engine):
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from kinema.schema import jobs
    from kinema.types import VideoResult

    scripts = ScriptDirectory.from_config(alembic_config())
    before = scripts.get_revision("outputs").down_revision
    assert isinstance(before, str)
    migrate(bare_engine, before)  # the schema before several outputs existed
    result = VideoResult("jobs/j/video-1.mp4", "jobs/j/thumb.jpg", 1280, 720, 24.0, 4.0, True, 9)
    now = datetime.now(UTC)
    older = {c.name for c in jobs.c} - {"outputs", "source_job_id", "source_kind"}
    finished = {
        "id": "j",
        "owner": "o",
        "model": "m",
        "dialect": "x",
        "status": "succeeded",
        "attempt": 1,
        "priority": 0,
        "progress": 1.0,
        "request_hash": "h",
        "request": GenerationRequest(model="m", prompt="p", duration_s=4).to_json(),
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "result": dataclasses.asdict(result),
    }
    queued = {**finished, "id": "q", "status": "queued", "attempt": 0, "result": None}
    with begin_write(bare_engine) as connection:
        for values in (finished, queued):
            connection.execute(
                insert(jobs).values({k: v for k, v in values.items() if k in older})
            )

    migrate(bare_engine)

    store = JobStore(bare_engine)
    assert store.get("o", "j").outputs == (result,)
    assert store.get("o", "j").result == result
    assert store.get("o", "q").outputs == ()
