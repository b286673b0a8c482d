"""The embedded worker pool: outcomes, cancel, crashes, shutdown and attempt fencing."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from kinema.errors import TransientError
from kinema.jobs.execute import RunControl
from kinema.jobs.keys import output_video_key
from kinema.jobs.store import JobStore
from kinema.runtime import Runtime
from kinema.types import GenerationRequest, Job, JobStatus
from tests.fixture_engines import model_toml
from tests.scale_support import moto_server
from tests.support import make_settings

CATALOG = (
    """
[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = {frame_s}

[engines.crashing]
kind = "python"
class = "tests.fixture_engines:CrashingEngine"
fps = 8
"""
    + model_toml("slow", engine="slow", dialect="aimlapi", durations=(1, 4, 8), default_duration=4)
    + model_toml("crashing", engine="crashing", dialect="aimlapi")
)


def build(
    tmp_path: Path, *, workers: int = 1, frame_s: float = 0.05, **settings: Any
) -> Runtime:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(frame_s=frame_s))
    return Runtime.build(make_settings(tmp_path, catalog_path=catalog, **settings), workers=workers)


def submit(runtime: Runtime, model: str = "slow", duration: int = 4) -> Job:
    request = runtime.catalog.build_request(model, {"prompt": "p", "duration": duration})
    job, _ = runtime.store.submit(owner="o", request=request, dialect="aimlapi")
    if runtime.pool:
        runtime.pool.notify()
    return job


def wait_for(runtime: Runtime, job_id: str, predicate, timeout_s: float = 30) -> Job:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = runtime.store.get_any(job_id)
        if predicate(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"condition not reached; job is {runtime.store.get_any(job_id)}")


def test_job_runs_to_success_with_rising_progress(tmp_path: Path):
    runtime = build(tmp_path)
    runtime.start()
    try:
        job = submit(runtime)
        seen = []
        done = wait_for(runtime, job.id, lambda j: seen.append(j.progress) or j.status.terminal)  # type: ignore[func-returns-value]
        assert done.status is JobStatus.SUCCEEDED
        assert done.progress == 1.0
        assert any(0 < p < 1 for p in seen)
        assert seen == sorted(seen)
        assert done.result is not None and done.result.duration_s == pytest.approx(4.0)
        assert runtime.storage.local_path(done.result.video_key) is not None
    finally:
        runtime.close()


def test_cancel_stops_a_running_job_long_before_it_would_finish(tmp_path: Path):
    # 64 frames of 0.2 s: about 13 s of rendering left when the cancel comes.
    runtime = build(tmp_path, frame_s=0.2)
    runtime.start()
    try:
        job = submit(runtime, duration=8)
        wait_for(runtime, job.id, lambda j: j.status is JobStatus.RUNNING and j.progress > 0)
        asked = time.monotonic()
        runtime.store.cancel("o", job.id)
        done = wait_for(runtime, job.id, lambda j: j.status.terminal)
        elapsed = time.monotonic() - asked
        assert done.status is JobStatus.CANCELLED
        assert elapsed < 6.0, f"cancel took {elapsed:.1f} s"  # under half the render left
        assert done.progress < 0.5 and done.result is None
        assert runtime.pool is not None
        # The slot lets go of the job right after its cancelled row commits.
        deadline = time.monotonic() + 5
        while runtime.pool.running_jobs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runtime.pool.running_jobs == []
    finally:
        runtime.close()


def test_engine_crash_fails_the_job_and_the_worker_carries_on(tmp_path: Path):
    runtime = build(tmp_path)
    runtime.start()
    try:
        bad = submit(runtime, model="crashing", duration=1)
        failed = wait_for(runtime, bad.id, lambda j: j.status.terminal)
        assert failed.status is JobStatus.FAILED
        assert "the model exploded" in (failed.error_message or "")
        good = submit(runtime, duration=1)
        assert wait_for(runtime, good.id, lambda j: j.status.terminal).status is JobStatus.SUCCEEDED
    finally:
        runtime.close()


def test_graceful_stop_hands_the_running_job_back_to_the_queue(tmp_path: Path):
    runtime = build(tmp_path, frame_s=0.2)
    runtime.start()
    job = submit(runtime, duration=8)
    wait_for(runtime, job.id, lambda j: j.status is JobStatus.RUNNING and j.progress > 0)
    runtime.close()
    assert runtime.store.get_any(job.id).status is JobStatus.QUEUED

    again = build(tmp_path, frame_s=0.01)
    again.start()
    try:
        done = wait_for(again, job.id, lambda j: j.status.terminal)
        assert done.status is JobStatus.SUCCEEDED
    finally:
        again.close()


def test_an_attempt_that_lost_its_lease_commits_nothing(tmp_path: Path):
    runtime = build(tmp_path, workers=1, frame_s=0.0)  # pool built but never started
    try:
        job = submit(runtime, duration=1)
        stale = runtime.store.claim_next(worker_id="old", lease_s=30)
        assert stale is not None and stale.attempt == 1
        # The old worker is presumed dead: its lease runs out and another worker claims.
        later = JobStore(runtime.db, clock=lambda: stale.created_at.replace(year=2999))
        assert later.requeue_expired(max_attempts=3) == 1
        fresh = runtime.store.claim_next(worker_id="new", lease_s=30)
        assert fresh is not None and fresh.attempt == 2

        assert runtime.pool is not None
        runtime.pool.executor.execute(stale, RunControl())

        current = runtime.store.get_any(job.id)
        assert current.status is JobStatus.RUNNING and current.attempt == 2
        job_dir = runtime.settings.resolved_storage_dir / "jobs" / job.id
        assert not list(job_dir.glob("video-*"))
    finally:
        runtime.close()


def test_a_success_removes_what_a_dead_earlier_attempt_had_stored(tmp_path: Path):
    runtime = build(tmp_path, workers=1, frame_s=0.0)  # pool built but never started
    try:
        job = submit(runtime, duration=1)
        dead = runtime.store.claim_next(worker_id="old", lease_s=30)
        assert dead is not None and dead.attempt == 1
        # The first worker stored its video, then was killed before recording it.
        runtime.storage.put_bytes(output_video_key(job.id, 1), b"an unrecorded video")
        later = JobStore(runtime.db, clock=lambda: dead.created_at.replace(year=2999))
        assert later.requeue_expired(max_attempts=3) == 1
        fresh = runtime.store.claim_next(worker_id="new", lease_s=30)
        assert fresh is not None and fresh.attempt == 2

        assert runtime.pool is not None
        runtime.pool.executor.execute(fresh, RunControl())

        done = runtime.store.get_any(job.id)
        job_dir = runtime.settings.resolved_storage_dir / "jobs" / job.id
        assert done.status is JobStatus.SUCCEEDED
        assert sorted(p.name for p in job_dir.glob("video-*")) == ["video-2.mp4"]
    finally:
        runtime.close()


class CopyFailsOnce:
    """The store, but its first copy fails as an unavailable S3 does."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def copy(self, source: str, target: str) -> None:
        if not self.failed:
            self.failed = True
            raise TransientError("object storage unavailable: SlowDown")
        self.storage.copy(source, target)


def test_a_job_succeeds_only_with_the_copies_its_storage_uri_asked_for(tmp_path: Path):
    with moto_server() as s3:
        s3.create_bucket("videos")
        runtime = build(
            tmp_path,
            frame_s=0.0,
            storage_url=s3.url("videos", "kinema"),
            transient_retry_base_s=0.0,
        )  # pool built but never started: attempts run here
        try:
            request = runtime.catalog.build_request("slow", {"prompt": "p", "duration": 1})
            request = dataclasses.replace(request, storage_uri="s3://videos/kinema/out")
            job, _ = runtime.store.submit(owner="o", request=request, dialect="vertex")
            assert runtime.pool is not None
            executor = runtime.pool.executor
            executor.storage = CopyFailsOnce(runtime.storage)  # type: ignore[assignment]

            first = runtime.store.claim_next(worker_id="w", lease_s=30)
            assert first is not None
            executor.execute(first, RunControl())
            between = runtime.store.get_any(job.id)
            second = runtime.store.claim_next(worker_id="w", lease_s=30)
            assert second is not None and second.attempt == 2
            executor.execute(second, RunControl())
            done = runtime.store.get_any(job.id)
        finally:
            runtime.close()
        listed = s3.client().list_objects_v2(Bucket="videos", Prefix="kinema/")
        keys = sorted(item["Key"] for item in listed["Contents"])
    # The copy failed: no success was written, and the attempt's own files went.
    assert between.status is JobStatus.QUEUED and not between.outputs
    assert not any(key.startswith(f"kinema/jobs/{job.id}/video-1") for key in keys)
    assert done.status is JobStatus.SUCCEEDED
    [output] = done.outputs
    assert output.delivered_key == f"out/{job.id}/sample_0.mp4"
    assert f"kinema/{output.delivered_key}" in keys and f"kinema/{output.video_key}" in keys


def test_request_round_trips_through_the_store(tmp_path: Path):
    runtime = build(tmp_path, workers=0)
    try:
        request = GenerationRequest(
            model="slow", prompt="p", duration_s=4, reference_images=("a", "b"), seed=5
        )
        job, created = runtime.store.submit(owner="o", request=request, dialect="aimlapi")
        assert created and runtime.store.get("o", job.id).request == request
    finally:
        runtime.close()
