"""GPU memory planned before a job is accepted: each (engine, size, frames, GPU count) peak.

A clip's peak is the larger of two phases, each on top of the weights resident then:

- denoise: the transformer's activations, linear in the video tokens of one call (flash-
  style attention keeps no token x token matrix), times the batch of a call (2 where the
  pipeline batches both guidance branches); with context parallelism the split share of
  them (96 % for TI2V 5B, 89 % for A14B, measured) divides by the GPUs;
- decode: the VAE's activations. Wan's VAE decodes one latent frame at a time, so its
  peak follows the frame size only; LTX's VAEs decode the whole clip at once, so theirs
  follow frames x pixels; decoding in tiles bounds either. The decoded clip itself
  (float RGB) is held on top.

The coefficients were measured by running the full-size models as fake tensors (nothing
allocated) under a dispatch mode that adds up every storage an operation creates and
takes it off when freed: ``tests/test_engines_full_size.py`` measures them again on every
run and fails if this table drifts from the models by more than 10 %. Weights are the
parameter counts of the published configurations at the serving dtypes.

At catalog load the planner picks, per engine, the cheapest measures that make every
offered combination fit (nothing; VAE tiling; text-encoder offload; both; model offload);
a request for a combination that fits under none is refused with a 400 before it is
queued (a model none of whose combinations fit is named in the log at startup).
``kinema catalog plan`` prints the whole table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kinema.engines.diffusion.checks import RULES
from kinema.engines.diffusion.options import DiffusionOptions
from kinema.engines.diffusion.shapes import FrameRule, fit_size

log = logging.getLogger(__name__)

GIB = 1024**3
RESERVE_GIB = 1.5  # CUDA context, cuBLAS and cuDNN workspaces: outside PyTorch's allocator
HEADROOM = 0.05  # of the card: the caching allocator's fragmentation


@dataclass(frozen=True)
class ModelMemory:
    """One model family's memory, as measured on its full-size configuration."""

    weights_gib: dict[str, float]  # component -> GiB at the serving dtypes
    token_gib: float  # denoise activation peak per 1000 video tokens of one batch item
    batch: int  # batch of one transformer call
    # Decode activation peak per megapixel of frame, times the frames for a VAE that
    # decodes the whole clip at once (LTX); Wan's decodes one latent frame at a time.
    decode_gib: float
    tiled_decode_gib: float  # the same, decoding in tiles
    whole_clip_decode: bool
    output_bytes: int  # bytes per decoded value (float32 Wan VAE, bfloat16 LTX)
    experts: tuple[str, ...] = ("transformer",)  # denoisers used one after the other
    text_encoders: tuple[str, ...] = ("text_encoder",)
    # Share of the denoise activations that context parallelism splits across the GPUs
    # (the rest, e.g. the full-length input and the gathered output, stays whole).
    split_share: float = 1.0

    def denoise_gib(self, tokens: int, world: int) -> float:
        whole = self.token_gib * tokens / 1000 * self.batch
        if world <= 1:
            return whole
        return whole * (self.split_share / world + 1 - self.split_share)

    def resident_gib(self, offload: str) -> float:
        weights = self.weights_gib
        if offload == "text_encoder":
            return sum(v for k, v in weights.items() if k not in self.text_encoders)
        return sum(weights.values())

    def decode_peak_gib(self, width: int, height: int, frames: int, tiled: bool) -> float:
        """The VAE decode's activations and the decoded clip."""
        pixels = width * height / 1e6
        unit = pixels * (frames if self.whole_clip_decode else 1)
        activations = (self.tiled_decode_gib if tiled else self.decode_gib) * unit
        return activations + frames * width * height * 3 * self.output_bytes / GIB


# Measured on tests/fixtures/full_size/ (see the module docstring). Weights: bfloat16, Wan's
# VAE float32. Tokens: per 1000 video tokens; decode: per million output pixels.
MODELS: dict[str, ModelMemory] = {
    "wan_ti2v": ModelMemory(
        weights_gib={"transformer": 9.313, "text_encoder": 10.582, "vae": 2.626},
        token_gib=0.1862,
        batch=1,
        decode_gib=20.07,
        tiled_decode_gib=1.499,
        whole_clip_decode=False,
        output_bytes=4,
        split_share=0.963,
    ),
    "wan_i2v": ModelMemory(
        weights_gib={
            "transformer": 26.616,
            "transformer_2": 26.616,
            "text_encoder": 10.582,
            "vae": 0.473,
        },
        token_gib=0.1060,
        batch=1,
        decode_gib=18.15,
        tiled_decode_gib=1.325,
        whole_clip_decode=False,
        output_bytes=4,
        experts=("transformer", "transformer_2"),
        split_share=0.889,
    ),
    "ltx": ModelMemory(
        weights_gib={
            "transformer": 24.295,
            "text_encoder": 8.870,
            "vae": 2.323,
            "latent_upsampler": 0.235,
        },
        token_gib=0.2215,
        batch=2,
        decode_gib=0.0876,
        tiled_decode_gib=0.0147,
        whole_clip_decode=True,
        output_bytes=2,
    ),
    "ltx2": ModelMemory(
        weights_gib={
            "transformer": 35.159,
            "text_encoder": 22.700,
            "connectors": 2.665,
            "vae": 2.276,
            "audio_vae": 0.099,
            "vocoder": 0.104,
        },
        token_gib=0.3138,
        batch=2,
        decode_gib=0.0730,
        tiled_decode_gib=0.0127,
        whole_clip_decode=True,
        output_bytes=2,
    ),
}


@dataclass(frozen=True)
class Combination:
    """One offered (size, duration) of a model, as its engine makes it."""

    model: str
    size: tuple[int, int]  # the frame size the engine makes
    duration_s: int
    frames: int


@dataclass(frozen=True)
class Prediction:
    combination: Combination
    peak_gib: float
    measures: tuple[str, ...]
    fits: bool


@dataclass(frozen=True)
class EnginePlan:
    """What the planner chose for one engine at a GPU size."""

    engine: str
    gpu_gib: float
    measures: tuple[str, ...]  # "vae_tiling", "offload=text_encoder", "offload=model"
    predictions: tuple[Prediction, ...] = field(default_factory=tuple)

    @property
    def refused(self) -> list[Prediction]:
        return [p for p in self.predictions if not p.fits]

    def options(self) -> dict[str, Any]:
        """The catalog options the measures stand for."""
        chosen: dict[str, Any] = {}
        for measure in self.measures:
            if measure == "vae_tiling":
                chosen["vae_tiling"] = True
            elif measure.startswith("offload="):
                chosen["offload"] = measure.partition("=")[2]
                chosen["planned_offload"] = True
        return chosen


def usable_gib(gpu_gib: float) -> float:
    """What a job may use of a card of ``gpu_gib``."""
    return gpu_gib * (1 - HEADROOM) - RESERVE_GIB


def peak_gib(
    kind: str,
    width: int,
    height: int,
    frames: int,
    *,
    world: int = 1,
    vae_tiling: bool = False,
    offload: str = "none",
) -> float:
    """Predicted peak GiB on one GPU (rank 0, which also decodes) for one clip."""
    memory = MODELS[kind]
    rules = RULES[kind]
    latent = (frames - 1) // rules.frame_step + 1
    tokens = latent * rules.tokens_per_frame(width, height)
    denoise = memory.denoise_gib(tokens, world)
    decode = memory.decode_peak_gib(width, height, frames, vae_tiling)
    weights = memory.weights_gib
    if offload in ("model", "sequential"):
        biggest = max(weights[name] for name in memory.experts)
        streamed = 0.0 if offload == "sequential" else biggest
        return max(streamed + denoise, weights.get("vae", 0.0) + decode)
    return memory.resident_gib(offload) + max(denoise, decode)


MEASURES: tuple[tuple[str, ...], ...] = (
    (),
    ("vae_tiling",),
    ("offload=text_encoder",),
    ("vae_tiling", "offload=text_encoder"),
    ("vae_tiling", "offload=model"),
)


def plan_engine(
    engine: str,
    kind: str,
    options: DiffusionOptions,
    fps: int,
    offers: Iterable[tuple[str, tuple[int, int], int]],
    gpu_gib: float,
) -> EnginePlan:
    """The cheapest measures under which every offer (model, requested size, seconds)
    fits on ``gpu_gib``; the strongest, and the offers that still do not fit, otherwise."""
    combinations = _combinations(kind, options, fps, offers)
    world = max(1, len(options.devices))
    given = _given_measures(options)
    choices = [given] if not options.plan_memory else _escalations(given)
    if world > 1:  # offload cannot be combined with context parallelism: tiling only
        choices = [m for m in choices if not any(x.startswith("offload=") for x in m)]
    best: EnginePlan | None = None
    for measures in choices:
        predictions = tuple(_predict(kind, c, measures, world, gpu_gib) for c in combinations)
        best = EnginePlan(engine, gpu_gib, measures, predictions)
        if not best.refused:
            return best
    assert best is not None
    return best


def _escalations(given: tuple[str, ...]) -> list[tuple[str, ...]]:
    chosen = [m for m in MEASURES if set(given) <= set(m) or not given]
    return [given, *chosen] if given else chosen


def _given_measures(options: DiffusionOptions) -> tuple[str, ...]:
    given: list[str] = []
    if options.vae_tiling:
        given.append("vae_tiling")
    if options.offload != "none":
        given.append(f"offload={options.offload}")
    return tuple(given)


def _predict(
    kind: str, combination: Combination, measures: tuple[str, ...], world: int, gpu_gib: float
) -> Prediction:
    offload = next((m.partition("=")[2] for m in measures if m.startswith("offload=")), "none")
    width, height = combination.size
    peak = peak_gib(
        kind,
        width,
        height,
        combination.frames,
        world=world,
        vae_tiling="vae_tiling" in measures,
        offload=offload,
    )
    return Prediction(combination, peak, measures, peak <= usable_gib(gpu_gib))


def _combinations(
    kind: str,
    options: DiffusionOptions,
    fps: int,
    offers: Iterable[tuple[str, tuple[int, int], int]],
) -> list[Combination]:
    rules = RULES[kind]
    sizes = options.sizes or rules.sizes
    rule = FrameRule(rules.frame_step, min(rules.max_frames, options.max_frames or 10**6))
    found: dict[tuple[str, tuple[int, int], int], Combination] = {}
    for model, (width, height), seconds in offers:
        size = working_size(kind, options, fit_size(width, height, sizes))
        frames = rule.fit(seconds * fps + 1)
        found.setdefault((model, size, seconds), Combination(model, size, seconds, frames))
    return list(found.values())


def working_size(kind: str, options: DiffusionOptions, size: tuple[int, int]) -> tuple[int, int]:
    """The size the transformer and VAE work at: LTX-Video's two-stage recipe refines and
    decodes at twice its first stage (2/3 of the size, rounded down to 32), then resizes."""
    if kind != "ltx" or options.upsampler is None:
        return size
    step = 32
    width, height = size
    small_w = max(step, int(width * options.upsample_scale) // step * step)
    small_h = max(step, int(height * options.upsample_scale) // step * step)
    return small_w * 2, small_h * 2


Offer = tuple[str, tuple[int, int], int]  # model id, requested frame size, seconds


def plan_catalog(
    engines: dict[str, Any], offers: dict[str, list[Offer]], gpu_gib: float | None, *, strict: bool
) -> tuple[dict[str, Any], dict[str, EnginePlan]]:
    """Plan every diffusers engine that models offer: the engines with the chosen measures
    added to their options, and each engine's plan. ``gpu_gib`` overrides the engines' own
    ``gpu_memory_gb`` (and the detected GPU). A model with no offered combination that
    fits at all is logged (its requests are refused), or with ``strict`` raises
    ``EngineError``."""
    from kinema.engines.config import DIFFUSION_KINDS, EngineConfig
    from kinema.errors import EngineError

    planned = dict(engines)
    plans: dict[str, EnginePlan] = {}
    for name, config in engines.items():
        if config.kind not in DIFFUSION_KINDS or not offers.get(name):
            continue
        options = DiffusionOptions.parse(name, config.options)
        gib = gpu_gib or options.gpu_memory_gb or detected_gpu_gib(options)
        if gib is None:
            continue
        plan = plan_engine(name, config.kind, options, config.fps, offers[name], gib)
        plans[name] = plan
        if options.plan_memory and plan.options():
            planned[name] = EngineConfig(
                name, config.kind, config.fps, {**config.options, **plan.options()}
            )
        hopeless = _models_that_never_fit(plan)
        if hopeless:
            message = (
                f"engine {name}: models {hopeless} fit in none of their sizes and durations on "
                f"a {gib:g} GiB GPU, even with {', '.join(plan.measures) or 'no measures'} "
                f"(smallest predicted peak {_smallest(plan, hopeless):.1f} GiB of "
                f"{usable_gib(gib):.1f} usable); give them a bigger GPU or drop the engine"
            )
            if strict:
                raise EngineError(message)
            log.warning("%s; their requests are refused", message)
    return planned, plans


def _models_that_never_fit(plan: EnginePlan) -> list[str]:
    models = {p.combination.model for p in plan.predictions}
    fitting = {p.combination.model for p in plan.predictions if p.fits}
    return sorted(models - fitting)


def _smallest(plan: EnginePlan, models: list[str]) -> float:
    return min(p.peak_gib for p in plan.predictions if p.combination.model in models)


def detected_gpu_gib(options: DiffusionOptions) -> float | None:
    """The memory of the GPU the engine runs on, where torch sees one; None otherwise."""
    if (options.device or "cuda").startswith("cpu"):
        return None
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    device = torch.device(options.devices[0] if options.devices else options.device or "cuda")
    return float(torch.cuda.get_device_properties(device).total_memory) / GIB


def check_request(
    plan: EnginePlan, config: Any, model: str, requested: tuple[int, int], seconds: int
) -> str | None:
    """Why one request does not fit under the engine's plan (the 400's text), or None."""
    options = DiffusionOptions.parse(config.name, config.options)
    world = max(1, len(options.devices))
    combination = _combinations(config.kind, options, config.fps, [(model, requested, seconds)])[0]
    prediction = _predict(config.kind, combination, plan.measures, world, plan.gpu_gib)
    if prediction.fits:
        return None
    width, height = combination.size
    fitting = [
        p.combination.duration_s
        for p in plan.predictions
        if p.fits and (p.combination.model, p.combination.size) == (model, combination.size)
    ]
    shorter = f"; at this size it makes at most {max(fitting)} s" if fitting else ""
    return (
        f"{seconds} s at {width}x{height} needs about {prediction.peak_gib:.1f} GiB of GPU "
        f"memory and this server's GPU has {usable_gib(plan.gpu_gib):.1f} GiB usable{shorter}"
    )


def made_size(config: Any, requested: tuple[int, int]) -> tuple[int, int]:
    """The size a diffusers engine (an ``EngineConfig``) works at for a requested size."""
    options = DiffusionOptions.parse(config.name, config.options)
    sizes = options.sizes or RULES[config.kind].sizes
    return working_size(config.kind, options, fit_size(*requested, sizes))


def format_plan(plans: dict[str, EnginePlan], gpu_gib: float) -> tuple[list[str], bool]:
    """``kinema catalog plan``'s lines, and whether every offered combination fits."""
    lines = [f"GPU {gpu_gib:g} GiB, {usable_gib(gpu_gib):.1f} GiB usable by a job"]
    fits = True
    for plan in plans.values():
        for p in plan.predictions:
            combo = p.combination
            width, height = combo.size
            verdict = "fits" if p.fits else "DOES NOT FIT"
            lines.append(
                f"{combo.model:<28} {width}x{height:<5} {combo.duration_s:>3} s "
                f"{combo.frames:>4} frames  peak {p.peak_gib:5.1f} GiB  "
                f"{'+'.join(p.measures) or 'as configured':<32} {verdict}"
            )
            fits = fits and p.fits
    return lines, fits
