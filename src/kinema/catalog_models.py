"""The catalog's model entries: what one model accepts, and how a ``[models]`` or
``[aliases]`` table of the catalog file becomes one (``ModelSpec``).

``Catalog.from_dict`` checks the tables (``catalog_check``) before they get here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from kinema.catalog_check import CatalogError, model_table

InputKind = Literal["text", "image", "first_last", "reference", "any"]
MAX_REFERENCE_IMAGES = 3  # a model's default; ``reference_images`` in the catalog sets its own
PERSON_GENERATION = ("dont_allow", "allow_adult", "allow_all")

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


def model_from_toml(model_id: str, cfg: dict[str, Any]) -> ModelSpec:
    """The entry of a ``[models."id"]`` table."""
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


def alias_from_toml(alias: str, cfg: dict[str, Any], models: dict[str, ModelSpec]) -> ModelSpec:
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


def _extension(cfg: dict[str, Any] | None) -> ExtensionLimits | None:
    if cfg is None:
        return None
    return ExtensionLimits(
        max_input_s=float(cfg["max_input_s"]),
        max_output_s=float(cfg["max_output_s"]),
        durations=tuple(int(d) for d in cfg.get("durations", ())),
    )
