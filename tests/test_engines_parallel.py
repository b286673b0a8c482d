"""One job across two ranks (processes) with diffusers' context parallelism, on the CPU
over gloo: the frames match one process's, cancel stops both ranks at the same call, and
a rank that dies fails its job and the group starts again for the next.

Tolerance: the two ranks split the video tokens and exchange them for attention
(all-to-all), which changes only the order of floating-point sums, so frames may differ
from a single process's by rounding: at most 2 of 255 levels per pixel, and under 0.05 on
average (measured: identical on this CPU).
"""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from kinema.engines.diffusion.engine import DiffusionEngine
from kinema.engines.diffusion.parallel import RankGroup
from tests.diffusers_support import Weights, create, never, request, save_all, tiny_engine, watch
from tests.fixture_engines import model_toml
from tests.support import LiveServer, live_server, make_settings

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Weights]:
    return save_all(tmp_path_factory.mktemp("weights"), ("wan_ti2v",))


CATALOG = """
[engines.one-rank]
kind = "wan_ti2v"
fps = 8
weights = "{wan}"
steps = 3
sizes = ["64x32"]
max_sequence_length = 16

[engines.two-ranks]
kind = "wan_ti2v"
fps = 8
weights = "{wan}"
steps = 3
sizes = ["64x32"]
max_sequence_length = 16
devices = ["cpu", "cpu"]

[engines.two-ranks-long]
kind = "wan_ti2v"
fps = 8
weights = "{wan}"
steps = 40
sizes = ["64x32"]
max_sequence_length = 16
devices = ["cpu", "cpu"]
"""

MODEL = """
[models.{name}]
dialect = "unified"
engine = "{name}"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration", "seed"]
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, weights: dict[str, Weights]
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("parallel-server")
    catalog = root / "catalog.toml"
    models = "".join(MODEL.format(name=n) for n in ("one-rank", "two-ranks", "two-ranks-long"))
    catalog.write_text(CATALOG.format(wan=weights["wan_ti2v"].path) + models)
    with live_server(make_settings(root, catalog_path=catalog), workers=1) as live:
        yield live
        for name in ("two-ranks", "two-ranks-long"):
            engine = live.runtime.engines.get(name)
            assert isinstance(engine, DiffusionEngine)
            engine.unload()  # ends the rank processes


def frames_of(server: LiveServer, task: dict) -> np.ndarray:
    with server.client() as client:
        content = client.get(task["results"][0]).content
    with av.open(io.BytesIO(content)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def group_of(server: LiveServer, name: str) -> RankGroup:
    engine = server.runtime.engines.get(name)
    assert isinstance(engine, DiffusionEngine) and isinstance(engine.group, RankGroup)
    return engine.group


def test_two_ranks_make_the_same_frames_as_one_process(weights: dict[str, Weights]):
    one = tiny_engine("wan_ti2v", weights, steps=3)
    one.setup()
    two = tiny_engine("wan_ti2v", weights, steps=3, name="pair", devices=["cpu", "cpu"])
    two.setup()
    try:
        assert two.group.alive and len(two.group.pids) == 2
        assert not two.loaded  # the worker process holds no weights: the ranks do
        expected = np.stack(list(one.run(request(), lambda _: None, never).frames))
        progress: list[float] = []
        got = np.stack(list(two.run(request(), progress.append, never).frames))
        assert got.shape == expected.shape == (9, 32, 64, 3)
        difference = np.abs(got.astype(int) - expected.astype(int))
        assert difference.max() <= 2 and difference.mean() < 0.05
        assert two.group.last_calls == [6, 6]  # 3 steps x 2 guidance branches, on each rank
        assert progress == sorted(progress) and 0 < progress[0] < 0.9 and progress[-1] == 1.0
    finally:
        two.unload()
    assert not two.group.alive


def test_a_job_over_http_runs_across_two_ranks(server: LiveServer):
    single, _ = watch(server, create(server, "one-rank", seed=11)["id"], timeout_s=300)
    pair, seen = watch(server, create(server, "two-ranks", seed=11)["id"], timeout_s=300)
    assert single["status"] == pair["status"] == "completed", pair
    assert seen[-1] == 100
    one, two = frames_of(server, single), frames_of(server, pair)
    assert one.shape == two.shape == (9, 32, 64, 3)
    assert np.abs(one.astype(int) - two.astype(int)).max() <= 2
    group = group_of(server, "two-ranks")
    assert group.last_calls == [6, 6]


def test_cancel_over_http_stops_both_ranks_at_the_same_call(server: LiveServer):
    group = group_of(server, "two-ranks-long")
    pids = list(group.pids)
    task_id = create(server, "two-ranks-long")["id"]
    with server.client() as client:
        deadline = time.monotonic() + 120
        while client.get(f"/v1/tasks/{task_id}").json()["progress"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
    task, seen = watch(server, task_id, timeout_s=120)
    assert task["status"] == "failed" and task["error"]["code"] == "request_cancelled"
    assert max(seen) < 90
    first, second = group.last_calls
    assert first == second and 0 < first < 40 * 2  # both stopped, at the same call
    assert group.alive and group.pids == pids  # ready for more


def test_a_rank_that_dies_fails_the_job_and_the_group_starts_again(server: LiveServer):
    group = group_of(server, "two-ranks-long")
    starts, follower = group.starts, group.pids[1]
    task_id = create(server, "two-ranks-long")["id"]
    with server.client() as client:
        deadline = time.monotonic() + 120
        while client.get(f"/v1/tasks/{task_id}").json()["progress"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    os.kill(follower, signal.SIGKILL)
    task, _ = watch(server, task_id, timeout_s=120)
    assert task["status"] == "failed"
    assert "rank 1 (cpu) exited with code -9" in task["error"]["message"]

    task, _ = watch(server, create(server, "two-ranks-long")["id"], timeout_s=300)
    assert task["status"] == "completed", task
    assert group.starts == starts + 1
    assert follower not in group.pids


def test_worker_gpus_put_every_diffusers_engine_on_those_gpus():
    from kinema.engines.config import EngineConfig
    from kinema.engines.registry import on_gpus

    config = EngineConfig("e", "wan_ti2v", 24, {"weights": "/w", "device": "cuda:5"})
    spread = on_gpus(config, "0, 1,2,3")
    assert spread.options["devices"] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert "device" not in spread.options
    assert on_gpus(config, "2").options["device"] == "cuda:2"
    assert on_gpus(config, "") is config
    with pytest.raises(ValueError, match="GPU indices"):
        on_gpus(config, "cuda:0")


def test_kinema_worker_gpus_reach_the_diffusers_engine_it_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``kinema worker --gpus 2,3``: the engine the worker builds for a job runs on cuda:2
    and cuda:3, whatever device its catalog entry names."""
    from typer.testing import CliRunner

    from kinema.cli import app
    from kinema.engines import registry
    from kinema.errors import KinemaError
    from kinema.runtime import Runtime

    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[engines.wan]\nkind = "wan_ti2v"\nfps = 24\nweights = "/w"\ndevice = "cuda:5"\n'
        + model_toml("m", engine="wan", dialect="v1")
    )
    built: list[Any] = []

    def diffusers_engine(config: Any, residency: Any) -> Any:
        built.append(config)
        raise KinemaError("captured")

    def start(runtime: Runtime) -> None:  # the worker's first job asks for its engine
        runtime.engines.get("wan")

    monkeypatch.setattr(registry, "_diffusers_engine", diffusers_engine)
    monkeypatch.setattr(Runtime, "start", start)
    env = {"KINEMA_DATA_DIR": str(tmp_path / "data"), "KINEMA_CATALOG_PATH": str(catalog)}
    result = CliRunner().invoke(app, ["worker", "--gpus", "2,3", "--models", "m"], env=env)
    assert isinstance(result.exception, KinemaError), result.output
    [config] = built
    assert config.options["devices"] == ["cuda:2", "cuda:3"]
    assert "device" not in config.options
