"""The model catalog: public model id -> engine and what the model accepts.

Validation of a request against its model lives here, once. A dialect translates its
wire names to the canonical field names below, calls ``Catalog.build_request`` and maps
the ``InvalidRequest`` it may raise back to its own error shape (the ``wire_names`` it
passes make every message name the field the client actually sent).

Canonical fields: prompt, image, last_image, reference_images, duration, aspect_ratio,
resolution, size, generate_audio, seed, negative_prompt, enhance_prompt, auto_fix,
person_generation, safety_level, sample_count, video.

``sample_count`` (videos per request, 1 to the model's ``samples``) is accepted by every
model; ``video`` (the video an extension continues) by models with ``extension`` limits.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from kinema.catalog_check import CatalogError, check_catalog, model_table, read_catalog_file
from kinema.engines.config import EngineConfig, check_engine_config
from kinema.errors import FieldProblem, InvalidRequest, UnknownModel
from kinema.types import AspectRatio, GenerationRequest, Resolution, SourceKind
from kinema.views import Creation

InputKind = Literal["text", "image", "first_last", "reference", "any"]

MAX_PROMPT_CHARS = 5000
MAX_REFERENCE_IMAGES = 3  # a model's default; ``reference_images`` in the catalog sets its own
SEED_MAX = 2**32 - 1
OFF_PEAK_PRIORITY = -100  # below every ordinary job: off-peak work runs when nothing else waits
PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")
# Whole numbers as strings: ASCII digits only (``str.isdigit`` also takes "²" and a fullwidth "4",
# which ``int`` refuses or reads differently), and few enough to mean anything.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")
RESIZE_MODES = ("crop", "pad")  # Veo's resizeMode, lower-cased

# Frame sizes for each (resolution, aspect ratio); engines with native sizes map on top.
FRAME_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("360p", "16:9"): (640, 360),
    ("360p", "9:16"): (360, 640),
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("1080p", "16:9"): (1920, 1080),
    ("1080p", "9:16"): (1080, 1920),
    ("4k", "16:9"): (3840, 2160),
    ("4k", "9:16"): (2160, 3840),
}

OPTIONAL_FIELDS = frozenset(
    {
        "duration",
        "aspect_ratio",
        "resolution",
        "size",
        "generate_audio",
        "seed",
        "negative_prompt",
        "enhance_prompt",
        "auto_fix",
        "person_generation",
        "safety_level",
        "resize_mode",
    }
)
_INPUT_FIELDS = frozenset({"prompt", "image", "last_image", "reference_images"})
# Fields a dialect may have no wire name for; error messages list them only when it does.
_IMPLICIT_FIELDS = frozenset({"sample_count", "video"})


@dataclass(frozen=True)
class ExtensionLimits:
    """How long a video a model extends, how long the result may get (seconds), and the
    seconds one extension adds (empty: the model's own durations)."""

    max_input_s: float
    max_output_s: float
    durations: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    id: str
    dialects: tuple[str, ...]
    engine: str
    description: str
    inputs: InputKind
    durations: tuple[int, ...]
    default_duration: int
    aspect_ratios: tuple[str, ...]
    resolutions: tuple[str, ...]
    default_resolution: str
    audio: bool
    default_audio: bool
    options: frozenset[str]
    last_image_optional: bool = False
    durations_at: dict[str, tuple[int, ...]] = field(default_factory=dict)
    sizes: tuple[str, ...] = ()  # explicit "WxH" frame sizes, for dialects that send them
    max_samples: int = 1  # videos one request may ask for
    extension: ExtensionLimits | None = None  # None: the model does not extend videos
    # A duration between two allowed ones is made at the next longer allowed one (and
    # reported as an adjustment) instead of refused: for documented clients that send one.
    fit_duration: bool = False
    person_generation: tuple[str, ...] = PERSON_GENERATION  # the values it takes
    fallbacks: tuple[str, ...] = ()  # engines tried in order after ``engine``
    max_reference_images: int = MAX_REFERENCE_IMAGES
    # An alias: another model's limits and engines under an id clients still send (a
    # retired preview id); ``alias_note`` says so in responses.
    alias_of: str | None = None
    alias_note: str = ""

    @property
    def engines(self) -> tuple[str, ...]:
        """Every engine of the model, in the order a job tries them."""
        return (self.engine, *self.fallbacks)

    @property
    def dialect(self) -> str:
        return self.dialects[0]

    @property
    def default_aspect_ratio(self) -> str:
        return self.aspect_ratios[0]

    @property
    def image_required(self) -> bool:
        return self.inputs in ("image", "first_last")

    def accepted_fields(self) -> frozenset[str]:
        fields = {"prompt", "sample_count"}
        if self.extension is not None:
            fields.add("video")
        if self.inputs in ("image", "first_last", "any"):
            fields.add("image")
        if self.inputs in ("first_last", "any") or self.last_image_optional:
            fields.add("last_image")
        if self.inputs in ("reference", "any"):
            fields.add("reference_images")
        return frozenset(fields) | self.options


def _wire(names: Mapping[str, str], canonical: str) -> str:
    return names.get(canonical, canonical)


class _Problems:
    """Collects every problem of a request so the client sees them all at once."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names
        self.items: list[FieldProblem] = []
        self.seen: set[str] = set()

    def add(self, canonical: str, message: str) -> None:
        if canonical in self.seen:  # one problem per field: the first says what is wrong
            return
        self.seen.add(canonical)
        self.items.append(FieldProblem((_wire(self.names, canonical),), message))


class Catalog:
    """The loaded catalog: engines and models, immutable once built."""

    def __init__(self, engines: dict[str, EngineConfig], models: dict[str, ModelSpec]) -> None:
        for spec in models.values():
            for name in spec.engines:
                if name not in engines:
                    raise ValueError(f"model {spec.id} names unknown engine {name!r}")
        self.engines = engines
        self.models = models
        self.memory_plans: dict[str, Any] = {}  # engine -> its memory plan (diffusers engines)

    # --- loading ---

    @classmethod
    def load(cls, path: Path | None = None, *, gpu_memory_gb: float | None = None) -> Catalog:
        """Read a catalog TOML file, or the one shipped with kinema when ``path`` is None;
        its GPU memory planned for ``gpu_memory_gb`` (default: each engine's own, or the
        GPU detected).

        A file that cannot be read or holds a mistake raises ``CatalogError`` (a
        ``ValueError``) naming the file, or the table and the field at fault."""
        if path is None:
            text = resources.files("kinema").joinpath("catalog.toml").read_text("utf-8")
            return cls.from_dict(tomllib.loads(text), gpu_memory_gb=gpu_memory_gb)
        try:
            return cls.from_dict(read_catalog_file(Path(path)), gpu_memory_gb=gpu_memory_gb)
        except CatalogError as error:
            if error.table or error.field:
                problem = f"{error.problem} (in {path})"
                raise CatalogError(error.table, error.field, problem) from None
            raise

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, gpu_memory_gb: float | None = None, plan: bool = True
    ) -> Catalog:
        """Build and check a catalog; ``plan``: plan its GPU memory as a server does (a
        model that fits nowhere on the GPU is logged, and its requests get a 400).

        ``CatalogError`` names the table and field of a mistake in ``data``."""
        check_catalog(data)
        engines = {
            name: EngineConfig(
                name=name,
                kind=str(cfg.get("kind", name)),
                fps=int(cfg.get("fps", 24)),
                options={k: v for k, v in cfg.items() if k not in ("kind", "fps")},
            )
            for name, cfg in data.get("engines", {}).items()
        }
        for config in engines.values():
            check_engine_config(config)  # its family's errors name the engine and the option
        models = {mid: _model_from_toml(mid, cfg) for mid, cfg in data.get("models", {}).items()}
        for alias, cfg in data.get("aliases", {}).items():
            models[alias] = _alias(alias, cfg, models)
        catalog = cls(engines, models)
        if plan:
            catalog.plan_memory(gpu_memory_gb)
        return catalog

    def plan_memory(self, gpu_memory_gb: float | None = None, *, strict: bool = False) -> None:
        """Plan the diffusers engines' GPU memory (``engines.diffusion.memory``): tiling and
        offload added where needed, and the combinations no measure makes fit refused."""
        from kinema.engines.diffusion.memory import plan_catalog

        offers: dict[str, list[tuple[str, tuple[int, int], int]]] = {}
        for spec in self.models.values():
            for engine in spec.engines:
                offers.setdefault(engine, []).extend(_offers(spec))
        self.engines, self.memory_plans = plan_catalog(
            self.engines, offers, gpu_memory_gb, strict=strict
        )

    def _memory_problem(
        self, spec: ModelSpec, requested: tuple[int, int], seconds: int
    ) -> str | None:
        """Why the GPU cannot hold this request under its engine's plan, or None."""
        plan = self.memory_plans.get(spec.engine)
        if plan is None:
            return None
        from kinema.engines.diffusion.memory import check_request

        return check_request(plan, self.engines[spec.engine], spec.id, requested, seconds)

    # --- lookups ---

    def forwards_only(self, spec: ModelSpec) -> bool:
        """Whether every engine of ``spec`` forwards to a provider (``kind = "upstream"``):
        such a model makes one new video per request, no extensions, no several samples."""
        return all(self.engines[name].forwards for name in spec.engines)

    def get(self, model_id: str, *, dialect: str | None = None) -> ModelSpec:
        spec = self.models.get(model_id)
        if spec is None or (dialect is not None and dialect not in spec.dialects):
            known = ", ".join(self.model_ids(dialect))
            raise UnknownModel(f"unknown model {model_id!r}; this server serves: {known}")
        return spec

    def model_ids(self, dialect: str | None = None) -> list[str]:
        return sorted(m for m, s in self.models.items() if dialect is None or dialect in s.dialects)

    def frame_size(self, request: GenerationRequest) -> tuple[int, int]:
        if request.size:
            width, height = request.size.split("x")
            return int(width), int(height)
        return FRAME_SIZES[(request.resolution, request.aspect_ratio)]

    # --- validation ---

    def build_request(
        self,
        model_id: str,
        fields: Mapping[str, Any],
        *,
        dialect: str | None = None,
        wire_names: Mapping[str, str] | None = None,
        callback_url: str | None = None,
        priority: int = 0,
        off_peak: bool = False,
        adjustments: Sequence[dict[str, Any]] = (),
        storage_uri: str | None = None,
        wire_scope: str | None = None,
        derived_from: tuple[str, SourceKind] | None = None,
    ) -> GenerationRequest:
        """Validate canonical ``fields`` against the model and fill in its defaults.

        Raises ``InvalidRequest`` listing every problem found, each under the wire name of
        the field (``wire_names`` maps canonical -> wire).
        """
        spec = self.get(model_id, dialect=dialect)
        names = wire_names or {}
        problems = _Problems(names)
        for name, value in fields.items():
            if _has_surrogate(value):
                problems.add(name, _SURROGATE)
        accepted = spec.accepted_fields()
        forwards_only = self.forwards_only(spec)
        for name in fields:
            if name == "video" and name not in accepted:
                problems.add(name, f"model {spec.id} does not extend videos")
            elif name == "video" and forwards_only:
                problems.add(name, _FORWARDED_ONE_VIDEO.format(model=spec.id, what="extensions"))
            elif name not in accepted:
                listed = {f for f in accepted if f not in _IMPLICIT_FIELDS or f in names}
                takes = ", ".join(sorted(_wire(names, f) for f in listed))
                problems.add(name, f"not accepted by model {spec.id} (it takes: {takes})")
        fields = {k: v for k, v in fields.items() if k in accepted}

        # Models that take text or an image (Google's own ids) animate an image without one.
        # An extension starts on its video's last frame, and may say nothing new.
        extending = fields.get("video") is not None
        prompt_required = not (spec.inputs == "any" and fields.get("image")) and not extending
        prompt = _text(fields.get("prompt"), "prompt", problems, required=prompt_required)
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            problems.add("prompt", f"is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        image = last_image = None
        references: tuple[str, ...] = ()
        if "image" in accepted:
            required = spec.image_required and not extending
            image = _text(fields.get("image"), "image", problems, required=required, empty=False)
        if "last_image" in accepted:
            required = spec.inputs == "first_last"
            last_image = _text(
                fields.get("last_image"), "last_image", problems, required=required, empty=False
            )
        if "reference_images" in accepted:
            given = fields.get("reference_images")
            if spec.inputs == "reference" or given is not None:
                references = _references(given, spec.max_reference_images, problems)
        if last_image is not None and image is None and "image" in accepted:
            problems.add("last_image", "needs a first frame image as well")
        size = fields.get("size")
        if size is not None and size not in spec.sizes:
            problems.add("size", f"{size!r} is not one of {', '.join(spec.sizes) or 'no sizes'}")
            size = None

        resolution = _choice(
            fields.get("resolution"),
            spec.resolutions,
            spec.default_resolution,
            "resolution",
            problems,
            normalise=str.lower,
        )
        aspect = _choice(
            fields.get("aspect_ratio"),
            spec.aspect_ratios,
            spec.default_aspect_ratio,
            "aspect_ratio",
            problems,
        )
        adjusted = list(adjustments)
        durations = spec.durations_at.get(str(resolution), spec.durations)
        if extending and spec.extension is not None and spec.extension.durations:
            durations = spec.extension.durations  # what one extension adds
        duration = _duration(fields.get("duration"), durations, spec, problems, resolution)
        if duration is None and spec.fit_duration and fields.get("duration") is not None:
            duration = _fitted_duration(fields["duration"], durations, spec, problems, adjusted)
        audio = _flag(fields.get("generate_audio"), spec.default_audio, "generate_audio", problems)
        if audio and not spec.audio:
            problems.add("generate_audio", f"model {spec.id} does not generate audio")
        seed = _integer(fields.get("seed"), 0, SEED_MAX, "seed", problems)
        safety = _integer(fields.get("safety_level"), 1, 6, "safety_level", problems)
        person = fields.get("person_generation")
        if person is not None and person not in spec.person_generation:
            allowed = ", ".join(spec.person_generation)
            problems.add("person_generation", f"must be one of {allowed}")
        samples = _integer(
            fields.get("sample_count"), 1, spec.max_samples, "sample_count", problems
        )
        if samples is not None and samples > 1 and forwards_only:
            problems.add(
                "sample_count", _FORWARDED_ONE_VIDEO.format(model=spec.id, what="ask for 1")
            )
        video = _text(fields.get("video"), "video", problems)
        if video is not None and (image is not None or last_image is not None or references):
            problems.add("video", "an extension starts on its video's last frame: send no images")
        negative = _text(fields.get("negative_prompt"), "negative_prompt", problems)
        enhance = _flag(fields.get("enhance_prompt"), None, "enhance_prompt", problems)
        auto_fix = _flag(fields.get("auto_fix"), None, "auto_fix", problems)
        resize_mode = fields.get("resize_mode")
        if resize_mode is not None:
            resize_mode = _choice(
                resize_mode, RESIZE_MODES, "crop", "resize_mode", problems, normalise=str.lower
            )

        if not problems.items and duration is not None:
            frame = _requested_size(size, str(resolution), str(aspect))
            too_big = self._memory_problem(spec, frame, int(duration))
            if too_big:
                problems.add("duration", too_big)
        if problems.items:
            first = problems.items[0]
            summary = f"{first.path[0]}: {first.message}"
            if len(problems.items) > 1:
                summary += f" (and {len(problems.items) - 1} more)"
            raise InvalidRequest(summary, problems.items)
        return GenerationRequest(
            model=spec.id,
            prompt=prompt or "",
            duration_s=cast(int, duration),
            aspect_ratio=cast(AspectRatio, aspect),
            resolution=cast(Resolution, resolution),
            generate_audio=bool(audio),
            negative_prompt=negative,
            seed=seed,
            enhance_prompt=enhance,
            auto_fix=auto_fix,
            person_generation=person,
            safety_level=safety,
            image=image,
            last_image=last_image,
            reference_images=references,
            size=size,
            resize_mode=resize_mode,
            callback_url=callback_url,
            priority=OFF_PEAK_PRIORITY if off_peak else priority,
            off_peak=off_peak,
            sample_count=samples or 1,
            video=video,
            adjustments=tuple(adjusted),
            storage_uri=storage_uri,
            wire_scope=wire_scope,
            source_job_id=None if derived_from is None else derived_from[0],
            source_kind=None if derived_from is None else derived_from[1],
        )

    def validate(self, creation: Creation, *, dialect: str) -> GenerationRequest:
        """The canonical request of a create a dialect parsed (``build_request`` with every
        part of ``creation`` it needs): the request the job keeps."""
        request = self.build_request(
            creation.model,
            creation.fields,
            dialect=dialect,
            wire_names=creation.wire_names,
            callback_url=creation.callback_url,
            off_peak=creation.off_peak,
            adjustments=creation.adjustments,
            storage_uri=creation.storage_uri,
            wire_scope=creation.wire_scope,
            derived_from=creation.derived_from,
        )
        if creation.echo is None:
            return request
        return dataclasses.replace(request, echo=dict(creation.echo))

    @staticmethod
    def check_text(value: str, field: str) -> None:
        """Refuse a string that is not valid Unicode (a lone surrogate) before it is used."""
        if _has_surrogate(value):
            raise InvalidRequest.for_field(field, _SURROGATE)


def _model_from_toml(model_id: str, cfg: dict[str, Any]) -> ModelSpec:
    options = frozenset(cfg.get("options", ()))
    unknown = options - OPTIONAL_FIELDS
    if unknown:
        raise CatalogError(model_table(model_id), "options", f"unknown {sorted(unknown)}")
    resolutions = tuple(str(r).lower() for r in cfg["resolutions"])
    # ``engine = "a"``, or an ordered list: ``engine = ["local-gpu", "hosted"]``.
    chain = cfg["engine"] if "engine" in cfg else cfg.get("engines", ())
    chain = [chain] if isinstance(chain, str) else [str(name) for name in chain]
    if not chain:
        raise ValueError(f"model {model_id}: 'engine' must name at least one engine")
    return ModelSpec(
        id=model_id,
        dialects=tuple(cfg["dialects"]) if "dialects" in cfg else (str(cfg["dialect"]),),
        engine=chain[0],
        fallbacks=tuple(chain[1:]),
        description=str(cfg.get("description", model_id)),
        inputs=cast(InputKind, cfg["inputs"]),
        durations=tuple(int(d) for d in cfg["durations"]),
        default_duration=int(cfg["default_duration"]),
        aspect_ratios=tuple(cfg["aspect_ratios"]),
        resolutions=resolutions,
        default_resolution=str(cfg.get("default_resolution", resolutions[0])).lower(),
        audio=bool(cfg.get("audio", False)),
        default_audio=bool(cfg.get("default_audio", False)),
        options=options,
        last_image_optional=cfg.get("last_image") == "optional",
        durations_at={
            str(k).lower(): tuple(int(d) for d in v) for k, v in cfg.get("durations_at", {}).items()
        },
        sizes=tuple(str(size) for size in cfg.get("sizes", ())),
        max_samples=int(cfg.get("samples", 1)),
        extension=_extension(cfg.get("extension")),
        fit_duration=bool(cfg.get("fit_duration", False)),
        person_generation=tuple(cfg.get("person_generation", PERSON_GENERATION)),
        max_reference_images=int(cfg.get("reference_images", MAX_REFERENCE_IMAGES)),
    )


def _alias(alias: str, cfg: dict[str, Any], models: dict[str, ModelSpec]) -> ModelSpec:
    """``[aliases."old-id"] of = "new-id"``: the target's spec under the old id, in the
    dialects the alias names (default: the target's)."""
    target = models.get(str(cfg.get("of", "")))
    if target is None:
        raise ValueError(f"alias {alias}: 'of' must name a model of the catalog")
    dialects = cfg.get("dialects")
    return dataclasses.replace(
        target,
        id=alias,
        dialects=target.dialects if dialects is None else tuple(dialects),
        description=f"{target.description} (alias of {target.id})",
        alias_of=target.id,
        alias_note=str(cfg.get("note", f"{alias} is an alias of {target.id}")),
    )


def _offers(spec: ModelSpec) -> list[tuple[str, tuple[int, int], int]]:
    """Every (model, requested frame size, seconds) a model offers."""
    offers = []
    for resolution in spec.resolutions:
        durations = spec.durations_at.get(resolution, spec.durations)
        sizes = [
            FRAME_SIZES[(resolution, a)]
            for a in spec.aspect_ratios
            if (resolution, a) in FRAME_SIZES
        ]
        offers += [(spec.id, size, seconds) for size in sizes for seconds in durations]
    by_size = {size: res for (res, _), size in FRAME_SIZES.items() if res in spec.resolutions}
    for text in spec.sizes:
        width, _, height = text.partition("x")
        size = (int(width), int(height))
        durations = spec.durations_at.get(by_size.get(size, ""), spec.durations)
        offers += [(spec.id, size, seconds) for seconds in durations]
    return offers


def _requested_size(size: str | None, resolution: str, aspect: str) -> tuple[int, int]:
    if size:
        width, _, height = size.partition("x")
        return int(width), int(height)
    return FRAME_SIZES.get((resolution, aspect), (0, 0))


def _extension(cfg: dict[str, Any] | None) -> ExtensionLimits | None:
    if cfg is None:
        return None
    return ExtensionLimits(
        max_input_s=float(cfg["max_input_s"]),
        max_output_s=float(cfg["max_output_s"]),
        durations=tuple(int(d) for d in cfg.get("durations", ())),
    )


# --- value parsers: each returns the parsed value or records a problem and returns None ---


_FORWARDED_ONE_VIDEO = (
    "model {model} forwards each request to a provider as one new video ({what}); "
    "several samples and extensions are made by this server's own engines"
)
_SURROGATE = "is not valid Unicode (it holds an unpaired surrogate escape such as \\ud800)"


def _has_surrogate(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a string with a lone surrogate, which cannot be stored or
    sent back as UTF-8 (JSON lets a client write one as ``"\\ud800"``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 8:
        return False
    if isinstance(value, list | tuple):
        return any(_has_surrogate(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return any(_has_surrogate(item, depth + 1) for pair in value.items() for item in pair)
    return False


def _text(
    value: Any, name: str, problems: _Problems, *, required: bool = False, empty: bool = True
) -> str | None:
    """A string field; ``empty=False`` refuses a blank string even when the field is
    optional (an image given as "" is a mistake, not a request without an image)."""
    if value is None:
        if required:
            problems.add(name, "is required")
        return None
    if not isinstance(value, str):
        problems.add(name, f"must be a string, not {type(value).__name__}")
        return None
    if (required or not empty) and not value.strip():
        problems.add(name, "must not be empty")
        return None
    return value


def _references(value: Any, limit: int, problems: _Problems) -> tuple[str, ...]:
    if value is None:
        problems.add("reference_images", "is required")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.add("reference_images", "must be a list of image URLs or base64 images")
        return ()
    if not 1 <= len(value) <= limit:
        problems.add(
            "reference_images", f"takes 1 to {limit} images (the model's limit), not {len(value)}"
        )
        return ()
    return tuple(value)


def _choice(
    value: Any,
    allowed: tuple[str, ...],
    default: str,
    name: str,
    problems: _Problems,
    normalise: Any = None,
) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str):
        problems.add(name, f"must be one of {', '.join(allowed)}")
        return None
    key = normalise(value) if normalise else value
    if key not in allowed:
        problems.add(name, f"{value!r} is not one of {', '.join(allowed)}")
        return None
    return cast(str, key)


def _duration(
    value: Any,
    allowed: tuple[int, ...],
    spec: ModelSpec,
    problems: _Problems,
    resolution: str | None,
) -> int | None:
    if value is None:
        return spec.default_duration if spec.default_duration in allowed else allowed[-1]
    seconds: int | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip().removesuffix("s")):
        seconds = int(value.strip().removesuffix("s"))
    options = ", ".join(map(str, allowed))
    if seconds is None or seconds not in allowed:
        where = f" at {resolution}" if allowed != spec.durations else ""
        problems.add("duration", f"{value!r} is not an allowed duration{where}: {options} seconds")
        return None
    return seconds


def _fitted_duration(
    value: Any,
    allowed: tuple[int, ...],
    spec: ModelSpec,
    problems: _Problems,
    adjusted: list[dict[str, Any]],
) -> int | None:
    """The next longer allowed duration for a whole number of seconds between two allowed
    ones (so a video is never shorter than asked), recorded in ``adjusted``; the problem
    ``_duration`` recorded is withdrawn. Anything else stays refused."""
    text = str(value).strip().removesuffix("s")
    if isinstance(value, bool) or not text.isdigit():
        return None
    seconds = int(text)
    longer = [d for d in allowed if d >= seconds]
    if seconds < min(allowed) or not longer:
        return None
    used = longer[0]
    problems.items.pop()
    adjusted.append(
        {
            "field": _wire(problems.names, "duration"),
            "requested": value,
            "used": used,
            "reason": f"model {spec.id} makes {', '.join(map(str, allowed))} second videos; "
            f"{seconds} s is made as the next longer one",
        }
    )
    return used


def _flag(value: Any, default: bool | None, name: str, problems: _Problems) -> bool | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(name, "must be true or false")
    return None


def _integer(value: Any, low: int, high: int, name: str, problems: _Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value.strip()):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        problems.add(name, f"must be an integer from {low} to {high}")
        return None
    if not low <= number <= high:
        problems.add(name, f"{number} is outside {low} .. {high}")
        return None
    return number
