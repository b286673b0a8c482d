"""Retention in every dialect: finished videos go after ``retention_s``; 0 keeps them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

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
