"""Step caches beyond first-block (MagCache, TaylorSeer; FasterCache refused) and float8
layers: each one applied on a tiny model and seen to skip work, or refused with a message
that says why."""

from __future__ import annotations

from typing import Any

import pytest

from kinema.catalog import Catalog
from kinema.engines.diffusion.engine import DiffusionEngine
from kinema.errors import EngineError
from tests.diffusers_support import Weights, never, request, save_all, tiny_engine


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Weights]:
    return save_all(tmp_path_factory.mktemp("weights"), ("wan_ti2v",))


def block_calls(engine: DiffusionEngine) -> list[int]:
    """Attention passes of the transformer's last block (a cache that reuses the block's
    or its attention's output skips them)."""
    calls: list[int] = []
    engine.pipeline.transformer.blocks[-1].attn1.to_q.register_forward_pre_hook(
        lambda *_: calls.append(1)
    )
    return calls


def run_counting(kind: str, weights: dict[str, Weights], **options: Any) -> int:
    engine = tiny_engine(kind, weights, **options)
    engine.setup()
    calls = block_calls(engine)
    clip = engine.run(request(), lambda _: None, never)
    assert clip.num_frames == 9
    return len(calls)


@pytest.mark.parametrize(
    ("cache", "config"),
    [
        ("mag", {"mag_ratios": [1.0] * 6, "threshold": 1.0, "retention_ratio": 0.0}),
        ("taylorseer", {"cache_interval": 3, "disable_cache_before_step": 1}),
    ],
)
def test_step_caches_skip_transformer_blocks_on_wan(
    weights: dict[str, Weights], cache: str, config: dict[str, Any]
):
    plain = run_counting("wan_ti2v", weights, steps=6)
    cached = run_counting("wan_ti2v", weights, steps=6, cache=cache, cache_config=config)
    assert plain == 6 * 2  # every step, both guidance branches
    assert 0 < cached < plain


def test_faster_cache_is_refused_when_the_catalog_loads():
    for kind in ("wan_ti2v", "ltx", "ltx2"):
        engines = {"e": {"kind": kind, "fps": 24, "weights": "/w", "cache": "faster"}}
        with pytest.raises(EngineError, match="does not apply to these models"):
            Catalog.from_dict({"engines": engines})


def test_mag_cache_calibration_runs_and_settings_diffusers_refuses_are_reported(
    weights: dict[str, Weights],
):
    engine = tiny_engine("wan_ti2v", weights, cache="mag", cache_config={"calibrate": True})
    engine.setup()
    assert engine.run(request(), lambda _: None, never).num_frames == 9
    with pytest.raises(EngineError, match=r"cannot be applied: .*unexpected keyword"):
        tiny_engine("wan_ti2v", weights, cache="taylorseer", cache_config={"bogus": 1}).setup()


def test_fp8_layers_are_refused_where_they_cannot_run(weights: dict[str, Weights]):
    with pytest.raises(EngineError, match=r"needs an NVIDIA GPU with compute capability 8\.9"):
        tiny_engine("wan_ti2v", weights, quantize="fp8").setup()
