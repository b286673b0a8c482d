"""Live status over server-sent events: progress events, one terminal event, resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

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
