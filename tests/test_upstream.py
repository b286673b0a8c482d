"""kinema as a gateway: jobs forwarded to another kinema that plays the hosted provider.

One provider process serves every dialect; a fault proxy on loopback sits between it and
the kinema under test (a live server in this process, with upstream engines for each
protocol). Every test goes through real HTTP on both sides and checks the MP4 with PyAV.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kinema.jobs.dispatch import ProcrastinateDispatch
from kinema.jobs.store import JobStore
from kinema.runtime import Runtime
from kinema.schema import jobs
from kinema.types import Job, JobStatus
from tests.conftest import reset_postgres
from tests.support import (
    free_port,
    live_server,
    make_settings,
    probe,
)
from tests.upstream_gateway import (
    CLIENTS,
    DATA_URI,
    ROUTES,
    Gateway,
    LogTrap,
    gateway_catalog,
    poll,
    through_aimlapi,
    through_unified,
    through_v1,
    through_vertex,
)
from tests.upstream_support import (
    PROVIDER_FPS,
    PROVIDER_KEY_ENV,
    SLOW_MODEL,
    Fault,
    FaultProxy,
    provider_process,
    start_kinema,
    stop_process,
    wait_until,
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp_path = tmp_path_factory.mktemp("upstream")
    trap = LogTrap()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(trap)
    root.setLevel(logging.DEBUG)
    with provider_process(tmp_path) as provider:
        proxy = FaultProxy(provider.url)
        catalog = tmp_path / "gateway-catalog.toml"
        catalog.write_text(gateway_catalog(proxy.url))
        os.environ[PROVIDER_KEY_ENV] = provider.api_key
        settings = make_settings(
            tmp_path / "gateway",
            catalog_path=catalog,
            transient_retry_base_s=0.2,
            fetch_allow_hosts=["127.0.0.1"],
        )
        try:
            with live_server(settings, workers=2) as server:
                yield Gateway(provider, proxy, server, trap, catalog)
        finally:
            os.environ.pop(PROVIDER_KEY_ENV, None)
            proxy.close()
            root.removeHandler(trap)
            root.setLevel(previous_level)


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    gateway.proxy.clear()
    return gateway


# --- each kinema dialect as the client, each protocol toward the provider ---


def _creates(gw: Gateway, path_part: str) -> list[Any]:
    return gw.proxy.requests(
        "POST", lambda p: p.split("?")[0].endswith(path_part) or p.endswith(path_part)
    )


def _job_row(gw: Gateway, job_id: str) -> dict[str, Any]:
    with gw.server.runtime.db.connect() as connection:
        row = connection.execute(select(jobs).where(jobs.c.id == job_id)).one()
    return dict(row._mapping)


def _gateway_job(gw: Gateway, prompt: str) -> dict[str, Any]:
    with gw.server.runtime.db.connect() as connection:
        rows = connection.execute(select(jobs)).all()
    matches = [dict(r._mapping) for r in rows if r.request["prompt"] == prompt]
    assert len(matches) == 1, matches
    return matches[0]


@pytest.mark.parametrize(("dialect", "model", "protocol", "create_path"), ROUTES)
def test_each_protocol_forwards_end_to_end_through_a_kinema_dialect(
    gw: Gateway, dialect: str, model: str, protocol: str, create_path: str
):
    prompt = f"forwarded via {protocol} {uuid.uuid4().hex[:6]}"
    before = len(_creates(gw, create_path))

    body, video = CLIENTS[dialect](gw, model, prompt)

    facts = probe(video)
    assert facts.frames == 4 * PROVIDER_FPS  # the provider's clip, not one made here
    assert facts.video_codec == "h264"
    creates = _creates(gw, create_path)
    assert len(creates) == before + 1  # one submission
    sent = creates[-1].headers
    if protocol in ("gemini", "vertex"):
        assert sent["x-goog-api-key"] == gw.provider.api_key
    else:
        assert sent["authorization"] == f"Bearer {gw.provider.api_key}"
    job = _gateway_job(gw, prompt)
    assert sent["idempotency-key"] == f"kinema-{job['id']}-up-{protocol}-1"
    job = _gateway_job(gw, prompt)
    assert job["status"] == "succeeded", body
    assert job["engine"] == f"up-{protocol}"
    assert job["upstream"]["ref"]
    assert job["usage_s"] == pytest.approx(4.0, abs=0.3)
    assert next(j for j in gw.provider.jobs() if j["prompt"] == prompt)["status"] == "completed"


# --- faults between kinema and the provider ---


def test_retries_500s_429_with_retry_after_slow_answers_and_dropped_connections(gw: Gateway):
    prompt = f"faults {uuid.uuid4().hex[:6]}"
    is_create = lambda m, p: m == "POST" and p == "/v1/videos"  # noqa: E731
    is_poll = lambda m, p: m == "GET" and p.startswith("/v1/videos/video_") and "/content" not in p  # noqa: E731
    gw.proxy.add(Fault(is_create, "status", times=1, status=500))
    # The provider accepts this one, but its answer never arrives: the retry must not
    # make a second job there (the Idempotency-Key).
    gw.proxy.add(Fault(is_create, "drop_after", times=1))
    gw.proxy.add(Fault(is_poll, "status", times=1, status=429, headers={"Retry-After": "1"}))
    gw.proxy.add(Fault(is_poll, "slow", times=1, delay_s=6.0))  # past request_timeout_s
    gw.proxy.add(Fault(is_poll, "drop", times=1))

    body, video = through_v1(gw, "fwd-openai", prompt)

    assert body["status"] == "succeeded", body
    assert probe(video).frames == 4 * PROVIDER_FPS
    assert len([j for j in gw.provider.jobs() if j["prompt"] == prompt]) == 1
    creates = gw.proxy.requests("POST", lambda p: p == "/v1/videos")[-3:]
    assert [c.fault for c in creates] == ["status", "drop_after", None]
    assert len({c.headers["idempotency-key"] for c in creates}) == 1
    polls = gw.proxy.requests("GET", lambda p: p.startswith("/v1/videos/video_"))
    throttled = next(i for i, s in enumerate(polls) if s.fault == "status")
    assert polls[throttled + 1].at - polls[throttled].at >= 0.95  # honoured Retry-After
    assert {"slow", "drop"} <= {s.fault for s in polls}


def test_a_provider_that_loses_the_operation_gets_a_new_submission(gw: Gateway):
    prompt = f"lost {uuid.uuid4().hex[:6]}"
    is_poll = lambda m, p: m == "GET" and p.startswith("/v1/video/generations/task_")  # noqa: E731
    gw.proxy.add(Fault(is_poll, "lost", times=1))

    body, video = through_unified(gw, "fwd-v1", prompt)

    assert body["status"] == "completed", body
    assert probe(video).frames == 4 * PROVIDER_FPS
    job = _gateway_job(gw, prompt)
    creates = gw.proxy.requests("POST", lambda p: p == "/v1/video/generations")
    keys = [c.headers["idempotency-key"] for c in creates]
    keys = [key for key in keys if job["id"] in key]
    assert keys == [f"kinema-{job['id']}-up-v1-1", f"kinema-{job['id']}-up-v1-2"]
    assert job["upstream"]["submissions"] == 2


def test_a_corrupt_download_is_fetched_again_from_the_same_operation(gw: Gateway):
    prompt = f"corrupt {uuid.uuid4().hex[:6]}"
    is_content = lambda m, p: m == "GET" and p.endswith("/content")  # noqa: E731
    gw.proxy.add(Fault(is_content, "garbage", times=1))

    body, video = through_v1(gw, "fwd-openai", prompt)

    assert body["status"] == "succeeded", body
    assert probe(video).frames == 4 * PROVIDER_FPS
    job = _gateway_job(gw, prompt)
    assert job["attempt"] == 2  # the unreadable file sent the job round once more
    assert len([j for j in gw.provider.jobs() if j["prompt"] == prompt]) == 1
    ref = job["upstream"]["ref"]  # this job's operation: the proxy serves the whole module
    downloads = gw.proxy.requests("GET", lambda p: ref in p and p.endswith("/content"))
    assert [d.fault for d in downloads] == ["garbage", None]


def test_a_refusal_fails_the_job_with_the_providers_message(gw: Gateway):
    with gw.server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={"model": "fwd-refused", "prompt": "p", "image_url": DATA_URI, "duration": 10},
        )
        assert created.status_code == 200, created.text
        params = {"generation_id": created.json()["id"]}
        body = poll(
            lambda: client.get("/v2/video/generations", params=params).json(),
            lambda b: b["status"] not in ("queued", "generating"),
        )
    assert body["status"] == "error"
    assert body["error"]["name"] == "upstream_refused"
    assert "10 is not an allowed duration" in body["error"]["message"]


def test_fallback_to_the_next_engine_when_the_first_keeps_failing(gw: Gateway):
    gw.proxy.add(Fault(lambda m, p: p.startswith("/broken"), "status", times=1000, status=503))
    prompt = f"fallback {uuid.uuid4().hex[:6]}"

    body, video = through_v1(gw, "fwd-fallback", prompt)

    assert body["status"] == "succeeded", body
    assert probe(video).frames == 4 * PROVIDER_FPS
    job = _gateway_job(gw, prompt)
    assert job["engine"] == "local"
    assert job["result"]["engine"] == "local"
    broken = gw.proxy.requests("POST", lambda p: p.startswith("/broken"))
    assert len(broken) >= 3  # the first try and max_retries=2 more, then the fallback


def test_a_full_provider_sends_the_next_job_to_the_next_engine(gw: Gateway):
    first = f"limited one {uuid.uuid4().hex[:6]}"
    second = f"limited two {uuid.uuid4().hex[:6]}"
    with gw.server.client() as client:
        one = client.post(
            "/v1/video/generations",
            json={"model": "fwd-limited", "prompt": first, "images": [DATA_URI], "seconds": 5},
        ).json()
        wait_until(lambda: _gateway_job(gw, first)["upstream"], 30, "the first submission")
        two = client.post(
            "/v1/video/generations",
            json={"model": "fwd-limited", "prompt": second, "images": [DATA_URI], "seconds": 5},
        ).json()
        for task in (one, two):
            poll(
                lambda t=task: client.get(f"/v1/video/generations/{t['id']}").json(),
                lambda b: b["status"] in ("succeeded", "failed"),
            )
    assert _gateway_job(gw, first)["engine"] == "up-limited"
    assert _gateway_job(gw, second)["engine"] == "local"  # up-limited takes one at a time


def test_cancel_is_forwarded_and_the_job_ends_cancelled(gw: Gateway):
    prompt = f"cancel me {uuid.uuid4().hex[:6]}"
    with gw.server.client() as client:
        task = client.post(
            "/v1/video/generations",
            json={"model": "fwd-slow", "prompt": prompt, "images": [DATA_URI], "seconds": 5},
        ).json()
        wait_until(
            lambda: [
                j
                for j in gw.provider.jobs(SLOW_MODEL)
                if j["prompt"] == prompt and j["status"] == "in_progress"
            ],
            30,
            "the provider to start rendering",
        )
        # The provider's progress shows through kinema's own status.
        wait_until(
            lambda: client.get(f"/v1/video/generations/{task['id']}").json()["progress"] > 0,
            30,
            "the provider's progress to show",
        )
        client.post(f"/v1/video/generations/{task['id']}/cancel")
        body = poll(
            lambda: client.get(f"/v1/video/generations/{task['id']}").json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
        )
    assert body["status"] == "cancelled"
    ref = str(_gateway_job(gw, prompt)["upstream"]["ref"])  # this job's operation there
    cancels = gw.proxy.requests("POST", lambda p: ref in p and p.endswith("/cancel"))
    assert cancels, "the cancel of this job was not forwarded"
    wait_until(
        lambda: (
            next(j for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt)["status"]
            == "failed"
        ),
        30,
        "the provider's job to end",
    )
    there = next(j for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt)
    assert there["error"]["code"] == "cancelled"


def test_the_video_still_downloads_after_the_providers_copy_is_gone(gw: Gateway):
    prompt = f"outlives {uuid.uuid4().hex[:6]}"
    body, video = through_aimlapi(gw, "fwd-gemini", prompt)
    assert body["status"] == "completed"
    there = next(j for j in gw.provider.jobs() if j["prompt"] == prompt)
    with gw.provider.client() as provider:
        assert provider.delete(f"/v1/videos/{there['id']}").status_code == 200
        assert provider.get(f"/v1/videos/{there['id']}").status_code == 404

    again = httpx.get(body["video"]["url"], timeout=30)

    assert again.status_code == 200
    assert again.content == video
    assert body["meta"]["usage"]["engine"] == "up-gemini"
    assert body["meta"]["usage"]["seconds"] == pytest.approx(4.0, abs=0.3)


def test_the_provider_key_never_appears_in_logs_errors_or_job_records(gw: Gateway):
    key = gw.provider.api_key
    gw.proxy.add(Fault(lambda m, p: m == "POST", "status", times=1, status=500))
    body_ok, _ = through_aimlapi(gw, "fwd-gemini", f"key check {uuid.uuid4().hex[:6]}")
    with gw.server.client() as client:
        refused = client.post(
            "/v2/video/generations",
            json={"model": "fwd-refused", "prompt": "p", "image_url": DATA_URI, "duration": 10},
        ).json()
        failed = poll(
            lambda: client.get(
                "/v2/video/generations", params={"generation_id": refused["id"]}
            ).json(),
            lambda b: b["status"] not in ("queued", "generating"),
        )
        listed = client.get("/v1/videos", params={"limit": 100}).text
    with gw.server.runtime.db.connect() as connection:
        records = [repr(dict(row._mapping)) for row in connection.execute(select(jobs)).all()]
    assert body_ok["status"] == "completed"
    assert failed["status"] == "error"
    assert records and gw.trap.lines
    for text in [*records, *gw.trap.lines, repr(failed), listed]:
        assert key not in text


def test_kill_9_of_the_forwarding_worker_mid_poll_resumes_the_same_operation(
    gw: Gateway, tmp_path: Path
):
    settings = make_settings(tmp_path, catalog_path=gw.catalog)
    runtime = Runtime.build(settings, workers=0)
    _, key = runtime.keys.create("crash")
    runtime.close()
    env = {
        "KINEMA_DATA_DIR": str(settings.data_dir),
        "KINEMA_CATALOG_PATH": str(gw.catalog),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "KINEMA_LEASE_S": "2",
        "KINEMA_HEARTBEAT_S": "0.5",
        "KINEMA_POLL_S": "0.1",
        PROVIDER_KEY_ENV: gw.provider.api_key,
    }
    port = free_port()
    log = tmp_path / "gateway.log"
    prompt = f"survive a crash {uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {key}"}
    server = start_kinema(env, port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        task = httpx.post(
            url + "/v1/video/generations",
            json={"model": "fwd-slow", "prompt": prompt, "images": [DATA_URI], "seconds": 5},
            headers=headers,
            timeout=30,
        ).json()
        polls = lambda: gw.proxy.requests(  # noqa: E731
            "GET", lambda p: p.startswith("/v1/video/generations/task_")
        )
        seen = len(polls())
        wait_until(lambda: len(polls()) > seen, 30, "the first poll of the provider")
        server.send_signal(signal.SIGKILL)  # mid-poll: the operation is recorded, not done
        server.wait(10)
        there = [j for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt]
        assert there and there[0]["status"] != "completed"

        server = start_kinema(env, port, log)
        body = poll(
            lambda: httpx.get(
                f"{url}/v1/video/generations/{task['id']}", headers=headers, timeout=30
            ).json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
            timeout_s=120,
        )
        assert body["status"] == "succeeded", body
        video = httpx.get(body["url"], timeout=30).content
    finally:
        stop_process(server)

    assert probe(video).frames == 5 * PROVIDER_FPS
    assert len([j for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt]) == 1
    job_id = task["id"].removeprefix("task_")
    creates = gw.proxy.requests("POST", lambda p: p == "/v1/video/generations")
    assert [
        c.headers["idempotency-key"] for c in creates if job_id in c.headers["idempotency-key"]
    ] == [f"kinema-{job_id}-up-slow-1"]
    check = Runtime.build(settings, workers=0)
    try:
        job = check.store.get_any(job_id)
    finally:
        check.close()
    assert job.attempt == 2  # the killed attempt, then the one that resumed
    text = log.read_text()
    assert "resuming up-slow operation task_" in text
    assert gw.provider.api_key not in text


def test_a_provider_past_the_engines_deadline_fails_the_job_instead_of_hanging(gw: Gateway):
    prompt = f"too slow {uuid.uuid4().hex[:6]}"

    body, _ = through_v1(gw, "fwd-deadline", prompt, seconds=5)

    assert body["status"] == "failed", body
    assert body["error"]["code"] == "upstream_unavailable"
    assert "deadline of 1.5 s" in body["error"]["message"]
    job = _gateway_job(gw, prompt)
    assert job["attempt"] == 3  # each attempt tried once more, then the job failed
    # Every abandoned operation was cancelled at the provider, none left running.
    there = [j for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt]
    assert len(there) == 3
    wait_until(
        lambda: all(
            j["status"] == "failed" for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt
        ),
        30,
        "the provider's jobs to be cancelled",
    )


def test_a_graceful_restart_hands_the_operation_to_the_next_start(gw: Gateway, tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=gw.catalog)
    prompt = f"restart {uuid.uuid4().hex[:6]}"
    polls = lambda: gw.proxy.requests(  # noqa: E731
        "GET", lambda p: p.startswith("/v1/video/generations/task_")
    )
    with live_server(settings) as server, server.client() as client:
        task = client.post(
            "/v1/video/generations",
            json={"model": "fwd-slow", "prompt": prompt, "images": [DATA_URI], "seconds": 5},
        ).json()
        seen = len(polls())
        wait_until(lambda: len(polls()) > seen, 30, "the first poll of the provider")
        key = server.api_key
    # The server stopped: its worker put the job back in the queue, operation and all.
    between = Runtime.build(settings, workers=0)
    try:
        parked = between.store.get_any(task["id"].removeprefix("task_"))
    finally:
        between.close()
    assert parked.status.value == "queued"
    assert parked.upstream is not None and parked.upstream["ref"].startswith("task_")
    with live_server(settings) as server:
        client = server.client(key)
        body = poll(
            lambda: client.get(f"/v1/video/generations/{task['id']}").json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
        )
        client.close()
    assert body["status"] == "succeeded", body
    assert len([j for j in gw.provider.jobs(SLOW_MODEL) if j["prompt"] == prompt]) == 1


def test_forwarding_under_scale_out_dispatch_on_postgresql(
    gw: Gateway, tmp_path: Path, postgres_url: str
):
    reset_postgres(postgres_url)
    settings = make_settings(
        tmp_path,
        catalog_path=gw.catalog,
        database_url=postgres_url,
        dispatch="procrastinate",
        lease_s=2.0,
        heartbeat_s=0.5,
    )
    runtime = Runtime.build(settings, workers=2, models=["fwd-openai", "fwd-slow"])
    runtime.start()

    def submit(model: str, seconds: int) -> Job:
        request = runtime.catalog.build_request(model, {"prompt": "p", "duration": seconds})
        return runtime.store.submit(owner="o", request=request, dialect="v1")[0]

    def wait(job_id: str, done: Any) -> Job:
        def check() -> Job | None:
            job = runtime.store.get_any(job_id)
            return job if done(job) else None

        found: Job = wait_until(check, 60, f"job {job_id}")
        return found

    try:
        finished = wait(submit("fwd-openai", 4).id, lambda j: j.status.terminal)
        slow = submit("fwd-slow", 5)
        wait(slow.id, lambda j: j.upstream is not None and j.upstream["ref"])
        # Another process cancels: the store, and procrastinate's abort notification.
        JobStore(runtime.db, dispatch=ProcrastinateDispatch()).cancel("o", slow.id)
        cancelled = wait(slow.id, lambda j: j.status.terminal)
    finally:
        runtime.close()

    assert finished.status is JobStatus.SUCCEEDED, finished
    assert finished.engine == "up-openai" and finished.result is not None
    assert cancelled.status is JobStatus.CANCELLED
    ref = str(cancelled.upstream["ref"]) if cancelled.upstream else ""
    assert gw.proxy.requests("POST", lambda p: p == f"/v1/video/generations/{ref}/cancel")


# --- what a provider is not handed: several samples, extensions ---


def _vertex_create(gw: Gateway, model: str, instance: dict[str, Any], **parameters: Any):
    headers = {"x-goog-api-key": gw.server.api_key}
    body = {"instances": [instance], "parameters": {"durationSeconds": 4, **parameters}}
    with httpx.Client(base_url=gw.server.url, headers=headers, timeout=60) as client:
        return client.post(
            f"/v1beta1/publishers/google/models/{model}:predictLongRunning", json=body
        )


def test_several_samples_go_past_the_upstream_engine_to_a_local_one(gw: Gateway):
    prompt = f"two samples {uuid.uuid4().hex[:6]}"
    image = {"bytesBase64Encoded": DATA_URI.split(",", 1)[1], "mimeType": "image/png"}

    created = _vertex_create(
        gw, "fwd-vertex-then-local", {"prompt": prompt, "image": image}, sampleCount=2
    )
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    headers = {"x-goog-api-key": gw.server.api_key}
    with httpx.Client(base_url=gw.server.url, headers=headers, timeout=60) as client:
        done = poll(
            lambda: client.post(
                f"/v1beta1/{name.rpartition('/operations/')[0]}:fetchPredictOperation",
                json={"operationName": name},
            ).json(),
            lambda b: b.get("done"),
        )
    videos = done["response"]["videos"]
    assert len(videos) == 2
    for video in videos:
        assert probe(base64.b64decode(video["bytesBase64Encoded"])).frames == 4 * PROVIDER_FPS
    assert _gateway_job(gw, prompt)["engine"] == "local"
    forwarded = [r for r in _creates(gw, ":predictLongRunning") if prompt.encode() in r.body]
    assert forwarded == []  # the provider was never handed the job
    # The same look finds a job that was forwarded (it reads the bodies the proxy saw).
    control = f"forwarded {uuid.uuid4().hex[:6]}"
    through_vertex(gw, "fwd-vertex", control)
    assert [r for r in _creates(gw, ":predictLongRunning") if control.encode() in r.body]


def test_a_model_that_only_forwards_refuses_several_samples_and_extensions(gw: Gateway):
    image = {"bytesBase64Encoded": DATA_URI.split(",", 1)[1], "mimeType": "image/png"}
    samples = _vertex_create(gw, "fwd-vertex", {"prompt": "two", "image": image}, sampleCount=2)
    _, video = through_vertex(gw, "fwd-vertex", f"source {uuid.uuid4().hex[:6]}")
    source = {"bytesBase64Encoded": base64.b64encode(video).decode(), "mimeType": "video/mp4"}
    extension = _vertex_create(gw, "fwd-vertex", {"prompt": "more", "video": source})

    for refused, field in ((samples, "sampleCount"), (extension, "video")):
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]["message"]
        assert field in message and "forwards each request to a provider" in message, message
