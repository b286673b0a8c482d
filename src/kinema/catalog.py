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

A model's entry and its reading from the catalog file are ``catalog_models``'s; the parsers
of single field values are ``catalog_fields``'s.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, cast

from kinema.catalog_check import CatalogError, check_catalog, read_catalog_file
from kinema.catalog_fields import (
    SURROGATE,
    Problems,
    fitted_duration,
    has_surrogate,
    parse_choice,
    parse_duration,
    parse_flag,
    parse_integer,
    parse_references,
    parse_text,
    wire_name,
)
from kinema.catalog_models import FRAME_SIZES, ModelSpec, alias_from_toml, model_from_toml
from kinema.engines.config import EngineConfig, check_engine_config
from kinema.errors import InvalidRequest, UnknownModel
from kinema.types import AspectRatio, GenerationRequest, Resolution, SourceKind
from kinema.views import Creation

__all__ = ["MAX_PROMPT_CHARS", "OFF_PEAK_PRIORITY", "RESIZE_MODES", "SEED_MAX", "Catalog"]

MAX_PROMPT_CHARS = 5000
SEED_MAX = 2**32 - 1
OFF_PEAK_PRIORITY = -100  # below every ordinary job: off-peak work runs when nothing else waits
RESIZE_MODES = ("crop", "pad")  # Veo's resizeMode, lower-cased
# Fields a dialect may have no wire name for; error messages list them only when it does.
_IMPLICIT_FIELDS = frozenset({"sample_count", "video"})

_FORWARDED_ONE_VIDEO = (
    "model {model} forwards each request to a provider as one new video ({what}); "
    "several samples and extensions are made by this server's own engines"
)


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
    def load(
        cls,
        path: Path | None = None,
        *,
        gpu_memory_gb: float | None = None,
        hub_offline: bool = False,
    ) -> Catalog:
        """Read a catalog TOML file, or the one shipped with kinema when ``path`` is None;
        its GPU memory planned for ``gpu_memory_gb`` (default: each engine's own, or the
        GPU detected).

        A file that cannot be read or holds a mistake raises ``CatalogError`` (a
        ``ValueError``) naming the file, or the table and the field at fault."""
        if path is None:
            text = resources.files("kinema").joinpath("catalog.toml").read_text("utf-8")
            return cls.from_dict(
                tomllib.loads(text), gpu_memory_gb=gpu_memory_gb, hub_offline=hub_offline
            )
        try:
            return cls.from_dict(
                read_catalog_file(Path(path)), gpu_memory_gb=gpu_memory_gb, hub_offline=hub_offline
            )
        except CatalogError as error:
            if error.table or error.field:
                problem = f"{error.problem} (in {path})"
                raise CatalogError(error.table, error.field, problem) from None
            raise

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        gpu_memory_gb: float | None = None,
        plan: bool = True,
        hub_offline: bool = False,
    ) -> Catalog:
        """Build and check a catalog; ``plan``: plan its GPU memory as a server does (a
        model that fits nowhere on the GPU is logged, and its requests get a 400);
        ``hub_offline`` (the settings' ``hf_hub_offline``): refuse engines that would
        download from the Hugging Face hub.

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
            # Its family's errors name the engine and the option.
            check_engine_config(config, hub_offline=hub_offline)
        models = {mid: model_from_toml(mid, cfg) for mid, cfg in data.get("models", {}).items()}
        for alias, cfg in data.get("aliases", {}).items():
            models[alias] = alias_from_toml(alias, cfg, models)
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
        problems = Problems(names)
        for name, value in fields.items():
            if has_surrogate(value):
                problems.add(name, SURROGATE)
        accepted = spec.accepted_fields()
        forwards_only = self.forwards_only(spec)
        for name in fields:
            if name == "video" and name not in accepted:
                problems.add(name, f"model {spec.id} does not extend videos")
            elif name == "video" and forwards_only:
                problems.add(name, _FORWARDED_ONE_VIDEO.format(model=spec.id, what="extensions"))
            elif name not in accepted:
                listed = {f for f in accepted if f not in _IMPLICIT_FIELDS or f in names}
                takes = ", ".join(sorted(wire_name(names, f) for f in listed))
                problems.add(name, f"not accepted by model {spec.id} (it takes: {takes})")
        fields = {k: v for k, v in fields.items() if k in accepted}

        # Models that take text or an image (Google's own ids) animate an image without one.
        # An extension starts on its video's last frame, and may say nothing new.
        extending = fields.get("video") is not None
        prompt_required = not (spec.inputs == "any" and fields.get("image")) and not extending
        prompt = parse_text(fields.get("prompt"), "prompt", problems, required=prompt_required)
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            problems.add("prompt", f"is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        image = last_image = None
        references: tuple[str, ...] = ()
        if "image" in accepted:
            required = spec.image_required and not extending
            image = parse_text(
                fields.get("image"), "image", problems, required=required, empty=False
            )
        if "last_image" in accepted:
            required = spec.inputs == "first_last"
            last_image = parse_text(
                fields.get("last_image"), "last_image", problems, required=required, empty=False
            )
        if "reference_images" in accepted:
            given = fields.get("reference_images")
            if spec.inputs == "reference" or given is not None:
                references = parse_references(given, spec.max_reference_images, problems)
        if last_image is not None and image is None and "image" in accepted:
            problems.add("last_image", "needs a first frame image as well")
        size = fields.get("size")
        if size is not None and size not in spec.sizes:
            problems.add("size", f"{size!r} is not one of {', '.join(spec.sizes) or 'no sizes'}")
            size = None

        resolution = parse_choice(
            fields.get("resolution"),
            spec.resolutions,
            spec.default_resolution,
            "resolution",
            problems,
            normalise=str.lower,
        )
        aspect = parse_choice(
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
        duration = parse_duration(fields.get("duration"), durations, spec, problems, resolution)
        if duration is None and spec.fit_duration and fields.get("duration") is not None:
            duration = fitted_duration(fields["duration"], durations, spec, problems, adjusted)
        audio = parse_flag(
            fields.get("generate_audio"), spec.default_audio, "generate_audio", problems
        )
        if audio and not spec.audio:
            problems.add("generate_audio", f"model {spec.id} does not generate audio")
        seed = parse_integer(fields.get("seed"), 0, SEED_MAX, "seed", problems)
        safety = parse_integer(fields.get("safety_level"), 1, 6, "safety_level", problems)
        person = fields.get("person_generation")
        if person is not None and person not in spec.person_generation:
            allowed = ", ".join(spec.person_generation)
            problems.add("person_generation", f"must be one of {allowed}")
        samples = parse_integer(
            fields.get("sample_count"), 1, spec.max_samples, "sample_count", problems
        )
        if samples is not None and samples > 1 and forwards_only:
            problems.add(
                "sample_count", _FORWARDED_ONE_VIDEO.format(model=spec.id, what="ask for 1")
            )
        video = parse_text(fields.get("video"), "video", problems)
        if video is not None and (image is not None or last_image is not None or references):
            problems.add("video", "an extension starts on its video's last frame: send no images")
        negative = parse_text(fields.get("negative_prompt"), "negative_prompt", problems)
        enhance = parse_flag(fields.get("enhance_prompt"), None, "enhance_prompt", problems)
        auto_fix = parse_flag(fields.get("auto_fix"), None, "auto_fix", problems)
        resize_mode = fields.get("resize_mode")
        if resize_mode is not None:
            resize_mode = parse_choice(
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
        if has_surrogate(value):
            raise InvalidRequest.for_field(field, SURROGATE)


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
