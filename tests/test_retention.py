"""Retention in every dialect: finished videos go after ``retention_s``; 0 keeps them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.responses import Response

from kinema.api import files as files_api
from kinema.artifacts import Artifact
from tests.dialects import COMPLETED, DIALECT_NAMES, DIALECTS, EXPIRED, WireDialect, job_id_of
from tests.support import LiveServer, live_server, make_settings, probe


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("retention"), retention_s=1.0, heartbeat_s=0.2
    )
    with live_server(settings, workers=1) as live:
        yield live


@pytest.fixture(scope="module")
def keeping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("keep"), retention_s=0, heartbeat_s=0.2)
    with live_server(settings, workers=1) as live:
        yield live


def fetch_video(client: httpx.Client, dialect: WireDialect, wire_id: str, body: dict):
    """The video of a finished job as its dialect hands it out (a link, or OpenAI's route)."""
    if dialect.name == "openai":
        return client.get(f"/v1/videos/{wire_id}/content")
    url = dialect.video_url(body)
    assert url, body
    return client.get(url)


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_reports_an_expired_video_and_its_files_go(short: LiveServer, name: str):
    dialect = DIALECTS[name]
    with short.client() as client:
        wire_id = dialect.create(client)
        done = dialect.wait(client, wire_id, states=(COMPLETED, EXPIRED))
        assert dialect.state(done) == COMPLETED, done
        video = fetch_video(client, dialect, wire_id, done)
        assert video.status_code == 200 and probe(video.content).frames == 96
        expired = dialect.wait(client, wire_id, states=(EXPIRED,), timeout_s=30)
        gone = fetch_video(client, dialect, wire_id, done)
    assert dialect.state(expired) == EXPIRED
    assert dialect.video_url(expired) is None
    assert gone.status_code == 404
    job_dir = short.runtime.settings.resolved_storage_dir / "jobs" / job_id_of(short, wire_id)
    # The job reads expired once its row commits; the supervisor removes the files right
    # after, in the same pass.
    deadline = time.monotonic() + 10
    while job_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job_dir.exists(), sorted(str(p) for p in job_dir.rglob("*"))


def test_retention_zero_keeps_finished_videos(keeping: LiveServer):
    dialect = DIALECTS["aimlapi"]
    with keeping.client() as client:
        wire_id = dialect.create(client)
        done = dialect.wait(client, wire_id)
        assert dialect.state(done) == COMPLETED, done
        time.sleep(1.5)  # several supervisor passes (every 0.2 s)
        later = dialect.poll(client, wire_id)
        video = fetch_video(client, dialect, wire_id, later)
    assert dialect.state(later) == COMPLETED
    assert video.status_code == 200 and probe(video.content).frames == 96
    job_dir = keeping.runtime.settings.resolved_storage_dir / "jobs" / job_id_of(keeping, wire_id)
    assert list(job_dir.glob("video-*.mp4"))


def test_a_signed_link_answers_404_once_its_job_expired_even_before_its_files_go(
    keeping: LiveServer,
):
    """The supervisor marks the row expired, then removes the files: a link followed
    between the two is a 404 (the row decides), never the file being removed."""
    dialect = DIALECTS["aimlapi"]
    with keeping.client() as client:
        wire_id = dialect.create(client)
        done = dialect.wait(client, wire_id)
        url = dialect.video_url(done)
        assert url and client.get(url).status_code == 200
        job_id = job_id_of(keeping, wire_id)
        far_future = datetime.now(UTC) + timedelta(days=1)
        assert job_id in keeping.runtime.store.expire_finished(far_future)
        gone = client.get(url)
        head = client.head(url)
    assert gone.status_code == 404, gone.text
    assert gone.json()["statusCode"] == 404 and "expired" in gone.json()["message"]
    assert head.status_code == 404
    job_dir = keeping.runtime.settings.resolved_storage_dir / "jobs" / job_id
    assert list(job_dir.glob("video-*.mp4")), "the files are the supervisor's to remove"


@pytest.mark.parametrize("ranged", [False, True], ids=["whole", "range"])
def test_a_file_removed_while_its_download_starts_still_serves_whole(
    keeping: LiveServer, monkeypatch: pytest.MonkeyPatch, ranged: bool
):
    """Retention or a delete may remove a file between the route finding it and the
    response sending it: the response holds the file open, so the bytes still arrive."""
    dialect = DIALECTS["aimlapi"]
    with keeping.client() as client:
        wire_id = dialect.create(client)
        done = dialect.wait(client, wire_id)
        url = dialect.video_url(done)
        assert url
        whole = client.get(url).content
        original = files_api.artifact_response
        removed: list[str] = []

        def then_removed(artifact: Artifact) -> Response:
            response = original(artifact)
            assert artifact.path is not None
            artifact.path.unlink()
            removed.append(artifact.path.name)
            return response

        monkeypatch.setattr(files_api, "artifact_response", then_removed)
        headers = {"Range": "bytes=100-1099"} if ranged else {}
        served = client.get(url, headers=headers)
        monkeypatch.undo()
        after = client.get(url)
    assert removed
    if ranged:
        assert served.status_code == 206 and served.content == whole[100:1100]
    else:
        assert served.status_code == 200 and served.content == whole
        assert probe(served.content).frames == 96
    assert after.status_code == 404 and after.json()["statusCode"] == 404


ODD_RANGES = [
    "bytes=abc",
    "bytes=5-2",
    "bites=0-1",
    "bytes=--1",
    "bytes=-0",
    "bytes=999999999-",
    "bytes=" + "9" * 400 + "-",
    "bytes=0-0," + ",".join(f"{i}-{i}" for i in range(1, 5000)),
    "bytes=0-1,0-1",
    "bytes=\u00b2-\u00b3",
]


def test_odd_range_headers_on_a_download_are_answered_without_a_5xx(keeping: LiveServer):
    """Every odd ``Range`` gets a 4xx, or the bytes it names (or the whole file)."""
    dialect = DIALECTS["aimlapi"]
    with keeping.client() as client:
        wire_id = dialect.create(client)
        url = dialect.video_url(dialect.wait(client, wire_id))
        assert url
        whole = client.get(url).content
        for value in ODD_RANGES:
            response = client.get(url, headers={"Range": value.encode("utf-8")})
            assert response.status_code < 500, (value[:40], response.status_code)
            if response.status_code == 200:
                assert response.content == whole
            elif response.status_code == 206:
                if response.headers["content-type"].startswith("multipart/byteranges"):
                    assert response.content.count(b"Content-Range: bytes ") >= 2
                else:
                    assert response.content and response.content in whole
