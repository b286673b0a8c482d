"""Webhook delivery end to end: every dialect's payload, failures, retries and giving up.

A real receiver on loopback gets each delivery and checks its Standard Webhooks signature
with the key's webhook secret; the outbox row says what the deliverer concluded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dialects import COMPLETED, DIALECT_NAMES, DIALECTS, FAILED, job_id_of, owner_of
from tests.support import LiveServer, live_server, make_settings
from tests.webhook_receiver import Receiver

FAST_RETRIES = {
    "fetch_allow_hosts": ["127.0.0.1"],
    "webhook_retry_base_s": 0.2,
    "webhook_poll_s": 0.05,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("hooks"), **FAST_RETRIES)
    with live_server(settings, workers=1) as live:
        yield live


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as built:
        yield built


def outbox_row(live: LiveServer, job_id: str, status: str, timeout_s: float = 60) -> dict:
    """The job's one outbox event once the deliverer has settled it as ``status``."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = live.runtime.outbox.for_job(job_id)
        if rows and rows[0]["status"] == status:
            assert len(rows) == 1, rows
            return rows[0]
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_each_dialect_delivers_its_own_status_object_signed(
    server: LiveServer, receiver: Receiver, name: str
):
    dialect = DIALECTS[name]
    with server.client() as client:
        wire_id = dialect.create(client, callback_url=receiver.url)
        polled = dialect.wait(client, wire_id)
    assert dialect.state(polled) == COMPLETED
    [delivery] = receiver.wait_for(1)
    event = delivery.verified(server.runtime.service.webhook_secret(owner_of(server)))

    assert event["type"] == "generation.completed"
    assert event["id"] == delivery.headers["webhook-id"] and event["object"] == "event"
    data = event["data"]
    assert set(data) == set(polled), "the event carries the dialect's own status object"
    assert dialect.state(data) == COMPLETED
    id_field = {"gemini": "name", "v1": "task_id"}.get(name, "id")
    assert data[id_field] == wire_id
    url = dialect.video_url(data)
    if name != "openai":  # OpenAI's object has no link: its video is behind /content
        assert url and url.startswith(server.url)
    assert outbox_row(server, job_id_of(server, wire_id), "delivered")["attempts"] == 1


def test_a_429_answer_is_retried_until_the_receiver_takes_it(server: LiveServer):
    dialect = DIALECTS["aimlapi"]
    with Receiver(answers=[429, 429]) as receiver, server.client() as client:
        wire_id = dialect.create(client, callback_url=receiver.url)
        row = outbox_row(server, job_id_of(server, wire_id), "delivered")
        deliveries = receiver.wait_for(3)
    assert row["attempts"] == 3 and row["last_error"] == "HTTP 200"
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    assert len({d.body for d in deliveries}) == 1


def test_a_receiver_that_times_out_gets_the_event_again(tmp_path: Path):
    # The first delivery is held far longer than the sender waits; the second is answered.
    settings = make_settings(tmp_path, fetch_timeout_s=0.5, **FAST_RETRIES)
    dialect = DIALECTS["openai"]
    with (
        Receiver(delays_s=[30.0]) as receiver,
        live_server(settings, workers=1) as live,
        live.client() as client,
    ):
        wire_id = dialect.create(client, callback_url=receiver.url)
        row = outbox_row(live, job_id_of(live, wire_id), "delivered")
        first, second = receiver.wait_for(2)[:2]
    assert row["attempts"] == 2
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body


def test_delivery_stops_once_the_event_is_older_than_the_max_age(tmp_path: Path):
    # Retries 0.2 s, 0.4 s, 0.8 s apart: the third retry would land past the 1 s max age.
    settings = make_settings(tmp_path, webhook_max_age_s=1.0, **FAST_RETRIES)
    dialect = DIALECTS["v1"]
    with (
        Receiver(answers=[503] * 100) as receiver,
        live_server(settings, workers=1) as live,
        live.client() as client,
    ):
        wire_id = dialect.create(client, callback_url=receiver.url)
        row = outbox_row(live, job_id_of(live, wire_id), "failed")
        attempted = len(receiver.deliveries)
        time.sleep(1.0)  # several deliverer passes: nothing more is sent
        assert len(receiver.deliveries) == attempted
    assert 2 <= attempted <= 4, attempted
    assert row["attempts"] == attempted
    assert row["last_error"].startswith(f"gave up after {attempted} attempts: HTTP 503")


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose every model's engine raises (``CrashingEngine``)."""
    from tests.dialects import catalog_on_engine

    directory = tmp_path_factory.mktemp("failing-hooks")
    catalog = catalog_on_engine(directory, "CrashingEngine")
    settings = make_settings(directory, catalog_path=catalog, **FAST_RETRIES)
    with live_server(settings, workers=1) as live:
        yield live


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_a_failed_generation_sends_generation_failed(
    failing: LiveServer, receiver: Receiver, name: str
):
    dialect = DIALECTS[name]
    with failing.client() as client:
        wire_id = dialect.create(client, callback_url=receiver.url)
        polled = dialect.wait(client, wire_id)
    assert dialect.state(polled) == FAILED
    [delivery] = receiver.wait_for(1)
    event = delivery.verified(failing.runtime.service.webhook_secret(owner_of(failing)))
    assert event["type"] == "generation.failed"
    assert dialect.state(event["data"]) == FAILED
    assert "the model exploded" in delivery.body.decode()
