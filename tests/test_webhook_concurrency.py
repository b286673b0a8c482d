"""One tenant's slow webhook receiver does not hold back anyone else's webhooks, every
attempt has a short timeout, and a worker-only deployment delivers too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kinema.runtime import Runtime
from kinema.views import Creation
from tests.hardening_support import Receiver, quick_settings
from tests.support import LiveServer, live_server

REPO = Path(__file__).resolve().parent.parent


def create(server: LiveServer, key: str, callback_url: str) -> str:
    with server.client(key) as client:
        response = client.post(
            "/v2/video/generations",
            json={"model": "quick", "prompt": "p", "callback_url": callback_url},
        )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def test_a_slow_receiver_does_not_delay_another_keys_webhook(tmp_path: Path):
    # Two delivery slots, one per receiver: the slow receiver's four events can hold one
    # slot at most, and the attempt timeout is long, so only fairness lets fast through.
    settings = quick_settings(
        tmp_path, webhook_concurrency=2, webhook_per_endpoint=1, webhook_timeout_s=30
    )
    slow, fast = Receiver(hold=True), Receiver()
    try:
        with live_server(settings) as server:
            other = server.new_key("patient")
            slow_ids = [create(server, server.api_key, slow.url) for _ in range(4)]
            fast_id = create(server, other, fast.url)
            [event] = fast.wait_for(1, timeout_s=12)
            assert event["data"]["id"] == fast_id
            assert slow.deliveries == [], "the slow receiver answered while held"
            assert slow.arrived == 1, f"{slow.arrived} deliveries to one receiver at once"
            slow.release()
            bodies = slow.wait_for(4)
            assert sorted(body["data"]["id"] for body in bodies) == sorted(slow_ids)
    finally:
        slow.close()
        fast.close()


def test_an_attempt_slower_than_the_timeout_is_retried_later(tmp_path: Path):
    settings = quick_settings(tmp_path, webhook_timeout_s=1.0, webhook_retry_base_s=30)
    slow = Receiver(hold=True)
    try:
        with live_server(settings) as server:
            generation_id = create(server, server.api_key, slow.url)
            job_id = generation_id.split(":")[0].replace("-", "")
            deadline = time.monotonic() + 12
            while True:
                [event] = server.runtime.outbox.for_job(job_id) or [None]
                if event is not None and event["attempts"] >= 1:
                    break
                assert time.monotonic() < deadline, f"attempt still waiting: {event}"
                time.sleep(0.1)
            assert event["status"] == "pending"
            assert event["last_error"], event
            assert event["next_attempt_at"] > event["created_at"]
    finally:
        slow.close()


@pytest.mark.timeout(120)
def test_a_worker_only_process_delivers_webhooks(tmp_path: Path):
    settings = quick_settings(tmp_path)
    receiver = Receiver()
    runtime = Runtime.build(settings, workers=0)
    key, _ = runtime.keys.create("worker-only")
    creation = Creation(model="quick", fields={"prompt": "p"}, callback_url=receiver.url)
    job = runtime.service.create(key.id, "aimlapi", creation)
    runtime.close()
    env = {
        **os.environ,
        "KINEMA_DATA_DIR": str(settings.data_dir),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "KINEMA_CATALOG_PATH": str(settings.catalog_path),
        "KINEMA_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "KINEMA_POLL_S": "0.05",
        "KINEMA_WEBHOOK_POLL_S": "0.05",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "kinema", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        [event] = receiver.wait_for(1, timeout_s=90)
        assert event["type"] == "generation.completed"
        assert event["data"]["id"].split(":")[0].replace("-", "") == job.id
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
        receiver.close()
