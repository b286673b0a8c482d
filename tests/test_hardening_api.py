"""Route-level errors in each dialect's envelope, and Gemini's Idempotency-Key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.hardening_support import assert_envelope, quick_settings
from tests.support import LiveServer, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(quick_settings(tmp_path_factory.mktemp("api")), workers=0) as live:
        yield live


UNKNOWN_ROUTES = [
    ("gemini", "POST", "/v1beta/models/veo%2fx:predictLongRunning", 404),
    ("gemini", "GET", "/v1beta/nothing/here", 404),
    ("gemini", "PUT", "/v1beta/models/quick/operations/abc", 405),
    ("openai", "POST", "/v1/videos/video_0123/remix", 404),
    ("openai", "PATCH", "/v1/videos", 405),
    ("aimlapi", "DELETE", "/v2/video/generations", 405),
    ("aimlapi", "GET", "/v2/nothing", 404),
    ("unified", "PUT", "/v1/videos/generations", 405),
    ("unified", "GET", "/v1/tasks/task-unified-1-abcdefgh/unknown", 404),
    ("v1", "GET", "/v1/video/generations/task_x/unknown", 404),
    ("v1", "DELETE", "/v1/video/generations", 405),
    ("files", "POST", "/files/jobs/x/video.mp4", 405),
]


@pytest.mark.parametrize(("dialect", "method", "path", "status"), UNKNOWN_ROUTES)
def test_unknown_paths_and_methods_answer_in_the_envelope_of_their_prefix(
    server: LiveServer, dialect: str, method: str, path: str, status: int
):
    with server.client() as client:
        response = client.request(method, path, json={})
    assert_envelope(dialect, response, status)
    if status == 405:
        assert response.headers.get("allow"), response.headers


def test_paths_outside_every_dialect_keep_the_plain_shape(server: LiveServer):
    with server.client() as client:
        response = client.get("/nothing/here")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


def _gemini(server: LiveServer, body: dict, key: str | None) -> httpx.Response:
    headers = {"x-goog-api-key": server.api_key}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(
        server.url + "/v1beta/models/quick:predictLongRunning",
        json=body,
        headers=headers,
        timeout=30,
    )


def test_gemini_create_honours_idempotency_key(server: LiveServer, tmp_path: Path):
    owner = server.runtime.keys.list()[0].id
    before = len(server.runtime.store.list(owner, limit=100))
    body = {"instances": [{"prompt": "the same request twice"}]}
    first = _gemini(server, body, "retry-7")
    second = _gemini(server, body, "retry-7")
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["name"] == second.json()["name"]
    assert len(server.runtime.store.list(owner, limit=100)) == before + 1

    other = _gemini(server, {"instances": [{"prompt": "another request"}]}, "retry-7")
    body_ = assert_envelope("gemini", other, 422)
    assert body_["error"]["status"] == "FAILED_PRECONDITION"
    assert len(server.runtime.store.list(owner, limit=100)) == before + 1

    without = [_gemini(server, body, None) for _ in range(2)]
    assert without[0].json()["name"] != without[1].json()["name"]
