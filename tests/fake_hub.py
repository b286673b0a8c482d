"""A loopback server speaking the Hugging Face hub's download protocol, for ``kinema pull``.

What ``huggingface_hub`` (the version installed here) asks of the hub when
``snapshot_download`` / ``hf_hub_download`` fill a local directory (read in its
``_snapshot_download.py``, ``hf_api.py`` and ``file_download.py``):

- ``GET /api/models/{repo}/revision/{revision}``: the repository's info; ``sha`` is the
  commit the revision points at, ``siblings`` its files.
- ``GET /api/models/{repo}/tree/{commit}?recursive=...``: a JSON list of
  ``{"type": "file", "path", "size", "oid"}``, one page (no ``Link: rel=next`` header).
- ``HEAD /{repo}/resolve/{revision}/{path}``: the file's metadata in headers,
  ``X-Repo-Commit``, ``ETag`` and ``Content-Length`` (no redirect: the file is served here).
- ``GET`` of the same URL: the bytes; with ``Range: bytes=N-`` the rest from N, as a 206
  with ``Content-Range``: how a download continues after its connection dropped.

Faults a test arms: ``cut[path] = n`` serves the next ``n`` GETs of that file with the full
``Content-Length`` but only half its bytes, then closes the connection; ``broken`` paths
answer 500. Every request is recorded (method, path, Range).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Seen:
    method: str
    path: str
    range: str | None


@dataclass
class FakeHub:
    url: str
    repos: dict[str, Path]  # repo id -> the folder whose files it serves
    seen: list[Seen] = field(default_factory=list)
    cut: dict[str, int] = field(default_factory=dict)  # file path in repo -> GETs to cut short
    broken: set[str] = field(default_factory=set)  # file paths in repo that answer 500

    def files(self, repo: str) -> dict[str, Path]:
        root = self.repos[repo]
        return {
            path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }

    def gets(self, file: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path.endswith("/" + file)]


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.seen.append(Seen(self.command, path, self.headers.get("Range")))
        if path.startswith("/api/models/"):
            self._api(path.removeprefix("/api/models/"))
        elif "/resolve/" in path:
            repo, _, rest = path.strip("/").partition("/resolve/")
            _, _, file = rest.partition("/")
            self._file(repo, file, head=head)
        else:
            self._json(404, {"error": "not found"})

    def _api(self, rest: str) -> None:
        for repo in self.hub.repos:
            if rest.startswith(repo + "/revision/"):
                siblings = [{"rfilename": name} for name in self.hub.files(repo)]
                self._json(200, {"id": repo, "sha": COMMIT, "siblings": siblings})
                return
            if rest.startswith(repo + "/tree/"):
                entries = []
                for name, path in self.hub.files(repo).items():
                    data = path.read_bytes()
                    entry = {"type": "file", "path": name, "size": len(data), "oid": _oid(data)}
                    entries.append(entry)
                self._json(200, entries)
                return
        self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})

    def _file(self, repo: str, name: str, *, head: bool) -> None:
        path = self.hub.files(repo).get(name) if repo in self.hub.repos else None
        if path is None:
            self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return
        if name in self.hub.broken and not head:
            self._json(500, {"error": "the storage backend failed"})
            return
        data = path.read_bytes()
        start = 0
        asked = self.headers.get("Range")
        if asked and asked.startswith("bytes=") and not head:
            start = int(asked.removeprefix("bytes=").split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{_oid(data)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        body = data[start:]
        if self.hub.cut.get(name, 0) > 0:
            self.hub.cut[name] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


@contextmanager
def fake_hub(repos: dict[str, Path]) -> Iterator[FakeHub]:
    """Serve ``repos`` (repo id -> folder) on a free loopback port until the block ends."""
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    hub = FakeHub(f"http://127.0.0.1:{server.server_address[1]}", repos)
    handler.hub = hub  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
