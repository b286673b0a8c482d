"""What a review against diffusers 0.42.1, FastVideo, LightX2V and the Wan 2.2 sources found
that tiny models had not shown: FastVideo's weights refused, Lightning LoRAs refused, ranks
that hide their peers from NCCL, a float32 decode on few-step entries, LTX-Video 0.9.7's
second stage, hub-downloaded kernels offline, and recompiles on every new shape.

Tiny random models on the CPU, loaded through the engines' real loading code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from kinema.catalog import Catalog
from kinema.engines.diffusion import accel
from kinema.engines.diffusion.options import DiffusionOptions
from kinema.engines.diffusion.parallel import rank_device
from kinema.errors import EngineError
from tests.diffusers_support import Weights, never, request, save_all, tiny_engine
from tests.tiny_pipelines import ltx_upsampler

FASTWAN = {
    "steps": 3,
    "guidance_scale": 1.0,
    "scheduler": "FlowMatchLCMScheduler",
    "scheduler_config": {"shift": 1.0},
    "timesteps": [1000, 757, 522],
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Weights]:
    return save_all(tmp_path_factory.mktemp("weights"), ("wan_ti2v", "wan_i2v", "ltx"))


def catalog_with(kind: str, *, hub_offline: bool = False, **options: Any) -> Catalog:
    engines = {"e": {"kind": kind, "fps": 24, "weights": "/models/x", **options}}
    return Catalog.from_dict({"engines": engines}, hub_offline=hub_offline)


# --- 1. FastWan: FastVideo's model_index.json ---------------------------------------------


def test_fastvideo_weights_are_recognised_as_ti2v_from_their_components(
    weights: dict[str, Weights], tmp_path: Path
):
    """FastVideo writes ``WanDMDPipeline`` and no ``expand_timesteps``; the components say
    TI2V (48-channel transformer over a 48-channel VAE, one expert, no image encoder)."""
    import shutil

    fastwan = tmp_path / "FastWan2.2-TI2V-5B-FullAttn-Diffusers"
    shutil.copytree(weights["wan_ti2v"].path, fastwan)
    index = json.loads((fastwan / "model_index.json").read_text())
    index = {k: v for k, v in index.items() if k not in ("expand_timesteps", "boundary_ratio")}
    index = {**index, "_class_name": "WanDMDPipeline", "_diffusers_version": "0.33.0.dev0"}
    (fastwan / "model_index.json").write_text(json.dumps(index))
    local = {"wan_ti2v": Weights(fastwan, weights["wan_ti2v"].footprint)}

    engine = tiny_engine("wan_ti2v", local, **FASTWAN)
    engine.setup()
    assert engine.pipeline.config.expand_timesteps is True
    assert engine.run(request(), lambda _: None, never).num_frames == 9


def test_a14b_weights_are_still_refused_as_ti2v(weights: dict[str, Weights]):
    engine = tiny_engine("wan_ti2v", {"wan_ti2v": weights["wan_i2v"]})
    with pytest.raises(EngineError, match=r"is not a Wan 2\.2 TI2V model"):
        engine.setup()


# --- 3. Lightning LoRAs in the original Wan layout --------------------------------------------


def seko_lora(transformer: Any, path: Path, *, rank: int = 4, alpha: float = 2.0) -> dict:
    """A LoRA laid out as LightX2V's Seko files: ``model.diffusion_model.`` + Wan's names,
    ``lora_down``/``lora_up``/``alpha``, float32, over blocks and the head and embeddings."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    modules = {
        "blocks.0.self_attn.q": (dim, dim),
        "blocks.1.cross_attn.v": (dim, dim),
        "head.head": (transformer.proj_out.out_features, dim),
        "time_projection.1": (6 * dim, dim),
        "text_embedding.0": (dim, transformer.config.text_dim),
        "time_embedding.0": (dim, transformer.config.freq_dim),
    }
    tensors = {}
    for name, (out_features, in_features) in modules.items():
        prefix = f"model.diffusion_model.{name}"
        tensors[f"{prefix}.lora_down.weight"] = torch.randn(rank, in_features) * 0.1
        tensors[f"{prefix}.lora_up.weight"] = torch.randn(out_features, rank) * 0.1
        tensors[f"{prefix}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return {name: tensors for name in modules} | {"_tensors": tensors}


def test_lightning_lora_in_wan_layout_loads_with_alpha_outside_the_blocks(
    weights: dict[str, Weights], tmp_path: Path
):
    """diffusers' converter raises on ``head.head.alpha`` and on the longer prefix; kinema
    folds alpha / rank into lora_up for every module and casts to the model's dtype."""
    base = tiny_engine("wan_i2v", weights, name="base", dtype="bfloat16")
    base.setup()
    path = tmp_path / "low_noise_model.safetensors"
    tensors = seko_lora(base.pipeline.transformer_2, path)["_tensors"]
    engine = tiny_engine(
        "wan_i2v",
        weights,
        dtype="bfloat16",
        lora=[{"weights": str(path), "transformer": "transformer_2"}],
    )
    engine.setup()

    def expected(diffusers_name: str, wan_name: str) -> torch.Tensor:
        plain = base.pipeline.transformer_2.get_submodule(diffusers_name).weight.float()
        up = tensors[f"model.diffusion_model.{wan_name}.lora_up.weight"]
        down = tensors[f"model.diffusion_model.{wan_name}.lora_down.weight"]
        return plain + (2.0 / 4) * up @ down

    pairs = {
        "proj_out": "head.head",
        "condition_embedder.time_proj": "time_projection.1",
        "condition_embedder.text_embedder.linear_1": "text_embedding.0",
        "condition_embedder.time_embedder.linear_1": "time_embedding.0",
        "blocks.0.attn1.to_q": "blocks.0.self_attn.q",
    }
    for ours, theirs in pairs.items():
        tuned = engine.pipeline.transformer_2.get_submodule(ours).weight
        assert type(engine.pipeline.transformer_2.get_submodule(ours)) is torch.nn.Linear
        assert tuned.dtype == base.pipeline.transformer_2.get_submodule(ours).weight.dtype
        assert torch.allclose(tuned.float(), expected(ours, theirs), atol=2e-2), ours


# --- 4. context parallelism ----------------------------------------------------------------


def test_every_rank_sees_every_gpu_and_takes_its_own_by_rank(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert rank_device(["cuda:2", "cuda:3"], 1) == "cuda:3"
    assert rank_device(["cuda", "cuda"], 1) == "cuda:1"
    assert "CUDA_VISIBLE_DEVICES" not in __import__("os").environ


def test_context_parallel_needs_tokens_that_divide_and_no_varlen_attention():
    # 1216x704 on TI2V 5B: 38 x 22 = 836 tokens a latent frame, not a multiple of 8.
    eight = [f"cuda:{i}" for i in range(8)]
    with pytest.raises(EngineError, match=r"'1216x704'.*does not divide by 8 devices"):
        catalog_with("wan_ti2v", devices=eight, sizes=["1216x704"])
    catalog_with("wan_ti2v", devices=eight[:4], sizes=["1216x704"])  # 836 = 4 x 209
    with pytest.raises(EngineError, match="not the per-token timesteps"):
        catalog_with("ltx", devices=eight[:2])
    with pytest.raises(EngineError, match="cannot be combined with devices"):
        catalog_with("wan_ti2v", devices=eight[:2], attention_backend="flash_varlen")


# --- 5. few-step entries decode in bfloat16 --------------------------------------------------


def test_few_step_entries_decode_in_bfloat16_and_encode_in_float32(weights: dict[str, Weights]):
    cuda = torch.device("cuda")
    assert accel.decode_dtype(DiffusionOptions.parse("e", {"weights": "w", **FASTWAN}), cuda) == (
        torch.bfloat16
    )
    assert accel.decode_dtype(DiffusionOptions.parse("e", {"weights": "w"}), cuda) is None
    off = {"weights": "w", **FASTWAN, "decode_dtype": "float32"}
    assert accel.decode_dtype(DiffusionOptions.parse("e", off), cuda) == torch.float32

    engine = tiny_engine("wan_ti2v", weights, decode_dtype="bfloat16", **FASTWAN)
    engine.setup()
    vae = engine.pipeline.vae
    assert next(vae.decoder.parameters()).dtype == torch.bfloat16
    assert next(vae.encoder.parameters()).dtype == torch.float32
    clip = engine.run(request(), lambda _: None, never)
    assert clip.num_frames == 9 and clip.frames[0].dtype.name == "uint8"


# --- 7. LTX-Video 0.9.7, hub kernels, compile ---------------------------------------------


def test_ltx_two_stage_uses_guidance_3_and_adain_after_upsampling(
    weights: dict[str, Weights], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from diffusers import LTXConditionPipeline, LTXLatentUpsamplePipeline

    vae = LTXConditionPipeline.from_pretrained(weights["ltx"].path).vae
    ltx_upsampler(vae).save_pretrained(tmp_path / "upsampler")
    seen: list[dict[str, Any]] = []
    original = LTXLatentUpsamplePipeline.__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LTXLatentUpsamplePipeline, "__call__", spy)
    engine = tiny_engine(
        "ltx", weights, sizes=["128x64"], steps=2, upsampler=str(tmp_path / "upsampler")
    )
    engine.setup()
    assert engine.plan(request()).guidance_scale == 3.0
    engine.run(request(), lambda _: None, never)
    assert seen and seen[0]["adain_factor"] == 1.0
    mine = tiny_engine("ltx", weights, name="g", upsampler="/u", guidance_scale=5.0)
    assert mine.plan(request()).guidance_scale == 5.0


def test_hub_attention_kernels_are_refused_offline(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(EngineError, match="downloads its kernel from the Hugging Face hub"):
        catalog_with("wan_ti2v", hub_offline=True, attention_backend="flash_hub")
    catalog_with("wan_ti2v", hub_offline=True, attention_backend="flash")
    # The catalog is told (from the settings); it never looks at the variable itself.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    catalog_with("wan_ti2v", attention_backend="flash_hub")


def test_compile_is_dynamic_so_new_shapes_do_not_recompile(
    weights: dict[str, Weights], monkeypatch: pytest.MonkeyPatch
):
    from diffusers import WanTransformer3DModel

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        WanTransformer3DModel, "compile_repeated_blocks", lambda self, **kw: calls.append(kw)
    )
    tiny_engine("wan_ti2v", weights, compile=True).setup()
    tiny_engine("wan_ti2v", weights, name="b", compile=True, compile_dynamic=False).setup()
    assert calls[0]["dynamic"] is True
    assert "dynamic" not in calls[1]
