"""Helpers of the hardening tests: a fast model in every dialect, webhook receivers, and
checks that an error response has its dialect's envelope."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from kinema.api.app import error_envelopes
from kinema.api.dialects import dialects
from kinema.settings import Settings
from tests.support import make_settings

DIALECTS = ("aimlapi", "gemini", "vertex", "openai", "unified", "v1")
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    envelope.name: envelope.schema for envelope in error_envelopes(dialects())
}

# One text-to-video model every dialect serves, rendering a few grey frames at once.
QUICK_CATALOG = """
[engines.quick]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
fps = 8
frame_s = {frame_s}

[models.quick]
dialects = ["aimlapi", "gemini", "vertex", "openai", "unified", "v1"]
engine = "quick"
inputs = "any"
durations = [1, 2]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration", "seed"]
"""


def quick_settings(tmp_path: Path, *, frame_s: float = 0.0, **overrides: Any) -> Settings:
    catalog = tmp_path / "quick.toml"
    catalog.write_text(QUICK_CATALOG.format(frame_s=frame_s))
    values: dict[str, Any] = {
        "catalog_path": catalog,
        "fetch_allow_hosts": ["127.0.0.1"],
        "webhook_poll_s": 0.05,
        "webhook_retry_base_s": 0.2,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


def assert_envelope(dialect: str, response: httpx.Response, status: int | None = None) -> Any:
    """``response`` is a 4xx in ``dialect``'s own error shape (and ``status`` if given)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    jsonschema.validate(body, ERROR_SCHEMAS[dialect])
    return body


class Receiver:
    """A webhook receiver on loopback; records deliveries. While ``hold`` is set it keeps
    each request waiting (a slow receiver) until ``release()``."""

    def __init__(self, *, hold: bool = False) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.arrived = 0  # requests seen, delivered or still held
        self._held = threading.Event()
        if not hold:
            self._held.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.arrived += 1
                receiver._held.wait(60)
                with receiver._lock:
                    receiver.deliveries.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the deliverer gave up waiting
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def release(self) -> None:
        self._held.set()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.deliveries]

    def wait_for(self, count: int, timeout_s: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"only {len(self.deliveries)} deliveries"
            time.sleep(0.05)
        return self.bodies()

    def close(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
