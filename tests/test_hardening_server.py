"""The server process itself, under both of uvicorn's HTTP/1.1 implementations:
connections that never finish their headers or bodies are closed (a late body is a 408),
no secret reaches a log line, and partial files of a killed process are cleaned up."""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kinema.runtime import Runtime
from kinema.server import uvicorn_config
from kinema.settings import Settings
from tests.hardening_support import QUICK_CATALOG, Receiver, assert_envelope, quick_settings
from tests.support import (
    LiveServer,
    ServerProcess,
    encode_image,
    free_port,
    live_server,
    make_settings,
    pattern_image,
)

PROTOCOLS = {"httptools": HttpToolsProtocol, "h11": H11Protocol}


def _serving(settings: Settings, protocol: str) -> Settings:
    """``settings``, checked to make the server speak HTTP through ``protocol``."""
    config = uvicorn_config(None, settings, host="127.0.0.1", port=0, log_level="warning")
    assert isinstance(config.http, type) and issubclass(config.http, PROTOCOLS[protocol])
    return settings


def _closed_within(sock: socket.socket, timeout_s: float) -> bool:
    """Whether the server closes ``sock`` within ``timeout_s`` (reading what it sends)."""
    sock.settimeout(timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize(
    "opening",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "],
    ids=["silent", "unfinished-headers"],
)
def test_connections_that_never_finish_their_headers_are_closed(
    tmp_path: Path, opening: bytes, protocol: str
):
    settings = _serving(
        make_settings(tmp_path, header_timeout_s=1.0, http_protocol=protocol), protocol
    )
    with live_server(settings, workers=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(opening)
            assert _closed_within(sock, 20), "the half-open connection is still open"
        assert httpx.get(server.url + "/healthz").status_code == 200


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_keep_alive_connection_whose_next_headers_stall_is_closed(tmp_path: Path, protocol: str):
    settings = _serving(
        make_settings(tmp_path, header_timeout_s=1.0, keep_alive_s=30, http_protocol=protocol),
        protocol,
    )
    with live_server(settings, workers=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            assert _closed_within(sock, 20), "the stalled keep-alive connection is still open"


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_headers_sent_in_pieces_within_the_deadline_are_served(tmp_path: Path, protocol: str):
    """Headers sent in pieces, finished within the deadline, still get an answer."""
    settings = _serving(
        make_settings(tmp_path, header_timeout_s=3.0, http_protocol=protocol), protocol
    )
    with live_server(settings, workers=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
                sock.sendall(piece)
                time.sleep(0.2)
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_without_httptools_the_server_speaks_h11_with_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "httptools", None)  # as if it were not installed
    settings = _serving(make_settings(tmp_path, header_timeout_s=1.0), "h11")
    assert settings.http_protocol == "auto"
    with live_server(settings, workers=0) as server:
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            assert _closed_within(sock, 20), "the half-open connection is still open"


def _address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


# How late past a 2 s deadline a loaded 2-core machine may close a trickling connection
# (2.35-2.77 s measured under load). A trickle with no deadline, or with a per-read one
# (each byte resets it), runs its whole 20 s: far past 2 + this.
DEADLINE_GRACE_S = 3.0


def _trickle(sock: socket.socket, data: bytes, limit_s: float) -> tuple[bytes, float]:
    """Send ``data`` a byte a second until the server answers or closes; what it sent
    (its response, or b"" for a bare close) and how long after the start that was."""
    started = time.monotonic()
    received = b""
    for byte in data:
        readable, _, _ = select.select([sock], [], [], 1.0)
        if readable:
            break
        assert time.monotonic() - started < limit_s, "the trickling connection is still open"
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return received, time.monotonic() - started
    else:
        raise AssertionError("the whole trickle was accepted")
    answered = time.monotonic() - started
    sock.settimeout(10)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, answered


def _response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one HTTP/1.1 response read off a socket."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_headers_trickled_a_byte_a_second_are_cut_off_at_the_deadline(
    tmp_path: Path, protocol: str
):
    settings = _serving(
        make_settings(tmp_path, header_timeout_s=2.0, http_protocol=protocol), protocol
    )
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 60
    with live_server(settings, workers=0) as server:
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(request[:1])
            # Others are served meanwhile.
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            received, after = _trickle(sock, request[1:], limit_s=20)
        assert 1.0 < after < 2.0 + DEADLINE_GRACE_S, f"closed after {after:.1f} s"
        assert received == b"" or received.startswith(b"HTTP/1.1 408"), received[:200]
        assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200


def _stored(server: LiveServer) -> int:
    return sum(len(server.runtime.store.list(key.id)) for key in server.runtime.keys.list())


def _post_head(server: LiveServer, path: str, body: bytes, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


def _chunked_head(server: LiveServer, path: str, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()


def _multipart() -> tuple[bytes, str]:
    """An OpenAI create as the SDK sends it: multipart, with a first frame to upload."""
    request = httpx.Request(
        "POST",
        "http://kinema/v1/videos",
        data={"model": "quick", "prompt": "a slow upload"},
        files={"input_reference": ("frame.png", encode_image(pattern_image(64, 36)), "image/png")},
    )
    return request.read(), request.headers["content-type"]


def _slow_request(server: LiveServer, shape: str) -> tuple[str, bytes, bytes, int]:
    """A request of ``shape``: its dialect, head, body, and how many jobs it creates."""
    if shape == "json-create":
        path = "/v2/video/generations"
        body = json.dumps({"model": "quick", "prompt": "a slow upload " * 10}).encode()
        return "aimlapi", _post_head(server, path, body, "application/json"), body, 1
    if shape == "chunked-multipart-create":
        form, content_type = _multipart()
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form)
        return "openai", _chunked_head(server, "/v1/videos", content_type), body, 1
    # Vertex polls by POST, served ahead of FastAPI: a job to poll first.
    resource = "/v1/publishers/google/models/quick"
    with server.client() as client:
        created = client.post(
            f"{resource}:predictLongRunning", json={"instances": [{"prompt": "p"}]}
        )
    assert created.status_code == 200, created.text
    body = json.dumps({"operationName": created.json()["name"]}).encode()
    head = _post_head(server, f"{resource}:fetchPredictOperation", body, "application/json")
    return "vertex", head, body, 0


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("shape", ["json-create", "chunked-multipart-create", "poll"])
def test_a_body_trickled_a_byte_a_second_is_a_408_at_the_deadline(
    tmp_path: Path, protocol: str, shape: str
):
    settings = _serving(
        quick_settings(tmp_path, body_timeout_s=2.0, http_protocol=protocol), protocol
    )
    with live_server(settings, workers=0) as server:
        dialect, head, body, creates = _slow_request(server, shape)
        before = _stored(server)
        with socket.create_connection(_address(server)) as sock:
            sent = time.monotonic()  # the body's deadline counts from here
            sock.sendall(head + body[:5])
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            before_trickle = time.monotonic() - sent
            received, trickled = _trickle(sock, body[5:], limit_s=20)
        after = before_trickle + trickled
        assert 1.0 < after < 2.0 + DEADLINE_GRACE_S, f"answered after {after:.1f} s"
        status, headers, error = _response(received)
        assert status == 408, received[:500]
        assert headers.get("connection") == "close", headers
        assert_envelope(dialect, httpx.Response(status, json=error), 408)
        assert _stored(server) == before, "a timed-out request stored a job"
        # The same request, sent at once, is served.
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(head + body)
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert _stored(server) == before + creates


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_body_sent_in_pieces_within_the_deadline_is_served(tmp_path: Path, protocol: str):
    settings = _serving(
        quick_settings(tmp_path, body_timeout_s=3.0, http_protocol=protocol), protocol
    )
    with live_server(settings, workers=0) as server:
        body = json.dumps({"model": "quick", "prompt": "in three pieces"}).encode()
        with socket.create_connection(_address(server)) as sock:
            sock.sendall(_post_head(server, "/v2/video/generations", body, "application/json"))
            for piece in (body[:10], body[10:20], body[20:]):
                time.sleep(0.4)
                sock.sendall(piece)
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def _env(tmp_path: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    catalog = tmp_path / "quick.toml"
    catalog.write_text(QUICK_CATALOG.format(frame_s=extra.pop("frame_s", "0.0")))
    return {
        "KINEMA_DATA_DIR": str(data_dir),
        "KINEMA_SIGNING_SECRET": "test-secret",
        "KINEMA_CATALOG_PATH": str(catalog),
        "KINEMA_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "KINEMA_WEBHOOK_POLL_S": "0.05",
        "KINEMA_POLL_S": "0.05",
        "KINEMA_PROGRESS_INTERVAL_S": "0.05",
        # the child imports this checkout's tests (their fixture engines) and kinema as we do
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
        **extra,
    }


def test_no_secret_reaches_any_log_line(tmp_path: Path):
    settings = make_settings(tmp_path)
    runtime = Runtime.build(settings, workers=0)
    key, api_key = runtime.keys.create("logged")
    webhook_secret = runtime.keys.webhook_secret(key.id)
    runtime.close()
    receiver = Receiver()
    log = tmp_path / "server.log"
    server = ServerProcess(_env(tmp_path, settings.data_dir), free_port(), log)
    try:
        base = server.url
        # Gemini's ?key= (right and wrong), on a poll and a create
        httpx.get(f"{base}/v1beta/models/quick/operations/{'0' * 32}?key={api_key}")
        httpx.get(f"{base}/v1beta/models/quick/operations/{'0' * 32}?key=wrong-{api_key}")
        created = httpx.post(
            f"{base}/v2/video/generations?key={api_key}",
            json={"model": "quick", "prompt": "p", "callback_url": receiver.url},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        assert created.status_code == 200, created.text
        [event] = receiver.wait_for(1)
        url = event["data"]["video"]["url"]
        signature = url.rsplit("signature=", 1)[1]
        assert httpx.get(url).status_code == 200  # a signed download, with its signature
        headers, _ = receiver.deliveries[0]
        assert headers["webhook-signature"]
    finally:
        server.stop()
        receiver.close()
    text = log.read_text(errors="replace")
    assert "GET /v1beta/models/quick/operations/" in text, "the access log was not written"
    assert "/files/" in text
    for secret in (api_key, signature, webhook_secret, webhook_secret.removeprefix("whsec_")):
        assert secret not in text, f"a secret is in the log: {secret[:8]}..."


def test_partial_files_of_a_killed_process_are_removed_at_start(tmp_path: Path):
    settings = make_settings(tmp_path)
    runtime = Runtime.build(settings, workers=0)
    _, api_key = runtime.keys.create("crash")
    scratch = runtime.storage.scratch_dir()
    runtime.close()
    env = _env(tmp_path, settings.data_dir, frame_s="0.5", KINEMA_LEASE_S="1")
    port = free_port()
    log = tmp_path / "server.log"
    server = ServerProcess(env, port, log)
    try:
        created = httpx.post(
            f"{server.url}/v2/video/generations",
            json={"model": "quick", "prompt": "p", "duration": 2},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )
        assert created.status_code == 200, created.text
        deadline = time.monotonic() + 60
        while not (parts := list(scratch.glob("*.part"))):
            assert time.monotonic() < deadline, "the encode never started"
            time.sleep(0.05)
        server.kill()
    finally:
        server.stop()
    assert all(part.exists() for part in parts)
    time.sleep(1.5)  # older than a lease: no live writer can hold it
    server = ServerProcess({**env, "KINEMA_WORKERS": "0"}, port, log)
    try:
        assert not any(part.exists() for part in parts), "partial files were left behind"
    finally:
        server.stop()
