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
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from openai import OpenAI
from sqlalchemy import select

from kinema.jobs.dispatch import ProcrastinateDispatch
from kinema.jobs.store import JobStore
from kinema.jobs.tables import jobs
from kinema.runtime import Runtime
from kinema.types import Job, JobStatus
from tests.conftest import reset_postgres
from tests.support import (
    LiveServer,
    free_port,
    live_server,
    make_settings,
    pattern_image,
    probe,
)
from tests.upstream_support import (
    PROVIDER_FPS,
    PROVIDER_KEY_ENV,
    SLOW_MODEL,
    VERTEX_PREFIX,
    Fault,
    FaultProxy,
    Provider,
    forwarding_model,
    grey_engine,
    provider_process,
    start_kinema,
    stop_process,
    toml_text,
    upstream_engine,
    wait_until,
)

IMAGE = pattern_image(320, 180)


def _png() -> bytes:
    import io

    buffer = io.BytesIO()
    IMAGE.save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()
DATA_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()


class LogTrap(logging.Handler):
    """Keeps every log line of the process, to look for the provider key in them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Gateway:
    provider: Provider
    proxy: FaultProxy
    server: LiveServer
    trap: LogTrap
    catalog: Path


def _catalog(proxy_url: str) -> str:
    engines: dict[str, Any] = {
        "up-gemini": upstream_engine("gemini", proxy_url, model="veo-3.1-fast-generate-preview"),
        "up-vertex": upstream_engine(
            "vertex", proxy_url + VERTEX_PREFIX, model="veo-3.1-fast-generate-preview"
        ),
        "up-aimlapi": upstream_engine("aimlapi", proxy_url, model="google/veo-3.1-i2v-fast"),
        "up-unified": upstream_engine("unified", proxy_url, model="veo-3.1-fast-image-to-video"),
        "up-v1": upstream_engine("v1", proxy_url, model="veo-3.0-fast-generate-001"),
        "up-openai": upstream_engine("openai", proxy_url, model="veo-3.0-generate-001"),
        "up-slow": upstream_engine("v1", proxy_url, model=SLOW_MODEL),
        "up-broken": upstream_engine("v1", proxy_url + "/broken", max_retries=2),
        "up-limited": upstream_engine("openai", proxy_url, model=SLOW_MODEL, max_in_flight=1),
        "up-deadline": upstream_engine("v1", proxy_url, model=SLOW_MODEL, deadline_s=1.5),
        "local": grey_engine(0.0),
    }
    models: dict[str, Any] = {}
    models |= forwarding_model(
        "veo-3.1-fast-generate-preview",
        model_id="fwd-gemini",
        dialect="aimlapi",
        engine="up-gemini",
    )
    models |= forwarding_model(
        "google/veo-3.1-i2v-fast", model_id="fwd-aimlapi", dialect="gemini", engine="up-aimlapi"
    )
    models |= forwarding_model(
        "veo-3.1-fast-image-to-video", model_id="fwd-unified", dialect="openai", engine="up-unified"
    )
    models |= forwarding_model(
        "veo-3.0-fast-generate-001", model_id="fwd-v1", dialect="unified", engine="up-v1"
    )
    models |= forwarding_model(
        "veo-3.0-generate-001", model_id="fwd-openai", dialect="v1", engine="up-openai"
    )
    models |= forwarding_model(
        "veo-3.1-fast-generate-preview", model_id="fwd-vertex", dialect="gemini", engine="up-vertex"
    )
    models |= forwarding_model(SLOW_MODEL, model_id="fwd-slow", dialect="v1", engine="up-slow")
    models |= forwarding_model(
        SLOW_MODEL, model_id="fwd-deadline", dialect="v1", engine="up-deadline"
    )
    models |= forwarding_model(
        "veo-3.0-fast-generate-001",
        model_id="fwd-fallback",
        dialect="v1",
        engine=["up-broken", "local"],
    )
    models |= forwarding_model(
        SLOW_MODEL, model_id="fwd-limited", dialect="v1", engine=["up-limited", "local"]
    )
    refused = forwarding_model(
        "google/veo-3.1-i2v-fast", model_id="fwd-refused", dialect="aimlapi", engine="up-aimlapi"
    )
    refused["fwd-refused"]["durations"] = [4, 6, 8, 10]
    models |= refused
    return toml_text({"engines": engines, "models": models})


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
        catalog.write_text(_catalog(proxy.url))
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


def _poll(call: Any, done: Any, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = call()
        if done(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"not done in {timeout_s} s: {body}")


def through_aimlapi(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={"model": model, "prompt": prompt, "image_url": DATA_URI, "duration": 4},
        )
        assert created.status_code == 200, created.text
        params = {"generation_id": created.json()["id"]}
        body = _poll(
            lambda: client.get("/v2/video/generations", params=params).json(),
            lambda b: b["status"] not in ("queued", "generating"),
        )
        video = client.get(body["video"]["url"]).content if body.get("video") else b""
    return body, video


def through_gemini(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    """Google's own SDK (google-genai 2.x), pointed at the kinema under test."""
    options = {"base_url": gw.server.url}
    with genai.Client(api_key=gw.server.api_key, http_options=options) as client:
        operation = client.models.generate_videos(
            model=model,
            source=types.GenerateVideosSource(
                prompt=prompt, image=types.Image(image_bytes=PNG, mime_type="image/png")
            ),
            config=types.GenerateVideosConfig(duration_seconds=4),
        )
        deadline = time.monotonic() + 90
        while not operation.done:
            assert time.monotonic() < deadline, "operation did not finish"
            time.sleep(0.2)
            operation = client.operations.get(operation)
        assert operation.error is None, operation.error
        assert operation.response is not None and operation.response.generated_videos
        video = client.files.download(file=operation.response.generated_videos[0])
    return {"name": operation.name, "done": operation.done}, video


def through_openai(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    """OpenAI's SDK (``client.videos``), pointed at the kinema under test."""
    client = OpenAI(api_key=gw.server.api_key, base_url=gw.server.url + "/v1", timeout=60)
    video = client.videos.create_and_poll(
        model=model,
        prompt=prompt,
        seconds="4",
        input_reference=("first.png", PNG, "image/png"),
    )
    content = client.videos.download_content(video.id).content
    client.close()
    return video.model_dump(), content


def through_unified(gw: Gateway, model: str, prompt: str) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v1/videos/generations",
            json={"model": model, "prompt": prompt, "image_url": DATA_URI, "duration": 4},
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        body = _poll(
            lambda: client.get(f"/v1/tasks/{task_id}").json(),
            lambda b: b["status"] in ("completed", "failed"),
        )
        video = client.get(body["results"][0]).content if body.get("results") else b""
    return body, video


def through_v1(
    gw: Gateway, model: str, prompt: str, seconds: int = 4
) -> tuple[dict[str, Any], bytes]:
    with gw.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": model, "prompt": prompt, "images": [DATA_URI], "seconds": seconds},
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        body = _poll(
            lambda: client.get(f"/v1/video/generations/{task_id}").json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
        )
        video = client.get(body["url"]).content if body.get("url") else b""
    return body, video


CLIENTS = {
    "aimlapi": through_aimlapi,
    "gemini": through_gemini,
    "openai": through_openai,
    "unified": through_unified,
    "v1": through_v1,
}

# (kinema dialect the client speaks, model there, protocol toward the provider, create path)
ROUTES = [
    ("aimlapi", "fwd-gemini", "gemini", ":predictLongRunning"),
    ("gemini", "fwd-aimlapi", "aimlapi", "/v2/video/generations"),
    ("openai", "fwd-unified", "unified", "/v1/videos/generations"),
    ("unified", "fwd-v1", "v1", "/v1/video/generations"),
    ("v1", "fwd-openai", "openai", "/v1/videos"),
    # Vertex AI's wire, answered by the proxy over the provider's Gemini API dialect
    # (tests/upstream_support.py): kinema serves no Vertex dialect of its own yet.
    ("gemini", "fwd-vertex", "vertex", ":predictLongRunning"),
]


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
        assert sent["idempotency-key"].startswith(f"kinema-{job['id']}-")
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


def test_a_refusal_fails_the_job_with_the_providers_message(gw: Gateway):
    with gw.server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={"model": "fwd-refused", "prompt": "p", "image_url": DATA_URI, "duration": 10},
        )
        assert created.status_code == 200, created.text
        params = {"generation_id": created.json()["id"]}
        body = _poll(
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
            _poll(
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
        body = _poll(
            lambda: client.get(f"/v1/video/generations/{task['id']}").json(),
            lambda b: b["status"] in ("succeeded", "failed", "cancelled"),
        )
    assert body["status"] == "cancelled"
    cancels = gw.proxy.requests("POST", lambda p: p.endswith("/cancel"))
    assert cancels, "the cancel was not forwarded"
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
        failed = _poll(
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
        body = _poll(
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
        body = _poll(
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
