"""Signed webhooks: a real receiver on loopback checks signatures and sees retries."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinema.webhooks import signing
from tests.support import (
    LiveServer,
    data_uri,
    live_server,
    make_settings,
    pattern_image,
    poll_until_done,
)
from tests.webhook_receiver import Receiver


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

    ids = {delivery.headers["webhook-id"] for delivery in receiver.deliveries}
    assert len(ids) == 1
    bodies = {delivery.body for delivery in receiver.deliveries}
    assert len(bodies) == 1
    secret = owner_secret(server)
    for delivery in receiver.deliveries:
        delivery.verified(secret)
    first = receiver.deliveries[0]
    with pytest.raises(signing.SignatureError):
        signing.verify(secret, first.headers, first.body + b" ", now=first.received_at)

    event = json.loads(bodies.pop())
    assert event["type"] == "generation.completed"
    assert event["data"]["id"] == created["id"]
    assert event["data"]["status"] == "completed" and event["data"]["video"]["url"]
    times = [delivery.received_at for delivery in receiver.deliveries]
    gaps = [b - a for a, b in itertools.pairwise(times)]
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
    server.runtime.service.cancel(key.id, job_id)
    receiver.wait_for(1)
    event = receiver.deliveries[0].verified(owner_secret(server))
    assert event["type"] == "generation.cancelled"
    assert event["data"]["status"] == "error" and event["data"]["error"]["name"] == "Cancelled"


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
        # The outbox row would be written with the terminal state: look once the job ended.
        assert poll_until_done(client, created["id"])["status"] == "completed"
    job_id = created["id"].split(":")[0].replace("-", "")
    assert server.runtime.store.get_any(job_id).status.terminal
    assert server.runtime.outbox.for_job(job_id) == []
