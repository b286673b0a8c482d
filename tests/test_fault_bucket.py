"""The bucket goes away: a real S3 server (moto) behind a loopback TCP proxy that is cut
while jobs run and restored.

An outage shorter than ``outage_wait_s`` loses nothing: every job finishes in its first
attempt (none spent on the outage) with one output, and the bucket holds nothing but
the jobs' inputs and outputs. Creates that must store an input answer 503 in their
dialect's envelope with Retry-After meanwhile. An outage longer than the window fails
the job, saying the bucket was unreachable. The waiting itself is exponential and
bounded (``Patience``, with a fake clock).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from kinema.errors import JobCancelled, Unavailable
from kinema.jobs.patience import OutageTooLong, Patience, PatientStorage
from kinema.storage import open_storage
from tests.fault_support import TcpProxy, assert_unavailable, create_request, wait_for, wire_id
from tests.hardening_support import QUICK_CATALOG, quick_settings
from tests.scale_support import S3Server, moto_server
from tests.support import LiveServer, live_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[TcpProxy]:
    cut = TcpProxy(int(s3.endpoint.rsplit(":", 1)[1]))
    yield cut
    cut.close()


def bucket_url(s3: S3Server, proxy: TcpProxy, bucket: str) -> str:
    s3.create_bucket(bucket)
    return f"s3://{bucket}/kinema?endpoint_url={proxy.endpoint}&region=us-east-1"


Row = tuple[str, str, int, list[dict[str, Any]] | None, str | None, str | None]


def rows(server: LiveServer) -> list[Row]:
    """(id, status, attempt, outputs, error code, error message) of every job."""
    query = "SELECT id, status, attempt, outputs, error_code, error_message FROM jobs"
    with server.runtime.db.connect() as connection:
        found = connection.execute(text(query)).all()
    return [
        (r.id, r.status, r.attempt, json.loads(r.outputs) if r.outputs else None, *r[4:])
        for r in found
    ]


def objects(s3: S3Server, bucket: str) -> set[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="kinema/")
    return {item["Key"].removeprefix("kinema/") for item in listed.get("Contents", [])}


def all_finished(server: LiveServer, count: int) -> bool:
    found = rows(server)
    terminal = ("succeeded", "failed", "cancelled")
    return len(found) == count and all(row[1] in terminal for row in found)


def create(client: httpx.Client, dialect: str) -> str:
    path, body = create_request(dialect)
    response = client.post(path, json=body)
    assert response.status_code == 200, (dialect, response.text[:300])
    return wire_id(dialect, response.json())


@pytest.mark.timeout(300)
def test_a_bucket_back_within_the_window_loses_no_job(
    s3: S3Server, proxy: TcpProxy, tmp_path: Path
):
    url = bucket_url(s3, proxy, "comeback")
    settings = quick_settings(tmp_path, frame_s=0.05, storage_url=url)
    with live_server(settings, workers=2) as server, server.client() as client:
        for dialect in ("aimlapi", "unified", "v1", "openai") * 2:
            create(client, dialect)
        wait_for(lambda: any(r[1] == "running" for r in rows(server)), 30, "a running job")
        proxy.cut()
        cut_at = time.monotonic()
        for dialect in ("aimlapi", "gemini", "vertex", "unified", "v1"):  # inputs to store
            path, body = create_request(dialect)
            assert_unavailable(dialect, client.post(path, json=body))
        create(client, "openai")  # a text prompt stores nothing: accepted, and must finish
        time.sleep(max(0.0, 8 - (time.monotonic() - cut_at)))
        assert not all_finished(server, 9), "the outage did not hold any job"
        proxy.restore()
        wait_for(lambda: all_finished(server, 9), 120, "every job to finish")
        found = rows(server)
    stored = objects(s3, "comeback")
    assert [r[1] for r in found] == ["succeeded"] * 9, found
    assert [r[2] for r in found] == [1] * 9, "an attempt was spent on the outage"
    expected = set()
    for _, _, _, outputs, _, _ in found:
        [output] = outputs or []
        expected |= {output["video_key"], output["thumbnail_key"]}
    assert expected <= stored
    outputs = {key for key in stored if key.split("/")[-1].startswith(("video", "thumbnail"))}
    assert outputs == expected, "orphan objects: " + repr(sorted(outputs - expected))


@pytest.mark.timeout(300)
def test_a_bucket_gone_longer_than_the_window_fails_the_job_saying_so(
    s3: S3Server, proxy: TcpProxy, tmp_path: Path
):
    url = bucket_url(s3, proxy, "gone")
    settings = quick_settings(tmp_path, frame_s=0.2, storage_url=url, outage_wait_s=2.0)
    with live_server(settings, workers=1) as server, server.client() as client:
        create(client, "openai")
        wait_for(lambda: any(r[1] == "running" for r in rows(server)), 30, "the job to run")
        proxy.cut()
        wait_for(lambda: all_finished(server, 1), 60, "the job to give up")
        proxy.restore()
        [(_, status, attempt, outputs, code, message)] = rows(server)
    assert (status, attempt, outputs) == ("failed", 1, None)
    assert code == "unavailable"
    assert "object storage is unreachable" in message and "gave up after" in message
    assert not {k for k in objects(s3, "gone") if "/video" in k or "/thumbnail" in k}


def restore_later(proxy: TcpProxy, after_s: float) -> threading.Timer:
    timer = threading.Timer(after_s, proxy.restore)
    timer.start()
    return timer


def test_opening_a_stored_file_waits_out_the_outage_in_a_job_attempt(
    s3: S3Server, proxy: TcpProxy, tmp_path: Path
):
    url = bucket_url(s3, proxy, "opening")
    storage = PatientStorage(open_storage(url, tmp_path, tmp_path), Patience(60.0, base_s=0.2))
    storage.put_bytes("jobs/a/input-video.mp4", b"source video bytes")
    proxy.cut()
    with pytest.raises(Unavailable), storage.open_read("jobs/a/input-video.mp4"):
        pass  # outside a job attempt: at once, as before
    started = time.monotonic()
    restore_later(proxy, 1.5)
    with (
        storage.patience.watching(lambda: False),
        storage.open_read("jobs/a/input-video.mp4") as source,
    ):
        data = source.read()
    assert data == b"source video bytes" and time.monotonic() - started >= 1.4


# The quick model, extending videos too; a 30 s job keeps the one worker busy for 12 s.
EXTENDING_CATALOG = QUICK_CATALOG.replace(
    "durations = [1, 2]",
    "durations = [1, 2, 30]\nextension = {{ max_input_s = 30, max_output_s = 60 }}",
)


@pytest.mark.timeout(300)
def test_an_extension_reads_its_source_video_once_the_bucket_is_back(
    s3: S3Server, proxy: TcpProxy, tmp_path: Path
):
    catalog = tmp_path / "extending.toml"
    catalog.write_text(EXTENDING_CATALOG.format(frame_s=0.05))
    url = bucket_url(s3, proxy, "source")
    settings = quick_settings(tmp_path, storage_url=url, catalog_path=catalog)
    with live_server(settings, workers=1) as server, server.client() as client:

        def made(body: dict[str, Any]) -> str:
            answer = client.post("/v1/video/generations", json={"model": "quick", **body})
            assert answer.status_code == 200, answer.text
            return str(answer.json()["task_id"])

        def status(task_id: str) -> str:
            return str(client.get(f"/v1/video/generations/{task_id}").json()["status"])

        source = made({"prompt": "p", "seconds": 1})
        wait_for(lambda: status(source) == "succeeded", 60, "the source video")
        blocker = made({"prompt": "p", "seconds": 30})
        wait_for(lambda: status(blocker) == "in_progress", 30, "the blocker to run")
        extension = made({"prompt": "p", "seconds": 1, "extend_from": source})
        proxy.cut()
        client.post(f"/v1/video/generations/{blocker}/cancel")  # the worker takes the extension
        wait_for(lambda: status(extension) == "in_progress", 30, "the extension to start")
        time.sleep(3)
        assert status(extension) == "in_progress", "the outage did not hold the extension"
        proxy.restore()
        wait_for(lambda: status(extension) == "succeeded", 60, "the extension to finish")
        found = {row[0]: row for row in rows(server)}
    [(_, _, attempt, outputs, code, _)] = [r for r in found.values() if r[0] in extension]
    assert (attempt, code) == (1, None), "an attempt was spent on the outage"
    [output] = outputs or []
    assert output["duration_s"] == pytest.approx(2.0, abs=0.2)  # the source and its second


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_patience_backs_off_exponentially_up_to_a_cap_and_gives_up_after_the_window():
    clock = FakeClock()
    patience = Patience(60.0, base_s=0.5, cap_s=8.0, clock=clock)
    pauses: list[float] = []

    def pause(seconds: float, should_stop: object) -> None:
        pauses.append(seconds)
        clock.now += seconds

    patience._pause = pause  # type: ignore[method-assign]
    calls = [0]

    def unreachable() -> None:
        calls[0] += 1
        raise Unavailable("object storage is unreachable")

    with pytest.raises(OutageTooLong, match="object storage is unreachable: gave up after 60 s"):
        patience.call(unreachable, "storing x", lambda: False)
    assert pauses[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert max(pauses) == 8.0 and sum(pauses) == pytest.approx(60.0)
    assert calls[0] == len(pauses) + 1

    # Back within the window: the call's own value, no error.
    pauses.clear()
    flaky = iter([Unavailable("down"), Unavailable("down"), None])

    def comes_back() -> str:
        error = next(flaky)
        if error is not None:
            raise error
        return "stored"

    assert patience.call(comes_back, "storing y", lambda: False) == "stored"
    assert pauses == [0.5, 1.0]


def test_patience_stops_waiting_on_cancel_and_passes_other_errors_at_once():
    patience = Patience(60.0, base_s=0.05)

    def unreachable() -> None:
        raise Unavailable("object storage is unreachable")

    started = time.monotonic()
    with pytest.raises(JobCancelled):
        patience.call(unreachable, "storing x", lambda: True)
    assert time.monotonic() - started < 5
    with pytest.raises(ValueError):
        patience.call(lambda: int("x"), "parsing", lambda: False)
