"""Catalog options of the diffusers engines, read and checked once when an engine is built.

Every key of an ``[engines.X]`` table other than ``kind`` and ``fps`` lands here. Unknown
keys are refused, so a typo (``vae_tilling``) fails at startup instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from kinema.errors import EngineError

Offload = Literal["none", "text_encoder", "model", "sequential"]
AudioPolicy = Literal["motion", "refuse", "native"]
CompileMode = Literal["auto", "off", "regional", "full"]

DTYPES = ("bfloat16", "float16", "float32")
_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}
# Step caches: diffusers hooks that skip transformer work on steps that change little.
CACHES = ("none", "first_block", "mag", "taylorseer", "faster")
QUANTIZE = ("fp8",)
LORA_TARGETS = ("transformer", "transformer_2")
_AUDIO = ("motion", "refuse", "native")
_OFFLOAD = ("none", "text_encoder", "model", "sequential")
FEW_STEPS = 8  # an entry with at most this many steps is a few-step (distilled) model
GIB = 1024**3


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA to load on top of the weights (see docs/gpu.md, "Few-step models")."""

    weights: str  # a .safetensors file, a directory, or a hub id found in the local cache
    weight_name: str | None = None  # the file inside a directory or hub repository
    scale: float = 1.0
    transformer: str = "transformer"  # "transformer_2": Wan 2.2 A14B's low-noise expert
    repo: str | None = None  # the hub repository ``kinema pull`` fetches weight_name from


@dataclass(frozen=True)
class DiffusionOptions:
    """What one diffusers engine loads and how it runs (see docs/gpu.md for each key)."""

    weights: str  # a local directory in diffusers layout, or a hub id (downloaded on load)
    revision: str | None = None  # hub revision (branch, tag or commit) for a hub id
    repo: str | None = None  # the hub repository ``kinema pull`` fetches (docs/gpu.md)
    variant: str | None = None  # weight file variant, e.g. "fp16" for *.fp16.safetensors
    device: str | None = None  # "cuda", "cuda:1", "cpu"; default: cuda when there is one
    dtype: str | None = None  # default: bfloat16 on a GPU, float32 on the CPU
    steps: int | None = None  # denoising steps; default: the model's own
    guidance_scale: float | None = None
    guidance_scale_2: float | None = None  # Wan 2.2 A14B: the low-noise expert's guidance
    boundary_ratio: float | None = None  # Wan 2.2 A14B: where the low-noise expert takes over
    negative_prompt: str | None = None  # used when a request brings none
    audio: AudioPolicy | None = None  # default: the engine's (motion, or native for LTX-2)
    # torch.compile the transformer blocks, or all of it; "auto": the blocks on a GPU
    compile: CompileMode = "auto"
    compile_dynamic: bool = True  # one graph for every frame count and size (no recompiles)
    compile_mode: str | None = None  # torch.compile mode, e.g. "max-autotune-no-cudagraphs"
    compile_backend: str | None = None  # torch.compile backend; default: inductor
    # diffusers backend: "flash", "sage", "_native_cudnn"...; default: cuDNN on Hopper+
    attention_backend: str | None = None
    cache: str = "none"  # a step cache from CACHES (see docs/gpu.md)
    cache_threshold: float = 0.05
    cache_config: dict[str, Any] = field(default_factory=dict)  # more settings of that cache
    quantize: str | None = None  # "fp8": float8 linear layers in the transformer(s) (torchao)
    lora: tuple[LoraSpec, ...] = ()  # LoRAs loaded on top of the weights, in order
    lora_fuse: bool = True  # merge them into the weights once loaded (no cost per step)
    scheduler: str | None = None  # a diffusers scheduler class replacing the weights' own
    scheduler_config: dict[str, Any] = field(default_factory=dict)  # e.g. { shift = 5.0 }
    timesteps: tuple[float, ...] = ()  # pinned timesteps (0..1000), one per step
    version: str | None = None  # LTX-2: "2.0" or "2.3" (guidance recipe); default: from weights
    stg_blocks: tuple[int, ...] = ()  # LTX-2: blocks perturbed by spatio-temporal guidance
    upsampler: str | None = None  # LTX-Video 0.9.7+: latent upsampler weights (two stages)
    upsample_scale: float = 2 / 3  # first stage at this share of the size, then upsampled x2
    refine_steps: int = 10  # second stage: denoising steps over the upsampled latents
    refine_strength: float = 0.4  # second stage: how much of the noise schedule it redoes
    adain_factor: float = 1.0  # upsampled latents matched to the first stage's statistics
    devices: tuple[str, ...] = ()  # several: one job across them (context parallelism)
    vae_tiling: bool = False  # decode in overlapping tiles: much less memory at 720p
    # the VAE decoder's dtype (encode stays float32); default: bfloat16 for few-step entries
    decode_dtype: str | None = None
    # "text_encoder": the text encoder visits the GPU per prompt; "model": one component
    # on the GPU at a time; "sequential": layer by layer
    offload: Offload = "none"
    plan_memory: bool = True  # let the memory planner add tiling or offload where needed
    # The offload is the planner's, for the GPU size it was given: where the engine runs on
    # the CPU it is dropped (there is nothing to offload from), not refused.
    planned_offload: bool = False
    gpu_memory_gb: float | None = None  # the GPU's memory to plan for; default: detected
    memory_budget_gb: float | None = None  # device memory this engine may assume (LRU eviction)
    reserve_gb: float = 4.0  # free memory kept for activations when no budget is given
    sizes: tuple[tuple[int, int], ...] = ()  # replaces the model's native size table
    max_frames: int | None = None  # lowers the model's frame limit
    max_sequence_length: int | None = None  # prompt tokens; default: the pipeline's
    call: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for the pipeline

    @classmethod
    def parse(cls, engine: str, options: dict[str, Any]) -> DiffusionOptions:
        """Read catalog options; raise ``EngineError`` naming the engine and key on a bad one."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise EngineError(f"engine {engine}: unknown options {unknown}; known: {sorted(known)}")
        repo = _Reader(engine, options).text("repo")
        if not options.get("weights") and not repo:
            raise EngineError(
                f"engine {engine}: 'weights' (a directory or hub id) or 'repo' (a hub "
                "repository fetched with kinema pull) is required"
            )
        reader = _Reader(engine, options)
        return cls(
            weights=str(options.get("weights") or repo),
            revision=reader.text("revision"),
            repo=repo,
            variant=reader.text("variant"),
            device=reader.text("device"),
            dtype=reader.dtype(),
            steps=reader.integer("steps", low=1),
            guidance_scale=reader.number("guidance_scale", low=0.0),
            guidance_scale_2=reader.number("guidance_scale_2", low=0.0),
            boundary_ratio=reader.number("boundary_ratio", low=0.0),
            negative_prompt=reader.text("negative_prompt"),
            audio=cast(AudioPolicy | None, reader.choice("audio", _AUDIO)),
            compile=reader.compile(),
            compile_dynamic=reader.flag("compile_dynamic", default=True),
            compile_mode=reader.text("compile_mode"),
            compile_backend=reader.text("compile_backend"),
            attention_backend=reader.text("attention_backend"),
            cache=reader.choice("cache", CACHES) or "none",
            cache_threshold=_or(reader.number("cache_threshold", low=0.0), 0.05),
            cache_config=reader.table("cache_config"),
            quantize=reader.choice("quantize", QUANTIZE),
            lora=reader.loras(),
            lora_fuse=reader.flag("lora_fuse", default=True),
            scheduler=reader.text("scheduler"),
            scheduler_config=reader.table("scheduler_config"),
            timesteps=reader.numbers("timesteps", low=0.0, high=1000.0),
            version=reader.choice("version", ("2.0", "2.3")),
            stg_blocks=tuple(int(n) for n in reader.numbers("stg_blocks", low=0.0)),
            upsampler=reader.text("upsampler"),
            upsample_scale=_or(reader.number("upsample_scale", low=0.1), 2 / 3),
            refine_steps=reader.integer("refine_steps", low=1) or 10,
            refine_strength=_or(reader.number("refine_strength", low=0.0), 0.4),
            adain_factor=_or(reader.number("adain_factor", low=0.0), 1.0),
            devices=reader.texts("devices"),
            vae_tiling=reader.flag("vae_tiling"),
            decode_dtype=reader.choice("decode_dtype", ("bfloat16", "float32")),
            offload=cast(Offload, reader.choice("offload", _OFFLOAD) or "none"),
            plan_memory=reader.flag("plan_memory", default=True),
            planned_offload=reader.flag("planned_offload"),
            gpu_memory_gb=reader.number("gpu_memory_gb", low=1.0),
            memory_budget_gb=reader.number("memory_budget_gb", low=0.0),
            reserve_gb=_or(reader.number("reserve_gb", low=0.0), 4.0),
            sizes=reader.sizes(),
            max_frames=reader.integer("max_frames", low=1),
            max_sequence_length=reader.integer("max_sequence_length", low=1),
            call=reader.table("call"),
        )

    @property
    def few_step(self) -> bool:
        """A distilled entry: its few steps make the VAE decode a large share of a clip."""
        return self.steps is not None and self.steps <= FEW_STEPS

    @property
    def memory_budget_bytes(self) -> int | None:
        if self.memory_budget_gb is None:
            return None
        return int(self.memory_budget_gb * GIB)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class _Reader:
    """Typed reads of one option table, each error naming the engine and the key."""

    def __init__(self, engine: str, options: dict[str, Any]) -> None:
        self.engine = engine
        self.options = options

    def _fail(self, key: str, wanted: str) -> EngineError:
        value = self.options[key]
        return EngineError(f"engine {self.engine}: option {key} = {value!r} must be {wanted}")

    def text(self, key: str) -> str | None:
        value = self.options.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def flag(self, key: str, *, default: bool = False) -> bool:
        value = self.options.get(key, default)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def integer(self, key: str, *, low: int) -> int | None:
        value = self.options.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self._fail(key, f"an integer >= {low}")
        return value

    def number(self, key: str, *, low: float) -> float | None:
        value = self.options.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self._fail(key, f"a number >= {low}")
        return float(value)

    def numbers(self, key: str, *, low: float, high: float | None = None) -> tuple[float, ...]:
        value = self.options.get(key, [])
        wanted = f"a list of numbers >= {low}" + (f" and <= {high}" if high is not None else "")
        if not isinstance(value, list):
            raise self._fail(key, wanted)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int | float) or item < low:
                raise self._fail(key, wanted)
            if high is not None and item > high:
                raise self._fail(key, wanted)
        return tuple(float(item) for item in value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.options.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._fail(key, "a list of strings")
        return tuple(value)

    def loras(self) -> tuple[LoraSpec, ...]:
        value = self.options.get("lora", [])
        if isinstance(value, dict):
            value = [value]
        wanted = (
            "a table (or list of tables) with weights or repo, and optional weight_name, "
            "scale, transformer"
        )
        if not isinstance(value, list):
            raise self._fail("lora", wanted)
        specs = []
        for item in value:
            if not isinstance(item, dict):
                raise self._fail("lora", wanted)
            repo = item.get("repo")
            weights = item.get("weights", repo)
            if not isinstance(weights, str) or not (repo is None or isinstance(repo, str)):
                raise self._fail("lora", wanted)
            unknown = set(item) - {"weights", "weight_name", "scale", "transformer", "repo"}
            scale = item.get("scale", 1.0)
            target = item.get("transformer", "transformer")
            name = item.get("weight_name")
            if (
                unknown
                or isinstance(scale, bool)
                or not isinstance(scale, int | float)
                or target not in LORA_TARGETS
                or not (name is None or isinstance(name, str))
            ):
                raise self._fail("lora", wanted + f"; transformer one of {list(LORA_TARGETS)}")
            specs.append(LoraSpec(weights, name, float(scale), target, repo))
        return tuple(specs)

    def choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(key)
        if value is not None and value not in choices:
            raise self._fail(key, f"one of {list(choices)}")
        return value

    def dtype(self) -> str | None:
        value = self.text("dtype")
        if value is None:
            return None
        value = _DTYPE_ALIASES.get(value.lower(), value.lower())
        if value not in DTYPES:
            raise self._fail("dtype", f"one of {list(DTYPES)}")
        return value

    def compile(self) -> CompileMode:
        value = self.options.get("compile", "auto")
        if value is True:
            return "regional"
        if value is False:
            return "off"
        if value in ("auto", "off", "regional", "full"):
            return cast(CompileMode, value)
        raise self._fail("compile", 'true, false, "auto", "regional" or "full"')

    def sizes(self) -> tuple[tuple[int, int], ...]:
        value = self.options.get("sizes", [])
        if not isinstance(value, list):
            raise self._fail("sizes", 'a list of "WxH" strings')
        sizes = []
        for item in value:
            width, _, height = str(item).lower().partition("x")
            if not (width.isdigit() and height.isdigit()) or int(width) < 2 or int(height) < 2:
                raise self._fail("sizes", 'a list of "WxH" strings')
            sizes.append((int(width), int(height)))
        return tuple(sizes)

    def table(self, key: str) -> dict[str, Any]:
        value = self.options.get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, "a table of pipeline arguments")
        return dict(value)
