"""A model's engines in order: the first this worker can set up takes the job, a
``TransientError`` falls back to the next, and the job records the engine that made it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fixture_engines import model_toml
from tests.support import live_server, make_settings

CATALOG = """
[engines.no-gpu]
kind = "python"
class = "tests.fixture_engines:NoGPUEngine"

[engines.flaky]
kind = "python"
class = "tests.fixture_engines:FlakyEngine"
marker = "{marker}"

[engines.grey]
kind = "python"
class = "tests.fixture_engines:SlowEngine"
frame_s = 0.0
fps = 4
"""


def _models() -> str:
    return (
        model_toml("gpu-then-grey", engine="no-gpu", dialect="v1").replace(
            'engine = "no-gpu"', 'engine = ["no-gpu", "grey"]'
        )
        + model_toml("flaky-then-grey", engine="flaky", dialect="v1").replace(
            'engine = "flaky"', 'engine = ["flaky", "grey"]'
        )
        + model_toml("gpu-only", engine="no-gpu", dialect="v1")
    )


def _run(
    tmp_path: Path, model: str, metrics: list[str] | None = None
) -> tuple[dict, str | None, int]:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(marker=tmp_path / "flaky.marker") + _models())
    settings = make_settings(tmp_path, catalog_path=catalog)
    with live_server(settings) as server, server.client() as client:
        task = client.post("/v1/video/generations", json={"model": model, "prompt": "p"}).json()
        deadline = time.monotonic() + 60
        while True:
            body = client.get(f"/v1/video/generations/{task['id']}").json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
        job = server.runtime.store.get_any(task["id"].removeprefix("task_"))
        if metrics is not None:
            metrics.append(server.runtime.metrics.render().decode())
    return body, job.engine, job.attempt


def test_an_engine_this_machine_cannot_set_up_is_skipped_for_the_next(tmp_path: Path):
    body, engine, _ = _run(tmp_path, "gpu-then-grey")
    assert body["status"] == "succeeded", body
    assert engine == "grey"


def test_a_transient_failure_falls_back_to_the_next_engine_in_the_same_attempt(tmp_path: Path):
    body, engine, attempt = _run(tmp_path, "flaky-then-grey")
    assert body["status"] == "succeeded", body
    assert (engine, attempt) == ("grey", 1)
    assert (tmp_path / "flaky.marker").exists()  # the first engine was tried, and failed


def test_metrics_name_the_engine_that_made_the_video_after_a_fallback(tmp_path: Path):
    rendered: list[str] = []
    body, _, _ = _run(tmp_path, "flaky-then-grey", metrics=rendered)
    assert body["status"] == "succeeded", body
    finished = [line for line in rendered[0].splitlines() if "kinema_jobs_finished_total{" in line]
    assert any('engine="grey"' in line and 'state="succeeded"' in line for line in finished), (
        finished
    )
    assert not any('engine="flaky"' in line for line in finished), finished
    steps = [line for line in rendered[0].splitlines() if "engine_step" in line and "count" in line]
    assert all('engine="flaky"' not in line for line in steps), steps


def test_a_model_with_one_engine_that_cannot_run_here_fails_saying_why(tmp_path: Path):
    body, _, _ = _run(tmp_path, "gpu-only")
    assert body["status"] == "failed"
    assert "sees no CUDA GPU" in body["error"]["message"]
