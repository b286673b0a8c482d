"""Every engine of the shipped GPU catalog at its real size, without a GPU.

The published configurations (tests/fixtures/full_size/, sources in its README) are built
on the meta device and taken through kinema's whole load path short of the move to a GPU
(weight checks, dtypes, schedule, LoRA conversion, speed options, as on a Hopper GPU).
Then the transformer runs once as fake tensors at every size the catalog offers and its
longest duration, and the VAE decodes the largest clip, under a dispatch mode that counts
the bytes every operation allocates: the memory planner's table must predict each within
10 %. Context parallelism over 2, 4 and 8 GPUs is checked against the catalog rules.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from kinema.catalog import Catalog
from kinema.engines.config import DIFFUSION_KINDS, EngineConfig
from kinema.engines.diffusion import accel, lora
from kinema.engines.diffusion.checks import RULES
from kinema.engines.diffusion.memory import MODELS, made_size
from kinema.engines.diffusion.options import GIB
from kinema.engines.registry import build_engine
from kinema.errors import EngineError
from tests.full_size_support import (
    build_component,
    build_pipeline,
    decode_latents,
    empty,
    fake_run,
    fixture,
    read,
    transformer_inputs,
)

SHIPPED = tomllib.loads(resources.files("kinema").joinpath("catalog.gpu.toml").read_text())
ENGINES = {name: cfg for name, cfg in SHIPPED["engines"].items() if cfg["kind"] in DIFFUSION_KINDS}
BATCH = {kind: memory.batch for kind, memory in MODELS.items()}


def local(source: str) -> Path:
    """A catalog entry's weights (a hub repository or a path ending in its name) inside
    the fixtures."""
    return fixture(source.rstrip("/").rsplit("/", 1)[-1])


def weights_of(cfg: dict[str, Any]) -> Path:
    return local(cfg.get("weights") or cfg["repo"])


def offered() -> list[Any]:
    """(engine, kind, size the engine works at, longest frames) for every size offered,
    once per transformer configuration (FastWan shares TI2V 5B's, Lightning A14B's)."""
    catalog = Catalog.from_dict(SHIPPED, plan=False)
    seen: dict[tuple[str, tuple[int, int]], tuple[str, str, tuple[int, int], int]] = {}
    for spec in catalog.models.values():
        config = catalog.engines[spec.engine]
        if config.kind not in DIFFUSION_KINDS:
            continue
        transformer = (weights_of(config.options) / "transformer/config.json").read_text()
        rules = RULES[config.kind]
        for _model, size, seconds in _offers(spec):
            made = made_size(config, size)
            frames = min(
                rules.max_frames, seconds * config.fps // rules.frame_step * rules.frame_step + 1
            )
            key = (transformer, made)
            if key not in seen or seen[key][3] < frames:
                seen[key] = (spec.engine, config.kind, made, frames)
    return [
        pytest.param(*item, id=f"{item[0]}-{item[2][0]}x{item[2][1]}-{item[3]}")
        for item in sorted(seen.values())
    ]


def _offers(spec: Any) -> list[tuple[str, tuple[int, int], int]]:
    from kinema.catalog import _offers as offers

    return offers(spec)


@pytest.fixture
def on_hopper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Engines resolve their device as a CUDA GPU of compute capability 9.0 (and the
    attention backend they set, global in diffusers, is put back after)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    monkeypatch.setattr(accel, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    active = _AttentionBackendRegistry._active_backend
    yield
    _AttentionBackendRegistry.set_active_backend(active)


def lora_from_fixture(spec: Any, engine: str) -> dict[str, torch.Tensor]:
    """The Lightning file's tensors as its key list says: meta tensors of the right shapes
    (a real scalar alpha), instead of 1.2 GB read from disk."""
    listing = read(
        local(spec.repo or spec.weights) / f"{spec.weight_name}".replace(".safetensors", ".json")
    )
    tensors: dict[str, torch.Tensor] = {}
    for key, shape in listing["keys"].items():
        if key.endswith(".alpha"):
            tensors[key] = torch.tensor(listing["alpha"])
        else:
            tensors[key] = torch.empty(shape, dtype=torch.float32, device="meta")
    return tensors


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_load_path_at_full_size(name: str, on_hopper: None, monkeypatch: pytest.MonkeyPatch):
    options = dict(ENGINES[name])
    kind = options.pop("kind")
    fps = options.pop("fps")
    weights = weights_of(options)
    monkeypatch.setattr(lora, "_state_dict", lora_from_fixture)
    if options.get("upsampler"):
        monkeypatch.setattr(
            "diffusers.LTXLatentUpsamplePipeline.from_pretrained",
            lambda path, vae, dtype: _upsampler(local(options["upsampler"]), vae),
        )
    engine: Any = build_engine(EngineConfig(name, kind, fps, options))
    pipe = build_pipeline(engine.pipeline_class, weights)
    engine.prepare(pipe)

    memory = MODELS[kind]
    for part, gib in memory.weights_gib.items():
        module = getattr(pipe, part, None) or getattr(engine, "_upsample", None)
        if part == "latent_upsampler":
            module = engine._upsample.latent_upsampler if engine._upsample else None
        if module is None:
            continue
        wide = part == "vae" and kind.startswith("wan")  # planned in float32 whatever decodes
        size = sum(p.numel() * (4 if wide else p.element_size()) for p in module.parameters())
        size /= GIB
        assert size == pytest.approx(gib, rel=0.01), part
    for transformer in accel.transformers_of(pipe):
        assert transformer.dtype == torch.bfloat16
        backends = {
            str(getattr(m.processor, "_attention_backend", None))
            for m in transformer.modules()
            if hasattr(m, "processor")
        }
        assert "AttentionBackendName._NATIVE_CUDNN" in backends
    if kind.startswith("wan"):
        assert next(pipe.vae.encoder.parameters()).dtype == torch.float32
        few = engine.options.few_step
        decoder = next(pipe.vae.decoder.parameters()).dtype
        assert decoder == (torch.bfloat16 if few else torch.float32)
    if engine.options.timesteps:
        pipe.scheduler.set_timesteps(engine.options.steps)
        got = [round(float(t)) for t in pipe.scheduler.timesteps]
        assert got[0] == 1000 and len(got) == len(engine.options.timesteps)
    if engine.options.lora:
        for part in ("transformer", "transformer_2"):
            head = getattr(pipe, part).proj_out
            assert type(head) is torch.nn.Linear  # folded and fused: no adapter left
    if kind == "wan_ti2v":
        assert pipe.config.expand_timesteps is True


def _upsampler(path: Path, vae: Any) -> Any:
    from diffusers import LTXLatentUpsamplePipeline

    upsampler = build_component(path / "latent_upsampler", "ltx", "LTXLatentUpsamplerModel")
    return LTXLatentUpsamplePipeline(latent_upsampler=upsampler.to(torch.bfloat16), vae=vae)


_TRANSFORMERS: dict[str, Any] = {}


def transformer_of(name: str) -> Any:
    """One full-size transformer per set of weights, built once for the module."""
    weights = str(weights_of(ENGINES[name]))
    if weights not in _TRANSFORMERS:
        config = read(Path(weights) / "transformer" / "config.json")
        _TRANSFORMERS.clear()  # one at a time: fake weights of a 14B model still take RAM
        import diffusers

        with torch.device("meta"):
            model = getattr(diffusers, config["_class_name"]).from_config(config)
        _TRANSFORMERS[weights] = model.to(torch.bfloat16)
    return _TRANSFORMERS[weights]


@pytest.mark.parametrize(("name", "kind", "size", "frames"), offered())
def test_transformer_at_every_offered_size_matches_the_plan(
    name: str, kind: str, size: tuple[int, int], frames: int
):
    transformer = transformer_of(name)
    width, height = size
    fps = ENGINES[name]["fps"]
    with fake_run(transformer) as memory:
        inputs = transformer_inputs(
            kind, transformer.config, width, height, frames, BATCH[kind], fps
        )
        out = transformer(**inputs)[0]
    hidden, config = inputs["hidden_states"], transformer.config
    assert out.shape[0] == BATCH[kind]
    assert out.numel() // config.out_channels == hidden.numel() // config.in_channels
    measured = memory.peak / GIB
    rules = RULES[kind]
    tokens = ((frames - 1) // rules.frame_step + 1) * rules.tokens_per_frame(width, height)
    predicted = MODELS[kind].token_gib * tokens / 1000 * BATCH[kind]
    assert predicted == pytest.approx(measured, rel=0.10)


DECODES = [
    ("wan2.2-ti2v-5b", "wan_ti2v", (1280, 704), 121),
    ("wan2.2-i2v-a14b", "wan_i2v", (832, 480), 81),
    ("ltx-video", "ltx", (1600, 896), 241),
    ("ltx-2", "ltx2", (1920, 1088), 193),
]


@pytest.mark.parametrize(("name", "kind", "size", "frames"), DECODES, ids=[d[0] for d in DECODES])
def test_vae_decode_of_the_largest_clip_matches_the_plan(
    name: str, kind: str, size: tuple[int, int], frames: int
):
    weights = weights_of(ENGINES[name])
    vae = build_component(
        weights / "vae", "diffusers", read(weights / "vae/config.json")["_class_name"]
    )
    vae.to(torch.float32 if kind.startswith("wan") else torch.bfloat16)
    width, height = size
    with fake_run(vae) as memory:
        latents = decode_latents(kind, vae, width, height, frames)
        conditioning = (
            {"temb": empty(1, dtype=torch.float32)}
            if vae.config.get("timestep_conditioning")
            else {}
        )
        video = vae.decode(latents, **conditioning, return_dict=False)[0]
    assert tuple(video.shape) == (1, 3, frames, height, width)
    predicted = MODELS[kind].decode_peak_gib(width, height, frames, tiled=False)
    assert predicted == pytest.approx(memory.peak / GIB, rel=0.10)


SPLITS = [
    ("wan2.2-ti2v-5b", (1280, 704), 121),
    ("wan2.2-i2v-a14b", (1280, 720), 81),
    ("ltx-video", (1600, 896), 241),
    ("ltx-2", (1280, 704), 481),
]


@pytest.fixture
def group(request: pytest.FixtureRequest) -> Iterator[int]:
    """A fake process group of ``world`` ranks (collectives keep shapes, move nothing)."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    world: int = request.param
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        yield world
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("group", [2, 4, 8], indirect=True)
@pytest.mark.parametrize(("name", "size", "frames"), SPLITS, ids=[s[0] for s in SPLITS])
def test_context_parallel_split_over_2_4_and_8_gpus(
    name: str, size: tuple[int, int], frames: int, group: int
):
    """kinema's context parallelism (diffusers' Ulysses split plan) on the full-size
    transformer, as rank 0 of ``group`` GPUs: refused when the catalog loads where the
    tokens of a latent frame or the heads do not divide (and for LTX, whose split plan in
    diffusers 0.42 leaves the per-token timesteps of its image-to-video pipelines whole:
    found here), else the sequence is split, the output gathered whole, and the per-rank
    peak is the planner's to within 10 %. Two
    blocks of the model (every block is split alike) keep this fast."""
    from kinema.engines.diffusion.parallel import enable_context_parallel

    cfg = ENGINES[name]
    kind, world = cfg["kind"], group
    entry = {k: v for k, v in cfg.items() if k != "lora"} | {
        "devices": [f"cuda:{i}" for i in range(world)]
    }
    if kind.startswith("ltx"):
        with pytest.raises(EngineError, match="not the per-token timesteps"):
            Catalog.from_dict({"engines": {name: entry}}, plan=False)
        return
    uneven = any(RULES[kind].tokens_per_frame(w, h) % world for w, h in RULES[kind].sizes)
    if uneven:
        with pytest.raises(EngineError, match="does not divide"):
            Catalog.from_dict({"engines": {name: entry}}, plan=False)
        return
    Catalog.from_dict({"engines": {name: entry}}, plan=False)
    config = read(weights_of(cfg) / "transformer" / "config.json") | {"num_layers": 2}
    import diffusers

    with torch.device("meta"):
        transformer = getattr(diffusers, config["_class_name"]).from_config(config)
    transformer.to(torch.bfloat16)
    enable_context_parallel(SimpleNamespace(transformer=transformer, device="cpu"), world, name)
    width, height = size
    fps = cfg["fps"]
    with fake_run(transformer) as memory:
        inputs = transformer_inputs(kind, transformer.config, width, height, frames, 1, fps)
        out = transformer(**inputs)[0]
    hidden = inputs["hidden_states"]
    assert out.numel() // config["out_channels"] == hidden.numel() // config["in_channels"]
    rules = RULES[kind]
    tokens = ((frames - 1) // rules.frame_step + 1) * rules.tokens_per_frame(width, height)
    predicted = MODELS[kind].denoise_gib(tokens, world)
    assert memory.peak / GIB == pytest.approx(predicted, rel=0.10)


def test_the_shipped_gpu_catalog_plans_clean_on_80_gb():
    from typer.testing import CliRunner

    from kinema.cli import app

    catalog = resources.files("kinema").joinpath("catalog.gpu.toml")
    result = CliRunner().invoke(
        app, ["catalog", "plan", "--catalog", str(catalog), "--gpu-memory-gb", "80"]
    )
    assert result.exit_code == 0, result.output
    assert "DOES NOT FIT" not in result.output
    assert "ltx-2" in result.output and "offload=text_encoder" in result.output
    small = CliRunner().invoke(
        app, ["catalog", "plan", "--catalog", str(catalog), "--gpu-memory-gb", "24"]
    )
    assert small.exit_code == 1 and "DOES NOT FIT" in small.output
