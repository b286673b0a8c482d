"""Each diffusers model run as its weights expect: pipelines, devices, dtypes, guidance
recipes, and catalog entries refused when they load if the model cannot do what they ask.

Tiny random-weight models on the CPU (tests/tiny_pipelines.py), loaded by path through
the engines' real loading code.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch

from kinema.catalog import Catalog
from kinema.engines.diffusion.engine import DiffusionEngine
from kinema.errors import EngineError
from tests.diffusers_support import Weights, never, request, save_all, tiny_engine
from tests.support import pattern_image
from tests.tiny_pipelines import ltx_upsampler, wan_ti2v


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Weights]:
    return save_all(tmp_path_factory.mktemp("weights"))


def spy_on_calls(pipe: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record the keyword arguments of every call of ``pipe``'s pipeline class, and the
    device it executed on."""
    calls: list[dict[str, Any]] = []
    original = type(pipe).__call__

    @functools.wraps(original)  # the engine reads the call's signature
    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append({**kwargs, "_execution_device": self._execution_device})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    return calls


def count_transformer_calls(engine: DiffusionEngine) -> list[torch.Size]:
    """The shape of the video tokens of each transformer call."""
    shapes: list[torch.Size] = []

    def record(module: Any, args: Any, kwargs: Any) -> None:
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        shapes.append(hidden.shape)

    engine.pipeline.transformer.register_forward_pre_hook(record, with_kwargs=True)
    return shapes


def catalog_with(kind: str, **options: Any) -> Catalog:
    return Catalog.from_dict(
        {"engines": {"e": {"kind": kind, "fps": 24, "weights": "/models/x", **options}}}
    )


# --- LTX-Video -----------------------------------------------------------------------------


def test_ltx_image_to_video_runs_the_condition_pipeline_with_the_generator_where_it_runs(
    weights: dict[str, Weights], monkeypatch: pytest.MonkeyPatch
):
    from diffusers import LTXConditionPipeline

    engine = tiny_engine("ltx", weights)
    engine.setup()
    pipe = engine.pipeline
    assert isinstance(pipe, LTXConditionPipeline)
    assert pipe.vae.config.timestep_conditioning  # decoding draws noise with the generator
    calls = spy_on_calls(pipe, monkeypatch)

    clip = engine.run(request(last_image=pattern_image(160, 90)), lambda _: None, never)
    assert (clip.width, clip.height, clip.num_frames) == (64, 32, 9)
    (call,) = calls
    assert call["generator"].device == call["_execution_device"]
    # LTX-Video 0.9.7's recommended settings, and both frames as conditions.
    assert call["guidance_scale"] == 5.0
    assert (call["decode_timestep"], call["decode_noise_scale"]) == (0.05, 0.025)
    assert call["image_cond_noise_scale"] == 0.025
    assert call["frame_index"] == [0, 8] and len(call["image"]) == 2


def test_ltx_two_stage_recipe_denoises_small_upsamples_and_refines(
    weights: dict[str, Weights], tmp_path: Path
):
    from diffusers import LTXConditionPipeline

    vae = LTXConditionPipeline.from_pretrained(weights["ltx"].path).vae
    ltx_upsampler(vae).save_pretrained(tmp_path / "upsampler")
    engine = tiny_engine(
        "ltx",
        weights,
        sizes=["128x64"],
        steps=3,
        upsampler=str(tmp_path / "upsampler"),
        refine_steps=4,
        refine_strength=0.5,
    )
    engine.setup()
    shapes = count_transformer_calls(engine)
    upsampled: list[torch.Size] = []
    engine._upsample.latent_upsampler.register_forward_hook(  # type: ignore[attr-defined]
        lambda _m, _a, out: upsampled.append(out.shape)
    )
    decodes: list[int] = []
    engine.pipeline.vae.decoder.register_forward_pre_hook(lambda *_: decodes.append(1))
    progress: list[float] = []

    clip = engine.run(request(), progress.append, never)
    assert (clip.width, clip.height, clip.num_frames) == (128, 64, 9)
    first, refine = shapes[:3], shapes[3:]
    assert len(first) == 3 and len(refine) == 2  # 4 refine steps at strength 0.5
    assert all(shape[0] == 2 for shape in shapes)  # guidance: both branches in one batch
    assert refine[0][1] == 4 * first[0][1]  # 2x upsampled in each direction: 4x the tokens
    assert len(upsampled) == 1
    assert len(decodes) == 1  # only the refined latents are decoded
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_flash_and_sage_attention_are_refused_for_ltx_when_the_catalog_loads():
    for kind, backend in [("ltx", "flash"), ("ltx2", "sage"), ("ltx", "_native_flash")]:
        with pytest.raises(EngineError, match="rejects the text attention mask") as refused:
            catalog_with(kind, attention_backend=backend)
        assert f"engine e (kind {kind})" in refused.value.message
    catalog_with("wan_ti2v", attention_backend="flash")  # Wan passes no mask: allowed
    catalog_with("ltx", attention_backend="flash_varlen")


# --- LTX-2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "calls_per_step"), [(None, 1), ("2.3", 3)])
def test_ltx2_guidance_recipe_follows_the_model_version(
    weights: dict[str, Weights],
    monkeypatch: pytest.MonkeyPatch,
    version: str | None,
    calls_per_step: int,
):
    options: dict[str, Any] = {"version": version, "stg_blocks": [1]} if version else {}
    engine = tiny_engine("ltx2", weights, steps=2, **options)
    engine.setup()
    shapes = count_transformer_calls(engine)
    calls = spy_on_calls(engine.pipeline, monkeypatch)

    engine.run(request(), lambda _: None, never)
    assert len(shapes) == 2 * calls_per_step
    assert shapes[0][0] == 2  # conditional and unconditional branches batched
    (call,) = calls
    assert call["use_cross_timestep"] is (version == "2.3")
    assert call["modality_scale"] == (3.0 if version else 1.0)
    assert engine.version(engine.pipeline) == (version or "2.0")  # type: ignore[attr-defined]


# --- Wan 2.2 -------------------------------------------------------------------------------


def test_wan_vae_decodes_in_float32_under_a_bfloat16_transformer(weights: dict[str, Weights]):
    engine = tiny_engine("wan_ti2v", weights, dtype="bfloat16")
    engine.setup()
    pipe = engine.pipeline
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32
    decoded: list[torch.dtype] = []
    pipe.vae.decoder.register_forward_pre_hook(lambda _m, args: decoded.append(args[0].dtype))

    clip = engine.run(request(), lambda _: None, never)
    assert clip.num_frames == 9
    assert decoded and set(decoded) == {torch.float32}


# --- what the catalog may ask of a model ---------------------------------------------------


def test_sizes_off_the_models_multiple_are_refused_when_the_catalog_loads():
    with pytest.raises(EngineError, match=r"sizes \['1280x720'\] are not multiples of 32"):
        catalog_with("wan_ti2v", sizes=["1280x720"])
    with pytest.raises(EngineError, match="not multiples of 32"):
        catalog_with("ltx", sizes=["1280x720"])
    with pytest.raises(EngineError, match="not multiples of 16"):
        catalog_with("wan_i2v", sizes=["840x480"])
    catalog_with("wan_i2v", sizes=["1280x720", "832x480"])  # A14B works in steps of 16
    catalog_with("wan_ti2v", sizes=["1280x704"])


def test_options_a_model_lacks_are_refused_when_the_catalog_loads():
    refusals = [
        ("wan_ti2v", {"version": "2.3"}, "LTX-2 engines only"),
        ("ltx2", {"upsampler": "/models/up"}, "LTX-Video engines only"),
        ("wan_ti2v", {"lora": {"weights": "/l", "transformer": "transformer_2"}}, "two experts"),
        ("wan_ti2v", {"cache": "mag"}, "mag_ratios"),
        ("wan_ti2v", {"cache": "faster"}, "FasterCache"),
        ("wan_ti2v", {"timesteps": [1000, 500], "steps": 3}, "set steps to that count"),
        ("wan_ti2v", {"devices": ["cuda:0"]}, "devices lists one device"),
        ("ltx", {"quantize": "fp8", "device": "cpu"}, "needs an NVIDIA GPU"),
    ]
    for kind, options, message in refusals:
        with pytest.raises(EngineError, match=message):
            catalog_with(kind, **options)


def test_compile_with_a_step_cache_runs_with_graph_breaks(weights: dict[str, Weights]):
    """The cache hooks keep Python state that dynamo cannot put in one graph: compiled
    with fullgraph the first step fails; without it the blocks compile around the hooks."""
    from diffusers.hooks import FirstBlockCacheConfig

    broken = wan_ti2v()
    broken.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.05))
    broken.transformer.compile_repeated_blocks(fullgraph=True, backend="eager")
    with pytest.raises(torch._dynamo.exc.Unsupported):
        broken(
            image=pattern_image(64, 32),
            prompt="a cat",
            height=32,
            width=64,
            num_frames=5,
            num_inference_steps=1,
            max_sequence_length=16,
            output_type="pt",
        )

    engine = tiny_engine(
        "wan_ti2v", weights, compile=True, compile_backend="eager", cache="first_block"
    )
    engine.setup()
    assert engine.pipeline.transformer.blocks[0]._compiled_call_impl is not None
    clip = engine.run(request(), lambda _: None, never)
    assert clip.num_frames == 9
