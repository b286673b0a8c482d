"""The diffusers engines (Wan 2.2 TI2V / I2V A14B, LTX-Video, LTX-2) on tiny random pipelines.

Each pipeline is built in code, saved in diffusers layout and loaded by path through the
engine's real loading code, on the CPU. The end-to-end tests run jobs through HTTP with a
catalog that points model ids at those weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch

from kinema.catalog import Catalog
from kinema.engines.config import EngineConfig
from kinema.engines.diffusion import DiffusionOptions, FrameRule, Residency, fit_size
from kinema.engines.diffusion.engine import DiffusionEngine
from kinema.engines.diffusion.ltx import LTX2Engine, LTXVideoEngine
from kinema.engines.diffusion.wan_i2v import WanI2VEngine
from kinema.engines.diffusion.wan_ti2v import WanTI2VEngine
from kinema.engines.registry import DIFFUSERS_ENGINES, build_engine
from kinema.errors import EngineError, JobCancelled, NotSupported
from tests.diffusers_support import (
    GIB,
    Weights,
    create,
    never,
    request,
    save_all,
    tiny_engine,
    watch,
)
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image, probe
from tests.tiny_pipelines import BUILDERS


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Weights]:
    """Every engine kind's tiny pipeline, saved once per module."""
    return save_all(tmp_path_factory.mktemp("weights"))


# --- mapping a Veo request onto a model --------------------------------------------------


def test_durations_become_the_models_frame_counts():
    ti2v = FrameRule(step=4, max_frames=121)
    assert ti2v.fit(5 * 24) == 121
    assert ti2v.fit(4 * 24) == 97
    assert ti2v.fit(8 * 24) == 121  # longer than the model makes: clamped
    assert ti2v.fit(1) == 5
    assert FrameRule(step=4, max_frames=81).fit(5 * 16) == 81
    assert FrameRule(step=8, max_frames=257).fit(5 * 24) == 121
    assert FrameRule(step=8, max_frames=257).fit(4 * 24) == 97
    assert FrameRule(step=8, max_frames=481).fit(20 * 24) == 481


def test_resolutions_and_aspect_ratios_map_to_native_sizes():
    assert fit_size(1280, 720, WanTI2VEngine.native_sizes) == (1280, 704)
    assert fit_size(1920, 1080, WanTI2VEngine.native_sizes) == (1280, 704)
    assert fit_size(720, 1280, WanTI2VEngine.native_sizes) == (704, 1280)
    assert fit_size(1280, 720, WanI2VEngine.native_sizes) == (1280, 720)
    assert fit_size(832, 480, WanI2VEngine.native_sizes) == (832, 480)
    assert fit_size(480, 832, WanI2VEngine.native_sizes) == (480, 832)
    assert fit_size(1920, 1080, WanI2VEngine.native_sizes) == (1280, 720)
    assert fit_size(1280, 720, LTXVideoEngine.native_sizes) == (1216, 704)
    assert fit_size(1280, 720, LTX2Engine.native_sizes) == (1280, 704)
    assert fit_size(1080, 1920, LTX2Engine.native_sizes) == (1088, 1920)


def test_bad_options_fail_when_the_engine_is_built(weights: dict[str, Weights]):
    with pytest.raises(EngineError, match="vae_tilling"):
        tiny_engine("wan_ti2v", weights, vae_tilling=True)
    with pytest.raises(EngineError, match="dtype"):
        tiny_engine("wan_ti2v", weights, dtype="int8")
    with pytest.raises(EngineError, match="weights"):
        build_engine(EngineConfig("w", "wan_ti2v", 24, {}))
    with pytest.raises(EngineError, match="makes no sound of its own"):
        tiny_engine("wan_ti2v", weights, audio="native")
    with pytest.raises(EngineError, match="no weights directory"):
        build_engine(EngineConfig("w", "ltx", 24, {"weights": "/nowhere/ltx"})).setup()
    with pytest.raises(EngineError, match="needs a GPU"):
        tiny_engine("ltx", weights, offload="model").setup()
    with pytest.raises(EngineError, match="attention_backend"):
        tiny_engine("ltx", weights, attention_backend="bogus").setup()


def test_shipped_gpu_catalog_is_valid_and_the_default_stays_on_motion():
    gpu = Catalog.load(Path(str(resources.files("kinema").joinpath("catalog.gpu.toml"))))
    kinds = {config.kind for config in gpu.engines.values()}
    assert kinds == {"motion", *DIFFUSERS_ENGINES}
    for config in gpu.engines.values():
        if config.kind != "motion":
            DiffusionOptions.parse(config.name, config.options)
    assert gpu.get("wan2.2-i2v-a14b").audio is False  # its engine refuses sound: a 400
    lightning = DiffusionOptions.parse("l", gpu.engines["wan2.2-i2v-a14b-lightning"].options)
    assert [lora.transformer for lora in lightning.lora] == ["transformer", "transformer_2"]
    assert (lightning.steps, lightning.guidance_scale, lightning.guidance_scale_2) == (4, 1, 1)
    fast = DiffusionOptions.parse("f", gpu.engines["fastwan2.2-ti2v-5b"].options)
    assert (fast.steps, fast.timesteps) == (3, (1000, 757, 522))
    assert fast.scheduler == "FlowMatchLCMScheduler"
    default = Catalog.load()
    assert {config.kind for config in default.engines.values()} == {"motion"}


# --- each engine on its tiny pipeline ------------------------------------------------------


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_tiny_pipeline_loads_by_path_and_renders(kind: str, weights: dict[str, Weights]):
    engine = tiny_engine(kind, weights)
    engine.setup()
    progress: list[float] = []
    clip = engine.run(request(generate_audio=True), progress.append, never)
    frames = list(clip.frames)
    assert (clip.num_frames, clip.width, clip.height, clip.fps) == (9, 64, 32, 8)
    assert len(frames) == 9
    assert all(f.shape == (32, 64, 3) and f.dtype.name == "uint8" for f in frames)
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert any(0.0 < p < 0.9 for p in progress)  # per denoising step, before the decode
    assert clip.audio is not None
    assert clip.audio.sample_rate == (16000 if kind == "ltx2" else 48000)  # native or motion

    portrait = engine.run(request(width=720, height=1280, image=None), lambda _: None, never)
    assert (portrait.width, portrait.height, portrait.num_frames) == (32, 64, 9)
    assert portrait.audio is None
    assert engine.loads == 1  # resident between jobs


def test_cancel_stops_within_one_denoising_step(weights: dict[str, Weights]):
    engine = tiny_engine("wan_ti2v", weights, steps=8)
    engine.setup()
    calls = []
    engine.pipeline.transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    progress: list[float] = []

    with pytest.raises(JobCancelled, match="after step 2 of 8"):
        engine.run(request(), progress.append, lambda: len(progress) >= 2)
    assert len(calls) == 2 * 2  # two steps with guidance, then nothing
    assert engine.pipeline._interrupt is False  # ready for the next job
    calls.clear()
    assert engine.run(request(), lambda _: None, never).num_frames == 9
    assert len(calls) == 8 * 2


def test_a_job_waiting_for_a_busy_model_can_be_cancelled(weights: dict[str, Weights]):
    engine = tiny_engine("ltx", weights)
    engine.setup()
    checks = iter([False, True])  # not cancelled when it starts; cancelled while it waits
    with engine._lock, pytest.raises(JobCancelled, match="waiting for the model"):
        engine.run(request(), lambda _: None, lambda: next(checks))


def test_out_of_memory_fails_clearly_frees_memory_and_the_engine_carries_on(
    weights: dict[str, Weights],
):
    residency = Residency()
    idle = tiny_engine("ltx", weights, residency, name="idle")
    idle.setup()
    engine = tiny_engine("wan_ti2v", weights, residency, name="busy")
    engine.setup()
    assert residency.resident() == ["idle", "busy"]

    def out_of_memory(*_: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    hook = engine.pipeline.transformer.register_forward_pre_hook(out_of_memory)
    with pytest.raises(EngineError, match="out of GPU memory making 9 frames at 64x32") as failed:
        engine.run(request(), lambda _: None, never)
    assert "Tried to allocate 20.00 GiB" in failed.value.message
    assert "vae_tiling" in failed.value.message
    assert residency.resident() == ["busy"]  # the idle model was unloaded to free memory
    assert not idle.loaded

    hook.remove()
    assert engine.run(request(), lambda _: None, never).num_frames == 9
    assert engine.loads == 1


def test_least_recently_used_model_is_unloaded_when_memory_runs_short(
    weights: dict[str, Weights],
):
    one_fits = 1.2 * max(weights["ltx"].footprint, weights["wan_ti2v"].footprint) / GIB
    residency = Residency()
    first = tiny_engine("ltx", weights, residency, name="first", memory_budget_gb=one_fits)
    second = tiny_engine("wan_ti2v", weights, residency, name="second", memory_budget_gb=one_fits)
    first.setup()
    second.setup()
    assert residency.resident() == ["second"]
    assert not first.loaded

    assert first.run(request(), lambda _: None, never).num_frames == 9
    assert residency.resident() == ["first"]
    assert (first.loads, second.loads) == (2, 1)

    with residency.using(first):  # a model running a job is never unloaded under it
        second.run(request(), lambda _: None, never)
    assert set(residency.resident()) == {"first", "second"}


def test_speed_and_memory_options_are_applied(
    weights: dict[str, Weights], monkeypatch: pytest.MonkeyPatch
):
    from diffusers import WanTransformer3DModel

    compiled: list[dict[str, Any]] = []
    monkeypatch.setattr(
        WanTransformer3DModel,
        "compile_repeated_blocks",
        lambda self, **kwargs: compiled.append(kwargs),
    )
    engine = tiny_engine(
        "wan_i2v",
        weights,
        attention_backend="native",
        cache="first_block",
        cache_threshold=0.1,
        vae_tiling=True,
        compile=True,
        compile_mode="max-autotune-no-cudagraphs",
        dtype="float32",
    )
    engine.setup()
    pipe = engine.pipeline
    assert pipe.transformer.is_cache_enabled and pipe.transformer_2.is_cache_enabled
    assert pipe.vae.use_tiling
    # With a step cache the blocks compile with graph breaks (the cache hooks keep Python state).
    wanted = {"fullgraph": False, "dynamic": True, "mode": "max-autotune-no-cudagraphs"}
    assert compiled == [wanted] * 2
    assert pipe.transformer.dtype == torch.float32
    clip = engine.run(request(image=None, last_image=pattern_image(90, 160)), lambda _: None, never)
    assert clip.num_frames == 9  # no image: it animates a picture painted from the prompt


def test_ltx2_is_not_supported_where_diffusers_lacks_it(
    weights: dict[str, Weights], monkeypatch: pytest.MonkeyPatch
):
    import diffusers

    monkeypatch.setattr(diffusers, "LTX2ImageToVideoPipeline", None, raising=False)
    with pytest.raises(NotSupported, match="LTX2ImageToVideoPipeline"):
        tiny_engine("ltx2", weights).setup()


# --- through the HTTP API ------------------------------------------------------------------

CATALOG = """
[engines.tiny-wan]
kind = "wan_ti2v"
fps = 8
weights = "{wan}"
steps = 4
sizes = ["64x32", "32x64"]
max_sequence_length = 16
memory_budget_gb = {budget}

[engines.tiny-ltx]
kind = "ltx"
fps = 8
weights = "{ltx}"
steps = 2
sizes = ["64x32", "32x64"]
max_sequence_length = 16
memory_budget_gb = {budget}

[engines.tiny-a14b]
kind = "wan_i2v"
fps = 8
weights = "{a14b}"
audio = "refuse"

[models.tiny-wan]
dialect = "unified"
engine = "tiny-wan"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9", "9:16"]
resolutions = ["720p"]
audio = true
options = ["duration", "aspect_ratio", "resolution", "generate_audio", "seed"]

[models.tiny-ltx]
dialect = "unified"
engine = "tiny-ltx"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration"]

[models.tiny-a14b]
dialect = "unified"
engine = "tiny-a14b"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
audio = false
options = ["duration", "generate_audio"]
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, weights: dict[str, Weights]
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("gpu-server")
    budget = 1.2 * max(weights["wan_ti2v"].footprint, weights["ltx"].footprint) / GIB
    catalog = root / "catalog.toml"
    catalog.write_text(
        CATALOG.format(
            wan=weights["wan_ti2v"].path,
            ltx=weights["ltx"].path,
            a14b=weights["wan_i2v"].path,
            budget=budget,
        )
    )
    with live_server(make_settings(root, catalog_path=catalog), workers=1) as live:
        yield live


def slow_steps(server: LiveServer, engine: str, seconds: float) -> Any:
    """Make every transformer call of ``engine`` take ``seconds`` (a handle to undo it)."""
    model = server.runtime.engines.get(engine)
    assert isinstance(model, DiffusionEngine)
    return model.pipeline.transformer.register_forward_pre_hook(lambda *_: time.sleep(seconds))


def test_job_over_http_makes_the_models_frames_with_rising_progress(server: LiveServer):
    slow = slow_steps(server, "tiny-wan", 0.05)
    try:
        task, seen = watch(server, create(server, "tiny-wan", generate_audio=True)["id"])
    finally:
        slow.remove()
    assert task["status"] == "completed", task
    assert seen == sorted(seen) and seen[-1] == 100
    assert any(0 < p < 90 for p in seen)  # denoising steps show up as they happen
    with server.client() as client:
        video = probe(client.get(task["results"][0]).content)
    assert (video.frames, video.width, video.height, video.fps) == (9, 64, 32, 8)
    assert video.audio_codec == "aac"  # the motion engine's soundtrack

    task, _ = watch(server, create(server, "tiny-wan", aspect_ratio="9:16")["id"])
    with server.client() as client:
        video = probe(client.get(task["results"][0]).content)
    assert (video.width, video.height, video.audio_codec) == (32, 64, None)


def test_cancel_over_http_stops_mid_denoise(server: LiveServer):
    slow = slow_steps(server, "tiny-wan", 0.25)
    engine = server.runtime.engines.get("tiny-wan")
    assert isinstance(engine, DiffusionEngine)
    calls: list[float] = []
    counter = engine.pipeline.transformer.register_forward_pre_hook(
        lambda *_: calls.append(time.monotonic())
    )
    try:
        task_id = create(server, "tiny-wan")["id"]
        with server.client() as client:
            while not calls:
                time.sleep(0.01)
            cancelled_at = time.monotonic()
            assert client.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
        task, seen = watch(server, task_id)
    finally:
        slow.remove()
        counter.remove()
    assert task["status"] == "failed" and task["error"]["code"] == "request_cancelled"
    assert max(seen) < 90  # never reached the decode
    assert len([t for t in calls if t > cancelled_at]) <= 1  # stopped within one call


def test_out_of_memory_over_http_fails_the_job_and_the_worker_stays_up(server: LiveServer):
    engine = server.runtime.engines.get("tiny-wan")
    assert isinstance(engine, DiffusionEngine)

    def out_of_memory(*_: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")

    hook = engine.pipeline.transformer.register_forward_pre_hook(out_of_memory)
    try:
        task, _ = watch(server, create(server, "tiny-wan")["id"])
    finally:
        hook.remove()
    assert task["status"] == "failed"
    assert "out of GPU memory" in task["error"]["message"]
    task, _ = watch(server, create(server, "tiny-wan")["id"])
    assert task["status"] == "completed"


def test_models_stay_resident_and_the_least_recent_is_unloaded_over_http(server: LiveServer):
    residency = server.runtime.engines.residency
    assert watch(server, create(server, "tiny-wan")["id"])[0]["status"] == "completed"
    wan = server.runtime.engines.get("tiny-wan")
    loads = wan.loads  # type: ignore[attr-defined]
    assert watch(server, create(server, "tiny-wan")["id"])[0]["status"] == "completed"
    assert wan.loads == loads  # type: ignore[attr-defined]  # stayed loaded between jobs

    assert watch(server, create(server, "tiny-ltx")["id"])[0]["status"] == "completed"
    assert residency.resident() == ["tiny-ltx"]  # both do not fit the budget: wan went
    assert watch(server, create(server, "tiny-wan")["id"])[0]["status"] == "completed"
    assert residency.resident() == ["tiny-wan"]
    assert wan.loads == loads + 1  # type: ignore[attr-defined]


def test_sound_from_a_model_without_audio_is_refused_with_a_400(server: LiveServer):
    body = {
        "model": "tiny-a14b",
        "prompt": "a red cat walks",
        "image_url": data_uri(pattern_image()),
        "generate_audio": True,
    }
    with server.client() as client:
        response = client.post("/v1/videos/generations", json=body)
    assert response.status_code == 400, response.text
    assert "does not generate audio" in response.text


# --- the GPU benchmark, at toy size ----------------------------------------------------------


def test_gpu_benchmark_runs_at_toy_size_on_the_cpu(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    import json

    from bench import gpu_engine

    out = tmp_path / "rows.json"
    rows = gpu_engine.main(
        ["--toy", "--variants", "fp8,baseline,few_step", "--steps", "2", "--json", str(out)]
    )
    assert [row.variant for row in rows] == ["fp8", "baseline", "few_step"]
    assert "needs an NVIDIA GPU" in rows[0].error  # recorded; the others still ran
    baseline, few = rows[1], rows[2]
    assert not baseline.error and not few.error
    assert (baseline.frames, baseline.width, baseline.height, baseline.steps) == (9, 64, 32, 2)
    assert baseline.seconds_per_step and baseline.seconds_per_step > 0
    assert baseline.video_s and baseline.denoise_s and baseline.video_s >= baseline.denoise_s
    assert baseline.measured_tflops and baseline.measured_tflops > 0
    assert (few.steps, few.forwards_per_step) == (3, 1)
    written = json.loads(out.read_text())
    assert [row["variant"] for row in written] == ["fp8", "baseline", "few_step"]
    printed = capsys.readouterr().out
    assert "| baseline | 2 |" in printed and "| fp8 | 2 | failed:" in printed
    # The full-size count the script reports for a GPU run: 50 steps with guidance at
    # 1280x704x121 is about 5.2e16 FLOPs, about 52 s at 989 TFLOP/s.
    assert gpu_engine.video_tokens(gpu_engine.FULL) == 31 * 22 * 40
    assert gpu_engine.video_flops(gpu_engine.FULL) / 989e12 == pytest.approx(52.3, abs=0.5)
    assert gpu_engine.video_flops(gpu_engine.FULL, 3, 1) / 989e12 == pytest.approx(1.57, abs=0.02)
