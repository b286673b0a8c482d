"""Seconds of video per key and per engine: recorded on each job, reported by ``kinema usage``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kinema.errors import InvalidRequest
from kinema.jobs.store import JobStore
from kinema.jobs.usage import parse_since, usage
from kinema.runtime import Runtime
from kinema.types import GenerationRequest, VideoResult
from tests.conftest import FakeClock
from tests.support import make_settings


def _deliver(store: JobStore, owner: str, engine: str, seconds: float) -> None:
    request = GenerationRequest(model="veo-3.1-generate-preview", prompt="p", duration_s=8)
    store.submit(owner=owner, request=request, dialect="gemini")
    job = store.claim_next(worker_id="w", lease_s=30)
    assert job is not None
    assert store.route(job.id, job.attempt, engine)
    result = VideoResult(f"jobs/{job.id}/v.mp4", None, 1280, 720, 24.0, seconds, False, 1, engine)
    store.succeed(job.id, job.attempt, result)


@pytest.fixture
def delivered(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Jobs of two keys on two engines: one on 2030-01-01, the others two days later."""
    settings = make_settings(tmp_path)
    runtime = Runtime.build(settings, workers=0)
    alice, _ = runtime.keys.create("alice")
    bob, _ = runtime.keys.create("bob")
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    store = JobStore(runtime.db, clock=clock)
    _deliver(store, alice.id, "up-gemini", 8.0)
    clock.advance(2 * 86400)
    _deliver(store, alice.id, "up-gemini", 4.0)
    _deliver(store, alice.id, "local", 6.0)
    _deliver(store, bob.id, "up-gemini", 5.0)
    runtime.close()
    return settings.data_dir, {"alice": alice.id, "bob": bob.id}


def test_usage_sums_seconds_per_key_and_engine(delivered: tuple[Path, dict[str, str]]):
    data_dir, ids = delivered
    runtime = Runtime.build(make_settings(data_dir.parent), workers=0)
    try:
        everything = {(u.owner, u.engine): (u.jobs, u.seconds) for u in usage(runtime.db)}
        recent = usage(runtime.db, owner=ids["alice"], since=datetime(2030, 1, 2, tzinfo=UTC))
    finally:
        runtime.close()
    assert everything == {
        (ids["alice"], "up-gemini"): (2, 12.0),
        (ids["alice"], "local"): (1, 6.0),
        (ids["bob"], "up-gemini"): (1, 5.0),
    }
    assert {(u.engine, u.seconds) for u in recent} == {("up-gemini", 4.0), ("local", 6.0)}


def test_usage_command_reports_one_key_since_a_date(delivered: tuple[Path, dict[str, str]]):
    data_dir, _ = delivered
    env = {**os.environ, "KINEMA_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "kinema", "usage", "--key", "alice", "--since", "2030-01-02"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if "│" in line or "|" in line]
    rows = [[cell.strip() for cell in line.strip("│| ").split("│")] for line in lines]
    assert ["alice (" in row[0] for row in rows if row[1] == "up-gemini"] == [True]
    assert [row[1:] for row in rows if row[0].startswith(("alice", "total"))] == [
        ["local", "1", "6.0"],
        ["up-gemini", "1", "4.0"],
        ["", "2", "10.0"],
    ]
    unknown = subprocess.run(
        [sys.executable, "-m", "kinema", "usage", "--key", "carol"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 1
    assert "'carol' is not a key" in unknown.stderr


def test_since_takes_durations_and_iso_dates():
    now = datetime(2030, 1, 10, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2030, 1, 3, tzinfo=UTC)
    assert parse_since("12h", now) == datetime(2030, 1, 9, 12, tzinfo=UTC)
    assert parse_since("2030-01-02", now) == datetime(2030, 1, 2, tzinfo=UTC)
    with pytest.raises(InvalidRequest, match="neither a duration"):
        parse_since("last tuesday", now)
