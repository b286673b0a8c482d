"""Signed webhooks: a real receiver on loopback checks signatures and sees retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kinema.webhooks import signing
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image


class Receiver:
    """Answers 500 ``failures`` times, then 200; records every delivery it got."""

    def __init__(self, failures: int, status: int = 500) -> None:
        self.failures = failures
        self.status = status
        self.deliveries: list[tuple[dict[str, str], bytes, float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                failing = len(receiver.deliveries) <= receiver.failures
                self.send_response(receiver.status if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"only {len(self.deliveries)} deliveries"
            time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path, fetch_allow_hosts=["127.0.0.1"], webhook_retry_base_s=0.2, webhook_poll_s=0.05
    )
    with live_server(settings, workers=1) as live:
        yield live


def create(server: LiveServer, callback_url: str, **extra: object) -> dict:
    body = {
        "model": "google/veo-3.0-i2v-fast",
        "prompt": "x",
        "duration": 4,
        "image_url": data_uri(pattern_image()),
        "callback_url": callback_url,
        **extra,
    }
    with server.client() as client:
        response = client.post("/v2/video/generations", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def owner_secret(server: LiveServer) -> str:
    key = next(k for k in server.runtime.keys.list() if server.api_key.startswith(k.prefix))
    return server.runtime.keys.webhook_secret(key.id)


def test_terminal_event_is_signed_and_retried_with_the_same_id(server: LiveServer):
    receiver = Receiver(failures=2)
    created = create(server, receiver.url)
    receiver.wait_for(3)
    time.sleep(0.5)
    assert len(receiver.deliveries) == 3  # 500, 500, then 200: no more after success

    ids = {headers["webhook-id"] for headers, _, _ in receiver.deliveries}
    assert len(ids) == 1
    bodies = {body for _, body, _ in receiver.deliveries}
    assert len(bodies) == 1
    secret = owner_secret(server)
    for headers, body, received_at in receiver.deliveries:
        signing.verify(secret, headers, body, now=received_at)
    with pytest.raises(signing.SignatureError):
        headers, body, received_at = receiver.deliveries[0]
        signing.verify(secret, headers, body + b" ", now=received_at)

    event = json.loads(bodies.pop())
    assert event["type"] == "generation.completed"
    assert event["data"]["id"] == created["id"]
    assert event["data"]["status"] == "completed" and event["data"]["video"]["url"]
    gaps = [b[2] - a[2] for a, b in zip(receiver.deliveries, receiver.deliveries[1:], strict=False)]
    assert gaps[1] > gaps[0] * 1.5  # exponential backoff


def test_a_permanent_4xx_is_not_retried(server: LiveServer):
    receiver = Receiver(failures=10, status=410)
    create(server, receiver.url)
    receiver.wait_for(1)
    time.sleep(1.0)
    assert len(receiver.deliveries) == 1


def test_cancelled_job_sends_a_cancelled_event(server: LiveServer):
    receiver = Receiver(failures=0)
    created = create(server, receiver.url, duration=8, resolution="1080p")
    job_id = created["id"].split(":")[0].replace("-", "")
    key = next(k for k in server.runtime.keys.list() if server.api_key.startswith(k.prefix))
    server.runtime.cancel(key.id, job_id)
    receiver.wait_for(1)
    event = json.loads(receiver.deliveries[0][1])
    assert event["type"] == "generation.cancelled"


def test_callback_to_a_refused_address_is_a_400(tmp_path: Path):
    with live_server(make_settings(tmp_path), workers=0) as live, live.client() as client:
        response = client.post(
            "/v2/video/generations",
            json={
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "x",
                "image_url": data_uri(pattern_image()),
                "callback_url": "http://127.0.0.1:9/hook",
            },
        )
    assert response.status_code == 400
    detail = response.json()["details"][0]
    assert detail["path"] == ["callback_url"] and "loopback" in detail["message"]


def test_no_callback_means_no_event(server: LiveServer):
    with server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "x",
                "duration": 4,
                "image_url": data_uri(pattern_image()),
            },
        ).json()
    job_id = created["id"].split(":")[0].replace("-", "")
    assert server.runtime.outbox.for_job(job_id) == []
