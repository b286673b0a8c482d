"""A job's progress bar moves through encoding and storing, not only through rendering.

The motion engine renders each frame as the encoder pulls it, and x264 holds a dozen
frames or more when the last one is handed over: the rest of the file, its storing and
the commit come after. The bar must keep moving through that stretch, never go back,
and be written at a bounded rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from kinema.jobs.observer import NoObserver
from kinema.jobs.progress import ENCODED, RUN_SHARE, STORED, ProgressWriter, SampleProgress
from kinema.jobs.store import JobStore
from kinema.types import CancelCheck, EngineRequest, ProgressCallback
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image

INTERVAL_S = 0.05


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("progress"), progress_interval_s=INTERVAL_S)
    with live_server(settings) as live:
        yield live


class Recorder:
    """What the worker did, in order: progress writes and the engine's last frame."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, float, float]] = []  # (what, value, when)

    def add(self, what: str, value: float) -> None:
        with self.lock:
            self.events.append((what, value, time.monotonic()))

    def writes(self) -> list[float]:
        return [value for what, value, _ in self.events if what == "write"]

    def writes_after_the_last_frame(self) -> list[float]:
        (last,) = [i for i, (what, _, _) in enumerate(self.events) if what == "last frame"]
        return [value for what, value, _ in self.events[last:] if what == "write"]


def record(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    store = server.runtime.store
    set_progress = store.set_progress

    def recording_set_progress(job_id: str, attempt: int, progress: float) -> None:
        recorder.add("write", progress)
        set_progress(job_id, attempt, progress)

    monkeypatch.setattr(store, "set_progress", recording_set_progress)
    engine: Any = server.runtime.engines.get("motion")
    run = engine.run

    def run_noting_the_last_frame(
        request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Any:
        def noted(fraction: float) -> None:
            if fraction >= 1.0:
                recorder.add("last frame", fraction)
            on_progress(fraction)

        return run(request, noted, is_cancelled)

    monkeypatch.setattr(engine, "run", run_noting_the_last_frame)
    return recorder


def test_progress_moves_through_encoding_and_storing_up_to_done(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
):
    recorder = record(server, monkeypatch)
    body = {
        "model": "google/veo-3.1-i2v-fast",
        "prompt": "The camera pushes in slowly.",
        "image_url": data_uri(pattern_image(1920, 1080, seed=5)),
        "duration": 4,
        "resolution": "1080p",
        "generate_audio": False,
    }
    polled: list[int] = []
    with server.client() as client:
        created = client.post("/v2/video/generations", json=body)
        assert created.status_code == 200, created.text
        generation_id = created.json()["id"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            done = client.get("/v2/video/generations", params={"generation_id": generation_id})
            done_body = done.json()
            polled.append(done_body["progress"])
            if done_body["status"] not in ("queued", "generating"):
                break
            time.sleep(0.05)
    assert done_body["status"] == "completed", done_body
    assert polled == sorted(polled) and polled[-1] == 100

    writes = recorder.writes()
    assert writes == sorted(writes), writes
    # After the engine handed over its last frame the bar went on moving: through the
    # frames x264 still held (below ENCODED), then the stored video (above it).
    tail = recorder.writes_after_the_last_frame()
    assert any(value < ENCODED for value in tail), (tail, writes)
    assert any(ENCODED < value < 1.0 for value in tail), (tail, writes)
    # Bounded: one write per interval at most, and the bar's end.
    times = [when for what, _, when in recorder.events if what == "write"]
    span = times[-1] - times[0]
    assert len(times) <= span / INTERVAL_S + 2, (len(times), span)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Writes:
    """Stands in for the store: the progress written, in order."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def set_progress(self, job_id: str, attempt: int, progress: float) -> None:
        self.values.append(progress)


def writer(clock: FakeClock, writes: Writes, interval_s: float = 0.5) -> ProgressWriter:
    return ProgressWriter(
        cast(JobStore, writes), "job", 1, engine="e", observer=NoObserver(), lost=threading.Event(),
        interval_s=interval_s, clock=clock,
    )  # fmt: skip


def test_writes_wait_an_interval_and_the_end_is_written_at_once():
    clock, writes = FakeClock(), Writes()
    bar = writer(clock, writes)
    sample = SampleProgress(bar, 0, 1)
    sample.encoding()
    for frame in range(1, 101):
        clock.now += 0.01  # 100 frames a second: at most two writes a second get through
        sample.engine(frame / 100)
        sample.written(max(0, frame - 20), 100)
    for frame in range(81, 101):
        clock.now += 0.05
        sample.written(frame, 100)
    clock.now += 0.01
    sample.stored()
    assert writes.values == sorted(writes.values)
    assert 4 <= len(writes.values) <= 5  # two a second over 2 s, and the end at once
    assert writes.values[-1] == pytest.approx(STORED)
    assert ENCODED * 0.9 < writes.values[-2] <= ENCODED


def test_a_diffusion_run_fills_its_share_and_encoding_the_rest():
    clock, writes = FakeClock(), Writes()
    sample = SampleProgress(writer(clock, writes, interval_s=0.0), 0, 1)
    for step in range(1, 11):
        clock.now += 1.0
        sample.engine(step / 10)
    assert writes.values[-1] == pytest.approx(RUN_SHARE)
    sample.encoding()
    clock.now += 1.0
    sample.written(50, 100)
    assert writes.values[-1] == pytest.approx((RUN_SHARE + ENCODED) / 2)
    clock.now += 1.0
    sample.written(100, 100)
    assert writes.values[-1] == pytest.approx(ENCODED)


def test_samples_share_the_bar_and_it_never_goes_back():
    clock, writes = FakeClock(), Writes()
    bar = writer(clock, writes, interval_s=0.0)
    for index in range(2):
        sample = SampleProgress(bar, index, 2)
        sample.encoding()
        for frame in range(1, 11):
            clock.now += 1.0
            sample.engine(frame / 10)
            sample.written(frame, 10)
        clock.now += 1.0
        sample.stored()
        assert writes.values[-1] == pytest.approx((index + STORED) / 2)
    assert writes.values == sorted(writes.values)
    assert len(set(writes.values)) == len(writes.values)


def test_an_engine_that_reports_nothing_still_fills_the_encoding_stage():
    clock, writes = FakeClock(), Writes()
    sample = SampleProgress(writer(clock, writes, interval_s=0.0), 0, 1)
    sample.encoding()
    for frame in (25, 50, 100):
        clock.now += 1.0
        sample.written(frame, 100)
    assert writes.values == pytest.approx([ENCODED / 4, ENCODED / 2, ENCODED])
