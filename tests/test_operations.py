"""What an operator sees: /metrics moving as jobs run, /healthz and /readyz, request ids
and JSON log lines that name the request, the job and the key (never the key itself)."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kinema.observability.logs import JsonFormatter
from kinema.runtime import Runtime
from kinema.server import BackgroundServer
from kinema.views import Creation
from tests.conftest import reset_postgres
from tests.fixture_engines import model_toml
from tests.support import LiveServer, ServerProcess, free_port, live_server, make_settings
from tests.test_webhooks import Receiver

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
    + model_toml("slow", engine="slow", dialect="v1", durations=(1, 4), default_duration=1)
    + model_toml("crashing", engine="crashing", dialect="v1")
)


def write_catalog(tmp_path: Path, frame_s: float = 0.02) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG.format(frame_s=frame_s))
    return path


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    with live_server(settings, workers=1) as server:
        yield server


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by name and sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_done(client: httpx.Client, task_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/v1/video/generations/{task_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_metrics_count_jobs_created_and_finished_as_they_run(live: LiveServer):
    with live.client() as client:
        before = scrape(client)
        done = client.post("/v1/video/generations", json={"model": "slow", "prompt": "a"}).json()
        crash = client.post("/v1/video/generations", json={"model": "crashing", "prompt": "b"})
        assert wait_done(client, done["id"])["status"] == "succeeded"
        assert wait_done(client, crash.json()["id"])["status"] == "failed"
        after = scrape(client)

    created = dict(model="slow", engine="slow", dialect="v1")
    assert value(after, "kinema_jobs_created_total", **created) == (
        value(before, "kinema_jobs_created_total", **created) + 1
    )
    assert value(after, "kinema_jobs_finished_total", state="succeeded", **created) == 1
    assert (
        value(
            after,
            "kinema_jobs_finished_total",
            model="crashing",
            engine="crashing",
            dialect="v1",
            state="failed",
        )
        == 1
    )
    assert value(after, "kinema_generation_seconds_count", engine="slow") == 1
    assert value(after, "kinema_generation_seconds_sum", engine="slow") > 0
    # One second of video at 8 fps, observed in the 1-second bucket.
    assert value(after, "kinema_video_seconds_sum", engine="slow") == pytest.approx(1.0)
    assert value(after, "kinema_video_seconds_bucket", engine="slow", le="1.0") == 1
    # Eight frames, so seven intervals between progress reports.
    assert value(after, "kinema_engine_step_seconds_count", engine="slow") == 7
    assert value(after, "kinema_workers_online", model="slow") == 1
    route = dict(method="POST", route="/v1/video/generations", status="200")
    assert value(after, "kinema_http_request_duration_seconds_count", **route) == 2
    polls = dict(method="GET", route="/v1/video/generations/{task_id}", status="200")
    assert value(after, "kinema_http_request_duration_seconds_count", **polls) >= 2


def test_jobs_the_supervisor_ends_are_counted_as_finished(tmp_path: Path):
    """An off-peak job still queued past ``off_peak_max_age_s`` is cancelled by the
    worker pool's supervisor, not by an attempt: it counts as finished all the same."""
    settings = make_settings(
        tmp_path,
        catalog_path=write_catalog(tmp_path, frame_s=0.3),
        off_peak_max_age_s=0.5,
        heartbeat_s=0.1,
    )
    with live_server(settings, workers=1) as live, live.client() as client:
        busy = client.post(
            "/v1/video/generations", json={"model": "slow", "prompt": "busy", "seconds": 4}
        ).json()
        late = client.post(
            "/v1/video/generations", json={"model": "slow", "prompt": "late", "off_peak": True}
        ).json()
        assert wait_done(client, late["id"])["status"] == "cancelled"
        after = scrape(client)
        client.post(f"/v1/video/generations/{busy['id']}/cancel")
    finished = dict(model="slow", engine="slow", dialect="v1", state="cancelled")
    assert value(after, "kinema_jobs_finished_total", **finished) == 1


def test_webhook_attempts_are_counted_by_outcome(tmp_path: Path):
    settings = make_settings(
        tmp_path,
        catalog_path=write_catalog(tmp_path),
        fetch_allow_hosts=["127.0.0.1"],
        webhook_retry_base_s=0.2,
        webhook_poll_s=0.05,
    )
    receiver = Receiver(failures=1)
    with live_server(settings, workers=1) as live, live.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": "slow", "prompt": "a", "callback_url": receiver.url},
        )
        assert created.status_code == 200, created.text
        receiver.wait_for(2)
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(client)
            delivered = value(
                samples, "kinema_webhook_attempts_total", dialect="v1", outcome="delivered"
            )
            if delivered == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    receiver.httpd.shutdown()
    assert delivered == 1
    assert value(samples, "kinema_webhook_attempts_total", dialect="v1", outcome="retry") == 1
    assert value(samples, "kinema_webhook_attempts_total", dialect="v1", outcome="failed") == 0


def test_gpu_memory_is_reported_when_torch_sees_a_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    class Cuda:
        @staticmethod
        def is_available() -> bool:
            return True

        @staticmethod
        def device_count() -> int:
            return 1

        @staticmethod
        def memory_allocated(index: int) -> int:
            return 1024

        @staticmethod
        def memory_reserved(index: int) -> int:
            return 2048

        @staticmethod
        def get_device_properties(index: int) -> SimpleNamespace:
            return SimpleNamespace(total_memory=8192)

    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    runtime = Runtime.build(settings, workers=0)
    real_torch = sys.modules.get("torch")
    try:
        without = runtime.metrics.render().decode()
        monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=Cuda))
        with_gpu = runtime.metrics.render().decode()
    finally:
        runtime.close()
    if real_torch is None or not real_torch.cuda.is_available():
        assert "kinema_gpu_memory" not in without
    assert 'kinema_gpu_memory_allocated_bytes{device="0"} 1024.0' in with_gpu
    assert 'kinema_gpu_memory_reserved_bytes{device="0"} 2048.0' in with_gpu
    assert 'kinema_gpu_memory_total_bytes{device="0"} 8192.0' in with_gpu


def test_queue_depth_and_oldest_age_are_read_at_scrape_time(tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    runtime = Runtime.build(settings, workers=0)  # nobody takes jobs: they wait
    _, key = runtime.keys.create("k")
    try:
        with BackgroundServer(runtime) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            empty = scrape(client)
            assert value(empty, "kinema_queue_depth", model="slow") == 0
            for prompt in ("a", "b"):
                response = client.post(
                    "/v1/video/generations", json={"model": "slow", "prompt": prompt}
                )
                assert response.status_code == 200
            time.sleep(0.3)
            waiting = scrape(client)
            cancelled = client.post(f"/v1/video/generations/{response.json()['id']}/cancel")
            assert cancelled.json()["status"] == "cancelled"
            after_cancel = scrape(client)
    finally:
        runtime.close()
    assert value(waiting, "kinema_queue_depth", model="slow") == 2
    assert value(waiting, "kinema_queue_oldest_age_seconds", model="slow") >= 0.3
    assert value(after_cancel, "kinema_queue_depth", model="slow") == 1
    finished = dict(model="slow", engine="slow", dialect="v1", state="cancelled")
    assert value(after_cancel, "kinema_jobs_finished_total", **finished) == 1
    # No claim threads in this process: no worker series, and not ready.
    assert ("kinema_workers_online", (("model", "slow"),)) not in waiting


def test_metrics_token_guards_the_endpoint(tmp_path: Path):
    settings = make_settings(
        tmp_path, catalog_path=write_catalog(tmp_path), metrics_token="scrape-me"
    )
    with live_server(settings, workers=0) as live, httpx.Client(base_url=live.url) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert right.status_code == 200
        assert "kinema_queue_depth" in right.text


def test_registries_are_per_runtime(tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    one = Runtime.build(settings, workers=0)
    two = Runtime.build(settings, workers=0)
    try:
        one.metrics.webhook_outcome("v1", "delivered")
        assert b'kinema_webhook_attempts_total{dialect="v1",outcome="delivered"} 1.0' in (
            one.metrics.render()
        )
        assert b"outcome=\"delivered\"" not in two.metrics.render()
    finally:
        one.close()
        two.close()


def test_healthz_and_readyz_with_a_worker(live: LiveServer):
    with httpx.Client(base_url=live.url) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["storage"]["ok"] and checks["workers"]["ok"]
    # The storage probe leaves nothing behind.
    assert not list((live.runtime.settings.resolved_storage_dir / "health").glob("*"))


def test_readyz_is_503_without_workers_and_says_which_check_failed(tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    with live_server(settings, workers=0) as live, httpx.Client(base_url=live.url) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"]["ok"] and checks["storage"]["ok"]
    assert not checks["workers"]["ok"]
    assert "no worker" in checks["workers"]["detail"]


def test_readyz_is_503_when_storage_is_not_writable(tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    with live_server(settings, workers=1) as live, httpx.Client(base_url=live.url) as client:
        files = live.runtime.settings.resolved_storage_dir
        (files / "health").mkdir(parents=True, exist_ok=True)
        (files / "health").rmdir()
        (files / "health").write_text("a file where the probe's directory should be")
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert not ready.json()["checks"]["storage"]["ok"]


def test_kinema_serve_writes_json_lines_with_the_request_id(tmp_path: Path):
    log_file = tmp_path / "serve.log"
    env = {
        "KINEMA_DATA_DIR": str(tmp_path / "data"),
        "KINEMA_LOG_FORMAT": "json",
        "KINEMA_WORKERS": "0",
    }
    server = ServerProcess(env, free_port(), log_file)
    try:
        response = httpx.get(server.url + "/healthz", headers={"X-Request-Id": "from-lb-7"})
        assert response.headers["X-Request-Id"] == "from-lb-7"
    finally:
        server.stop()
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    assert lines, "no log lines"
    access = [line for line in lines if "/healthz" in line["message"]]
    assert any(line.get("request_id") == "from-lb-7" for line in access), access
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_request_id_is_kept_or_made_and_returned(live: LiveServer):
    with live.client() as client:
        given = client.get("/healthz", headers={"X-Request-Id": "req-123"})
        made = client.get("/healthz")
        insane = client.get("/healthz", headers={"X-Request-Id": "a b\tc"})
        error = client.get("/v1/video/generations/task_nope", headers={"X-Request-Id": "r-404"})
    assert given.headers["X-Request-Id"] == "req-123"
    assert len(made.headers["X-Request-Id"]) == 32
    assert insane.headers["X-Request-Id"] not in ("a b\tc", "")
    assert error.status_code == 404 and error.headers["X-Request-Id"] == "r-404"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_json_log_lines_carry_request_job_and_key_ids_never_the_key(
    live: LiveServer, json_log: io.StringIO
):
    key = live.runtime.keys.verify(live.api_key)
    assert key is not None
    with live.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": "slow", "prompt": "a"},
            headers={"X-Request-Id": "req-create"},
        ).json()
        wait_done(client, created["id"])
    job_id = created["id"].removeprefix("task_")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    # The server's lines (the test's own HTTP client logs the URLs it asks for).
    about_job = [
        line for line in lines if job_id in line["message"] and line["logger"] != "httpx"
    ]
    assert about_job, lines
    for line in about_job:
        assert line["job_id"] == job_id
        assert line["key_id"] == key.id
        assert {"time", "level", "logger", "message"} <= set(line)
    creation = next(line for line in about_job if "created" in line["message"])
    assert creation["request_id"] == "req-create"
    assert any("ended succeeded" in line["message"] for line in about_job)
    assert live.api_key not in json_log.getvalue()


def test_scale_out_workers_online_and_readiness_come_from_live_workers(
    tmp_path: Path, postgres_url: str
):
    reset_postgres(postgres_url)
    settings = make_settings(
        tmp_path,
        catalog_path=write_catalog(tmp_path),
        database_url=postgres_url,
        dispatch="procrastinate",
    )
    runtime = Runtime.build(settings, workers=0)  # an API process: no workers of its own
    try:
        with BackgroundServer(runtime) as server, httpx.Client(base_url=server.url) as client:
            nobody = client.get("/readyz")
            runtime.registry.beat(
                "gpu-1", host="gpu-1", models=["slow"], concurrency=3, stale_after_s=30
            )
            runtime.registry.beat(
                "cpu-1", host="cpu-1", models=["slow", "crashing"], concurrency=1, stale_after_s=30
            )
            ready = client.get("/readyz")
            samples = scrape(client)
    finally:
        runtime.close()
    assert nobody.status_code == 503
    assert ready.status_code == 200, ready.json()
    assert value(samples, "kinema_workers_online", model="slow") == 4
    assert value(samples, "kinema_workers_online", model="crashing") == 1


def test_a_worker_process_serves_metrics_on_its_own_port(tmp_path: Path):
    port = free_port()
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path), metrics_port=port)
    runtime = Runtime.build(settings, workers=1)
    runtime.start()
    try:
        job = runtime.service.create("o", "v1", Creation(model="slow", fields={"prompt": "a"}))
        deadline = time.monotonic() + 30
        while not runtime.store.get_any(job.id).status.terminal:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        runtime.close()
    finished = 'dialect="v1",engine="slow",model="slow",state="succeeded"'
    assert f"kinema_jobs_finished_total{{{finished}}} 1.0" in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics")
