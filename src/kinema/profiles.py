"""Catalog profiles: which catalog a server loads, and the GPU profile's Veo routing.

``KINEMA_CATALOG_PROFILE=default`` (the default) loads ``KINEMA_CATALOG_PATH`` or the
shipped ``catalog.toml``. ``gpu`` loads a GPU catalog (``KINEMA_CATALOG_PATH``, or the
shipped ``catalog.gpu.toml``) and adds the Veo ids of the shipped catalog, each served by
the best open model that is on this machine and fits its GPU: the first entry of the GPU
catalog's ``[[profile.veo]]`` list whose ids pattern matches, whose weights are in the
models directory (``kinema pull``) and whose ``min_gpu_memory_gb`` is at most the GPU's
memory. Each Veo id keeps its wire contract, narrowed to what the chosen model makes (the
durations and resolutions of its ``[[profile.veo]]`` entry): a request for more is a 400
naming what the id takes, never a shorter or smaller video. Sound is the chosen engine's:
LTX-2 makes its own, the Wan engines add the motion soundtrack (``audio = "motion"``).

Veo ids whose inputs no open engine honours (first and last frame, reference images) stay
on the motion engine. With no engine available at all, loading fails and names what to
pull or which GPU size each candidate needs.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kinema.catalog import Catalog
from kinema.engines.config import EngineConfig
from kinema.engines.diffusion import local_weights
from kinema.settings import Settings

VEO_INPUTS = ("text", "image", "any")  # the inputs a diffusers engine honours


class ProfileUnavailable(ValueError):
    """The GPU profile cannot serve the Veo ids here; the message says what to do."""


@dataclass(frozen=True)
class VeoCandidate:
    """One ``[[profile.veo]]`` entry: an engine the Veo ids may be served by."""

    engine: str
    min_gpu_memory_gb: float
    durations: tuple[int, ...]
    resolutions: tuple[str, ...]
    ids: tuple[str, ...] = ("*",)  # glob patterns of the Veo ids it may serve

    @classmethod
    def from_toml(cls, table: dict[str, Any]) -> VeoCandidate:
        return cls(
            engine=str(table["engine"]),
            min_gpu_memory_gb=float(table.get("min_gpu_memory_gb", 0)),
            durations=tuple(int(d) for d in table["durations"]),
            resolutions=tuple(str(r).lower() for r in table["resolutions"]),
            ids=tuple(str(p) for p in table.get("ids", ("*",))),
        )

    def serves(self, model_id: str) -> bool:
        return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.ids)


def load_catalog(settings: Settings) -> Catalog:
    """The catalog this server runs with (see the module docstring), its diffusers
    engines' GPU memory planned for ``KINEMA_GPU_MEMORY_GB`` where it is set (a GPU other
    than the one torch sees, or one where it sees none), else for each engine's own
    ``gpu_memory_gb`` or the detected GPU."""
    if settings.catalog_profile != "gpu":
        return Catalog.load(
            settings.catalog_path,
            gpu_memory_gb=settings.gpu_memory_gb,
            hub_offline=settings.hf_hub_offline,
        )
    gpu = _read(settings.catalog_path, "catalog.gpu.toml")
    memory = settings.gpu_memory_gb
    if memory is None:
        memory = detect_gpu_memory_gb()
    return Catalog.from_dict(
        gpu_profile(gpu, _read(None, "catalog.toml"), settings.resolved_models_dir, memory),
        gpu_memory_gb=settings.gpu_memory_gb,
        hub_offline=settings.hf_hub_offline,
    )


def gpu_catalog_data(settings: Settings) -> dict[str, Any]:
    """The GPU catalog's tables as read (what ``kinema pull`` looks engines up in)."""
    path = settings.catalog_path
    return _read(path, "catalog.gpu.toml")


def gpu_profile(
    gpu: dict[str, Any], shipped: dict[str, Any], models_dir: Path, memory_gb: float | None
) -> dict[str, Any]:
    """``gpu``'s engines and models plus ``shipped``'s Veo ids routed to the best engine."""
    candidates = [VeoCandidate.from_toml(t) for t in gpu.get("profile", {}).get("veo", [])]
    if not candidates:
        raise ValueError("catalog profile gpu: the GPU catalog has no [[profile.veo]] entries")
    engines = dict(gpu.get("engines", {}))
    engines.setdefault("motion", {"kind": "motion", "fps": 24})
    usable, reasons = _usable(candidates, engines, models_dir, memory_gb)
    models = dict(gpu.get("models", {}))
    routed = 0
    for model_id, table in shipped.get("models", {}).items():
        if model_id in models:
            continue
        models[model_id] = table
        if "veo" not in model_id.lower() or table.get("inputs") not in VEO_INPUTS:
            continue
        for candidate in usable:
            narrowed = candidate.serves(model_id) and _narrowed(table, candidate)
            if narrowed:
                models[model_id] = narrowed
                routed += 1
                break
    if routed == 0:
        raise ProfileUnavailable(
            "catalog profile gpu: no open model can serve the Veo ids on this machine: "
            + "; ".join(reasons)
        )
    # The retired ids stay aliases of their models, wherever those are now served.
    aliases = {**shipped.get("aliases", {}), **gpu.get("aliases", {})}
    return {**gpu, "engines": engines, "models": models, "aliases": aliases}


def detect_gpu_memory_gb() -> float | None:
    """The first CUDA GPU's memory in GiB, or None without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return float(torch.cuda.get_device_properties(0).total_memory) / 1024**3


def _read(path: Path | None, shipped: str) -> dict[str, Any]:
    if path is None:
        text = resources.files("kinema").joinpath(shipped).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return tomllib.loads(text)


def _usable(
    candidates: list[VeoCandidate],
    engines: dict[str, Any],
    models_dir: Path,
    memory_gb: float | None,
) -> tuple[list[VeoCandidate], list[str]]:
    """The candidates whose weights are here and that fit; why each other one is not."""
    usable, reasons = [], []
    for candidate in candidates:
        table = engines.get(candidate.engine)
        if table is None:
            raise ValueError(
                f"catalog profile gpu: [[profile.veo]] names unknown engine {candidate.engine!r}"
            )
        config = EngineConfig(
            candidate.engine,
            str(table.get("kind", candidate.engine)),
            int(table.get("fps", 24)),
            {k: v for k, v in table.items() if k not in ("kind", "fps")},
        )
        gaps = local_weights.missing(local_weights.resolve(config, models_dir))
        if gaps:
            reasons.append(
                f"{candidate.engine}: not downloaded ({', '.join(gaps)}); "
                f"run kinema pull {candidate.engine}"
            )
        elif memory_gb is None or memory_gb < candidate.min_gpu_memory_gb:
            seen = "no GPU was found" if memory_gb is None else f"this one has {memory_gb:.0f}"
            reasons.append(
                f"{candidate.engine}: needs a GPU of {candidate.min_gpu_memory_gb:g} GiB "
                f"({seen}; KINEMA_GPU_MEMORY_GB sets it)"
            )
        else:
            usable.append(candidate)
    return usable, reasons


def _narrowed(table: dict[str, Any], candidate: VeoCandidate) -> dict[str, Any] | None:
    """A Veo model's table served by ``candidate``: only what the engine makes; None when
    nothing of the id's contract is left."""
    durations = [d for d in table["durations"] if d in candidate.durations]
    resolutions = [r for r in table["resolutions"] if str(r).lower() in candidate.resolutions]
    if not durations or not resolutions:
        return None
    narrowed = {**table, "engine": candidate.engine, "durations": durations}
    narrowed["resolutions"] = resolutions
    if table.get("default_duration") not in durations:
        narrowed["default_duration"] = max(durations)
    per_resolution: dict[str, list[int]] = {}
    for key, values in table.get("durations_at", {}).items():
        kept = [d for d in values if d in durations]
        if kept:
            per_resolution[key] = kept
        elif key in resolutions:  # the engine makes none of its durations at this size
            resolutions.remove(key)
    if not resolutions:
        return None
    narrowed["durations_at"] = {k: v for k, v in per_resolution.items() if k in resolutions}
    if str(table.get("default_resolution", resolutions[0])).lower() not in resolutions:
        narrowed["default_resolution"] = resolutions[0]
    narrowed["description"] = f"{table.get('description', '')} (served by {candidate.engine})"
    narrowed.pop("fallbacks", None)
    return narrowed
