"""A provider that misbehaves on purpose, on loopback: it trickles its answers, sends
answers of tens of MB, names its operations with paths, line breaks or kinema's own key,
and redirects its video links to another port of its host. Jobs go through a live kinema
over real HTTP on both sides; each ends where it should, in time, and nothing leaks."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import select

from kinema.schema import jobs
from kinema.types import JobStatus
from tests.support import LiveServer, live_server, make_settings, probe
from tests.upstream_gateway import DATA_URI, LogTrap
from tests.upstream_support import forwarding_model, toml_text, upstream_engine

KEY_ENV = "KINEMA_TEST_HOSTILE_KEY"
KEY = "hostile-provider-key-4f9a2c"
FPS = 4


def _mp4(width: int, height: int, frames: int, *, noise: bool = False) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(7)
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "0" if noise else "30"}
        for index in range(frames):
            if noise:  # incompressible: a large file
                picture = rng.integers(0, 255, (height, width, 3), np.uint8)
            else:
                picture = np.full((height, width, 3), 40 + index * 9, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


SMALL_VIDEO = _mp4(320, 180, 4 * FPS)
SECRET_VIDEO = _mp4(320, 180, 2 * FPS)  # what the other port would hand out


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class _Server:
    """A threading HTTP server on loopback that records requests and answers with
    ``answer(handler, seen)``."""

    def __init__(self, answer: Any) -> None:
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen = Seen(self.command, self.path, headers)
                server.seen.append(seen)
                # The client may give up on a slow answer: that is the point.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    answer(self, seen)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send_json(handler: BaseHTTPRequestHandler, body: Any, status: int = 200) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _trickle(handler: BaseHTTPRequestHandler, body: bytes, every_s: float = 0.5) -> None:
    """The whole answer, one byte at a time: each read is well inside any read timeout."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for index in range(len(body)):
        handler.wfile.write(body[index : index + 1])
        handler.wfile.flush()
        time.sleep(every_s)


def _stream_json(handler: BaseHTTPRequestHandler, head: bytes, pad: int, tail: bytes) -> None:
    """A JSON answer of ``pad`` filler bytes, sent in chunks without a Content-Length."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()

    def chunk(data: bytes) -> None:
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    chunk(head)
    block = b"A" * 2**20
    for start in range(0, pad, len(block)):
        chunk(block[: min(len(block), pad - start)])
    chunk(tail)
    handler.wfile.write(b"0\r\n\r\n")


class Provider:
    """The hostile provider: what it does depends on the model (or operation) named."""

    def __init__(self, secret_url: str, inline_video: bytes) -> None:
        self.secret_url = secret_url
        self.inline_video = inline_video
        video = base64.b64encode(inline_video).decode()
        response = {"videos": [{"bytesBase64Encoded": video, "mimeType": "video/mp4"}]}
        # Made once, here: the provider's own copies are not what the test measures.
        answer = {"name": "x", "done": True, "response": response}
        self.inline_answer_bytes = json.dumps(answer).encode()
        self.server = _Server(self._answer)
        self.url = self.server.url

    @property
    def seen(self) -> list[Seen]:
        return self.server.seen

    def _answer(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        path = seen.path
        if path == "/v1/video/generations" and seen.method == "POST":  # v1 create
            model = json.loads(handler.body)["model"]  # type: ignore[attr-defined]
            _send_json(handler, {"id": f"{model}-1", "status": "queued"})
        elif path.startswith("/v1/video/generations/"):
            self._v1_poll(handler, path.removeprefix("/v1/video/generations/"))
        elif path.endswith(":predictLongRunning"):  # gemini and vertex creates
            model = path.rpartition("/models/")[2].removesuffix(":predictLongRunning")
            _send_json(handler, {"name": self._operation_name(model)})
        elif path.endswith(":fetchPredictOperation"):  # vertex poll
            _send_bytes(handler, self.inline_answer_bytes, "application/json")
        elif path.startswith("/v1beta/models/slow"):  # gemini poll: done, a slow link
            model = path.removeprefix("/v1beta/models/").partition("/")[0]
            sample = {"video": {"uri": f"{self.url}/files/{model}.mp4"}}
            response = {"generateVideoResponse": {"generatedSamples": [sample]}}
            _send_json(handler, {"name": "x", "done": True, "response": response})
        elif path.startswith("/files/slow"):  # a video link that trickles
            handler.send_response(200)
            handler.send_header("Content-Type", "video/mp4")
            handler.send_header("Content-Length", str(len(SMALL_VIDEO)))
            handler.end_headers()
            for index in range(len(SMALL_VIDEO)):
                handler.wfile.write(SMALL_VIDEO[index : index + 1])
                handler.wfile.flush()
                time.sleep(0.5)
        elif path.startswith("/v1beta/models/redirect/operations/"):  # gemini poll
            sample = {"video": {"uri": f"{self.url}/files/redirect"}}
            response = {"generateVideoResponse": {"generatedSamples": [sample]}}
            _send_json(handler, {"name": "x", "done": True, "response": response})
        elif path == "/files/redirect":
            handler.send_response(302)
            handler.send_header("Location", self.secret_url)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        else:
            _send_json(handler, {"error": {"message": "not here"}}, 404)

    def _operation_name(self, model: str) -> str:
        return {
            "traverse": "../../../admin/wipe",
            "crlf": "models/crlf/operations/1\r\nX-Injected: yes",
            "echo": f"models/echo/operations/{KEY}",
        }.get(model, f"models/{model}/operations/1")

    def _v1_poll(self, handler: BaseHTTPRequestHandler, rest: str) -> None:
        task, _, action = rest.partition("/")
        if action == "cancel":
            _send_json(handler, {"id": task, "status": "cancelled"})
        elif task.startswith("trickle"):
            body = json.dumps({"status": "in_progress", "progress": 10, "pad": " " * 120})
            _trickle(handler, body.encode())
        elif task.startswith("huge"):
            _stream_json(handler, b'{"status": "in_progress", "pad": "', 60 * 2**20, b'"}')
        else:
            _send_json(handler, {"error": {"message": "no such task"}}, 404)


def _catalog(base_url: str) -> str:
    common = {"api_key_env": KEY_ENV, "max_retries": 1, "backoff_s": 0.1}
    engines = {
        "h-trickle": upstream_engine(
            "v1", base_url, model="trickle", deadline_s=3.0, request_timeout_s=2.0, **common
        ),
        "h-cancel": upstream_engine("v1", base_url, model="trickle-c", **common),
        "h-huge": upstream_engine("v1", base_url, model="huge", **common),
        "h-inline": upstream_engine("vertex", base_url, model="inline", **common),
        "h-traverse": upstream_engine("gemini", base_url, model="traverse", **common),
        "h-crlf": upstream_engine("gemini", base_url, model="crlf", **common),
        "h-echo": upstream_engine("gemini", base_url, model="echo", **common),
        "h-redirect": upstream_engine("gemini", base_url, model="redirect", **common),
        "h-slowfile": upstream_engine(
            "gemini", base_url, model="slowfile", deadline_s=3.0, **common
        ),
        # Only a cancel ends its download within the test's 30 s (the file takes an hour).
        "h-slowcancel": upstream_engine(
            "gemini", base_url, model="slowcancel", download_timeout_s=45.0, **common
        ),
    }
    models: dict[str, Any] = {}
    for name in engines:
        models |= forwarding_model(
            "veo-3.0-fast-generate-001", model_id=f"m-{name[2:]}", dialect="v1", engine=name
        )
    return toml_text({"engines": engines, "models": models})


@dataclass
class Hostile:
    provider: Provider
    secret: _Server
    server: LiveServer
    trap: LogTrap


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    secret = _Server(lambda handler, seen: _send_video(handler, SECRET_VIDEO))
    inline = _mp4(960, 540, 4 * FPS, noise=True)
    assert len(inline) > 12 * 2**20  # its base64 is far past the JSON answer limit
    provider = Provider(secret.url + "/secret.mp4", inline)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(_catalog(provider.url))
    trap = LogTrap()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(trap)
    root.setLevel(logging.DEBUG)
    os.environ[KEY_ENV] = KEY
    settings = make_settings(
        tmp_path, catalog_path=catalog, max_attempts=1, transient_retry_base_s=0.1
    )
    try:
        with live_server(settings, workers=3) as server:
            yield Hostile(provider, secret, server, trap)
    finally:
        os.environ.pop(KEY_ENV, None)
        root.removeHandler(trap)
        root.setLevel(previous)
        provider.server.close()
        secret.close()


def _send_video(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    _send_bytes(handler, data, "video/mp4")


def _send_bytes(handler: BaseHTTPRequestHandler, data: bytes, content_type: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _create(h: Hostile, model: str) -> str:
    prompt = f"a lighthouse {time.monotonic_ns()}"
    with h.server.client() as client:
        created = client.post(
            "/v1/video/generations",
            json={"model": model, "prompt": prompt, "images": [DATA_URI], "seconds": 4},
        )
    assert created.status_code == 200, created.text
    owner = h.server.runtime.keys.verify(h.server.api_key)
    assert owner is not None
    (job,) = [j for j in h.server.runtime.store.list(owner.id) if j.request.prompt == prompt]
    return job.id


def _owner(h: Hostile) -> str:
    key = h.server.runtime.keys.verify(h.server.api_key)
    assert key is not None
    return key.id


def _finish(h: Hostile, job_id: str, timeout_s: float) -> tuple[Any, float]:
    started = time.monotonic()
    deadline = started + timeout_s
    while not (job := h.server.runtime.store.get_any(job_id)).status.terminal:
        assert time.monotonic() < deadline, f"job still {job.status.value} after {timeout_s} s"
        time.sleep(0.05)
    return job, time.monotonic() - started


def _row(h: Hostile, job_id: str) -> dict[str, Any]:
    with h.server.runtime.db.connect() as connection:
        return dict(connection.execute(select(jobs).where(jobs.c.id == job_id)).one()._mapping)


# --- 5: one deadline per call, cancel and shutdown looked at during it ---


def test_a_trickled_answer_is_cut_at_the_engines_deadline(hostile: Hostile):
    """The answer takes a minute at a byte every half second; the deadline is 3 s."""
    job_id = _create(hostile, "m-trickle")
    job, _ = _finish(hostile, job_id, timeout_s=25)
    assert job.status is JobStatus.FAILED
    assert job.started_at is not None and job.finished_at is not None
    took = (job.finished_at - job.started_at).total_seconds()
    assert took < 12, took  # 3 s deadline; a whole trickled answer would take 60 s
    message = job.error_message or ""
    assert "no complete answer within 2 s" in message or "deadline" in message, message


def test_a_cancel_during_a_trickled_answer_ends_the_job_cancelled(hostile: Hostile):
    job_id = _create(hostile, "m-cancel")
    deadline = time.monotonic() + 30
    while not any(s.path == "/v1/video/generations/trickle-c-1" for s in hostile.provider.seen):
        assert time.monotonic() < deadline, "the provider was never polled"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the trickled answer
    hostile.server.runtime.service.cancel(_owner(hostile), job_id)
    job, took = _finish(hostile, job_id, timeout_s=20)
    assert job.status is JobStatus.CANCELLED, (job.status, job.error_message)
    assert took < 10, took
    cancels = [s for s in hostile.provider.seen if s.path.endswith("trickle-c-1/cancel")]
    assert len(cancels) == 1 and cancels[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_trickled_video_download_ends_by_the_engines_deadline(hostile: Hostile):
    job_id = _create(hostile, "m-slowfile")
    job, _ = _finish(hostile, job_id, timeout_s=30)
    assert job.status is JobStatus.FAILED
    assert job.started_at is not None and job.finished_at is not None
    took = (job.finished_at - job.started_at).total_seconds()
    assert took < 12, took  # 3 s deadline; the whole trickled file would take an hour


def test_a_cancel_during_a_trickled_video_download_ends_the_job_cancelled(hostile: Hostile):
    """The video link sends a byte every half second (an hour for the file) and the
    download may take 45 s: only the cancel can end it within the test's 30 s."""
    job_id = _create(hostile, "m-slowcancel")
    deadline = time.monotonic() + 30
    while not any(s.path == "/files/slowcancel.mp4" for s in hostile.provider.seen):
        assert time.monotonic() < deadline, "the video was never asked for"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the trickled download
    hostile.server.runtime.service.cancel(_owner(hostile), job_id)
    job, took = _finish(hostile, job_id, timeout_s=30)  # a hang guard, not a measure
    assert job.status is JobStatus.CANCELLED, (job.status, job.error_message)
    assert took < 15, took  # looked at every 0.1 s; loose for a loaded machine
    assert job.result is None  # the download never completed
    scratch = hostile.server.runtime.storage.scratch_dir()
    left = [p.name for p in scratch.iterdir() if job_id in p.name] if scratch.exists() else []
    assert left == []  # nothing left half-done


def _forwarding(tmp_path: Path, recorded: list[Any], stopping: threading.Event) -> Any:
    """A job for an engine driven directly, as a worker that is told to stop would be."""
    from kinema.engines.upstream import Forwarding
    from kinema.types import GenerationRequest

    return Forwarding(
        job_id="1" * 32,
        request=GenerationRequest(model="m", prompt="p", duration_s=4),
        width=320,
        height=180,
        options=frozenset(),
        operation=None,
        record=recorded.append,
        on_progress=lambda fraction: None,
        cancel_requested=lambda: False,
        stopping=stopping.is_set,
        scratch=tmp_path,
    )


def test_a_worker_stopping_during_a_trickled_download_leaves_the_operation_recorded(
    hostile: Hostile, tmp_path: Path
):
    from kinema.engines.upstream import Operation, UpstreamConfig, UpstreamEngine
    from kinema.errors import JobCancelled

    config = UpstreamConfig.from_options(
        "hosted",
        {
            "protocol": "gemini",
            "base_url": hostile.provider.url,
            "model": "slowstop",
            "download_timeout_s": 20.0,  # only the shutdown ends it sooner
            "max_retries": 0,
        },
    )
    engine = UpstreamEngine(config, environ={})
    stopping = threading.Event()
    recorded: list[Operation] = []
    job = _forwarding(tmp_path, recorded, stopping)

    def stop_once_downloading() -> None:
        deadline = time.monotonic() + 30
        while not any(s.path == "/files/slowstop.mp4" for s in hostile.provider.seen):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the trickled download
        stopping.set()

    threading.Thread(target=stop_once_downloading, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(JobCancelled, match="stopping"):
        engine.forward(job)
    assert time.monotonic() - started < 15  # looked at every 0.1 s; the file takes an hour
    assert any(s.path == "/files/slowstop.mp4" for s in hostile.provider.seen)
    assert [operation.ref for operation in recorded] == ["models/slowstop/operations/1"]
    assert list(tmp_path.iterdir()) == []  # no partial video


def test_a_worker_stopping_during_a_trickled_answer_leaves_the_operation_recorded(
    hostile: Hostile, tmp_path: Path
):
    from kinema.engines.upstream import Operation, UpstreamConfig, UpstreamEngine
    from kinema.errors import JobCancelled

    config = UpstreamConfig.from_options(
        "hosted",
        {"protocol": "v1", "base_url": hostile.provider.url, "model": "trickle-s", "poll_s": 0.1},
    )
    engine = UpstreamEngine(config, environ={})
    stopping = threading.Event()
    recorded: list[Operation] = []
    job = _forwarding(tmp_path, recorded, stopping)
    threading.Timer(1.0, stopping.set).start()  # inside the first, trickled, poll
    started = time.monotonic()
    with pytest.raises(JobCancelled, match="stopping"):
        engine.forward(job)
    assert time.monotonic() - started < 6  # not the minute the answer takes
    assert [operation.ref for operation in recorded] == ["trickle-s-1"]  # kept for the next
    assert not any(s.path.endswith("trickle-s-1/cancel") for s in hostile.provider.seen)


# --- 6: answers read within a bound, inline videos through a file ---


def test_a_poll_answer_of_60_mb_is_refused_without_reading_it_whole(hostile: Hostile):
    job_id = _create(hostile, "m-huge")
    job, _ = _finish(hostile, job_id, timeout_s=60)
    assert job.status is JobStatus.FAILED
    assert "larger than 4 MiB" in (job.error_message or ""), job.error_message


def test_a_large_inline_video_is_decoded_through_a_file(hostile: Hostile):
    size = len(hostile.provider.inline_video)
    tracemalloc.start()
    try:
        job_id = _create(hostile, "m-inline")
        job, _ = _finish(hostile, job_id, timeout_s=90)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert job.status is JobStatus.SUCCEEDED, job.error_message
    assert job.result is not None
    data = hostile.server.runtime.storage.get_bytes(job.result.video_key)
    assert probe(data).frames == 4 * FPS
    # Read whole, the answer alone is 4/3 of the video, its text and bytes again on top.
    assert peak < size / 2, (peak, size)
    left = list((hostile.server.runtime.storage.scratch_dir()).glob("inline-*"))
    assert left == []


# --- 7: operation names are checked before they are used, logged or stored ---


@pytest.mark.parametrize("model", ["m-traverse", "m-crlf", "m-echo"])
def test_an_operation_name_that_is_not_a_plain_name_fails_the_job_cleanly(
    hostile: Hostile, model: str
):
    before = len(hostile.provider.seen)
    job_id = _create(hostile, model)
    job, _ = _finish(hostile, job_id, timeout_s=30)
    assert job.status is JobStatus.FAILED
    assert job.error_code == "upstream_unavailable", (job.error_code, job.error_message)
    assert "operation name is not a plain name" in (job.error_message or "") or (
        "repeats kinema's key" in (job.error_message or "")
    )
    # The only request that reached the provider was the create, and nothing else was sent
    # with the key.
    sent = hostile.provider.seen[before:]
    assert [s.path.endswith(":predictLongRunning") for s in sent] == [True], [
        s.path for s in sent
    ]
    row = _row(hostile, job_id)
    assert KEY not in json.dumps(row, default=str)
    assert not any(KEY in line for line in hostile.trap.lines)
    assert not any("X-Injected" in line for line in hostile.trap.lines)


# --- 8: a video link may not hop to another port of the provider's host ---


def test_a_video_link_redirected_to_another_port_of_the_host_is_refused(hostile: Hostile):
    job_id = _create(hostile, "m-redirect")
    job, _ = _finish(hostile, job_id, timeout_s=30)
    assert job.status is JobStatus.FAILED
    assert "video link refused" in (job.error_message or ""), job.error_message
    assert hostile.secret.seen == []
    assert any(s.path == "/files/redirect" for s in hostile.provider.seen)


def test_a_video_at_the_providers_own_origin_still_downloads(tmp_path: Path):
    """The origin check keeps the provider's own links working (same scheme, host, port)."""
    from kinema.engines.upstream import Forwarding, UpstreamConfig, UpstreamEngine
    from kinema.types import GenerationRequest

    def answer(handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        if seen.path.endswith(":predictLongRunning"):
            _send_json(handler, {"name": "models/m/operations/1"})
        elif seen.path == "/video.mp4":
            _send_video(handler, SMALL_VIDEO)
        else:
            sample = {"video": {"uri": f"{server.url}/video.mp4"}}
            response = {"generateVideoResponse": {"generatedSamples": [sample]}}
            _send_json(handler, {"name": "x", "done": True, "response": response})

    server = _Server(answer)
    try:
        config = UpstreamConfig.from_options(
            "hosted", {"protocol": "gemini", "base_url": server.url, "poll_s": 0.1}
        )
        engine = UpstreamEngine(config, environ={})
        request = GenerationRequest(model="m", prompt="p", duration_s=4)
        job = Forwarding(
            job_id="0" * 32,
            request=request,
            width=320,
            height=180,
            options=frozenset(),
            operation=None,
            record=lambda operation: None,
            on_progress=lambda fraction: None,
            cancel_requested=lambda: False,
            stopping=lambda: False,
            scratch=tmp_path,
        )
        assert engine.forward(job).read_bytes() == SMALL_VIDEO
    finally:
        server.close()


def test_a_url_the_http_layer_cannot_build_is_the_providers_unavailability():
    from kinema.engines.upstream import UpstreamUnavailable
    from kinema.engines.upstream.http import UpstreamHTTP

    server = _Server(lambda handler, seen: _send_json(handler, {}))
    http = UpstreamHTTP(server.url, headers={}, timeout_s=5, max_response_bytes=2**20)
    try:
        with pytest.raises(UpstreamUnavailable, match="URL is not valid") as caught:
            http.call("GET", "/v1/videos/a\r\nX-Injected: yes")
        assert "X-Injected" not in caught.value.message
        assert server.seen == []
    finally:
        http.close()
        server.close()


def test_a_recorded_operation_with_a_bad_name_is_forgotten_not_polled(
    hostile: Hostile, tmp_path: Path
):
    """A name recorded before names were checked is dropped from the job (its submission
    count kept), and nothing is sent to the provider with it."""
    from kinema.engines.upstream import (
        Forwarding,
        Operation,
        UpstreamConfig,
        UpstreamEngine,
        UpstreamUnavailable,
    )
    from kinema.types import GenerationRequest

    config = UpstreamConfig.from_options(
        "hosted", {"protocol": "gemini", "base_url": hostile.provider.url, "api_key_env": "K"}
    )
    engine = UpstreamEngine(config, environ={"K": KEY})
    recorded: list[Operation] = []
    bad = Operation("hosted", "models/m/operations/1\r\nX-Injected: yes", time.time(), 2)
    job = Forwarding(
        job_id="2" * 32,
        request=GenerationRequest(model="m", prompt="p", duration_s=4),
        width=320,
        height=180,
        options=frozenset(),
        operation=bad,
        record=recorded.append,
        on_progress=lambda fraction: None,
        cancel_requested=lambda: False,
        stopping=lambda: False,
        scratch=tmp_path,
    )
    before = len(hostile.provider.seen)
    with pytest.raises(UpstreamUnavailable, match="not a plain name") as caught:
        engine.forward(job)
    assert "X-Injected" not in caught.value.message
    assert recorded == [Operation("hosted", "", bad.submitted_at, 2)]
    assert hostile.provider.seen[before:] == []
