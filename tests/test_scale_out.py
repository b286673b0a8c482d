"""Scale-out end to end: one API process, worker processes, PostgreSQL + procrastinate, S3.

Processes are killed with SIGKILL, as when a machine dies, and the jobs must still end
exactly once: one committed video, one terminal webhook.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from kinema.db import make_engine
from kinema.runtime import Runtime
from kinema.settings import Settings
from tests.conftest import reset_postgres
from tests.fixture_engines import model_toml
from tests.scale_support import (
    S3_CREDENTIALS,
    ApiProcess,
    S3Server,
    WebhookReceiver,
    WorkerProcess,
    moto_server,
    wait_until,
)
from tests.support import probe

CATALOG = (
    """
[engines.slow]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = 0.1

[engines.quick]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = 0.005
"""
    + model_toml("slow", engine="slow", dialect="v1", durations=(1, 4, 8), default_duration=4)
    + model_toml("quick", engine="quick", dialect="v1")
    + model_toml("lonely", engine="quick", dialect="v1")
    + """
[engines.motion]
kind = "motion"
fps = 8

[models.stretch]
dialect = "v1"
engine = "motion"
inputs = "text"
durations = [1, 2]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration"]
extension = { max_input_s = 10, max_output_s = 20 }
"""
)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@dataclass
class Cluster:
    env: dict[str, str]
    api_key: str
    runtime: Runtime  # this test's own view of the database and storage (runs no jobs)
    tmp: Path
    hooks: WebhookReceiver

    def api(self, port: int | None = None) -> ApiProcess:
        return ApiProcess(self.env, self.tmp / "api.log", port=port)

    def worker(self, models: str, name: str) -> WorkerProcess:
        return WorkerProcess(self.env, self.tmp / f"{name}.log", models=models)

    def client(self, api: ApiProcess) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return httpx.Client(base_url=api.url, headers=headers, timeout=10)

    def live_workers(self) -> int:
        return len(self.runtime.registry.live(within_s=2.0))

    def worker_of(self, job_id: str) -> str | None:
        with self.runtime.db.connect() as connection:
            value = connection.scalar(
                text("SELECT worker_id FROM jobs WHERE id = :id"), {"id": job_id}
            )
        return None if value is None else str(value)

    def video_keys(self, job_id: str) -> list[str]:
        keys = self.runtime.storage.keys(f"jobs/{job_id}/")  # type: ignore[attr-defined]
        return sorted(k for k in keys if k.split("/")[-1].startswith("video-"))


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, s3: S3Server, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    reset_postgres(postgres_url)
    bucket = f"b{abs(hash(request.node.name)) % 10**8}"
    s3.create_bucket(bucket)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    env = {
        **S3_CREDENTIALS,
        "KINEMA_DATA_DIR": str(tmp_path / "data"),
        "KINEMA_DATABASE_URL": postgres_url,
        "KINEMA_DISPATCH": "procrastinate",
        "KINEMA_STORAGE_URL": s3.url(bucket),
        "KINEMA_CATALOG_PATH": str(catalog),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "KINEMA_LEASE_S": "2",
        "KINEMA_HEARTBEAT_S": "0.5",
        "KINEMA_POLL_S": "0.2",
        "KINEMA_PROGRESS_INTERVAL_S": "0.1",
        "KINEMA_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "KINEMA_WEBHOOK_POLL_S": "0.2",
    }
    settings = Settings(
        data_dir=tmp_path / "own",
        database_url=postgres_url,
        dispatch="procrastinate",
        storage_url=s3.url(bucket),
        catalog_path=catalog,
        signing_secret="test-secret",
    )
    runtime = Runtime.build(settings, workers=0)
    _, secret = runtime.keys.create("scale")
    hooks = WebhookReceiver()
    try:
        yield Cluster(env, secret, runtime, tmp_path, hooks)
    finally:
        hooks.close()
        runtime.close()


def create(client: httpx.Client, model: str, **fields: Any) -> dict[str, Any]:
    answer = client.post("/v1/video/generations", json={"model": model, "prompt": "p", **fields})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def poll(client: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/video/generations/{task_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def job_id(task: dict[str, Any]) -> str:
    return str(task["id"]).removeprefix("task_")


def stop_all(*processes: Any) -> None:
    for process in processes:
        if process is not None:
            process.stop()


def test_killed_worker_job_completes_on_the_other_exactly_once(cluster: Cluster):
    api = cluster.api()
    workers = {w.pid: w for w in (cluster.worker("slow", "w1"), cluster.worker("slow", "w2"))}
    try:
        wait_until(lambda: cluster.live_workers() == 2, 60, "two workers")
        client = cluster.client(api)
        task = create(client, "slow", seconds=4, callback_url=cluster.hooks.url)
        wait_until(lambda: poll(client, task["id"])["progress"] > 0, 30, "the job to render")
        holder = cluster.worker_of(job_id(task))
        assert holder is not None
        victim = workers[int(holder.split("-")[-2])]
        victim.kill()

        done = wait_until(
            lambda: (
                (t := poll(client, task["id"]))["status"] not in ("queued", "in_progress") and t
            ),
            60,
            "the job to finish on the other worker",
        )
        time.sleep(1.5)  # time for a duplicate webhook to show, if there were one
        video = httpx.get(done["url"], follow_redirects=True)
    finally:
        stop_all(api, *workers.values())

    assert done["status"] == "succeeded", done
    job = cluster.runtime.store.get_any(job_id(task))
    assert job.attempt == 2
    assert cluster.worker_of(job.id) != holder
    assert cluster.video_keys(job.id) == [f"jobs/{job.id}/video-2.mp4"]
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    events = cluster.hooks.for_job(lambda body: body["data"]["id"] == task["id"])
    assert [e["type"] for e in events] == ["generation.completed"]


def test_every_accepted_job_completes_when_the_api_is_killed_mid_submit(cluster: Cluster):
    api = cluster.api()
    w1, w2 = cluster.worker("quick", "w1"), cluster.worker("quick", "w2")
    accepted: list[str] = []
    refused = [0]
    stop = threading.Event()

    def submit_loop() -> None:
        headers = {"Authorization": f"Bearer {cluster.api_key}"}
        with httpx.Client(base_url=api.url, headers=headers, timeout=5) as client:
            for _ in range(200):  # bounded, and stops with the test
                if stop.is_set():
                    return
                try:
                    answer = client.post(
                        "/v1/video/generations", json={"model": "quick", "prompt": "p"}
                    )
                except httpx.HTTPError:
                    refused[0] += 1
                    time.sleep(0.05)
                    continue
                if answer.status_code == 200:
                    accepted.append(answer.json()["id"])

    restarted = None
    try:
        wait_until(lambda: cluster.live_workers() == 2, 60, "two workers")
        clients = [threading.Thread(target=submit_loop) for _ in range(4)]
        for thread in clients:
            thread.start()
        wait_until(lambda: len(accepted) >= 20, 30, "submissions")
        api.kill()
        killed_with = len(accepted)
        time.sleep(0.5)
        stop.set()
        for thread in clients:
            thread.join(10)

        restarted = cluster.api(port=api.port)
        client = cluster.client(restarted)
        statuses = {}
        for task_id in accepted:
            statuses[task_id] = wait_until(
                lambda t=task_id: (
                    (s := poll(client, t)["status"]) not in ("queued", "in_progress") and s
                ),
                60,
                f"task {task_id}",
            )
    finally:
        stop.set()
        stop_all(restarted, w1, w2)

    assert killed_with >= 20 and refused[0] > 0
    assert set(statuses.values()) == {"succeeded"}, statuses
    for task_id in accepted:
        assert len(cluster.video_keys(task_id.removeprefix("task_"))) == 1


def test_cancel_in_the_api_stops_the_job_in_a_worker_process(cluster: Cluster):
    api = cluster.api()
    worker = cluster.worker("slow", "w1")
    try:
        wait_until(lambda: cluster.live_workers() == 1, 60, "a worker")
        client = cluster.client(api)
        task = create(client, "slow", seconds=8, callback_url=cluster.hooks.url)
        wait_until(lambda: poll(client, task["id"])["progress"] > 0, 30, "the job to render")
        started = time.monotonic()
        answer = client.post(f"/v1/video/generations/{task['id']}/cancel")
        assert answer.status_code == 200, answer.text
        done = wait_until(
            lambda: (t := poll(client, task["id"]))["status"] == "cancelled" and t,
            10,
            "the cancel",
        )
        elapsed = time.monotonic() - started
        wait_until(
            lambda: cluster.hooks.for_job(lambda b: b["data"]["id"] == task["id"]), 10, "hook"
        )
    finally:
        stop_all(api, worker)

    assert elapsed < 2.0, elapsed
    assert done["progress"] < 100
    assert cluster.video_keys(job_id(task)) == []
    events = cluster.hooks.for_job(lambda body: body["data"]["id"] == task["id"])
    assert [e["type"] for e in events] == ["generation.cancelled"]


def test_a_model_without_a_worker_stays_queued_and_says_so(cluster: Cluster):
    api = cluster.api()
    worker = cluster.worker("quick,slow", "w1")  # one slot for both models
    try:
        wait_until(lambda: cluster.live_workers() == 1, 60, "a worker")
        client = cluster.client(api)
        lonely = create(client, "lonely")
        # The worker's one slot is busy with a long job, so a quick job is surely queued
        # when its answer is rendered: it must count the worker that will take it.
        busy = create(client, "slow", seconds=8)
        wait_until(lambda: poll(client, busy["id"])["status"] == "in_progress", 30, "busy job")
        served = create(client, "quick")
        served_polled = poll(client, served["id"])
        cancelled = client.post(f"/v1/video/generations/{busy['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        wait_until(lambda: poll(client, served["id"])["status"] == "succeeded", 30, "quick job")
        time.sleep(1.0)
        waiting = poll(client, lonely["id"])
    finally:
        stop_all(api, worker)

    assert lonely["workers_online"] == 0
    assert served["status"] == "queued" and served["workers_online"] == 1
    assert served_polled["status"] == "queued" and served_polled["workers_online"] == 1
    assert waiting["status"] == "queued"
    assert waiting["queue_position"] == 0
    assert waiting["workers_online"] == 0


def test_api_only_node_serves_no_jobs_itself(cluster: Cluster):
    api = cluster.api()
    try:
        client = cluster.client(api)
        task = create(client, "quick")
        time.sleep(1.5)
        waiting = poll(client, task["id"])
        engine = make_engine(cluster.env["KINEMA_DATABASE_URL"])
        with engine.connect() as connection:
            queued = connection.scalar(
                text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
            )
        engine.dispose()
    finally:
        stop_all(api)

    assert waiting["status"] == "queued" and waiting["workers_online"] == 0
    assert queued == 1


def test_an_extension_runs_on_a_worker_that_did_not_make_its_source(cluster: Cluster):
    """The source video is made by one worker process and extended by another (the first
    is gone): the extension reads it from the shared bucket, and the joined video is
    one MP4 in that bucket, signed by the API process."""
    api = cluster.api()
    first = cluster.worker("stretch", "w1")
    second = None
    try:
        wait_until(lambda: cluster.live_workers() == 1, 60, "the first worker")
        client = cluster.client(api)
        source = create(client, "stretch", prompt="a slow pan over the hills", seconds="1")
        wait_until(lambda: poll(client, source["id"])["status"] == "succeeded", 60, "source")
        stop_all(first)
        first = None
        second = cluster.worker("stretch", "w2")
        extended = create(client, "stretch", prompt="", seconds="1", extend_from=source["id"])
        wait_until(
            lambda: poll(client, extended["id"])["status"] in ("succeeded", "failed"),
            90,
            "the extension",
        )
        done = poll(client, extended["id"])
        assert done["status"] == "succeeded", done
        joined = httpx.get(done["video_url"], follow_redirects=True, timeout=30).content
        made_by = cluster.worker_of(job_id(extended))
    finally:
        stop_all(api, first, second)

    facts = probe(joined)
    assert facts.frames == 16 and facts.duration_s == pytest.approx(2.0, abs=0.01)
    assert made_by is not None and made_by != cluster.worker_of(job_id(source))
    assert cluster.video_keys(job_id(extended))  # stored in the bucket
