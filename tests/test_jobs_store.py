"""JobStore on SQLite and PostgreSQL: life cycle, fencing, idempotency, claiming, recovery."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, update

from kinema.errors import IdempotencyConflict, InvalidRequest, LeaseLost, NotFound
from kinema.jobs.store import JobStore
from kinema.schema import jobs
from kinema.types import GenerationRequest, Job, JobStatus, VideoResult

if TYPE_CHECKING:
    from tests.conftest import FakeClock

MODEL = "veo-3.1-fast"
RESULT = VideoResult(
    video_key="jobs/x/video.mp4",
    thumbnail_key="jobs/x/thumb.jpg",
    width=1280,
    height=720,
    fps=24.0,
    duration_s=4.0,
    has_audio=True,
    size_bytes=12345,
)


def req(prompt: str = "a cat", model: str = MODEL, **fields: Any) -> GenerationRequest:
    return GenerationRequest(model=model, prompt=prompt, duration_s=4, **fields)


@pytest.fixture
def store(engine: Engine, fake_clock: FakeClock) -> JobStore:
    return JobStore(engine, clock=fake_clock)


def submit(store: JobStore, owner: str = "alice", **kwargs: Any) -> Job:
    request = kwargs.pop("request", None) or req()
    job, created = store.submit(owner=owner, request=request, dialect="aimlapi", **kwargs)
    assert created
    return job


def claim(store: JobStore, lease_s: float = 30, **kwargs: Any) -> Job:
    job = store.claim_next(worker_id="w1", lease_s=lease_s, **kwargs)
    assert job is not None
    return job


# --- life cycle ---


def test_submit_stores_a_queued_job_that_reads_back_equal(store: JobStore, fake_clock: FakeClock):
    request = req(image="inputs/a.png", reference_images=("inputs/r.png",), seed=7, priority=3)
    job = submit(store, request=request, idempotency_key="k1")

    assert job.status is JobStatus.QUEUED
    assert job.attempt == 0
    assert job.progress == 0.0
    assert job.priority == 3
    assert job.request == request
    assert job.created_at == fake_clock.now
    assert job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == timedelta(0)
    assert store.get("alice", job.id) == job
    assert store.get_any(job.id) == job


def test_job_runs_from_claim_through_progress_to_success(store: JobStore, fake_clock: FakeClock):
    job = submit(store)
    fake_clock.advance(1)
    running = claim(store, lease_s=30)

    assert running.id == job.id
    assert running.status is JobStatus.RUNNING
    assert running.attempt == 1
    assert running.started_at == fake_clock.now
    assert running.lease_until == fake_clock.now + timedelta(seconds=30)

    store.set_progress(job.id, 1, 0.4)
    store.set_progress(job.id, 1, 0.2)  # never goes back
    assert store.get_any(job.id).progress == pytest.approx(0.4)
    store.set_progress(job.id, 1, 7.0)  # clamped
    assert store.get_any(job.id).progress == 1.0

    fake_clock.advance(5)
    done = store.succeed(job.id, 1, RESULT)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == RESULT
    assert done.progress == 1.0
    assert done.finished_at == fake_clock.now
    assert done.lease_until is None
    assert store.get("alice", job.id) == done


def test_fail_records_code_and_message(store: JobStore):
    job = submit(store)
    claim(store)
    failed = store.fail(job.id, 1, "engine_error", "out of memory")
    assert failed.status is JobStatus.FAILED
    assert (failed.error_code, failed.error_message) == ("engine_error", "out of memory")
    assert failed.finished_at is not None
    assert failed.result is None


def test_worker_writes_to_a_finished_job_raise_lease_lost(store: JobStore):
    job = submit(store)
    claim(store)
    store.succeed(job.id, 1, RESULT)
    with pytest.raises(LeaseLost):
        store.fail(job.id, 1, "engine_error", "late")
    with pytest.raises(LeaseLost):
        store.heartbeat(job.id, 1, 30)
    assert store.get_any(job.id).status is JobStatus.SUCCEEDED


def test_jobs_the_supervisor_ends_are_handed_over_once_committed(
    store: JobStore, fake_clock: FakeClock
):
    """A lost worker's job on its last attempt fails with ``worker_lost``; one with a
    cancel request ends cancelled; one with attempts left goes back to the queue. Only
    the two that ended reach ``on_finished`` (the metrics count them)."""
    last = submit(store)
    claim(store, lease_s=10)
    fake_clock.advance(11)
    assert store.requeue_expired(max_attempts=3) == 1
    assert claim(store, lease_s=10).attempt == 2  # ``last`` is on its second attempt
    asked, again = submit(store), submit(store)
    claim(store, lease_s=10)
    claim(store, lease_s=10)
    store.cancel("alice", asked.id)
    fake_clock.advance(11)
    ended: list[Job] = []

    recovered = store.requeue_expired(max_attempts=2, on_finished=ended.append)

    assert recovered == 3
    assert {job.id: job.status for job in ended} == {
        last.id: JobStatus.FAILED,
        asked.id: JobStatus.CANCELLED,
    }
    assert store.get_any(again.id).status is JobStatus.QUEUED


def test_old_attempt_is_fenced_off_after_requeue_and_reclaim(
    store: JobStore, fake_clock: FakeClock
):
    job = submit(store)
    first = claim(store, lease_s=10)
    fake_clock.advance(11)
    assert store.requeue_expired(max_attempts=3) == 1
    second = claim(store, lease_s=10)
    assert second.attempt == first.attempt + 1 == 2

    stale: list[Callable[[], object]] = [
        lambda: store.heartbeat(job.id, 1, 10),
        lambda: store.set_progress(job.id, 1, 0.5),
        lambda: store.succeed(job.id, 1, RESULT),
        lambda: store.fail(job.id, 1, "engine_error", "boom"),
        lambda: store.acknowledge_cancel(job.id, 1),
        lambda: store.release(job.id, 1),
    ]
    for write in stale:
        with pytest.raises(LeaseLost):
            write()

    assert store.heartbeat(job.id, 2, 10) is False
    assert store.succeed(job.id, 2, RESULT).status is JobStatus.SUCCEEDED


# --- idempotency ---


def test_same_key_and_body_returns_the_first_job(store: JobStore):
    first = submit(store, idempotency_key="k", request_hash="h1")
    again, created = store.submit(
        owner="alice", request=req(), dialect="aimlapi", idempotency_key="k", request_hash="h1"
    )
    assert created is False
    assert again.id == first.id
    assert store.find_idempotent("alice", "k") == first
    assert store.request_hash(first.id) == "h1"


def test_same_key_with_a_different_body_conflicts(store: JobStore):
    submit(store, idempotency_key="k", request=req("a cat"))
    with pytest.raises(IdempotencyConflict):
        store.submit(owner="alice", request=req("a dog"), dialect="aimlapi", idempotency_key="k")


def test_idempotency_keys_are_per_owner_and_optional(store: JobStore):
    mine = submit(store, owner="alice", idempotency_key="k")
    theirs = submit(store, owner="bob", idempotency_key="k")
    assert mine.id != theirs.id
    assert submit(store).id != submit(store).id  # no key: every submit is a new job
    assert store.find_idempotent("carol", "k") is None


def test_concurrent_submits_with_one_key_make_one_job(store: JobStore):
    barrier = threading.Barrier(8)

    def go(_: int) -> tuple[Job, bool]:
        barrier.wait()
        return store.submit(owner="alice", request=req(), dialect="aimlapi", idempotency_key="same")

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(go, range(8)))

    assert len({job.id for job, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1
    assert len(store.list("alice", limit=100)) == 1


# --- owners ---


def test_other_owners_cannot_see_or_touch_a_job(store: JobStore):
    job = submit(store, owner="alice")
    for act in (store.get, store.cancel, store.delete):
        with pytest.raises(NotFound):
            act("bob", job.id)
    with pytest.raises(NotFound):
        store.get("alice", "no-such-job")
    assert store.list("bob") == []
    assert store.get("alice", job.id).status is JobStatus.QUEUED


# --- claiming ---


def test_claims_take_highest_priority_then_oldest(store: JobStore, fake_clock: FakeClock):
    old_low = submit(store, priority=0)
    fake_clock.advance(1)
    new_high = submit(store, priority=5)
    fake_clock.advance(1)
    newer_low = submit(store, priority=0)
    fake_clock.advance(1)
    old_high = submit(store, priority=5)  # newer than new_high, same priority

    order = [claim(store).id for _ in range(4)]
    assert order == [new_high.id, old_high.id, old_low.id, newer_low.id]
    assert store.claim_next(worker_id="w1", lease_s=30) is None


def test_claims_only_take_the_models_asked_for(store: JobStore, fake_clock: FakeClock):
    wan = submit(store, request=req(model="wan"))
    fake_clock.advance(1)
    ltx = submit(store, request=req(model="ltx"))

    assert store.claim_next(worker_id="w", lease_s=30, models=[]) is None
    assert store.claim_next(worker_id="w", lease_s=30, models={"nope"}) is None
    assert claim(store, models=["ltx"]).id == ltx.id
    assert claim(store, models=("wan", "ltx")).id == wan.id


def test_claims_skip_queued_jobs_with_a_cancel_request(store: JobStore, engine: Engine):
    job = submit(store)
    with engine.begin() as connection:  # a state only a race could leave behind
        connection.execute(update(jobs).where(jobs.c.id == job.id).values(cancel_requested=True))
    assert store.claim_next(worker_id="w", lease_s=30) is None


def test_concurrent_claimers_take_each_job_exactly_once(store: JobStore, fake_clock: FakeClock):
    submitted = set()
    for i in range(40):
        submitted.add(submit(store, priority=i % 3).id)
        fake_clock.advance(0.001)
    barrier = threading.Barrier(8)

    def drain(worker: int) -> list[str]:
        barrier.wait()
        taken = []
        while (job := store.claim_next(worker_id=f"w{worker}", lease_s=30)) is not None:
            assert job.attempt == 1
            taken.append(job.id)
        return taken

    with ThreadPoolExecutor(8) as pool:
        claimed = [job_id for batch in pool.map(drain, range(8)) for job_id in batch]

    assert len(claimed) == len(submitted)
    assert set(claimed) == submitted


# --- recovery ---


def test_expired_leases_go_back_to_the_queue(store: JobStore, fake_clock: FakeClock):
    job = submit(store)
    claim(store, lease_s=10)
    store.set_progress(job.id, 1, 0.5)

    fake_clock.advance(9)
    assert store.requeue_expired(max_attempts=3) == 0
    fake_clock.advance(2)
    assert store.requeue_expired(max_attempts=3) == 1

    queued = store.get_any(job.id)
    assert queued.status is JobStatus.QUEUED
    assert queued.attempt == 1  # the next claim makes it 2
    assert queued.lease_until is None
    assert queued.progress == 0.0
    assert claim(store).attempt == 2


def test_heartbeats_keep_a_job_from_being_requeued(store: JobStore, fake_clock: FakeClock):
    job = submit(store)
    claim(store, lease_s=10)
    for _ in range(3):
        fake_clock.advance(8)
        assert store.heartbeat(job.id, 1, 10) is False
        assert store.requeue_expired(max_attempts=3) == 0
    assert store.get_any(job.id).status is JobStatus.RUNNING


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(
    store: JobStore, fake_clock: FakeClock
):
    job = submit(store)
    for attempt in (1, 2):
        assert claim(store, lease_s=5).attempt == attempt
        fake_clock.advance(6)
        assert store.requeue_expired(max_attempts=3) == 1
        assert store.get_any(job.id).status is JobStatus.QUEUED
    claim(store, lease_s=5)
    fake_clock.advance(6)
    assert store.requeue_expired(max_attempts=3) == 1

    failed = store.get_any(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error_code == "worker_lost"
    assert failed.finished_at == fake_clock.now
    assert store.claim_next(worker_id="w", lease_s=5) is None


def test_release_puts_a_running_job_back_unless_cancel_was_asked(store: JobStore):
    kept = submit(store)
    claim(store)
    released = store.release(kept.id, 1)
    assert (released.status, released.attempt) == (JobStatus.QUEUED, 1)

    dropped = claim(store)
    store.cancel("alice", dropped.id)
    assert store.release(dropped.id, 2).status is JobStatus.CANCELLED


# --- cancelling ---


def test_cancel_a_queued_job_at_once(store: JobStore):
    job = submit(store)
    cancelled = store.cancel("alice", job.id)
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert store.claim_next(worker_id="w", lease_s=30) is None


def test_cancel_a_running_job_through_its_worker(store: JobStore):
    job = submit(store)
    claim(store)
    asked = store.cancel("alice", job.id)
    assert (asked.status, asked.cancel_requested) == (JobStatus.RUNNING, True)
    assert store.heartbeat(job.id, 1, 30) is True
    done = store.acknowledge_cancel(job.id, 1)
    assert done.status is JobStatus.CANCELLED
    assert done.finished_at is not None


def test_cancel_a_finished_job_changes_nothing(store: JobStore):
    job = submit(store)
    claim(store)
    done = store.succeed(job.id, 1, RESULT)
    assert store.cancel("alice", job.id) == done


def test_a_running_job_whose_worker_died_after_a_cancel_ends_cancelled(
    store: JobStore, fake_clock: FakeClock
):
    job = submit(store)
    claim(store, lease_s=10)
    store.cancel("alice", job.id)
    fake_clock.advance(11)
    assert store.requeue_expired(max_attempts=3) == 1
    assert store.get_any(job.id).status is JobStatus.CANCELLED


# --- listing, deleting, queue position ---


def test_list_pages_by_creation_time_in_both_orders(store: JobStore, fake_clock: FakeClock):
    ids = []
    for _ in range(5):
        ids.append(submit(store).id)
        fake_clock.advance(1)
    submit(store, owner="bob")

    first = store.list("alice", limit=2)
    assert [j.id for j in first] == [ids[4], ids[3]]
    second = store.list("alice", limit=2, after=first[-1].id)
    assert [j.id for j in second] == [ids[2], ids[1]]
    assert [j.id for j in store.list("alice", limit=2, after=second[-1].id)] == [ids[0]]
    assert [j.id for j in store.list("alice", limit=10, order="asc", after=ids[1])] == ids[2:]
    with pytest.raises(InvalidRequest):
        store.list("alice", after="no-such-job")


def test_list_breaks_creation_time_ties_by_id(store: JobStore):
    ids = sorted(submit(store).id for _ in range(4))  # all at one instant
    assert [j.id for j in store.list("alice", order="asc")] == ids
    page = store.list("alice", order="asc", limit=2)
    assert [j.id for j in store.list("alice", order="asc", after=page[-1].id)] == ids[2:]


def test_only_finished_jobs_can_be_deleted(store: JobStore):
    queued = submit(store)
    with pytest.raises(InvalidRequest, match="cancel it first"):
        store.delete("alice", queued.id)
    claim(store)
    with pytest.raises(InvalidRequest):
        store.delete("alice", queued.id)
    done = store.succeed(queued.id, 1, RESULT)

    assert store.delete("alice", queued.id) == done
    with pytest.raises(NotFound):
        store.get("alice", queued.id)
    with pytest.raises(NotFound):
        store.delete("alice", queued.id)


def test_queue_position_counts_jobs_claimed_before_it(store: JobStore, fake_clock: FakeClock):
    a = submit(store)
    fake_clock.advance(1)
    b = submit(store)
    fake_clock.advance(1)
    urgent = submit(store, priority=9)
    other_model = submit(store, request=req(model="other"))

    assert store.queue_position(urgent) == 0
    assert store.queue_position(a) == 1
    assert store.queue_position(b) == 2
    assert store.queue_position(other_model) == 0

    running = claim(store, models=[MODEL])
    assert running.id == urgent.id
    assert store.queue_position(running) is None
    assert store.queue_position(store.get_any(b.id)) == 1


def test_times_are_stored_as_instants_and_read_back_in_utc(store: JobStore, fake_clock: FakeClock):
    fake_clock.now = datetime(2030, 6, 1, 17, 0, tzinfo=timezone(timedelta(hours=5)))
    job = submit(store)
    running = claim(store, lease_s=60)

    assert running.started_at == datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    for moment in (job.created_at, running.started_at, running.lease_until):
        assert moment is not None
        assert moment.utcoffset() == timedelta(0)
    fake_clock.advance(59)
    assert store.requeue_expired(max_attempts=3) == 0
    fake_clock.advance(2)
    assert store.requeue_expired(max_attempts=3) == 1


# --- off-peak expiry, id prefixes ---


def test_overdue_off_peak_jobs_are_cancelled_and_say_why(store: JobStore, fake_clock: FakeClock):
    running = submit(store, request=req(off_peak=True))
    fake_clock.advance(1)
    asked = submit(store, request=req(off_peak=True))
    assert [claim(store).id, claim(store).id] == [running.id, asked.id]
    store.cancel("alice", asked.id)
    queued = submit(store, request=req(off_peak=True))
    ordinary = submit(store)
    fake_clock.advance(10)
    young = submit(store, request=req(off_peak=True))

    assert store.expire_off_peak(fake_clock.now - timedelta(seconds=5)) == 2

    gone = store.get_any(queued.id)
    assert gone.status is JobStatus.CANCELLED and gone.finished_at is not None
    assert gone.error_code == "off_peak_timeout" and "off-peak" in (gone.error_message or "")
    stopping = store.get_any(running.id)
    assert (stopping.status, stopping.cancel_requested) == (JobStatus.RUNNING, True)
    assert stopping.error_code == "off_peak_timeout"
    assert store.get_any(asked.id).error_code is None  # its owner cancelled it first
    assert store.get_any(ordinary.id).status is JobStatus.QUEUED
    assert store.get_any(young.id).status is JobStatus.QUEUED
    assert store.acknowledge_cancel(running.id, 1).error_code == "off_peak_timeout"
    assert store.expire_off_peak(fake_clock.now - timedelta(seconds=5)) == 0


def test_find_by_id_prefix_matches_only_the_owners_jobs_with_that_head(store: JobStore):
    job = submit(store)
    submit(store, owner="bob", job_id=job.id[:10] + "0" * 22)
    other = submit(store, job_id=job.id[:9] + ("0" if job.id[9] != "0" else "1") + "f" * 22)

    assert [j.id for j in store.find_by_id_prefix("alice", job.id[:10])] == [job.id]
    assert [j.id for j in store.find_by_id_prefix("alice", job.id)] == [job.id]
    assert {j.id for j in store.find_by_id_prefix("alice", job.id[:9])} == {job.id, other.id}
    assert store.find_by_id_prefix("alice", job.id.upper()) == []  # ids are lowercase hex
    assert store.find_by_id_prefix("alice", "") == []
    assert store.find_by_id_prefix("alice", "%") == []
