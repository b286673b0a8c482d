"""Few-step models through HTTP: Wan 2.2 A14B with 4-step distilled LoRAs (LightX2V's
recipe: Euler, shift 5, timesteps 1000/750/500/250, no guidance) and a distilled TI2V
checkpoint in diffusers layout (FastWan's recipe: a consistency sampler at 1000/757/522).

Tiny random models and LoRAs are built here and saved to disk; one LoRA is found as a hub
id in a local Hugging Face cache laid out on disk, with nothing downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kinema.engines.diffusion.engine import DiffusionEngine
from kinema.errors import EngineError
from tests.diffusers_support import Weights, create, never, request, save_all, tiny_engine, watch
from tests.support import LiveServer, live_server, make_settings, probe
from tests.tiny_pipelines import save_tiny_lora, to_original_wan_lora

HUB_ID = "tiny-org/wan22-lightning"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Weights]:
    return save_all(tmp_path_factory.mktemp("weights"), ("wan_i2v", "wan_ti2v"))


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory, weights: dict[str, Weights]) -> dict[str, Path]:
    """A high-noise LoRA in a local hub cache (as ``hf download`` leaves it) and a
    low-noise one as a plain file."""
    from diffusers import WanImageToVideoPipeline

    root = tmp_path_factory.mktemp("loras")
    pipe = WanImageToVideoPipeline.from_pretrained(weights["wan_i2v"].path)
    snapshot = root / "hub" / "models--tiny-org--wan22-lightning" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (root / "hub" / "models--tiny-org--wan22-lightning" / "refs").mkdir()
    (root / "hub" / "models--tiny-org--wan22-lightning" / "refs" / "main").write_text("0" * 40)
    high = save_tiny_lora(pipe.transformer, snapshot / "high_noise_model.safetensors", seed=1)
    low = save_tiny_lora(pipe.transformer_2, root / "low_noise_model.safetensors", seed=2)
    return {"hub": root / "hub", "high": high, "low": low}


@pytest.fixture
def hub_cache(loras: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(loras["hub"]))
    return loras["hub"]


LIGHTNING = {
    "steps": 4,
    "guidance_scale": 1.0,
    "guidance_scale_2": 1.0,
    "scheduler": "FlowMatchEulerDiscreteScheduler",
    "scheduler_config": {"shift": 5.0},
    "timesteps": [1000, 750, 500, 250],
}
FASTWAN = {
    "steps": 3,
    "guidance_scale": 1.0,
    "scheduler": "FlowMatchLCMScheduler",
    "scheduler_config": {"shift": 1.0},
    "timesteps": [1000, 757, 522],
}


def lightning_loras(loras: dict[str, Path]) -> list[dict[str, Any]]:
    return [
        {"weights": HUB_ID, "weight_name": "high_noise_model.safetensors"},
        {"weights": str(loras["low"]), "transformer": "transformer_2", "scale": 1.0},
    ]


def calls_of(engine: DiffusionEngine) -> dict[str, list[float]]:
    """Timesteps of every forward of each transformer."""
    seen: dict[str, list[float]] = {"transformer": [], "transformer_2": []}
    for name in seen:
        module = getattr(engine.pipeline, name, None)
        if module is not None:
            module.register_forward_pre_hook(
                lambda _m, _a, kwargs, n=name: seen[n].append(float(kwargs["timestep"].max())),
                with_kwargs=True,
            )
    return seen


# --- the engines ---------------------------------------------------------------------------


def test_distilled_loras_load_into_both_experts_and_are_fused(
    weights: dict[str, Weights], loras: dict[str, Path], hub_cache: Path
):
    plain = tiny_engine("wan_i2v", weights, name="plain", **LIGHTNING)
    plain.setup()
    engine = tiny_engine("wan_i2v", weights, lora=lightning_loras(loras), **LIGHTNING)
    engine.setup()
    for name in ("transformer", "transformer_2"):
        base = getattr(plain.pipeline, name).blocks[0].attn1.to_q
        tuned = getattr(engine.pipeline, name).blocks[0].attn1.to_q
        assert type(tuned) is torch.nn.Linear  # fused: no adapter layers left per step
        assert not torch.equal(base.weight, tuned.weight)

    ours = np.stack(list(engine.run(request(), lambda _: None, never).frames))
    theirs = np.stack(list(plain.run(request(), lambda _: None, never).frames))
    assert ours.shape == theirs.shape and not np.array_equal(ours, theirs)


def test_lora_scale_and_the_original_wan_key_layout_are_honoured(
    weights: dict[str, Weights], loras: dict[str, Path], tmp_path: Path
):
    """LightX2V ships its LoRAs in the original Wan key layout (lora_down / lora_up /
    alpha); diffusers converts them, and the result matches the peft-format file."""
    original = to_original_wan_lora(loras["low"], tmp_path / "low_original.safetensors")

    def fused(**lora: Any) -> torch.Tensor:
        spec = {"transformer": "transformer_2", **lora}
        engine = tiny_engine("wan_i2v", weights, name=str(lora), lora=[spec])
        engine.setup()
        return engine.pipeline.transformer_2.blocks[1].attn2.to_v.weight.detach().clone()

    base = tiny_engine("wan_i2v", weights, name="base")
    base.setup()
    plain = base.pipeline.transformer_2.blocks[1].attn2.to_v.weight
    tuned = fused(weights=str(loras["low"]))
    assert not torch.allclose(tuned, plain)
    assert torch.allclose(fused(weights=str(original)), tuned, atol=1e-6)
    halfway = fused(weights=str(loras["low"]), scale=0.5)
    assert torch.allclose(halfway, (plain + tuned) / 2, atol=1e-6)


def test_a_lora_missing_from_the_local_cache_is_refused_without_downloading(
    weights: dict[str, Weights], hub_cache: Path
):
    missing = [{"weights": "tiny-org/absent", "weight_name": "x.safetensors"}]
    with pytest.raises(EngineError, match="not in the local Hugging Face cache") as refused:
        tiny_engine("wan_i2v", weights, lora=missing).setup()
    assert "hf download tiny-org/absent x.safetensors" in refused.value.message


def test_consistency_sampler_is_seeded_by_the_job(weights: dict[str, Weights]):
    engine = tiny_engine("wan_ti2v", weights, **FASTWAN)
    engine.setup()
    first = np.stack(list(engine.run(request(seed=3), lambda _: None, never).frames))
    again = np.stack(list(engine.run(request(seed=3), lambda _: None, never).frames))
    other = np.stack(list(engine.run(request(seed=4), lambda _: None, never).frames))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


# --- through the HTTP API ------------------------------------------------------------------

CATALOG = """
[engines.tiny-lightning]
kind = "wan_i2v"
fps = 8
weights = "{a14b}"
sizes = ["64x32"]
max_sequence_length = 16
audio = "refuse"
steps = 4
guidance_scale = 1.0
guidance_scale_2 = 1.0
scheduler = "FlowMatchEulerDiscreteScheduler"
scheduler_config = {{ shift = 5.0 }}
timesteps = [1000, 750, 500, 250]

[[engines.tiny-lightning.lora]]
weights = "{hub_id}"
weight_name = "high_noise_model.safetensors"

[[engines.tiny-lightning.lora]]
weights = "{low}"
transformer = "transformer_2"

[engines.tiny-fastwan]
kind = "wan_ti2v"
fps = 8
weights = "{ti2v}"
sizes = ["64x32"]
max_sequence_length = 16
steps = 3
guidance_scale = 1.0
scheduler = "FlowMatchLCMScheduler"
scheduler_config = {{ shift = 1.0 }}
timesteps = [1000, 757, 522]

[models.tiny-lightning]
dialect = "unified"
engine = "tiny-lightning"
inputs = "image"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
audio = false
options = ["duration", "seed"]

[models.tiny-fastwan]
dialect = "unified"
engine = "tiny-fastwan"
inputs = "any"
durations = [1]
default_duration = 1
aspect_ratios = ["16:9"]
resolutions = ["720p"]
options = ["duration", "seed"]
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    weights: dict[str, Weights],
    loras: dict[str, Path],
) -> Iterator[LiveServer]:
    import huggingface_hub.constants

    root = tmp_path_factory.mktemp("few-step-server")
    catalog = root / "catalog.toml"
    catalog.write_text(
        CATALOG.format(
            a14b=weights["wan_i2v"].path,
            ti2v=weights["wan_ti2v"].path,
            hub_id=HUB_ID,
            low=loras["low"],
        )
    )
    patch = pytest.MonkeyPatch()
    patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(loras["hub"]))
    try:
        with live_server(make_settings(root, catalog_path=catalog), workers=1) as live:
            yield live
    finally:
        patch.undo()


def test_lightning_lora_entry_makes_a_video_in_four_forwards_over_http(server: LiveServer):
    engine = server.runtime.engines.get("tiny-lightning")
    assert isinstance(engine, DiffusionEngine)
    seen = calls_of(engine)

    task, _ = watch(server, create(server, "tiny-lightning", seed=5)["id"])
    assert task["status"] == "completed", task
    # One forward per step (guidance 1.0: no unconditional pass), the high-noise expert on
    # the first two (shifted timesteps 1000 and 937.5 are above the 875 boundary).
    assert seen["transformer"] == pytest.approx([1000.0, 937.5])
    assert seen["transformer_2"] == pytest.approx([833.33, 625.0], abs=0.01)
    with server.client() as client:
        video = probe(client.get(task["results"][0]).content)
    assert (video.frames, video.width, video.height) == (9, 64, 32)


def test_distilled_checkpoint_entry_makes_a_video_in_three_forwards_over_http(
    server: LiveServer,
):
    engine = server.runtime.engines.get("tiny-fastwan")
    assert isinstance(engine, DiffusionEngine)
    seen = calls_of(engine)

    task, _ = watch(server, create(server, "tiny-fastwan", seed=5)["id"])
    assert task["status"] == "completed", task
    assert seen["transformer"] == pytest.approx([1000.0, 757.0, 522.0])
    with server.client() as client:
        video = probe(client.get(task["results"][0]).content)
    assert (video.frames, video.width, video.height) == (9, 64, 32)
