"""PostgreSQL goes away, twice, under procrastinate dispatch (a PostgreSQL of this test's
own: the shared server is never stopped).

While it is down every create and every poll of every dialect answers 503 in that
dialect's envelope with Retry-After, at once (no hang, no plain-text 500); once it is back
every job accepted before, between and after the outages ends succeeded with exactly one
output, and the worker process is still running.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.fault_support import (
    assert_unavailable,
    create_request,
    finished,
    own_postgres,
    poll,
    wait_for,
    wire_id,
)
from tests.hardening_support import DIALECTS, quick_settings
from tests.scale_support import WorkerProcess
from tests.support import live_server

FAST_ANSWER_S = 10.0  # a request while the database is down must not wait on it longer


def create(client: httpx.Client, dialect: str) -> str:
    path, body = create_request(dialect)
    response = client.post(path, json=body)
    assert response.status_code == 200, (dialect, response.status_code, response.text[:300])
    return wire_id(dialect, response.json())


def assert_down_answers(client: httpx.Client, accepted: list[tuple[str, str]]) -> None:
    """A create and a poll in every dialect: 503 in the envelope, Retry-After, quickly."""
    polled = {dialect: ident for dialect, ident in accepted}
    for dialect in DIALECTS:
        path, body = create_request(dialect)
        started = time.monotonic()
        assert_unavailable(dialect, client.post(path, json=body))
        assert_unavailable(dialect, poll(client, dialect, polled[dialect]))
        assert time.monotonic() - started < FAST_ANSWER_S, dialect


def wait_all_finished(client: httpx.Client, accepted: list[tuple[str, str]]) -> None:
    def states() -> bool:
        for dialect, ident in accepted:
            response = poll(client, dialect, ident)
            # Right after a restart a pooled connection may still be a dead one: a 503 is
            # fine (the client retries), anything else but 200 is not.
            assert response.status_code in (200, 503), (dialect, response.text[:300])
            if response.status_code != 200 or finished(dialect, response.json()) is None:
                return False
        return True

    wait_for(states, 180, "every accepted job to finish", every_s=0.5)


@pytest.mark.timeout(600)
def test_postgres_going_away_twice_answers_503_and_loses_no_job(tmp_path: Path):
    with own_postgres() as pg:
        settings = quick_settings(
            tmp_path, frame_s=0.05, database_url=pg.url, dispatch="procrastinate"
        )
        with live_server(settings, workers=0) as server:
            env = {
                "KINEMA_DATA_DIR": str(settings.data_dir),
                "KINEMA_DATABASE_URL": pg.url,
                "KINEMA_DISPATCH": "procrastinate",
                "KINEMA_CATALOG_PATH": str(settings.catalog_path),
                "KINEMA_SIGNING_SECRET": "test-secret",
                "KINEMA_LEASE_S": "3",
                "KINEMA_HEARTBEAT_S": "0.5",
            }
            worker = WorkerProcess(env, tmp_path / "worker.log", models="quick", concurrency=2)
            try:
                with server.client() as client:
                    client.timeout = httpx.Timeout(30)
                    accepted = [(d, create(client, d)) for d in DIALECTS for _ in range(2)]

                    pg.stop("fast")  # jobs in flight and queued
                    assert_down_answers(client, accepted)
                    pg.start()
                    accepted += [(d, create(client, d)) for d in DIALECTS]

                    pg.stop("immediate")  # a crash this time
                    assert_down_answers(client, accepted)
                    pg.start()
                    wait_all_finished(client, accepted)
                    accepted += [(d, create(client, d)) for d in DIALECTS]
                    wait_all_finished(client, accepted)
                assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
            finally:
                worker.stop()
            with server.runtime.db.connect() as connection:
                rows = connection.execute(text("SELECT status, outputs FROM jobs")).all()
    assert len(rows) == len(accepted) == 3 * len(DIALECTS) + len(DIALECTS)
    assert {status for status, _ in rows} == {"succeeded"}, rows
    assert all(len(outputs) == 1 for _, outputs in rows), rows


def test_readyz_with_the_database_gone_is_503_naming_no_connection_detail(tmp_path: Path):
    with own_postgres() as pg:
        settings = quick_settings(tmp_path, database_url=pg.url)
        with live_server(settings, workers=1) as server, server.client() as client:
            client.timeout = httpx.Timeout(30)
            before = client.get("/readyz")
            pg.stop("fast")
            started = time.monotonic()
            down = client.get("/readyz")
            took = time.monotonic() - started
            pg.start()
            back = wait_for(
                lambda: (answer := client.get("/readyz")).status_code == 200 and answer,
                30,
                "ready again",
            )
    assert before.status_code == 200, before.text
    assert down.status_code == 503 and took < FAST_ANSWER_S
    body = down.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == {"ok": False, "detail": "unreachable"}
    assert body["checks"]["storage"]["ok"] is True  # only the database is named
    port = pg.url.rsplit(":", 1)[1].split("/")[0]
    for detail in ("127.0.0.1", port, "postgres", "psycopg", "Error", "connection"):
        assert detail not in down.text, detail
    assert back.json()["checks"]["database"]["ok"] is True
