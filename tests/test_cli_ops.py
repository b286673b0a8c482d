"""Operator commands (``kinema jobs ...``, ``kinema keys quota``), run as subprocesses
against the database and storage of a data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kinema.jobs.workers import WorkerRegistry
from kinema.runtime import Runtime
from kinema.types import Job, JobStatus
from kinema.views import Creation
from tests.fixture_engines import model_toml
from tests.support import data_uri, make_settings, pattern_image

CATALOG = (
    """
[engines.crashing]
kind = "python"
class = "tests.fixture_engines:CrashingEngine"
fps = 8

[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
"""
    + model_toml("slow", engine="slow", dialect="v1")
    + """
[models.crashing-i2v]
dialect = "v1"
engine = "crashing"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration"]
"""
)


def setup(tmp_path: Path) -> tuple[dict[str, str], Path]:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    env = {
        **os.environ,
        "KINEMA_DATA_DIR": str(tmp_path / "data"),
        "KINEMA_CATALOG_PATH": str(catalog),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "COLUMNS": "250",
    }
    return env, catalog


def kinema(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinema", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )


def runtime_for(tmp_path: Path, catalog: Path, workers: int) -> Runtime:
    settings = make_settings(tmp_path, catalog_path=catalog)
    return Runtime.build(settings, workers=workers)


def wait_for(runtime: Runtime, job_id: str, status: JobStatus) -> Job:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = runtime.store.get_any(job_id)
        if job.status is status:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {runtime.store.get_any(job_id).status}")


def test_jobs_list_show_retry_and_cancel(tmp_path: Path):
    env, catalog = setup(tmp_path)
    runtime = runtime_for(tmp_path, catalog, workers=1)
    runtime.start()
    try:
        key, _ = runtime.keys.create("ops")
        other, _ = runtime.keys.create("other")
        image = data_uri(pattern_image(64, 36))
        failed = runtime.service.create(
            key.id, "v1", Creation(model="crashing-i2v", fields={"prompt": "x", "image": image})
        )
        wait_for(runtime, failed.id, JobStatus.FAILED)
    finally:
        runtime.close()
    runtime = runtime_for(tmp_path, catalog, workers=0)  # nothing runs: jobs stay queued
    try:
        creation = Creation(model="slow", fields={"prompt": "y"})
        queued = runtime.service.create(other.id, "v1", creation)
        listed = kinema(env, "jobs", "list", "--state", "failed")
        assert listed.returncode == 0, listed.stderr
        assert failed.id in listed.stdout and queued.id not in listed.stdout
        by_key = kinema(env, "jobs", "list", "--key", other.id)
        assert queued.id in by_key.stdout and failed.id not in by_key.stdout
        by_model = kinema(env, "jobs", "list", "--model", "slow", "--state", "queued")
        assert queued.id in by_model.stdout and failed.id not in by_model.stdout

        shown = kinema(env, "jobs", "show", failed.id[:12])
        assert shown.returncode == 0, shown.stderr
        body = json.loads(shown.stdout)
        assert body["status"] == "failed" and body["key_id"] == key.id
        assert body["error"]["code"] == "engine_error"

        retried = kinema(env, "jobs", "retry", failed.id)
        assert retried.returncode == 0, retried.stderr
        new_id = retried.stdout.split()[-1]
        new = runtime.store.get_any(new_id)
        assert new.status is JobStatus.QUEUED and new.owner == key.id
        assert new.request.image is not None and new.request.image.startswith(f"jobs/{new_id}/")
        old = runtime.store.get_any(failed.id)
        assert old.request.image is not None
        assert runtime.storage.get_bytes(new.request.image) == runtime.storage.get_bytes(
            old.request.image
        )
        assert old.status is JobStatus.FAILED

        not_failed = kinema(env, "jobs", "retry", queued.id)
        assert not_failed.returncode == 1 and "only a failed job" in not_failed.stderr

        cancelled = kinema(env, "jobs", "cancel", queued.id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert runtime.store.get_any(queued.id).status is JobStatus.CANCELLED
        missing = kinema(env, "jobs", "show", "ffffffff")
        assert missing.returncode == 1 and "no job" in missing.stderr
    finally:
        runtime.close()


def test_keys_quota_sets_shows_and_lifts_limits(tmp_path: Path):
    env, _ = setup(tmp_path)
    created = kinema(env, "keys", "create", "limited")
    assert created.returncode == 0, created.stderr
    prefix = created.stdout.strip()[:12]
    shown = kinema(env, "keys", "quota", prefix)
    assert "max_active_jobs=unlimited max_video_s_per_day=unlimited" in shown.stdout
    set_both = kinema(
        env, "keys", "quota", prefix, "--max-active-jobs", "2", "--max-video-s-per-day", "60"
    )
    assert set_both.returncode == 0, set_both.stderr
    assert "max_active_jobs=2 max_video_s_per_day=60" in set_both.stdout
    lift_one = kinema(env, "keys", "quota", prefix, "--max-active-jobs", "-1")
    assert "max_active_jobs=unlimited max_video_s_per_day=60" in lift_one.stdout
    unknown = kinema(env, "keys", "quota", "kin_nothing")
    assert unknown.returncode == 1


def test_workers_lists_live_and_dead_and_prunes_the_dead(tmp_path: Path):
    env, catalog = setup(tmp_path)
    runtime = runtime_for(tmp_path, catalog, workers=0)
    now = datetime.now(UTC)
    for worker_id, seen in (("live-1", now), ("dead-1", now - timedelta(hours=1))):
        WorkerRegistry(runtime.db, clock=lambda seen=seen: seen).beat(
            worker_id, host="h", models=["slow"], concurrency=2, stale_after_s=3600
        )
    runtime.close()
    env["KINEMA_LEASE_S"] = "600"  # live-1 stays live however slow the machine

    listed = kinema(env, "workers", "--json")
    assert listed.returncode == 0, listed.stderr
    states = {w["id"]: (w["state"], w["models"]) for w in json.loads(listed.stdout)}
    assert states == {"live-1": ("live", ["slow"]), "dead-1": ("dead", ["slow"])}
    table = kinema(env, "workers").stdout
    assert "live-1" in table and "dead-1" in table and "dead" in table

    pruned = kinema(env, "workers", "--prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 dead worker row" in pruned.stderr
    assert [w["id"] for w in json.loads(pruned.stdout)] == ["live-1"]
