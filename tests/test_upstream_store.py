"""What the job store keeps for forwarded jobs: the engine slot and the provider operation."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from kinema.errors import LeaseLost
from kinema.jobs.store import JobStore
from kinema.types import GenerationRequest, Job, VideoResult
from tests.conftest import FakeClock


@pytest.fixture
def store(engine: Engine, fake_clock: FakeClock) -> JobStore:
    return JobStore(engine, clock=fake_clock)


def _running(store: JobStore, prompt: str) -> Job:
    request = GenerationRequest(model="veo-3.1-generate-preview", prompt=prompt, duration_s=8)
    store.submit(owner="alice", request=request, dialect="gemini")
    job = store.claim_next(worker_id="w", lease_s=10)
    assert job is not None
    return job


def test_an_upstream_engine_takes_no_more_jobs_than_max_in_flight(store: JobStore):
    first, second = _running(store, "one"), _running(store, "two")

    assert store.route(first.id, first.attempt, "hosted", max_in_flight=1)
    assert not store.route(second.id, second.attempt, "hosted", max_in_flight=1)
    assert store.route(second.id, second.attempt, "local")  # another engine is free

    result = VideoResult("k", None, 1280, 720, 24.0, 8.0, False, 1, "hosted")
    store.succeed(first.id, first.attempt, result)
    assert store.route(second.id, second.attempt, "hosted", max_in_flight=1)
    assert store.get_any(second.id).engine == "hosted"
    assert store.get_any(first.id).engine == "hosted"


def test_the_operation_outlives_the_attempt_that_recorded_it(
    store: JobStore, fake_clock: FakeClock
):
    job = _running(store, "crash")
    operation = {"engine": "hosted", "ref": "op-1", "submitted_at": 1.0, "submissions": 1}
    store.record_upstream(job.id, job.attempt, operation)

    fake_clock.advance(11)  # the worker died: its lease runs out
    assert store.requeue_expired(max_attempts=3) == 1
    again = store.claim_next(worker_id="w2", lease_s=10)

    assert again is not None and again.attempt == job.attempt + 1
    assert again.upstream == operation
    with pytest.raises(LeaseLost):  # the dead attempt cannot write it any more
        store.record_upstream(job.id, job.attempt, {**operation, "ref": "op-2"})
    with pytest.raises(LeaseLost):
        store.route(job.id, job.attempt, "hosted", max_in_flight=1)


def test_racing_routes_never_take_more_slots_than_max_in_flight(store: JobStore):
    """Eight workers route eight running jobs to a one-slot engine at the same moment:
    exactly one gets it, on SQLite and on PostgreSQL alike."""
    racers = [_running(store, f"racer {index}") for index in range(8)]
    barrier = threading.Barrier(len(racers))

    def route(job: Job) -> bool:
        barrier.wait()
        return store.route(job.id, job.attempt, "hosted", max_in_flight=1)

    for _ in range(3):
        with ThreadPoolExecutor(len(racers)) as pool:
            routed = list(pool.map(route, racers))
        assert sum(routed) == 1, routed
        winner = racers[routed.index(True)]
        result = VideoResult("k", None, 1280, 720, 24.0, 8.0, False, 1, "hosted")
        store.succeed(winner.id, winner.attempt, result)
        racers = [job for job in racers if job is not winner]
        barrier = threading.Barrier(len(racers))
