"""What one request may ask a server to make, and what it is charged: samples and an
extension's source count against the daily quota as usage bills them, a job's pixels are
bounded, and a source video is checked frame by frame, not by its header."""

from __future__ import annotations

import base64
import fractions
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from kinema.errors import InvalidRequest
from kinema.jobs.usage import usage
from kinema.media.source_video import inspect_video
from tests.hardening_support import assert_envelope
from tests.outputs_support import FPS, TINY, write_catalog
from tests.support import LiveServer, encode_image, live_server, make_settings, pattern_image

GEMINI_CREATE = f"/v1beta/models/{TINY}:predictLongRunning"
VERTEX_CREATE = f"/v1/publishers/google/models/{TINY}:predictLongRunning"


def _key_id(live: LiveServer) -> str:
    key = live.runtime.keys.verify(live.api_key)
    assert key is not None
    return key.id


def _google(live: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(
        base_url=live.url, headers={"x-goog-api-key": live.api_key}, timeout=60
    ) as client:
        return client.post(path, json=body)


def _samples(count: int, seconds: int, **instance: Any) -> dict[str, Any]:
    return {
        "instances": [{"prompt": "a harbour at dawn", **instance}],
        "parameters": {"sampleCount": count, "durationSeconds": seconds},
    }


# --- the daily quota counts what usage bills ---


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[LiveServer]:
    """The shipped catalog, nothing running: jobs stay queued."""
    with live_server(make_settings(tmp_path), workers=0) as live:
        yield live


@pytest.mark.parametrize("dialect", ["gemini", "vertex"])
def test_every_sample_counts_against_the_daily_quota(quiet: LiveServer, dialect: str):
    model = "veo-3.1-generate-preview"
    path = {
        "gemini": f"/v1beta/models/{model}:predictLongRunning",
        "vertex": f"/v1/publishers/google/models/{model}:predictLongRunning",
    }[dialect]
    quiet.runtime.keys.set_quota(_key_id(quiet), max_active_jobs=None, max_video_s_per_day=8)

    four = _google(quiet, path, _samples(4, 8))
    body = assert_envelope(dialect, four, 429)
    assert "asked for 32 more" in body["error"]["message"]
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"

    two = _google(quiet, path, _samples(2, 4))
    assert two.status_code == 200, two.text
    one_more = _google(quiet, path, _samples(1, 4))
    assert "has used 8 " in assert_envelope(dialect, one_more, 429)["error"]["message"]


def _wait_succeeded(live: LiveServer, job_id: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while (job := live.runtime.store.get_any(job_id)).status.value != "succeeded":
        assert not job.status.terminal, (job.status, job.error_message)
        assert time.monotonic() < deadline, job.status
        time.sleep(0.1)


def test_quota_usage_and_the_usage_command_agree_on_samples_and_extensions(tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    with live_server(settings, workers=1) as live:
        owner = _key_id(live)
        live.runtime.keys.set_quota(owner, max_active_jobs=None, max_video_s_per_day=100)
        pair = _google(live, VERTEX_CREATE, _samples(2, 2))  # two videos of 2 s
        assert pair.status_code == 200, pair.text
        (first,) = [job.id for job in live.runtime.store.list(owner)]
        _wait_succeeded(live, first)
        with live.client() as client:  # 2 s more after the 2 s of the first video
            body = {"prompt": "", "seconds": "1", "video": {"id": f"video_{first}"}}
            extended = client.post("/v1/videos/extensions", json=body)
        assert extended.status_code == 200, extended.text
        second = next(job.id for job in live.runtime.store.list(owner) if job.id != first)
        _wait_succeeded(live, second)

        (line,) = usage(live.runtime.db, owner=owner)
        assert line.jobs == 2
        assert line.seconds == pytest.approx(2 * 2 + (2 + 1), abs=0.2)
        live.runtime.keys.set_quota(owner, max_active_jobs=None, max_video_s_per_day=7)
        refused = _google(live, VERTEX_CREATE, _samples(1, 1))
        message = assert_envelope("vertex", refused, 429)["error"]["message"]
        assert "has used 7 and asked for 1 more" in message
        live.runtime.keys.set_quota(owner, max_active_jobs=None, max_video_s_per_day=8)
        assert _google(live, VERTEX_CREATE, _samples(1, 1)).status_code == 200

    env = {**os.environ, "KINEMA_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    env["KINEMA_CATALOG_PATH"] = str(settings.catalog_path)
    report = subprocess.run(
        [sys.executable, "-m", "kinema", "usage"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    total = next(line for line in report.stdout.splitlines() if "total" in line)
    assert total.split("│")[-2].strip() == "7.0", report.stdout


def test_an_extensions_source_counts_against_the_quota_before_it_is_accepted(tmp_path: Path):
    settings = make_settings(tmp_path, catalog_path=write_catalog(tmp_path))
    with live_server(settings, workers=0) as live:
        owner = _key_id(live)
        live.runtime.keys.set_quota(owner, max_active_jobs=None, max_video_s_per_day=3)
        clip = _mp4(320, 180, frames=3 * FPS, fps=FPS)
        video = {"bytesBase64Encoded": base64.b64encode(clip).decode(), "mimeType": "video/mp4"}
        body = {"instances": [{"video": video}], "parameters": {"durationSeconds": 1}}
        refused = _google(live, VERTEX_CREATE, body)  # 3 s of source + 1 s: 4 s
        message = assert_envelope("vertex", refused, 429)["error"]["message"]
        assert "asked for 4 more" in message
        assert live.runtime.store.list(owner) == []
        assert not list((settings.resolved_storage_dir / "jobs").glob("*/inputs/*"))


# --- what one job may make ---


def _mp4(width: int, height: int, *, frames: int, fps: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        picture = np.full((height, width, 3), 120, np.uint8)
        for index in range(frames):
            picture[:16] = index * 7 % 255
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The shipped catalog (4k at 24 fps, four samples) with nothing running."""
    with live_server(make_settings(tmp_path_factory.mktemp("bounded")), workers=0) as live:
        yield live


def test_a_huge_source_with_four_samples_is_a_400(bounded: LiveServer):
    """A small file of 30 frames at 1 fps and 4096x4096 would make 3,648 frames of
    4096x4096 for the CPU engine."""
    clip = _mp4(4096, 4096, frames=30, fps=1)
    assert len(clip) < 200_000
    video = {"bytesBase64Encoded": base64.b64encode(clip).decode(), "mimeType": "video/mp4"}
    path = "/v1/publishers/google/models/veo-3.1-generate-preview:predictLongRunning"
    before = len(bounded.runtime.store.list(_key_id(bounded)))
    response = _google(bounded, path, _samples(4, 7, video=video))  # Veo 3.1 extends by 7 s
    body = assert_envelope("vertex", response, 400)
    assert "4096x4096" in body["error"]["message"]
    assert len(bounded.runtime.store.list(_key_id(bounded))) == before


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server that makes at most 10^8 pixels a job: 720p for 4 s at 24 fps is 8.8e7."""
    settings = make_settings(tmp_path_factory.mktemp("tight"), max_job_pixels=10**8)
    with live_server(settings, workers=0) as live:
        yield live


# dialect -> (create path, a body asking for more than 10^8 pixels: 720p, 8 s at 24 fps)
OVER: dict[str, tuple[str, dict[str, Any]]] = {
    "aimlapi": ("/v2/video/generations", {"model": "google/veo-3.1-t2v", "prompt": "p"}),
    "v1": ("/v1/video/generations", {"model": "veo-3.0-generate-001", "prompt": "p"}),
    "openai": (
        "/v1/videos",
        {"model": "veo-3.0-generate-001", "prompt": "p", "seconds": "8"},
    ),
    "gemini": (
        "/v1beta/models/veo-3.0-generate-001:predictLongRunning",
        {"instances": [{"prompt": "p"}], "parameters": {"durationSeconds": 8}},
    ),
    "vertex": (
        "/v1/publishers/google/models/veo-3.0-generate-001:predictLongRunning",
        {"instances": [{"prompt": "p"}], "parameters": {"durationSeconds": 8}},
    ),
}


@pytest.mark.parametrize("dialect", sorted(OVER))
def test_a_job_past_the_pixel_bound_is_a_400_in_each_dialect(tight: LiveServer, dialect: str):
    path, body = OVER[dialect]
    headers = {"Authorization": f"Bearer {tight.api_key}", "x-goog-api-key": tight.api_key}
    before = len(tight.runtime.store.list(_key_id(tight)))
    with httpx.Client(base_url=tight.url, headers=headers, timeout=60) as client:
        response = client.post(path, json=body)
    error = assert_envelope(dialect, response, 400)
    assert "this server makes at most 100,000,000 per job" in str(error), error
    assert len(tight.runtime.store.list(_key_id(tight))) == before


def test_samples_are_what_passes_the_bound_and_the_field_says_so(tight: LiveServer):
    path = "/v1/publishers/google/models/veo-3.1-generate-preview:predictLongRunning"
    assert _google(tight, path, _samples(1, 4)).status_code == 200
    refused = _google(tight, path, _samples(2, 4))
    message = assert_envelope("vertex", refused, 400)["error"]["message"]
    assert "sampleCount" in message and "2 video(s)" in message


# --- a source video's frames, whatever its header says ---


def _jpeg(width: int, height: int) -> bytes:
    return encode_image(pattern_image(width, height), "JPEG")


def _mjpeg(sizes: list[tuple[int, int]], fps: int = 4) -> bytes:
    """Motion JPEG whose stream header states the first frame's size; later frames may
    be any size (each JPEG carries its own)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.width, stream.height = sizes[0]
        stream.pix_fmt = "yuvj420p"
        stream.time_base = fractions.Fraction(1, fps)
        for index, (width, height) in enumerate(sizes):
            packet = av.Packet(_jpeg(width, height))
            packet.stream = stream
            packet.pts = packet.dts = index
            packet.duration = 1
            packet.time_base = stream.time_base
            container.mux(packet)
    return buffer.getvalue()


def test_a_source_whose_later_frames_outgrow_its_header_is_a_400(bounded: LiveServer):
    clip = _mjpeg([(64, 64)] * 6 + [(5000, 5000)] + [(64, 64)] * 2)
    with bounded.client() as client:
        response = client.post(
            "/v1/videos/extensions",
            data={"prompt": "", "seconds": "7", "model": "veo-3.1-generate-preview"},
            files={"video": ("clip.mkv", clip, "video/mp4")},
        )
    error = assert_envelope("openai", response, 400)["error"]
    assert "5000x5000" in error["message"] and error["param"] == "video"


def test_the_pixels_decoded_from_one_source_are_bounded():
    clip = _mjpeg([(640, 360)] * 20)
    facts, _ = inspect_video(clip, max_pixels=20 * 640 * 360)
    assert facts.num_frames == 20
    with pytest.raises(InvalidRequest, match="more pixels than this server decodes"):
        inspect_video(clip, max_pixels=19 * 640 * 360)


# --- an edit of an upload that has no picture ---


def _sound_only() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48_000)
        samples = np.zeros((1, 48_000), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48_000
        for packet in (*stream.encode(frame), *stream.encode(None)):
            container.mux(packet)
    return buffer.getvalue()


def test_an_edit_of_a_sound_only_upload_is_a_400(bounded: LiveServer):
    with bounded.client() as client:
        response = client.post(
            "/v1/videos/edits",
            data={"prompt": "push in", "model": "veo-3.1-generate-preview"},
            files={"video": ("song.mp4", _sound_only(), "video/mp4")},
        )
    error = assert_envelope("openai", response, 400)["error"]
    assert "no video stream" in error["message"] and error["param"] == "video"
