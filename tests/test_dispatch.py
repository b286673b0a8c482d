"""procrastinate dispatch on PostgreSQL: one transaction per queueing, exactly-once
re-queues, queue-entry fencing, cancel as abort, retries, stalled-entry recovery."""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from kinema.catalog import OFF_PEAK_PRIORITY, Catalog
from kinema.db import make_engine, migrate
from kinema.jobs.dispatch import (
    QUEUE_NAME_MAX,
    TASK_NAME,
    ProcrastinateDispatch,
    dispatch_priority,
    install_procrastinate_schema,
    queue_name,
)
from kinema.jobs.store import JobStore
from kinema.jobs.workers import WorkerRegistry
from kinema.runtime import Runtime
from kinema.types import GenerationRequest, Job, JobStatus
from tests.conftest import reset_postgres
from tests.fixture_engines import model_toml
from tests.support import make_settings

if TYPE_CHECKING:
    from tests.conftest import FakeClock

CATALOG = (
    """
[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = 0.05

[engines.flaky]
kind = "python"
class = "tests.fixture_engines:FlakyEngine"
fps = 8
marker = "{marker}"
"""
    + model_toml("slow", engine="slow", dialect="aimlapi", durations=(1, 4, 8))
    + model_toml("flaky", engine="flaky", dialect="aimlapi")
)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    """An empty PostgreSQL database with kinema's and procrastinate's schemas."""
    reset_postgres(postgres_url)
    built = make_engine(postgres_url)
    migrate(built, extra_step=install_procrastinate_schema)
    try:
        yield built
    finally:
        built.dispose()


@pytest.fixture
def store(pg: Engine, fake_clock: FakeClock) -> JobStore:
    return JobStore(pg, clock=fake_clock, dispatch=ProcrastinateDispatch())


def entries(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    """The procrastinate jobs of one kinema job, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, queue_name, task_name, priority, status, abort_requested, "
                "scheduled_at FROM procrastinate_jobs WHERE args->>'job_id' = :id ORDER BY id"
            ),
            {"id": job_id},
        ).all()
    return [dict(row._mapping) for row in rows]


def dispatch_id(engine: Engine, job_id: str) -> int:
    with engine.connect() as connection:
        value = connection.scalar(
            text("SELECT dispatch_id FROM jobs WHERE id = :id"), {"id": job_id}
        )
    return int(value)


def request(model: str = "slow", **fields: Any) -> GenerationRequest:
    return GenerationRequest(model=model, prompt="p", duration_s=1, **fields)


def test_submit_writes_the_row_and_its_queue_entry_together(store: JobStore, pg: Engine):
    job, _ = store.submit(owner="o", request=request(priority=5), dialect="aimlapi")

    [entry] = entries(pg, job.id)
    assert entry["queue_name"] == "slow"
    assert entry["task_name"] == TASK_NAME
    assert entry["priority"] == dispatch_priority(5, turn=1)
    assert entry["status"] == "todo"
    assert dispatch_id(pg, job.id) == entry["id"]


def test_a_failed_submit_leaves_no_queue_entry(store: JobStore, pg: Engine):
    job, _ = store.submit(owner="o", request=request(), dialect="aimlapi", job_id="a" * 32)
    with pytest.raises(IntegrityError):
        store.submit(owner="o", request=request(), dialect="aimlapi", job_id="a" * 32)

    assert len(entries(pg, job.id)) == 1


def test_off_peak_jobs_queue_below_everything(store: JobStore, pg: Engine, tmp_path: Path):
    catalog = Catalog.from_dict(tomllib.loads(CATALOG.format(marker=tmp_path / "m")))
    ordinary, _ = store.submit(
        owner="o", request=catalog.build_request("slow", {"prompt": "p"}), dialect="aimlapi"
    )
    off_peak_request = catalog.build_request("slow", {"prompt": "p"}, off_peak=True)
    off_peak, _ = store.submit(owner="o", request=off_peak_request, dialect="aimlapi")

    assert off_peak_request.priority == OFF_PEAK_PRIORITY < 0
    assert entries(pg, ordinary.id)[0]["priority"] == dispatch_priority(0, turn=1)
    assert entries(pg, off_peak.id)[0]["priority"] == dispatch_priority(OFF_PEAK_PRIORITY, turn=1)
    assert entries(pg, off_peak.id)[0]["priority"] < entries(pg, ordinary.id)[0]["priority"]


def test_only_the_recorded_queue_entry_can_claim(store: JobStore, pg: Engine):
    job, _ = store.submit(owner="o", request=request(), dialect="aimlapi")
    recorded = dispatch_id(pg, job.id)

    assert store.awaits_dispatch(job.id, recorded)
    assert not store.awaits_dispatch(job.id, recorded + 1)
    assert store.claim(job.id, dispatch_id=recorded + 1, worker_id="w", lease_s=30) is None
    claimed = store.claim(job.id, dispatch_id=recorded, worker_id="w", lease_s=30)
    assert claimed is not None and claimed.attempt == 1
    assert store.claim(job.id, dispatch_id=recorded, worker_id="w2", lease_s=30) is None
    assert not store.awaits_dispatch(job.id, recorded)


def test_an_expired_lease_is_requeued_with_exactly_one_new_entry(
    store: JobStore, pg: Engine, fake_clock: FakeClock
):
    jobs = [store.submit(owner="o", request=request(), dialect="aimlapi")[0] for _ in range(5)]
    for job in jobs:
        assert store.claim(job.id, dispatch_id=dispatch_id(pg, job.id), worker_id="w", lease_s=5)
    fake_clock.advance(10)

    # Every surviving process runs recovery; racing each other they re-queue each row once.
    counts: list[int] = []
    barrier = threading.Barrier(6)

    def recover() -> None:
        barrier.wait()
        counts.append(store.requeue_expired(max_attempts=3))

    threads = [threading.Thread(target=recover) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(counts) == 5
    for job in jobs:
        first, second = entries(pg, job.id)
        assert second["status"] == "todo"
        assert dispatch_id(pg, job.id) == second["id"]
        assert store.claim(job.id, dispatch_id=first["id"], worker_id="old", lease_s=5) is None
        again = store.claim(job.id, dispatch_id=second["id"], worker_id="new", lease_s=5)
        assert again is not None and again.attempt == 2


def test_a_release_with_a_delay_schedules_the_new_entry(store: JobStore, pg: Engine):
    job, _ = store.submit(owner="o", request=request(), dialect="aimlapi")
    store.claim(job.id, dispatch_id=dispatch_id(pg, job.id), worker_id="w", lease_s=30)

    store.release(job.id, 1, retry_in_s=60)

    scheduled = entries(pg, job.id)[-1]["scheduled_at"]
    assert 50 < (scheduled - datetime.now(UTC)).total_seconds() <= 60


def test_cancel_withdraws_a_queued_entry_and_aborts_a_running_one(store: JobStore, pg: Engine):
    queued, _ = store.submit(owner="o", request=request(), dialect="aimlapi")
    running, _ = store.submit(owner="o", request=request(), dialect="aimlapi")
    entry = dispatch_id(pg, running.id)
    with pg.begin() as connection:  # as procrastinate's fetch does
        connection.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"), {"id": entry}
        )
    store.claim(running.id, dispatch_id=entry, worker_id="w", lease_s=30)

    assert store.cancel("o", queued.id).status is JobStatus.CANCELLED
    assert store.cancel("o", running.id).cancel_requested

    assert entries(pg, queued.id)[0]["status"] == "cancelled"
    assert entries(pg, running.id)[0]["abort_requested"] is True


def test_long_model_ids_get_queue_names_postgres_can_notify():
    long_id = "google/veo-3.1-first-last-image-to-video-fast"
    name = queue_name(long_id)
    assert len(name.encode()) <= QUEUE_NAME_MAX
    assert name != queue_name(long_id + "-other")
    assert queue_name("slow") == "slow"


# --- a procrastinate worker in this process ---

CANCEL_SLOW = "frame_s = 0.05"


def build(tmp_path: Path, postgres_url: str, **overrides: Any) -> Runtime:
    catalog = tmp_path / "catalog.toml"
    text_ = CATALOG.format(marker=tmp_path / "flaky.marker")
    catalog.write_text(text_.replace(CANCEL_SLOW, f"frame_s = {overrides.pop('frame_s', 0.05)}"))
    values: dict[str, Any] = {
        "catalog_path": catalog,
        "database_url": postgres_url,
        "dispatch": "procrastinate",
        "lease_s": 2.0,
        "heartbeat_s": 0.5,
        "transient_retry_base_s": 0.2,
    }
    settings = make_settings(tmp_path, **(values | overrides))
    return Runtime.build(settings, workers=2, models=["slow", "flaky"])


def wait_for(runtime: Runtime, job_id: str, done: Any, timeout_s: float = 30) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = runtime.store.get_any(job_id)
        if done(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"condition not reached: {runtime.store.get_any(job_id)}")


def submit(runtime: Runtime, model: str = "slow", duration: int = 1) -> Job:
    built = runtime.catalog.build_request(model, {"prompt": "p", "duration": duration})
    return runtime.store.submit(owner="o", request=built, dialect="aimlapi")[0]


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    reset_postgres(postgres_url)
    return postgres_url


def test_worker_runs_a_job_and_closes_its_entry(tmp_path: Path, pg_url: str):
    runtime = build(tmp_path, pg_url)
    runtime.start()
    try:
        job = submit(runtime)
        done = wait_for(runtime, job.id, lambda j: j.status.terminal)
        assert runtime.service.workers_online("slow") == 2
    finally:
        runtime.close()

    assert done.status is JobStatus.SUCCEEDED, done
    assert done.attempt == 1
    assert entries(runtime.db, job.id) == []  # succeeded entries are deleted
    assert runtime.service.workers_online("slow") == 0  # a clean stop leaves the registry


def test_a_transient_failure_is_retried_after_a_backoff(tmp_path: Path, pg_url: str):
    runtime = build(tmp_path, pg_url)
    runtime.start()
    try:
        job = submit(runtime, "flaky")
        done = wait_for(runtime, job.id, lambda j: j.status.terminal)
    finally:
        runtime.close()

    assert done.status is JobStatus.SUCCEEDED, done
    assert done.attempt == 2


def test_cancel_stops_a_running_job_without_waiting_for_a_heartbeat(tmp_path: Path, pg_url: str):
    # Heartbeats every 10 s: only the abort notification can stop the job this fast.
    runtime = build(tmp_path, pg_url, heartbeat_s=10.0, lease_s=30.0, frame_s=0.2)
    runtime.start()
    try:
        job = submit(runtime, duration=8)
        wait_for(runtime, job.id, lambda j: j.status is JobStatus.RUNNING and j.progress > 0)
        # Another process's cancel: the store alone, no in-process interrupt.
        started = time.monotonic()
        JobStore(runtime.db, dispatch=ProcrastinateDispatch()).cancel("o", job.id)
        done = wait_for(runtime, job.id, lambda j: j.status.terminal, timeout_s=10)
        elapsed = time.monotonic() - started
    finally:
        runtime.close()

    assert done.status is JobStatus.CANCELLED
    # The first heartbeat comes 10 s after the start: a stop it passed on would take about
    # 9 s from here. Half of that leaves a loaded machine room and still tells them apart.
    assert elapsed < 5.0, elapsed


def test_an_entry_left_doing_by_a_dead_worker_runs_again(tmp_path: Path, pg_url: str):
    runtime = build(tmp_path, pg_url)
    job = submit(runtime)
    entry = dispatch_id(runtime.db, job.id)
    with runtime.db.begin() as connection:  # fetched by a worker that then died
        dead = connection.scalar(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - interval '1 hour') RETURNING id"
            )
        )
        connection.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :id"),
            {"w": dead, "id": entry},
        )
    runtime.start()
    try:
        done = wait_for(runtime, job.id, lambda j: j.status.terminal)
    finally:
        runtime.close()

    assert done.status is JobStatus.SUCCEEDED
    assert done.attempt == 1


def test_embedded_mode_never_imports_procrastinate_or_boto3(tmp_path: Path):
    import subprocess
    import sys

    code = (
        "import sys; from kinema.runtime import Runtime; from kinema.settings import Settings;"
        f"r = Runtime.build(Settings(data_dir={str(tmp_path)!r}), workers=1); r.start();"
        "import kinema.api.app, kinema.cli; r.close();"
        "print(sorted(m for m in ('procrastinate', 'boto3', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_an_idle_connection_that_died_is_replaced_on_checkout(pg: Engine, postgres_url: str):
    import psycopg

    from tests.conftest import _libpq

    engine = make_engine(postgres_url, idle_ping_s=0.0)  # every reused connection is idle
    try:
        with engine.connect() as connection:
            pid = connection.scalar(text("SELECT pg_backend_pid()"))
        with psycopg.connect(_libpq(postgres_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        with engine.connect() as connection:
            assert connection.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        engine.dispose()


def test_jobs_queued_before_dispatch_was_switched_on_get_queue_entries(pg: Engine):
    embedded = JobStore(pg)
    job, _ = embedded.submit(owner="o", request=request(), dialect="aimlapi")
    scaled = JobStore(pg, dispatch=ProcrastinateDispatch())

    assert scaled.dispatch_waiting() == 1
    assert scaled.dispatch_waiting() == 0
    [entry] = entries(pg, job.id)
    assert dispatch_id(pg, job.id) == entry["id"]


def test_a_lost_worker_is_logged_counted_and_its_queue_entry_aborted(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
):
    runtime = build(tmp_path, pg_url)
    job = submit(runtime)
    entry = dispatch_id(runtime.db, job.id)
    # A worker fetched the entry, claimed the job and died: its procrastinate entry stays
    # 'doing', the job's lease runs out, its registry row goes silent.
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    WorkerRegistry(runtime.db, clock=lambda: an_hour_ago).beat(
        "gone-host-1-abc", host="gone-host", models=None, concurrency=1, stale_after_s=2.0
    )
    with runtime.db.begin() as connection:
        dead = connection.scalar(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) "
                "VALUES (now() - interval '1 hour') RETURNING id"
            )
        )
        connection.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :id"),
            {"w": dead, "id": entry},
        )
    claimed = runtime.store.claim(
        job.id, dispatch_id=entry, worker_id="gone-host-1-abc", lease_s=0.1
    )
    assert claimed is not None and claimed.attempt == 1
    listed = runtime.registry.listing(live_within_s=2.0)
    assert [(w["id"], w["live"]) for w in listed] == [("gone-host-1-abc", False)]

    with caplog.at_level(logging.WARNING, logger="kinema.jobs.execute"):
        runtime.start()
        try:
            done = wait_for(runtime, job.id, lambda j: j.status.terminal)
            deadline = time.monotonic() + 20  # the stalled entry is settled every lease
            while entries(runtime.db, job.id)[0]["status"] == "doing":
                assert time.monotonic() < deadline, entries(runtime.db, job.id)
                time.sleep(0.1)
            scraped = runtime.metrics.render().decode()
            survivors = runtime.registry.listing(live_within_s=2.0)
        finally:
            runtime.close()

    assert done.status is JobStatus.SUCCEEDED and done.attempt == 2
    said = [r.getMessage() for r in caplog.records if "lease expired" in r.getMessage()]
    assert said == [
        f"job {job.id} attempt 1: lease expired on worker gone-host-1-abc; re-queued for attempt 2"
    ]
    counted = 'kinema_job_leases_expired_total{outcome="queued"} 1.0'
    assert counted in scraped
    # The lost attempt's entry reads 'aborted' (not 'failed': the job succeeded); the one
    # that succeeded was deleted like every successful entry.
    assert [e["status"] for e in entries(runtime.db, job.id)] == ["aborted"]
    # The dead worker's row was cleaned up by the live worker's heartbeat.
    assert "gone-host-1-abc" not in {w["id"] for w in survivors}
