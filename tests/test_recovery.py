"""Recovery paths of the executor, the embedded pool and the queue worker.

A lease lost in the middle of a render, an outcome that arrives after the lease went, a
database that fails while a worker claims or records, a worker whose job blew up in an
unexpected place: every job still ends exactly once, and no worker slot is lost.

Faults come from ``FaultyStore``, a ``JobStore`` wrapper handed to the pieces under test
(nothing is patched): its chosen methods raise for their next few calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from kinema.jobs.execute import Executor, RunControl
from kinema.jobs.pool import WorkerPool
from kinema.jobs.store import JobStore
from kinema.runtime import Runtime
from kinema.types import Job, JobStatus
from tests.fixture_engines import model_toml
from tests.support import make_settings

CATALOG = (
    """
[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = 0.05

[engines.crashing]
kind = "python"
class = "tests.fixture_engines:CrashingEngine"
fps = 8
"""
    + model_toml("slow", engine="slow", dialect="aimlapi", durations=(1, 8))
    + model_toml("crashing", engine="crashing", dialect="aimlapi")
)


def database_down() -> OperationalError:
    return OperationalError("UPDATE jobs ...", {}, Exception("server closed the connection"))


class FaultyStore:
    """A ``JobStore`` whose chosen methods raise for their next ``times`` calls."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._faults: dict[str, list[Any]] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def fail_next(self, method: str, times: int, error: Callable[[], Exception]) -> None:
        self._faults[method] = [times, error]

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] = self.calls.get(name, 0) + 1
                fault = self._faults.get(name)
                failing = fault is not None and fault[0] > 0
                if failing:
                    fault[0] -= 1  # type: ignore[index]
            if failing:
                raise fault[1]()  # type: ignore[index]
            return attribute(*args, **kwargs)

        return call


def build(tmp_path: Path, **overrides: Any) -> Runtime:
    """A runtime whose own pool is never started: tests assemble the pieces they need."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    settings = make_settings(tmp_path, catalog_path=catalog, **overrides)
    return Runtime.build(settings, workers=0)


def executor_for(runtime: Runtime, store: Any, *, outage_wait_s: float = 0.0) -> Executor:
    """An executor whose outage window is ``outage_wait_s``: 0 (the default here) makes
    every database fault outlast it, which is what the lease recovery is for."""
    return Executor(
        store,
        runtime.storage,
        runtime.catalog,
        runtime.engines,
        progress_interval_s=0.05,
        outage_wait_s=outage_wait_s,
    )


def submit(runtime: Runtime, model: str = "slow", duration: int = 1) -> Job:
    request = runtime.catalog.build_request(model, {"prompt": "p", "duration": duration})
    return runtime.store.submit(owner="o", request=request, dialect="aimlapi")[0]


def wait_for(runtime: Runtime, job_id: str, done: Callable[[Job], bool], timeout_s: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = runtime.store.get_any(job_id)
        if done(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"condition not reached: {runtime.store.get_any(job_id)}")


def take_over(runtime: Runtime, stale: Job) -> Job:
    """What happens when ``stale``'s worker is presumed dead: its lease runs out, the job
    is re-queued and another worker claims the next attempt."""
    later = JobStore(runtime.db, clock=lambda: stale.created_at.replace(year=2999))
    assert later.requeue_expired(max_attempts=3) == 1
    fresh = runtime.store.claim_next(worker_id="new", lease_s=30)
    assert fresh is not None and fresh.attempt == stale.attempt + 1
    return fresh


def videos_of(runtime: Runtime, job_id: str) -> list[Path]:
    return sorted((runtime.settings.resolved_storage_dir / "jobs" / job_id).glob("video-*"))


# --- jobs/execute.py ---


def test_a_lease_lost_mid_generation_stops_the_engine_and_writes_nothing(tmp_path: Path):
    runtime = build(tmp_path)
    try:
        job = submit(runtime, duration=8)  # 64 frames of 50 ms: 3.2 s of rendering
        stale = runtime.store.claim_next(worker_id="old", lease_s=30)
        assert stale is not None
        control = RunControl()
        worker = threading.Thread(target=executor_for(runtime, runtime.store).execute,
                                  args=(stale, control))
        worker.start()
        wait_for(runtime, job.id, lambda j: j.progress > 0)  # attempt 1 is rendering
        fresh = take_over(runtime, stale)
        worker.join(20)

        assert not worker.is_alive()
        assert control.lost.is_set(), "its next progress write found the lease gone"
        current = runtime.store.get_any(job.id)
        assert (current.status, current.attempt, current.progress) == (JobStatus.RUNNING, 2, 0)
        assert current.result is None and videos_of(runtime, job.id) == []
        assert list(runtime.storage.scratch_dir().iterdir()) == []
        assert fresh.attempt == 2
    finally:
        runtime.close()


def test_a_failure_after_losing_the_lease_is_dropped(tmp_path: Path):
    runtime = build(tmp_path)
    try:
        job = submit(runtime, model="crashing")
        stale = runtime.store.claim_next(worker_id="old", lease_s=30)
        assert stale is not None
        take_over(runtime, stale)

        executor_for(runtime, runtime.store).execute(stale, RunControl())

        current = runtime.store.get_any(job.id)
        assert (current.status, current.attempt) == (JobStatus.RUNNING, 2)
        assert current.error_code is None and current.error_message is None
    finally:
        runtime.close()


def test_a_success_that_cannot_be_recorded_leaves_no_files_and_no_exception(tmp_path: Path):
    runtime = build(tmp_path)
    try:
        job = submit(runtime)
        claimed = runtime.store.claim_next(worker_id="w", lease_s=30)
        assert claimed is not None
        store = FaultyStore(runtime.store)
        store.fail_next("succeed", 1, database_down)

        executor_for(runtime, store).execute(claimed, RunControl())  # does not raise

        current = runtime.store.get_any(job.id)
        assert current.status is JobStatus.RUNNING, "left to the lease recovery"
        assert videos_of(runtime, job.id) == []
    finally:
        runtime.close()


def test_a_success_write_that_meets_a_short_outage_is_made_once_the_database_is_back(
    tmp_path: Path,
):
    runtime = build(tmp_path)
    try:
        job = submit(runtime)
        claimed = runtime.store.claim_next(worker_id="w", lease_s=30)
        assert claimed is not None
        store = FaultyStore(runtime.store)
        store.fail_next("succeed", 2, database_down)

        executor_for(runtime, store, outage_wait_s=30.0).execute(claimed, RunControl())

        current = runtime.store.get_any(job.id)
        assert (current.status, current.attempt) == (JobStatus.SUCCEEDED, 1)
        assert store.calls["succeed"] == 3  # two outages waited out, no attempt spent
        assert [p.name for p in videos_of(runtime, job.id)] == ["video-1.mp4"]
    finally:
        runtime.close()


# --- jobs/pool.py ---


def pool_for(runtime: Runtime, store: Any, **overrides: Any) -> WorkerPool:
    values: dict[str, Any] = {
        "concurrency": 1,
        "lease_s": 1.0,
        "heartbeat_s": 0.2,
        "poll_s": 0.05,
        "max_attempts": 3,
    }
    return WorkerPool(store, executor_for(runtime, store), **(values | overrides))


def test_the_pool_keeps_claiming_through_database_errors(tmp_path: Path):
    runtime = build(tmp_path)
    store = FaultyStore(runtime.store)
    store.fail_next("claim_next", 3, database_down)
    pool = pool_for(runtime, store)
    pool.start()
    try:
        job = submit(runtime)
        pool.notify()
        done = wait_for(runtime, job.id, lambda j: j.status.terminal)
    finally:
        pool.stop()
        runtime.close()
    assert done.status is JobStatus.SUCCEEDED and done.attempt == 1
    assert store.calls["claim_next"] > 3


def test_a_worker_slot_survives_a_job_whose_outcome_could_not_be_written(tmp_path: Path):
    runtime = build(tmp_path)
    store = FaultyStore(runtime.store)
    store.fail_next("succeed", 1, database_down)
    pool = pool_for(runtime, store)  # one slot: if its thread dies, nothing else runs
    pool.start()
    try:
        first = submit(runtime)
        pool.notify()
        first_done = wait_for(runtime, first.id, lambda j: j.status.terminal)
        second = submit(runtime)
        pool.notify()
        second_done = wait_for(runtime, second.id, lambda j: j.status.terminal)
    finally:
        pool.stop()
        runtime.close()
    # The first attempt's success was lost with the database; its lease lapsed and the
    # second attempt committed. The same slot then ran the next job.
    assert first_done.status is JobStatus.SUCCEEDED and first_done.attempt == 2
    assert [p.name for p in videos_of(runtime, first.id)] == ["video-2.mp4"]
    assert second_done.status is JobStatus.SUCCEEDED and second_done.attempt == 1


def test_a_crash_while_recording_a_failure_does_not_kill_the_slot(tmp_path: Path):
    runtime = build(tmp_path)
    store = FaultyStore(runtime.store)
    store.fail_next("fail", 1, database_down)
    pool = pool_for(runtime, store)
    pool.start()
    try:
        broken = submit(runtime, model="crashing")
        pool.notify()
        failed = wait_for(runtime, broken.id, lambda j: j.status.terminal)
        after = submit(runtime)
        pool.notify()
        done = wait_for(runtime, after.id, lambda j: j.status.terminal)
    finally:
        pool.stop()
        runtime.close()
    assert failed.status is JobStatus.FAILED and failed.attempt == 2
    assert "the model exploded" in (failed.error_message or "")
    assert done.status is JobStatus.SUCCEEDED


# --- jobs/queue_worker.py (PostgreSQL) ---


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    from tests.conftest import reset_postgres

    reset_postgres(postgres_url)
    return postgres_url


def queue_runtime(tmp_path: Path, pg_url: str) -> Runtime:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    settings = make_settings(
        tmp_path,
        catalog_path=catalog,
        database_url=pg_url,
        dispatch="procrastinate",
        lease_s=2.0,
        heartbeat_s=0.5,
    )
    return Runtime.build(settings, workers=1, models=["slow"])


def test_a_database_error_while_claiming_is_retried_by_the_queue(tmp_path: Path, pg_url: str):
    from kinema.jobs.queue_worker import QueueWorker

    runtime = queue_runtime(tmp_path, pg_url)
    store = FaultyStore(runtime.store)
    store.fail_next("claim", 1, database_down)
    assert runtime.pool is not None
    worker = QueueWorker(
        database_url=pg_url,
        store=store,  # type: ignore[arg-type]
        pool=runtime.pool,
        registry=runtime.registry,
        models=["slow"],
        concurrency=1,
        lease_s=2.0,
        heartbeat_s=0.5,
        poll_s=0.2,
    )
    runtime.pool.start()  # supervises only: leases of the jobs the queue worker runs
    worker.start()
    try:
        job = submit(runtime)
        done = wait_for(runtime, job.id, lambda j: j.status.terminal, timeout_s=60)
    finally:
        worker.stop()
        runtime.close()
    assert done.status is JobStatus.SUCCEEDED and done.attempt == 1
    assert store.calls["claim"] == 2, "the task ran again after the failed claim"
