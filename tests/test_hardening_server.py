"""The server process itself: connections that never finish their headers are closed,
no secret reaches a log line, and partial files of a killed process are cleaned up."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from kinema.runtime import Runtime
from tests.hardening_support import QUICK_CATALOG, Receiver
from tests.support import ServerProcess, free_port, live_server, make_settings


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


@pytest.mark.parametrize(
    "opening",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "],
    ids=["silent", "unfinished-headers"],
)
def test_connections_that_never_finish_their_headers_are_closed(tmp_path: Path, opening: bytes):
    settings = make_settings(tmp_path, header_timeout_s=1.0)
    with live_server(settings, workers=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(opening)
            assert _closed_within(sock, 20), "the half-open connection is still open"
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_keep_alive_connection_whose_next_headers_stall_is_closed(tmp_path: Path):
    settings = make_settings(tmp_path, header_timeout_s=1.0, keep_alive_s=30)
    with live_server(settings, workers=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            assert _closed_within(sock, 20), "the stalled keep-alive connection is still open"


def test_headers_sent_in_pieces_within_the_deadline_are_served(tmp_path: Path):
    """Headers sent in pieces, finished within the deadline, still get an answer."""
    settings = make_settings(tmp_path, header_timeout_s=3.0)
    with live_server(settings, workers=0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
                sock.sendall(piece)
                time.sleep(0.2)
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
