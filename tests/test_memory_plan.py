"""The GPU memory planner: measures chosen when the catalog loads, a model that fits
nowhere refused at startup, and a request the GPU cannot hold refused with a 400 in the
dialect's shape before anything is queued (never an out-of-memory error after the denoise).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from kinema.catalog import Catalog
from kinema.engines.diffusion.memory import peak_gib, usable_gib
from kinema.errors import EngineError, InvalidRequest
from tests.diffusers_support import Weights, save_all, tiny_engine
from tests.support import LiveServer, data_uri, live_server, make_settings, pattern_image

SHIPPED = tomllib.loads(resources.files("kinema").joinpath("catalog.gpu.toml").read_text())


def test_catalog_load_adds_tiling_and_offload_where_the_gpu_needs_them():
    catalog = Catalog.from_dict(SHIPPED, gpu_memory_gb=80)
    assert catalog.engines["ltx-2"].options["offload"] == "text_encoder"
    assert catalog.engines["wan2.2-i2v-a14b"].options["vae_tiling"] is True
    assert "offload" not in catalog.engines["wan2.2-i2v-a14b"].options
    assert "vae_tiling" not in catalog.engines["wan2.2-ti2v-5b"].options
    # A bigger card needs nothing for A14B; a smaller one takes the experts in turns.
    big = Catalog.from_dict(SHIPPED, gpu_memory_gb=141)
    assert "vae_tiling" not in big.engines["wan2.2-i2v-a14b"].options
    small = Catalog.from_dict(_only(SHIPPED, "wan2.2-i2v-a14b"), gpu_memory_gb=48)
    assert small.engines["wan2.2-i2v-a14b"].options["offload"] == "model"


def test_predictions_follow_tokens_gpus_and_measures():
    full = peak_gib("wan_i2v", 1280, 720, 81)
    assert full > peak_gib("wan_i2v", 832, 480, 81) > peak_gib("wan_i2v", 832, 480, 33)
    assert peak_gib("wan_i2v", 1280, 720, 81, vae_tiling=True) <= full
    assert peak_gib("ltx2", 1920, 1088, 193, offload="text_encoder") < peak_gib(
        "ltx2", 1920, 1088, 193
    )
    tiled = {"vae_tiling": True}
    assert peak_gib("wan_i2v", 1280, 720, 81, world=4, **tiled) < peak_gib(
        "wan_i2v", 1280, 720, 81, **tiled
    )
    assert usable_gib(80) == pytest.approx(74.5)


def test_a_model_that_fits_nowhere_on_the_gpu_is_named_and_its_requests_refused(
    caplog: pytest.LogCaptureFixture,
):
    data = _only(SHIPPED, "wan2.2-i2v-a14b")
    catalog = Catalog.from_dict(data, gpu_memory_gb=16)
    assert "models ['wan2.2-i2v-a14b'] fit in none of their sizes" in caplog.text
    fields = {"prompt": "a cat", "image": "data:image/png;base64,AAAA", "duration": 2}
    with pytest.raises(InvalidRequest, match="GiB of GPU memory"):
        catalog.build_request("wan2.2-i2v-a14b", fields)
    from kinema.engines.diffusion.memory import plan_catalog

    with pytest.raises(EngineError, match="fit in none"):
        plan_catalog(catalog.engines, {"wan2.2-i2v-a14b": [("m", (1280, 720), 2)]}, 16, strict=True)
    unplanned = Catalog.from_dict(data, gpu_memory_gb=16, plan=False)
    assert unplanned.memory_plans == {}


def test_a_request_the_gpu_cannot_hold_is_refused_naming_what_fits():
    data = _only(SHIPPED, "ltx-2")
    data["models"]["ltx-2"]["durations_at"] = {}  # offer 20 s at 1080p as well
    catalog = Catalog.from_dict(data, gpu_memory_gb=80)
    fields = {"prompt": "a cat", "resolution": "1080p", "duration": 20}
    with pytest.raises(InvalidRequest) as refused:
        catalog.build_request("ltx-2", fields, wire_names={"duration": "durationSeconds"})
    problem = refused.value.problems[0]
    assert problem.path == ("durationSeconds",)
    assert "GiB of GPU memory" in problem.message and "at most 8 s" in problem.message
    assert catalog.build_request("ltx-2", {**fields, "duration": 8}).duration_s == 8
    assert catalog.build_request("ltx-2", {**fields, "resolution": "720p"}).duration_s == 20


def _only(data: dict, engine: str) -> dict:
    """The shipped catalog reduced to one engine and its model."""
    return {
        "engines": {engine: dict(data["engines"][engine])},
        "models": {engine: dict(data["models"][engine])},
    }


CATALOG = """
[engines.big]
kind = "ltx2"
fps = 24
weights = "{weights}"
gpu_memory_gb = 80
device = "cpu"
sizes = ["1920x1088", "1280x704"]

[models.big]
dialects = ["unified", "gemini"]
engine = "big"
inputs = "any"
durations = [4, 20]
default_duration = 4
aspect_ratios = ["16:9"]
resolutions = ["720p", "1080p"]
audio = true
options = ["duration", "resolution", "aspect_ratio"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("plan-server")
    weights: dict[str, Weights] = save_all(root / "weights", ("ltx2",))
    catalog = root / "catalog.toml"
    catalog.write_text(CATALOG.format(weights=weights["ltx2"].path))
    with live_server(make_settings(root, catalog_path=catalog), workers=0) as live:
        yield live


def test_a_request_the_gpu_cannot_hold_is_a_400_in_each_dialects_shape(server: LiveServer):
    image = data_uri(pattern_image())
    body = {"model": "big", "prompt": "a red cat", "image_url": image, "resolution": "1080p"}
    with server.client() as client:
        refused = client.post("/v1/videos/generations", json=body | {"duration": 20})
        accepted = client.post("/v1/videos/generations", json=body | {"duration": 4})
        gemini = client.post(
            "/v1beta/models/big:predictLongRunning",
            json={
                "instances": [{"prompt": "a red cat"}],
                "parameters": {"durationSeconds": 20, "resolution": "1080p"},
            },
        )
    assert refused.status_code == 400, refused.text
    assert "GiB of GPU memory" in refused.text and "at most 4 s" in refused.text
    assert accepted.status_code == 200, accepted.text
    assert gemini.status_code == 400, gemini.text
    error = gemini.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "GiB of GPU memory" in error["message"]


def test_the_planners_geometry_is_the_engines():
    """The planner reads sizes and frame rules without importing torch: they must be the
    engine classes' own."""
    import importlib

    from kinema.engines.diffusion import MODEL_FILES
    from kinema.engines.diffusion.checks import RULES

    for kind, (module, name) in MODEL_FILES.items():
        engine = getattr(importlib.import_module(f"kinema.engines.diffusion.{module}"), name)
        rules = RULES[kind]
        assert engine.native_sizes == rules.sizes, kind
        assert (engine.frame_step, engine.max_frames) == (rules.frame_step, rules.max_frames)


def test_kinema_gpu_memory_gb_plans_for_that_gpu_where_none_is_seen(tmp_path: Path):
    """The engine names no GPU size and runs on the CPU (torch sees no GPU): without the
    setting nothing is planned; with it, the server plans for that card and refuses what
    it cannot hold."""
    weights: dict[str, Weights] = save_all(tmp_path / "weights", ("ltx2",))
    catalog = tmp_path / "catalog.toml"
    written = CATALOG.format(weights=weights["ltx2"].path).replace("gpu_memory_gb = 80\n", "")
    catalog.write_text(written)
    body = {"model": "big", "prompt": "a red cat", "resolution": "1080p", "duration": 20}
    answers = {}
    for name, size in (("named", 80.0), ("unnamed", None)):
        settings = make_settings(tmp_path / name, catalog_path=catalog, gpu_memory_gb=size)
        with live_server(settings, workers=0) as live, live.client() as client:
            answers[name] = client.post("/v1/videos/generations", json=body)
    refused, accepted = answers["named"], answers["unnamed"]
    assert refused.status_code == 400, refused.text
    assert "GiB of GPU memory" in refused.text and "at most 4 s" in refused.text
    assert accepted.status_code == 200, accepted.text  # no GPU size known: nothing planned


def test_a_planned_offload_is_dropped_where_the_engine_runs_on_the_cpu(tmp_path: Path):
    """Planned for a named GPU on a host running the engine on the CPU (a development
    machine, CI): the planner's offload has nothing to offload from, and is dropped; an
    offload the operator wrote is still refused there."""
    weights = save_all(tmp_path / "weights", ("wan_ti2v",))
    planned = Catalog.from_dict(SHIPPED, gpu_memory_gb=24).engines["wan2.2-ti2v-5b"].options
    assert planned["offload"] == "text_encoder" and planned["planned_offload"] is True
    engine = tiny_engine(
        "wan_ti2v", weights, device="cpu", offload="text_encoder", planned_offload=True
    )
    assert engine.options.offload == "none"
    written = tiny_engine("wan_ti2v", weights, device="cpu", offload="text_encoder")
    assert written.options.offload == "text_encoder"
