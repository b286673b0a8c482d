"""Loopback pieces for upstream tests: a kinema process as the provider, a fault proxy.

The provider is a second kinema (``python -m kinema serve``) whose catalog renders grey
clips quickly (``veo-2.0-generate-001`` slowly, for tests that act mid-job). The proxy
sits between the kinema under test and the provider, passes requests through (keeping
the ``Host`` it was called with, so the provider's links point back through it), records
each one, and injects the faults a test asks for: an HTTP status (with headers), a slow
answer, a dropped connection before or after the provider saw the request, or a 404 as
from a provider that lost the operation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from kinema.runtime import Runtime
from tests.support import free_port, make_settings

REPO = Path(__file__).resolve().parent.parent
PROVIDER_KEY_ENV = "KINEMA_TEST_PROVIDER_KEY"
SLOW_MODEL = "veo-2.0-generate-001"  # the provider renders it in about 5 s
PROVIDER_FPS = 4


# --- catalogs ---


def shipped_catalog() -> dict[str, Any]:
    return tomllib.loads(resources.files("kinema").joinpath("catalog.toml").read_text("utf-8"))


def toml_text(data: dict[str, Any]) -> str:
    """Two-level TOML (``[section."name"]`` tables of scalars, lists and inline tables)."""
    lines: list[str] = []
    for section, entries in data.items():
        for name, values in entries.items():
            lines.append(f'[{section}."{name}"]')
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
            lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    raise TypeError(type(value))


def grey_engine(frame_s: float) -> dict[str, Any]:
    return {
        "kind": "python",
        "class": "tests.fixture_engines:SlowEngine",
        "frame_s": frame_s,
        "fps": PROVIDER_FPS,
    }


def provider_catalog() -> dict[str, Any]:
    """Every shipped model, rendered as grey frames: quickly, or slowly for SLOW_MODEL."""
    catalog = shipped_catalog()
    catalog["engines"] = {"quick": grey_engine(0.0), "slow": grey_engine(0.25)}
    for model_id, spec in catalog["models"].items():
        spec["engine"] = "slow" if model_id == SLOW_MODEL else "quick"
    return catalog


def forwarding_model(
    provider_model: str, *, model_id: str, dialect: str, engine: str | list[str]
) -> dict[str, Any]:
    """A model of the kinema under test that accepts what ``provider_model`` accepts."""
    shipped = shipped_catalog()
    alias = shipped.get("aliases", {}).get(provider_model)  # a retired id: its model's
    spec = dict(shipped["models"][alias["of"] if alias else provider_model])
    spec.pop("dialect", None)
    spec["dialects"] = [dialect]
    spec["engine"] = engine
    return {model_id: spec}


def upstream_engine(protocol: str, base_url: str, **options: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "kind": "upstream",
        "protocol": protocol,
        "base_url": base_url,
        "api_key_env": PROVIDER_KEY_ENV,
        "poll_s": 0.2,
        "backoff_s": 0.1,
        "request_timeout_s": 5.0,
        "deadline_s": 120.0,
        "max_retries": 4,
    }
    values.update(options)
    return values


# --- the provider ---


@dataclass
class Provider:
    url: str
    api_key: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )

    def jobs(self, model: str | None = None) -> list[dict[str, Any]]:
        """Every job the provider holds (through its OpenAI list, which shows them all)."""
        found: list[dict[str, Any]] = []
        after = None
        with self.client() as client:
            while True:
                params: dict[str, Any] = {"limit": 100, "order": "asc"}
                if after:
                    params["after"] = after
                page = client.get("/v1/videos", params=params).json()
                found += page["data"]
                if not page["has_more"]:
                    break
                after = page["last_id"]
        return [job for job in found if model is None or job["model"] == model]


@contextmanager
def provider_process(tmp_path: Path) -> Iterator[Provider]:
    """A kinema process serving every dialect, with two workers and one API key."""
    data_dir = tmp_path / "provider"
    catalog = tmp_path / "provider-catalog.toml"
    catalog.write_text(toml_text(provider_catalog()))
    settings = make_settings(data_dir.parent, data_dir=data_dir)
    runtime = Runtime.build(settings, workers=0)
    _, key = runtime.keys.create("kinema-forwarder")
    runtime.close()
    env = {
        "KINEMA_DATA_DIR": str(data_dir),
        "KINEMA_CATALOG_PATH": str(catalog),
        "KINEMA_SIGNING_SECRET": "provider-secret",
        "KINEMA_WORKERS": "2",
        "KINEMA_POLL_S": "0.05",
        "KINEMA_HEARTBEAT_S": "0.3",
        "KINEMA_PROGRESS_INTERVAL_S": "0.1",
    }
    port = free_port()
    proc = start_kinema(env, port, tmp_path / "provider.log")
    try:
        yield Provider(f"http://127.0.0.1:{port}", key, data_dir, proc, tmp_path / "provider.log")
    finally:
        stop_process(proc)


def start_kinema(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python -m kinema serve`` (API and a worker) from this checkout, once it is ready."""
    full = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", **env}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kinema", "serve", "--port", str(port), "--log-level", "info"],
            env=full,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the fault proxy ---


@dataclass
class Seen:
    """One request that reached the proxy."""

    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic()
    fault: str | None
    body: bytes = b""  # as the client sent it


@dataclass
class Fault:
    """Do ``action`` to the next ``times`` requests that ``match``."""

    match: Callable[[str, str], bool]
    action: str  # "status" | "slow" | "drop" | "drop_after" | "lost" | "garbage"
    times: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class FaultProxy:
    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._upstream = httpx.Client(base_url=target, timeout=60, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_DELETE = do_HEAD = _any

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests(self, method: str, predicate: Callable[[str], bool]) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and predicate(s.path)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._upstream.close()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.match(method, path):
                    fault.times -= 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        fault = self._take_fault(method, path)
        with self._lock:
            self.seen.append(
                Seen(
                    method,
                    path,
                    {k.lower(): v for k, v in headers.items()},
                    time.monotonic(),
                    fault.action if fault else None,
                    body,
                )
            )
        if fault is not None and fault.action == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if fault is not None and fault.action == "status":
            payload = b'{"error": {"code": %d, "message": "injected fault", "status": "X"}}' % (
                fault.status
            )
            self._answer(handler, fault.status, fault.headers, payload)
            return
        if fault is not None and fault.action == "lost":
            payload = (
                b'{"error": {"code": 404, "message": "no such operation", "status": "NOT_FOUND"}}'
            )
            self._answer(handler, 404, {}, payload)
            return
        if fault is not None and fault.action == "slow":
            time.sleep(fault.delay_s)
        response = self._upstream.request(method, path, content=body, headers=headers)
        if fault is not None and fault.action == "garbage":  # a corrupt body, status 200
            self._answer(handler, 200, {"Content-Type": "video/mp4"}, b"\x00not a video" * 64)
            return
        if fault is not None and fault.action == "drop_after":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        self._answer(handler, response.status_code, kept, response.content)

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
