"""Within a priority, owners take turns: one key's burst does not hold back another
key's first job, in the embedded pool and in procrastinate dispatch, and each queued
job's ``queue_position`` is its place in that order."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kinema.runtime import Runtime
from kinema.settings import Settings
from tests.conftest import reset_postgres
from tests.hardening_support import quick_settings
from tests.support import LiveServer, live_server


def submit(server: LiveServer, key: str, label: str) -> str:
    with server.client(key) as client:
        response = client.post(
            "/v1/video/generations", json={"model": "quick", "prompt": label}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def positions(server: LiveServer, keys: dict[str, str], ids: dict[str, str]) -> dict[str, int]:
    """Each queued task's ``queue_position``, as its owner polls it over HTTP."""
    found = {}
    for label, task_id in ids.items():
        with server.client(keys[label[0]]) as client:
            body = client.get(f"/v1/video/generations/{task_id}").json()
        assert body["status"] == "queued", body
        found[label] = body["queue_position"]
    return found


def burst(server: LiveServer) -> tuple[dict[str, str], dict[str, str]]:
    """Key A queues five tasks, then key B two: labels A1..A5, B1, B2 -> task ids."""
    keys = {"A": server.api_key, "B": server.new_key("b")}
    ids = {f"A{n}": submit(server, keys["A"], f"A{n}") for n in range(1, 6)}
    ids |= {f"B{n}": submit(server, keys["B"], f"B{n}") for n in range(1, 3)}
    return keys, ids


FAIR_ORDER = ["A1", "B1", "A2", "B2", "A3", "A4", "A5"]


def started_order(runtime: Runtime, ids: dict[str, str], timeout_s: float = 90) -> list[str]:
    """Labels by the time their jobs started, once all of them have finished."""
    job_ids = {label: task_id.removeprefix("task_") for label, task_id in ids.items()}
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = {label: runtime.store.get_any(job_id) for label, job_id in job_ids.items()}
        if all(job.status.terminal for job in jobs.values()):
            break
        assert time.monotonic() < deadline, {k: j.status for k, j in jobs.items()}
        time.sleep(0.1)
    assert all(job.status.value == "succeeded" for job in jobs.values()), jobs
    started: dict[str, Any] = {label: job.started_at for label, job in jobs.items()}
    return sorted(started, key=started.__getitem__)


def test_the_embedded_pool_takes_owners_in_turns(tmp_path: Path):
    settings = quick_settings(tmp_path)
    with live_server(settings, workers=0) as server:
        keys, ids = burst(server)
        reported = positions(server, keys, ids)
        assert reported == {label: i for i, label in enumerate(FAIR_ORDER)}
    # The same database, now with a worker: jobs start in the order the positions said.
    runtime = Runtime.build(settings, workers=1)
    try:
        runtime.start()
        assert started_order(runtime, ids) == FAIR_ORDER
    finally:
        runtime.close()


def test_a_running_burst_lets_a_new_owner_in_next(tmp_path: Path):
    settings = quick_settings(tmp_path, frame_s=0.05)
    with live_server(settings, workers=1) as server:
        _, ids = burst(server)
        order = started_order(server.runtime, ids)
    # A1 (and maybe A2) were taken before B existed; B1 is taken at the next turn.
    assert order.index("B1") <= 2, order
    assert order.index("B2") <= 4, order


@pytest.fixture
def scale_settings(tmp_path: Path, postgres_url: str) -> Settings:
    reset_postgres(postgres_url)
    return quick_settings(tmp_path, database_url=postgres_url, dispatch="procrastinate")


@pytest.mark.timeout(180)
def test_procrastinate_dispatch_takes_owners_in_turns(scale_settings: Settings):
    with live_server(scale_settings, workers=0) as server:
        keys, ids = burst(server)
        reported = positions(server, keys, ids)
        assert reported == {label: i for i, label in enumerate(FAIR_ORDER)}
    runtime = Runtime.build(scale_settings, workers=1)  # a queue worker with one slot
    try:
        runtime.start()
        assert started_order(runtime, ids) == FAIR_ORDER
    finally:
        runtime.close()
