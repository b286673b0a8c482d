"""The upstream engine's pieces without a provider process: wire shapes, error mapping,
configuration, the engine chain of a model, and where the key may travel."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from kinema.catalog import Catalog
from kinema.engines.upstream import (
    Forwarding,
    Operation,
    OperationLost,
    UpstreamConfig,
    UpstreamEngine,
    UpstreamRefused,
    UpstreamUnavailable,
)
from kinema.engines.upstream.errors import RetryableCall
from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.vertex import VertexProtocol
from kinema.media.http import SafeHttpClient
from kinema.types import GenerationRequest

KEY = "provider-secret-key-123"

Handler = Callable[[httpx.Request], httpx.Response]


def _http(handler: Handler, secret: str | None = KEY) -> UpstreamHTTP:
    return UpstreamHTTP(
        "https://provider.example",
        headers={},
        timeout_s=5,
        max_response_bytes=2**20,
        secret=secret,
        transport=httpx.MockTransport(handler),
    )


# --- answers mapped to retry, refusal, unavailability ---


def test_429_with_an_http_date_retry_after_is_retryable_with_that_wait():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}, json={}
        )

    with pytest.raises(RetryableCall) as caught:
        _http(handler).call("GET", "/x")
    assert caught.value.retry_after_s is not None and caught.value.retry_after_s > 86400


def test_a_refusal_carries_the_providers_message_from_any_envelope():
    bodies = [
        {"error": {"code": 400, "message": "prompt was blocked", "status": "INVALID_ARGUMENT"}},
        {"message": "Body validation error!", "details": [{"message": "prompt was blocked"}]},
        {"detail": "prompt was blocked"},
    ]
    for body in bodies:
        with pytest.raises(UpstreamRefused, match="prompt was blocked"):
            _http(lambda request, b=body: httpx.Response(400, json=b)).call("POST", "/x")


def test_rejected_credentials_make_the_provider_unavailable_and_the_key_is_scrubbed():
    echo = {"error": {"message": f"API key {KEY} is not valid"}}
    with pytest.raises(UpstreamUnavailable) as caught:
        _http(lambda request: httpx.Response(401, json=echo)).call("GET", "/x")
    assert KEY not in caught.value.message
    assert "[key] is not valid" in caught.value.message


def test_a_404_while_polling_means_the_operation_was_lost():
    with pytest.raises(OperationLost):
        _http(lambda request: httpx.Response(404, json={})).call("GET", "/op", polling=True)
    with pytest.raises(UpstreamUnavailable):
        _http(lambda request: httpx.Response(404, json={})).call("POST", "/create")


def test_dropped_connections_and_timeouts_are_retryable():
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler in (drop, slow):
        with pytest.raises(RetryableCall):
            _http(handler).call("GET", "/x")


# --- Vertex AI wire shapes (PROTOCOLS.md 4b) ---


def _submission_request() -> GenerationRequest:
    return GenerationRequest(model="veo-3.1-generate-001", prompt="a cat", duration_s=8)


def test_vertex_express_mode_posts_to_the_publisher_model_and_polls_by_operation_name():
    seen: list[httpx.Request] = []
    video = b"\x00\x00\x00\x18ftypmp42"
    name = "projects/p/locations/l/publishers/google/models/veo-3.1-generate-001/operations/42"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith(":predictLongRunning"):
            return httpx.Response(200, json={"name": name})
        assert json.loads(request.content) == {"operationName": name}
        return httpx.Response(
            200,
            json={
                "name": name,
                "done": True,
                "response": {
                    "videos": [
                        {
                            "bytesBase64Encoded": base64.b64encode(video).decode(),
                            "mimeType": "video/mp4",
                        }
                    ]
                },
            },
        )

    from kinema.engines.upstream.protocol import Submission

    protocol = VertexProtocol({})
    http = _http(handler)
    submission = Submission(
        _submission_request(),
        "veo-3.1-generate-001",
        1280,
        720,
        frozenset({"duration", "seed"}),
        "k",
    )
    ref = protocol.submit(http, submission)
    status = protocol.poll(http, ref)

    assert (
        seen[0].url.path
        == "/v1beta1/publishers/google/models/veo-3.1-generate-001:predictLongRunning"
    )
    body = json.loads(seen[0].content)
    assert body["instances"] == [{"prompt": "a cat"}]
    assert body["parameters"] == {"sampleCount": 1, "durationSeconds": 8}
    assert seen[1].url.path == (
        "/v1beta1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001"
        ":fetchPredictOperation"
    )
    assert status.done and status.video_bytes == video


def test_vertex_project_mode_uses_a_bearer_token_and_the_project_path():
    protocol = VertexProtocol({"project": "acme", "location": "europe-west4"})
    assert protocol.auth_headers("tok") == {"Authorization": "Bearer tok"}
    assert VertexProtocol({}).auth_headers("k") == {"x-goog-api-key": "k"}
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json={"name": "x/operations/1"})

    from kinema.engines.upstream.protocol import Submission

    protocol.submit(
        _http(handler),
        Submission(_submission_request(), "veo-3.1-generate-001", 1280, 720, frozenset(), "k"),
    )
    assert paths == [
        "/v1beta1/projects/acme/locations/europe-west4/publishers/google/models/"
        "veo-3.1-generate-001:predictLongRunning"
    ]


def test_vertex_safety_filtered_result_is_a_refusal_with_the_reasons():
    def handler(request: httpx.Request) -> httpx.Response:
        response = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["celebrity likeness"]}
        return httpx.Response(200, json={"name": "n", "done": True, "response": response})

    status = VertexProtocol({}).poll(_http(handler), "a/operations/1")
    assert status.refused and status.error == "celebrity likeness"


# --- configuration and the engine chain ---


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "gemini", "base_url": "https://x", "api_key": "k"}, "api_key_env"),
        ({"protocol": "sora", "base_url": "https://x"}, "'protocol' must be one of"),
        ({"protocol": "v1", "base_url": "https://user:pw@x"}, "without credentials"),
        ({"protocol": "v1", "base_url": "ftp://x"}, "http(s) URL"),
    ],
)
def test_upstream_config_refuses_bad_entries_naming_the_field(
    options: dict[str, Any], message: str
):
    with pytest.raises(ValueError, match=re.escape(message)):
        UpstreamConfig.from_options("hosted", options)


def test_a_model_lists_its_engines_in_order():
    catalog = Catalog.from_dict(
        {
            "engines": {
                "gpu": {"kind": "motion"},
                "hosted": {"kind": "upstream", "protocol": "v1", "base_url": "https://p.example"},
            },
            "models": {
                "m": {
                    "dialect": "v1",
                    "engine": ["gpu", "hosted"],
                    "inputs": "text",
                    "durations": [4],
                    "default_duration": 4,
                    "aspect_ratios": ["16:9"],
                    "resolutions": ["720p"],
                }
            },
        }
    )
    assert catalog.models["m"].engines == ("gpu", "hosted")
    assert catalog.models["m"].engine == "gpu"
    with pytest.raises(ValueError, match="unknown engine 'nowhere'"):
        Catalog.from_dict(
            {
                "engines": {"gpu": {"kind": "motion"}},
                "models": {
                    "m": {
                        **{"engine": ["gpu", "nowhere"]},
                        "dialect": "v1",
                        "inputs": "text",
                        "durations": [4],
                        "default_duration": 4,
                        "aspect_ratios": ["16:9"],
                        "resolutions": ["720p"],
                    }
                },
            }
        )


# --- where the video may come from, and where the key goes ---


def _forwarding(tmp_path: Path, recorded: list[Operation]) -> Forwarding:
    return Forwarding(
        job_id="0" * 32,
        request=_submission_request(),
        width=1280,
        height=720,
        options=frozenset(),
        operation=None,
        record=recorded.append,
        on_progress=lambda fraction: None,
        cancel_requested=lambda: False,
        stopping=lambda: False,
        scratch=tmp_path,
    )


def test_a_video_link_to_a_private_address_is_refused(tmp_path: Path):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":predictLongRunning"):
            return httpx.Response(200, json={"name": "models/m/operations/1"})
        sample = {"video": {"uri": "http://169.254.169.254/latest/meta-data"}}
        response = {"generateVideoResponse": {"generatedSamples": [sample]}}
        return httpx.Response(
            200, json={"name": "models/m/operations/1", "done": True, "response": response}
        )

    config = UpstreamConfig.from_options(
        "hosted", {"protocol": "gemini", "base_url": "https://provider.example", "api_key_env": "K"}
    )
    engine = UpstreamEngine(config, environ={"K": KEY}, transport=httpx.MockTransport(handler))
    recorded: list[Operation] = []
    with pytest.raises(UpstreamUnavailable, match=r"video link refused.*link-local"):
        engine.forward(_forwarding(tmp_path, recorded))
    assert recorded[0].ref == "models/m/operations/1"  # committed before the first poll


def test_a_missing_key_variable_makes_the_engine_unavailable_saying_which():
    config = UpstreamConfig.from_options(
        "hosted", {"protocol": "v1", "base_url": "https://p.example", "api_key_env": "NOPE_KEY"}
    )
    with pytest.raises(UpstreamUnavailable, match="NOPE_KEY"):
        UpstreamEngine(config, environ={}).setup()


@pytest.fixture
def two_origins() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """127.0.0.1 redirects to localhost (another origin); both record request headers."""
    seen: list[dict[str, str]] = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            if self.path == "/start":
                port = self.server.server_address[1]
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{port}/video")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"video")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/start", seen
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_go_only_to_the_origin_they_were_given_for(two_origins: Any):
    url, seen = two_origins
    client = SafeHttpClient(allow_hosts=("127.0.0.1", "localhost"))

    assert client.get(url, field="video", headers={"x-goog-api-key": KEY}) == b"video"
    assert seen[0]["x-goog-api-key"] == KEY
    assert "x-goog-api-key" not in seen[1]


def test_a_bad_upstream_entry_stops_the_process_at_start(tmp_path: Path):
    from kinema.runtime import Runtime
    from tests.support import make_settings

    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[engines.hosted]\nkind = "upstream"\nprotocol = "gemini"\nbase_url = "https://x"\n'
        'api_key = "AIza-in-the-catalog"\n'
    )
    with pytest.raises(ValueError, match=r"engine 'hosted'.*api_key_env"):
        Runtime.build(make_settings(tmp_path, catalog_path=catalog), workers=0)


def test_an_answer_without_the_expected_fields_makes_the_provider_unavailable(tmp_path: Path):
    config = UpstreamConfig.from_options(
        "hosted", {"protocol": "aimlapi", "base_url": "https://p.example", "api_key_env": "K"}
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))
    engine = UpstreamEngine(config, environ={"K": KEY}, transport=transport)
    with pytest.raises(UpstreamUnavailable, match=r"not understood.*KeyError"):
        engine.forward(_forwarding(tmp_path, []))


def test_a_protocol_without_a_field_for_an_input_says_so_before_sending(tmp_path: Path):
    from dataclasses import replace

    from kinema.engines.upstream.protocol import Image

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    config = UpstreamConfig.from_options(
        "omni", {"protocol": "openai", "base_url": "http://10.0.0.5:8091"}
    )
    engine = UpstreamEngine(config, environ={}, transport=httpx.MockTransport(handler))
    frame = Image(b"png", "image/png")
    job = replace(_forwarding(tmp_path, []), image=frame, last_image=frame)
    with pytest.raises(UpstreamUnavailable, match="openai protocol cannot carry a last frame"):
        engine.forward(job)
