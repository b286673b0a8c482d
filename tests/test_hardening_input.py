"""Malformed input is a 4xx in the dialect's own envelope, never a 5xx, and a refused
request stores nothing: digit strings ``int`` refuses, lone surrogates, deep nesting,
booleans where numbers belong, empty images, huge numbers and huge bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.hardening_support import assert_envelope
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image

IMAGE = data_uri(pattern_image(320, 180))

# dialect -> (create path, a body that is valid except for what a test adds)
CREATE: dict[str, tuple[str, dict[str, Any]]] = {
    "aimlapi": ("/v2/video/generations", {"model": "google/veo-3.1-t2v", "prompt": "p"}),
    "unified": (
        "/v1/videos/generations",
        {"model": "veo-3.1-image-to-video", "prompt": "p", "image_url": IMAGE},
    ),
    "v1": ("/v1/video/generations", {"model": "veo-3.0-generate-001", "prompt": "p"}),
    "openai": ("/v1/videos", {"model": "veo-3.0-generate-001", "prompt": "p"}),
}
DURATION_FIELD = {
    "aimlapi": "duration",
    "unified": "duration",
    "v1": "seconds",
    "openai": "seconds",
}
GEMINI_CREATE = "/v1beta/models/veo-3.0-generate-001:predictLongRunning"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("input"), max_body_bytes=300_000)
    with live_server(settings, workers=0) as live:
        yield live


def stored(server: LiveServer) -> int:
    return sum(len(server.runtime.store.list(key.id)) for key in server.runtime.keys.list())


def post_raw(server: LiveServer, path: str, raw: bytes, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {server.api_key}", "x-goog-api-key": server.api_key}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.post(
            path, content=raw, headers={"Content-Type": "application/json", **auth, **headers}
        )


def refused(server: LiveServer, dialect: str, response: httpx.Response, before: int) -> Any:
    body = assert_envelope(dialect, response)
    assert stored(server) == before, "a refused request stored a job"
    return body


@pytest.mark.parametrize("digits", ["²", "\uff14", "٣", "8" * 5000])
@pytest.mark.parametrize("dialect", sorted(CREATE))
def test_duration_digit_strings_int_refuses_are_a_400(
    server: LiveServer, dialect: str, digits: str
):
    path, body = CREATE[dialect]
    before = stored(server)
    with server.client() as client:
        response = client.post(path, json={**body, DURATION_FIELD[dialect]: digits})
    refused(server, dialect, response, before)
    assert response.status_code == 400


@pytest.mark.parametrize("digits", ["²", "8" * 5000])
def test_gemini_duration_digit_strings_are_a_400(server: LiveServer, digits: str):
    before = stored(server)
    raw = json.dumps(
        {"instances": [{"prompt": "p"}], "parameters": {"durationSeconds": digits}}
    ).encode()
    refused(server, "gemini", post_raw(server, GEMINI_CREATE, raw), before)


@pytest.mark.parametrize("expires", ["%C2%B2", "8" * 5000, "%EF%BC%94"])
def test_download_links_with_odd_expires_are_refused_without_a_key(
    server: LiveServer, expires: str
):
    url = f"{server.url}/files/jobs/x/video.mp4?expires={expires}&signature=00"
    response = httpx.get(url, timeout=30)
    assert_envelope("files", response, 403)


@pytest.mark.parametrize(
    ("key", "signature"),
    [
        ("jobs/x/video.mp4", "%C3%A9" * 32),  # non-ASCII: hmac.compare_digest raised
        ("jobs/x/video.mp4", "%ED%A0%80"),  # a lone surrogate
        ("jobs/%ED%A0%80/video.mp4", "00"),  # one in the key itself
        ("jobs/x/%F0%9F%8E%AC.mp4", "%00" * 64),
    ],
)
def test_download_links_with_odd_signatures_are_a_403(
    server: LiveServer, key: str, signature: str
):
    url = f"{server.url}/files/{key}?expires=99999999&signature={signature}"
    response = httpx.get(url)
    assert_envelope("files", response, 403)


@pytest.mark.parametrize("head", ["\u00b2", "\uff11", "9" * 5000])
def test_unified_poll_of_a_task_id_with_odd_digits_is_a_404(server: LiveServer, head: str):
    path, body = CREATE["unified"]
    with server.client() as client:
        created = client.post(path, json=body)
        assert created.status_code == 200, created.text
        _, _, chars = created.json()["id"].removeprefix("task-unified-").partition("-")
        # The same job id bits, with a creation time that only looks like digits.
        assert_envelope("unified", client.get(f"/v1/tasks/task-unified-{head}-{chars}"), 404)


SURROGATE = b'"\\ud800"'


@pytest.mark.parametrize("dialect", sorted(CREATE))
def test_a_lone_surrogate_in_a_prompt_is_a_400_and_stores_nothing(
    server: LiveServer, dialect: str
):
    path, body = CREATE[dialect]
    raw = json.dumps({**body, "prompt": "__S__"}).encode().replace(b'"__S__"', SURROGATE)
    before = stored(server)
    response = post_raw(server, path, raw)
    refused(server, dialect, response, before)
    assert response.status_code == 400
    with server.client() as client:  # the key's list still renders
        assert client.get("/v1/videos").status_code == 200


def test_a_lone_surrogate_in_a_gemini_prompt_is_a_400(server: LiveServer):
    raw = b'{"instances": [{"prompt": ' + SURROGATE + b"}]}"
    before = stored(server)
    refused(server, "gemini", post_raw(server, GEMINI_CREATE, raw), before)


def test_a_lone_surrogate_in_a_field_name_is_a_400(server: LiveServer):
    raw = b'{"model": "veo-3.0-generate-001", "prompt": "p", ' + SURROGATE + b": 1}"
    before = stored(server)
    response = post_raw(server, "/v1/videos", raw)
    refused(server, "openai", response, before)


@pytest.mark.parametrize("dialect", [*sorted(CREATE), "gemini"])
def test_json_nested_100000_deep_is_a_400(server: LiveServer, dialect: str):
    path = GEMINI_CREATE if dialect == "gemini" else CREATE[dialect][0]
    raw = b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    before = stored(server)
    response = post_raw(server, path, raw)
    refused(server, dialect, response, before)
    assert response.status_code == 400


LOOKALIKES: list[tuple[str, dict[str, Any]]] = [
    ("aimlapi", {"seed": True}),
    ("unified", {"seed": True}),
    ("unified", {"safety_level": True}),
    ("unified", {"safety_level": "\uff14"}),
    ("unified", {"seed": "\uff14\uff12"}),
    ("v1", {"seed": True}),
    ("v1", {"input_reference": ""}),
    ("v1", {"images": ""}),
    ("v1", {"images": [""]}),
    ("openai", {"seed": True}),
    ("openai", {"input_reference": ""}),
    ("openai", {"input_reference": {"image_url": ""}}),
]


@pytest.mark.parametrize(("dialect", "extra"), LOOKALIKES)
def test_values_that_only_look_right_are_refused(
    server: LiveServer, dialect: str, extra: dict[str, Any]
):
    path, body = CREATE[dialect]
    before = stored(server)
    with server.client() as client:
        response = client.post(path, json={**body, **extra})
    refused(server, dialect, response, before)


def test_gemini_boolean_seed_is_refused(server: LiveServer):
    raw = json.dumps({"instances": [{"prompt": "p"}], "parameters": {"seed": True}}).encode()
    before = stored(server)
    refused(server, "gemini", post_raw(server, GEMINI_CREATE, raw), before)


def test_error_messages_echo_at_most_a_bounded_part_of_the_input(server: LiveServer):
    path, body = CREATE["v1"]
    with server.client() as client:
        response = client.post(path, json={**body, "seconds": "x" * 100_000})
    refused(server, "v1", response, stored(server))
    assert len(response.content) < 5_000, len(response.content)


@pytest.mark.parametrize("dialect", [*sorted(CREATE), "gemini"])
def test_a_body_over_the_limit_is_a_413_in_the_dialects_envelope(
    server: LiveServer, dialect: str
):
    path = GEMINI_CREATE if dialect == "gemini" else CREATE[dialect][0]
    raw = json.dumps({"prompt": "p" * 400_000}).encode()
    before = stored(server)
    response = post_raw(server, path, raw)
    refused(server, dialect, response, before)
    assert response.status_code == 413


# Every create that takes a body: dialect -> path (the JSON creates, then OpenAI's
# multipart ones).
CREATES: list[tuple[str, str]] = [
    *((dialect, path) for dialect, (path, _) in sorted(CREATE.items())),
    ("gemini", GEMINI_CREATE),
    ("vertex", "/v1/publishers/google/models/veo-3.0-generate-001:predictLongRunning"),
    ("openai", "/v1/videos/extensions"),
    ("openai", "/v1/videos/edits"),
]
MULTIPART_CREATES = ["/v1/videos", "/v1/videos/extensions", "/v1/videos/edits"]


@pytest.fixture(scope="module", params=["httptools", "h11"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server with the 300 kB body limit, under each of uvicorn's HTTP/1.1 parsers."""
    data = tmp_path_factory.mktemp(f"limited-{request.param}")
    settings = make_settings(data, max_body_bytes=300_000, http_protocol=request.param)
    with live_server(settings, workers=0) as live:
        yield live


def _over_the_limit_json() -> bytes:
    return json.dumps({"model": "veo-3.0-generate-001", "prompt": "p" * 400_000}).encode()


def _over_the_limit_multipart(path: str) -> tuple[bytes, str]:
    """A multipart create whose file part alone is over the server's 300 kB body limit."""
    part = "video" if path != "/v1/videos" else "input_reference"
    request = httpx.Request(
        "POST",
        "http://kinema" + path,
        data={"model": "veo-3.0-generate-001", "prompt": "p"},
        files={part: ("big.png", b"\x89PNG" + b"\0" * 400_000, "image/png")},
    )
    return request.read(), request.headers["content-type"]


def _in_chunks(raw: bytes) -> Iterator[bytes]:
    for start in range(0, len(raw), 16_384):
        yield raw[start : start + 16_384]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("dialect", "path"), CREATES)
def test_every_json_create_over_the_limit_is_a_413(
    limited: LiveServer, dialect: str, path: str, chunked: bool
):
    server = limited
    raw = _over_the_limit_json()
    before = stored(server)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post(
            path,
            content=_in_chunks(raw) if chunked else raw,
            headers={
                "Authorization": f"Bearer {server.api_key}",
                "x-goog-api-key": server.api_key,
                "Content-Type": "application/json",
            },
        )
    refused(server, dialect, response, before)
    assert response.status_code == 413


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_poll_body_over_the_limit_is_a_413(limited: LiveServer, chunked: bool):
    """Vertex polls by POST, on the poll lane ahead of FastAPI: the same limit holds."""
    raw = json.dumps({"operationName": "o" * 400_000}).encode()
    with httpx.Client(base_url=limited.url, timeout=60) as client:
        response = client.post(
            "/v1/publishers/google/models/veo-3.0-generate-001:fetchPredictOperation",
            content=_in_chunks(raw) if chunked else raw,
            headers={"Authorization": f"Bearer {limited.api_key}"},
        )
    assert_envelope("vertex", response, 413)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", MULTIPART_CREATES)
def test_every_multipart_create_over_the_limit_is_a_413(
    limited: LiveServer, path: str, chunked: bool
):
    server = limited
    raw, content_type = _over_the_limit_multipart(path)
    before = stored(server)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post(
            path,
            content=_in_chunks(raw) if chunked else raw,
            headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": content_type},
        )
    if chunked:
        assert "content-length" not in response.request.headers
    refused(server, "openai", response, before)
    assert response.status_code == 413


def test_a_body_within_the_limit_is_still_accepted(server: LiveServer):
    path, body = CREATE["aimlapi"]
    with server.client() as client:
        response = client.post(path, json={**body, "prompt": "p" * 4_000})
    assert response.status_code == 200, response.text
