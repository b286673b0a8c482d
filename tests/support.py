"""Helpers for tests that talk to a real kinema server over loopback HTTP."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image

from kinema.runtime import Runtime
from kinema.server import BackgroundServer
from kinema.settings import Settings


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "signing_secret": "test-secret",
        "poll_s": 0.05,
        "heartbeat_s": 0.5,
        "progress_interval_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    api_key: str

    def client(self, api_key: str | None = None) -> httpx.Client:
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def new_key(self, name: str = "other") -> str:
        return self.runtime.keys.create(name)[1]


@contextmanager
def live_server(settings: Settings, *, workers: int = 1) -> Iterator[LiveServer]:
    """A real uvicorn server in a thread with an embedded worker pool and one API key."""
    runtime = Runtime.build(settings, workers=workers)
    _, secret = runtime.keys.create("test")
    try:
        with BackgroundServer(runtime) as server:
            yield LiveServer(server.url, runtime, secret)
    finally:
        runtime.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m kinema serve`` in a child process (for crash tests: kill -9 it)."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kinema", "serve", "--port", str(port), "--log-level", "info"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


# --- images and videos ---


def pattern_image(width: int = 640, height: int = 360, seed: int = 0) -> Image.Image:
    """A colourful, non-uniform test picture (so crops and motion are measurable)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    b = ((x // 40 + y // 40) % 2 * 200).astype(np.uint8)
    pixels = np.stack([r, g, b], axis=-1)
    pixels = np.clip(pixels.astype(int) + rng.integers(-10, 10, pixels.shape), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def encode_image(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def data_uri(image: Image.Image, fmt: str = "PNG") -> str:
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    return f"data:{mime};base64," + base64.b64encode(encode_image(image, fmt)).decode()


@dataclass
class VideoFacts:
    width: int
    height: int
    frames: int
    fps: float
    duration_s: float
    video_codec: str
    audio_codec: str | None
    audio_duration_s: float | None


def probe(data: bytes) -> VideoFacts:
    """Open an MP4 with PyAV and count what is really there."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = sum(1 for _ in container.decode(video=0))
        audio_duration = None
        if audio is not None and audio.duration is not None:
            audio_duration = float(audio.duration * audio.time_base)
        return VideoFacts(
            width=video.codec_context.width,
            height=video.codec_context.height,
            frames=frames,
            fps=float(video.average_rate or 0),
            duration_s=float(container.duration or 0) / av.time_base,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_duration_s=audio_duration,
        )


def first_frame(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def poll_until_done(client: httpx.Client, generation_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get("/v2/video/generations", params={"generation_id": generation_id}).json()
        if body["status"] not in ("queued", "generating"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"generation {generation_id} did not finish in {timeout_s} s")
