"""Where a diffusers engine's weights live on this machine, and which hub files they are.

An engine names its weights by hub repository (``repo = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"``,
and ``repo`` + ``weight_name`` in a LoRA table); ``kinema pull`` downloads each into the
models directory (``KINEMA_MODELS_DIR``, default ``<data dir>/models``) at
``<models dir>/<owner>/<name>``, and the servers read them there, offline. Resolution
happens once, when an engine is built: the engine itself only ever sees local paths (or a
hub id the catalog gave as ``weights`` on purpose, which diffusers then reads from the
Hugging Face cache, or downloads unless ``HF_HUB_OFFLINE=1``).

- ``weights`` (or ``repo`` when ``weights`` is left out): a relative name found under the
  models directory becomes that directory; with ``repo`` given, the models directory's copy
  is used even before it exists, so a missing download fails the load naming the path and
  ``kinema pull`` instead of reaching for the network. ``kinema pull`` puts ``repo`` where
  ``weights`` points when that is a path (absolute, or relative to the models directory).
- ``upsampler`` (LTX-Video's latent upsampler) and each LoRA's ``weights``/``repo``: the
  same.

No torch and no huggingface_hub are imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinema.engines.config import DIFFUSION_KINDS, EngineConfig

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def is_hub_id(value: str) -> bool:
    """Whether ``value`` reads as ``owner/name`` rather than a path on this machine."""
    return bool(_HUB_ID.fullmatch(value)) and ".." not in value


def local_dir(models_dir: Path, repo: str) -> Path:
    """Where ``kinema pull`` puts ``repo``: ``<models dir>/<owner>/<name>``."""
    if not is_hub_id(repo):
        raise ValueError(f"{repo!r} is not a hub repository id (owner/name)")
    return models_dir / repo


@dataclass(frozen=True)
class Download:
    """One hub repository, or some of its files, that an engine needs."""

    repo: str
    revision: str | None
    directory: Path  # where the files land (the repository's layout inside)
    files: tuple[str, ...] = ()  # () = the whole repository
    what: str = "weights"  # what the engine uses it for, for messages


def resolve(config: EngineConfig, models_dir: Path) -> EngineConfig:
    """``config`` with its weights, upsampler and LoRAs pointed at the models directory."""
    if config.kind not in DIFFUSION_KINDS:
        return config
    options = dict(config.options)
    repo = options.get("repo")
    weights = options.get("weights") or repo
    if isinstance(weights, str):
        options["weights"] = _local(weights, models_dir, pinned=_pinned(weights, repo))
    upsampler = options.get("upsampler")
    if isinstance(upsampler, str):
        options["upsampler"] = _local(upsampler, models_dir, pinned=False)
    lora = options.get("lora")
    if isinstance(lora, dict | list):
        tables = [lora] if isinstance(lora, dict) else lora
        options["lora"] = [_local_lora(table, models_dir) for table in tables]
    return EngineConfig(config.name, config.kind, config.fps, options)


def downloads(config: EngineConfig, models_dir: Path) -> list[Download]:
    """What ``kinema pull`` fetches for ``config``: its weights, upsampler and LoRAs."""
    options = config.options
    found: list[Download] = []
    weights = options.get("weights")
    repo = options.get("repo") or _hub(weights)
    if repo:
        revision = options.get("revision")
        found.append(Download(repo, revision, _target(weights, repo, models_dir)))
    upsampler = _hub(options.get("upsampler"))
    if upsampler:
        found.append(Download(upsampler, None, local_dir(models_dir, upsampler), (), "upsampler"))
    files: dict[str, list[str]] = {}
    lora = options.get("lora", [])
    for table in [lora] if isinstance(lora, dict) else lora:
        if not isinstance(table, dict):
            continue
        lora_repo = table.get("repo") or _hub(table.get("weights"))
        if lora_repo:
            name = table.get("weight_name")
            files.setdefault(lora_repo, []).extend([name] if isinstance(name, str) else [])
    for lora_repo, names in files.items():
        directory = local_dir(models_dir, lora_repo)
        found.append(Download(lora_repo, None, directory, tuple(dict.fromkeys(names)), "lora"))
    return found


def _target(weights: Any, repo: str, models_dir: Path) -> Path:
    """Where ``repo`` goes: the directory ``weights`` names when it is a path (absolute, or
    relative to the models directory), else ``<models dir>/<repo>``."""
    if isinstance(weights, str) and weights != repo and not is_hub_id(weights):
        return Path(_local(weights, models_dir, pinned=True)).expanduser()
    return local_dir(models_dir, repo)


def _hub(value: Any) -> str | None:
    return value if isinstance(value, str) and is_hub_id(value) else None


def _local(value: str, models_dir: Path, *, pinned: bool) -> str:
    """A relative name found under the models directory (or a pinned one) as a path."""
    if value.startswith(("/", "~")) or Path(value).is_absolute():
        return value
    candidate = models_dir / value
    if candidate.exists() or pinned:
        return str(candidate)
    return value


def _local_lora(table: Any, models_dir: Path) -> Any:
    if not isinstance(table, dict):
        return table
    repo = table.get("repo")
    weights = table.get("weights") or repo
    if not isinstance(weights, str):
        return table
    return {**table, "weights": _local(weights, models_dir, pinned=_pinned(weights, repo))}


def _pinned(weights: str, repo: Any) -> bool:
    """Whether ``weights`` must be read from the models directory even before it is there:
    it is what ``kinema pull`` downloads ``repo`` to."""
    return isinstance(repo, str) and (weights == repo or not is_hub_id(weights))


def missing(config: EngineConfig) -> list[str]:
    """What a resolved ``config`` reads that is not on this machine (empty: all there)."""
    options = config.options
    gaps: list[str] = []
    weights = options.get("weights")
    if isinstance(weights, str) and not (Path(weights) / "model_index.json").is_file():
        gaps.append(f"weights {weights}")
    upsampler = options.get("upsampler")
    if isinstance(upsampler, str) and not Path(upsampler).exists():
        gaps.append(f"upsampler {upsampler}")
    lora = options.get("lora", [])
    for table in [lora] if isinstance(lora, dict) else lora:
        if isinstance(table, dict) and isinstance(table.get("weights"), str):
            path = Path(table["weights"]) / str(table.get("weight_name") or "")
            if not path.exists():
                gaps.append(f"lora {path}")
    return gaps
