"""Live status over server-sent events: progress events, one terminal event, resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.dialects import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    DIALECT_NAMES,
    DIALECTS,
    FAILED,
    Stream,
    catalog_on_engine,
    event_rank,
    read_stream,
)
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(make_settings(tmp_path_factory.mktemp("sse")), workers=1) as live:
        yield live


def read_events(client: httpx.Client, generation_id: str, last_id: str | None = None) -> list:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events, current = [], {}
    with client.stream(
        "GET",
        "/v2/video/generations/events",
        params={"generation_id": generation_id},
        headers=headers,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = value
    return events


def test_stream_goes_from_queued_to_completed_then_ends(server: LiveServer):
    with server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "pan right",
                "image_url": data_uri(pattern_image()),
                "duration": 8,
                "resolution": "720p",
            },
        )
        generation_id = created.json()["id"]
        events = read_events(client, generation_id)

    assert [e["event"] for e in events[:-1]] == ["progress"] * (len(events) - 1)
    assert events[-1]["event"] == "done"
    bodies = [json.loads(e["data"]) for e in events]
    assert bodies[-1]["status"] == "completed" and bodies[-1]["video"]["url"]
    assert any(b["status"] == "generating" and 0 < b["progress"] < 100 for b in bodies)
    progress = [b["progress"] for b in bodies]
    assert progress == sorted(progress)
    ids = [tuple(map(int, e["id"].split("."))) for e in events]
    assert ids == sorted(set(ids))

    with server.client() as client:
        middle = events[len(events) // 2]["id"]
        resumed = read_events(client, generation_id, last_id=middle)
        assert resumed and resumed[-1]["event"] == "done"
        assert all(
            tuple(map(int, e["id"].split("."))) > tuple(map(int, middle.split(".")))
            for e in resumed
        )
        assert read_events(client, generation_id, last_id=events[-1]["id"]) == []


def test_stream_of_another_keys_job_is_404(server: LiveServer):
    with server.client() as client:
        created = client.post(
            "/v2/video/generations",
            json={
                "model": "google/veo-3.0-i2v-fast",
                "prompt": "x",
                "image_url": data_uri(pattern_image()),
                "duration": 4,
            },
        )
    with server.client(api_key=server.new_key()) as other:
        response = other.get(
            "/v2/video/generations/events", params={"generation_id": created.json()["id"]}
        )
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


def _b64_png() -> str:
    return data_uri(pattern_image())


# dialect -> (create path, body, id field of the create response, events path, done check)
DIALECT_STREAMS = {
    "gemini": (
        "/v1beta/models/veo-3.0-fast-generate-001:predictLongRunning",
        {"instances": [{"prompt": "pan left"}], "parameters": {"durationSeconds": 4}},
        lambda created: f"/v1beta/{created['name']}/events",
        lambda body: body["done"] is True and "response" in body,
    ),
    "openai": (
        "/v1/videos",
        {"model": "sora-2", "prompt": "pan left", "seconds": "4", "size": "1280x720"},
        lambda created: f"/v1/videos/{created['id']}/events",
        lambda body: body["status"] == "completed",
    ),
    "unified": (
        "/v1/videos/generations",
        {
            "model": "veo-3.1-fast-image-to-video",
            "prompt": "pan left",
            "duration": 4,
            "resolution": "720p",
            "image_url": "IMAGE",
        },
        lambda created: f"/v1/tasks/{created['id']}/events",
        lambda body: body["status"] == "completed" and body["results"],
    ),
    "v1": (
        "/v1/video/generations",
        {
            "model": "veo-3.0-fast-generate-001",
            "prompt": "pan left",
            "seconds": 4,
            "size": "720p",
            "aspect_ratio": "16:9",
        },
        lambda created: f"/v1/video/generations/{created['task_id']}/events",
        lambda body: body["status"] == "succeeded" and body["video_url"],
    ),
}


@pytest.mark.parametrize("dialect", sorted(DIALECT_STREAMS))
def test_every_dialect_streams_its_own_status_object(server: LiveServer, dialect: str):
    path, body, events_path, is_done = DIALECT_STREAMS[dialect]
    body = {k: (_b64_png() if v == "IMAGE" else v) for k, v in body.items()}
    with server.client() as client:
        created = client.post(path, json=body)
        assert created.status_code == 200, created.text
        url = events_path(created.json())
        events, current = [], {}
        with client.stream("GET", url) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if not line:
                    if current:
                        events.append(current)
                    current = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(": ")
                    current[field] = value
    assert events[-1]["event"] == "done"
    assert is_done(json.loads(events[-1]["data"]))
    assert all(e["event"] == "progress" for e in events[:-1])


# --- resuming, keepalives, and streams that end badly, in every dialect ---


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Every model renders grey frames, 30 ms each: a 4 s clip runs for about 3 s."""
    directory = tmp_path_factory.mktemp("sse-slow")
    catalog = catalog_on_engine(directory, "SlowEngine", frame_s=0.03)
    with live_server(make_settings(directory, catalog_path=catalog), workers=1) as live:
        yield live


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("sse-failing")
    catalog = catalog_on_engine(directory, "CrashingEngine")
    with live_server(make_settings(directory, catalog_path=catalog), workers=1) as live:
        yield live


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """No workers: jobs stay queued until a test ends them."""
    with live_server(make_settings(tmp_path_factory.mktemp("sse-idle")), workers=0) as live:
        yield live


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_resumes_a_stream_after_last_event_id(slow: LiveServer, name: str):
    dialect = DIALECTS[name]

    def running(stream: Stream) -> bool:
        return bool(stream.events) and event_rank(stream.events[-1]) >= (1, 1)

    with slow.client() as client:
        wire_id = dialect.create(client)
        path = dialect.events_path(wire_id)
        first = read_stream(client, path, stop=running)  # disconnects mid-job
        seen = first.events[-1]
        assert dialect.state(json.loads(seen["data"])) == ACTIVE
        rest = read_stream(client, path, last_event_id=seen["id"])
        again = read_stream(client, path, last_event_id=rest.events[-1]["id"])

    assert rest.events, "the job went on after the first stream was dropped"
    assert all(event_rank(e) > event_rank(seen) for e in rest.events)
    assert [e["event"] for e in rest.events][-1] == "done"
    assert dialect.state(rest.bodies[-1]) == COMPLETED
    ranks = [event_rank(e) for e in rest.events]
    assert ranks == sorted(set(ranks))
    assert again.events == [], "nothing is newer than the terminal event"


def test_an_idle_stream_gets_keepalive_comments(idle: LiveServer):
    # The job stays queued: nothing changes, so after 15 s only a comment line is sent.
    dialect = DIALECTS["aimlapi"]
    with idle.client() as client:
        wire_id = dialect.create(client)
        stream = read_stream(
            client, dialect.events_path(wire_id), stop=lambda s: bool(s.comments)
        )
    assert stream.comments == [": keepalive"]
    [queued] = stream.events
    assert queued["event"] == "progress" and queued["id"] == "0.0"
    assert dialect.state(json.loads(queued["data"])) == ACTIVE


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_ends_the_stream_of_a_failed_job(failing: LiveServer, name: str):
    dialect = DIALECTS[name]
    with failing.client() as client:
        stream = read_stream(client, dialect.events_path(dialect.create(client)))
    assert [e["event"] for e in stream.events][-1] == "done"
    assert all(e["event"] == "progress" for e in stream.events[:-1])
    assert dialect.state(stream.bodies[-1]) == FAILED
    assert "the model exploded" in stream.events[-1]["data"]


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_every_dialect_ends_the_stream_of_a_cancelled_job(idle: LiveServer, name: str):
    dialect = DIALECTS[name]
    with idle.client() as client:
        wire_id = dialect.create(client)
        cancelled: list[bool] = []

        def cancel_once_watched(stream: Stream) -> bool:
            if stream.events and not cancelled:
                dialect.cancel(idle, client, wire_id)
                cancelled.append(True)
            return False

        stream = read_stream(client, dialect.events_path(wire_id), stop=cancel_once_watched)
    assert cancelled
    assert [e["event"] for e in stream.events] == ["progress", "done"]
    assert dialect.state(stream.bodies[0]) == ACTIVE
    assert dialect.state(stream.bodies[-1]) == CANCELLED
