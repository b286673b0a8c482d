"""Real parts that go away on purpose: a PostgreSQL of the test's own, a TCP proxy that can
be cut, a small disk; and one create and one poll of the quick model in every dialect.

``OwnPostgres`` runs ``initdb`` and ``pg_ctl`` on a free port in a temporary directory
(as the ``postgres`` user when the suite runs as root), so stopping it never touches the
shared server the other tests use. Its binaries are looked up under
``/usr/lib/postgresql/*/bin`` and on ``PATH``; missing ones skip the test, or fail it
where PostgreSQL is required (``CI`` or ``KINEMA_TEST_REQUIRE_POSTGRES``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import postgres_required
from tests.hardening_support import ERROR_SCHEMAS
from tests.support import data_uri, free_port, pattern_image

# --- one create and one poll in every dialect (the quick model of hardening_support) ---

VERTEX_MODEL = "/v1/publishers/google/models/quick"


def create_request(dialect: str) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of a create of the quick model in ``dialect``, with an image where
    the dialect takes one inline (an input the server must store)."""
    image = data_uri(pattern_image(64, 36))
    b64 = image.split(",", 1)[1]
    return {
        "aimlapi": ("/v2/video/generations", {"model": "quick", "prompt": "p", "image_url": image}),
        "gemini": (
            "/v1beta/models/quick:predictLongRunning",
            {"instances": [{"prompt": "p", "image": {"bytesBase64Encoded": b64}}]},
        ),
        "vertex": (
            f"{VERTEX_MODEL}:predictLongRunning",
            {"instances": [{"prompt": "p", "image": {"bytesBase64Encoded": b64}}]},
        ),
        "openai": ("/v1/videos", {"model": "quick", "prompt": "p"}),
        "unified": (
            "/v1/videos/generations",
            {"model": "quick", "prompt": "p", "image_url": image},
        ),
        "v1": ("/v1/video/generations", {"model": "quick", "prompt": "p", "image": image}),
    }[dialect]


def wire_id(dialect: str, created: dict[str, Any]) -> str:
    if dialect in ("gemini", "vertex"):
        return str(created["name"])
    if dialect == "v1":
        return str(created["task_id"])
    return str(created["id"])


def poll(client: httpx.Client, dialect: str, ident: str) -> httpx.Response:
    if dialect == "aimlapi":
        return client.get("/v2/video/generations", params={"generation_id": ident})
    if dialect == "gemini":
        return client.get(f"/v1beta/{ident}")
    if dialect == "vertex":
        body = {"operationName": ident}
        return client.post(f"{VERTEX_MODEL}:fetchPredictOperation", json=body)
    if dialect == "openai":
        return client.get(f"/v1/videos/{ident}")
    if dialect == "unified":
        return client.get(f"/v1/tasks/{ident}")
    return client.get(f"/v1/video/generations/{ident}")


def finished(dialect: str, body: dict[str, Any]) -> str | None:
    """The poll body's final state as ``succeeded``/``failed``/``cancelled``, or None."""
    if dialect in ("gemini", "vertex"):
        if not body.get("done"):
            return None
        return "failed" if body.get("error") else "succeeded"
    status = str(body.get("status", "")).lower()
    words = {
        "completed": "succeeded",
        "succeeded": "succeeded",
        "success": "succeeded",
        "failed": "failed",
        "error": "failed",
        "cancelled": "cancelled",
        "request_cancelled": "cancelled",
    }
    return words.get(status)


def assert_unavailable(dialect: str, response: httpx.Response, status: int = 503) -> None:
    """``response`` is ``status`` in ``dialect``'s own error envelope, with Retry-After."""
    assert response.status_code == status, (dialect, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert int(response.headers["retry-after"]) >= 1
    jsonschema.validate(response.json(), ERROR_SCHEMAS[dialect])


# --- a PostgreSQL of the test's own ---


def _postgres_bin(name: str) -> str | None:
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


class OwnPostgres:
    """A PostgreSQL server of one test: start, stop (fast or immediate), start again."""

    def __init__(self) -> None:
        initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            reason = "initdb/pg_ctl not found (PostgreSQL server binaries)"
            if postgres_required():
                pytest.fail(reason + " (required: KINEMA_TEST_REQUIRE_POSTGRES or CI is set)")
            pytest.skip(reason)
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="kinema-own-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.user = "postgres"
            owner = pwd.getpwnam(self.user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, command: list[str]) -> None:
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = self.root / "server.log"
        self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"])

    def close(self) -> None:
        with suppress(AssertionError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        yield server
    finally:
        server.close()


# --- a TCP proxy on loopback that can be cut and restored ---


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``. ``cut()`` closes every open connection
    and refuses new ones (the listening port stays bound, so nothing else takes it);
    ``restore()`` lets connections through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open = threading.Event()
        self.open.set()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                # A reset, as from a host whose store is down.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


def wait_for(check: Any, timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
