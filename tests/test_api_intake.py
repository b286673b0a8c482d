"""Image intake through the API: SSRF rules against a real local HTTP server, bad images."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import (
    LiveServer,
    encode_image,
    live_server,
    make_settings,
    pattern_image,
    poll_until_done,
    probe,
)

PNG = encode_image(pattern_image(320, 180))
I2V = "google/veo-3.0-i2v-fast"


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/image.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path.startswith("/redirect-to-"):
            self.send_response(302)
            host = self.path.removeprefix("/redirect-to-")
            self.send_header("Location", f"http://{host}:{self.server.server_port}/image.png")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_port
    httpd.shutdown()


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(make_settings(tmp_path), workers=1) as live:
        yield live


@pytest.fixture
def allowing(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, fetch_allow_hosts=["127.0.0.1"])
    with live_server(settings, workers=1) as live:
        yield live


def post(server: LiveServer, image_url: str):  # type: ignore[no-untyped-def]
    with server.client() as client:
        return client.post("/v2/video/generations",
                           json={"model": I2V, "prompt": "x", "image_url": image_url,
                                 "duration": 4})


def message(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.text
    return str(response.json()["details"][0]["message"])


def test_loopback_url_is_refused_by_default(strict: LiveServer, image_host: int):
    text = message(post(strict, f"http://127.0.0.1:{image_host}/image.png"))
    assert "loopback" in text


def test_private_and_metadata_addresses_are_refused(strict: LiveServer):
    assert "link-local" in message(post(strict, "http://169.254.169.254/latest/meta-data"))
    assert "private" in message(post(strict, "http://10.0.0.1/a.png"))
    assert "IPv4-mapped" in message(post(strict, "http://[::ffff:127.0.0.1]/a.png"))


def test_allow_listed_host_is_fetched_and_rendered(allowing: LiveServer, image_host: int):
    response = post(allowing, f"http://127.0.0.1:{image_host}/image.png")
    assert response.status_code == 200, response.text
    with allowing.client() as client:
        done = poll_until_done(client, response.json()["id"])
        assert done["status"] == "completed"
        assert probe(client.get(done["video"]["url"]).content).frames == 96


def test_redirect_from_allowed_host_to_loopback_name_is_refused(
    allowing: LiveServer, image_host: int
):
    text = message(post(allowing, f"http://127.0.0.1:{image_host}/redirect-to-localhost"))
    assert "loopback" in text


def test_missing_image_is_a_400_with_the_http_status(allowing: LiveServer, image_host: int):
    assert "404" in message(post(allowing, f"http://127.0.0.1:{image_host}/nothing.png"))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x89PNG\r\n\x1a\nnot really a png", "corrupt"),
        (PNG[: len(PNG) // 2], "trunc"),
        (encode_image(pattern_image(100, 500)), "aspect"),
        (encode_image(pattern_image(64, 64), "BMP"), "BMP"),
    ],
)
def test_bad_images_are_refused_with_the_reason(strict: LiveServer, payload: bytes, expected: str):
    text = message(post(strict, base64.b64encode(payload).decode()))
    assert expected.lower() in text.lower(), text


def test_oversized_image_is_refused(tmp_path: Path):
    settings = make_settings(tmp_path, max_image_bytes=10_000)
    with live_server(settings, workers=0) as live:
        big = encode_image(pattern_image(400, 400, seed=1))
        assert len(big) > 10_000
        assert "limit" in message(post(live, base64.b64encode(big).decode()))


def test_auth_disabled_mode_serves_without_keys(tmp_path: Path, caplog):
    settings = make_settings(tmp_path, auth_disabled=True)
    with live_server(settings, workers=0) as live, live.client(api_key="") as client:
        body = {"model": I2V, "prompt": "x", "image_url": base64.b64encode(PNG).decode()}
        response = client.post("/v2/video/generations", json=body)
        assert response.status_code == 200
        assert client.get("/v2/video/generations",
                          params={"generation_id": response.json()["id"]}).status_code == 200
    assert any("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records)
