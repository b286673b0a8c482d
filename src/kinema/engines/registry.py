"""Builds engines from catalog entries and keeps each one set up for the process's life."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from pathlib import Path

from kinema.engines.base import AnyEngine, Engine
from kinema.engines.config import EngineConfig, check_engine_config
from kinema.engines.diffusion import MODEL_FILES, local_weights
from kinema.engines.diffusion.residency import Residency
from kinema.errors import NotSupported

# Engines over diffusers (the ``gpu`` extra), by kind: module and class.
DIFFUSERS_ENGINES = {
    kind: (f"kinema.engines.diffusion.{module}", cls) for kind, (module, cls) in MODEL_FILES.items()
}


def build_engine(
    config: EngineConfig,
    residency: Residency | None = None,
    gpus: str = "",
    environ: Mapping[str, str] | None = None,
    models_dir: Path | None = None,
) -> AnyEngine:
    """Instantiate the engine implementation named by ``config.kind``.

    ``residency`` is shared by the diffusers engines of one process, so that loading a
    model can unload the least recently used others. ``gpus`` ("0,1") puts the diffusers
    engines on those GPUs: one, or each job across several. ``environ`` is where upstream
    engines read their API key from (``api_key_env``). ``models_dir`` is where ``kinema
    pull`` put weights: the diffusers engines' hub repositories are read from there.
    """
    if config.forwards:
        from kinema.engines.upstream import UpstreamConfig, UpstreamEngine

        upstream = UpstreamConfig.from_options(config.name, config.upstream_options)
        return UpstreamEngine(upstream, environ={} if environ is None else environ)
    if config.kind == "motion":
        from kinema.engines.motion.engine import MotionEngine

        return MotionEngine(config.options)
    if config.kind == "python":
        return _import_engine(config)
    if config.kind in DIFFUSERS_ENGINES:
        if models_dir is not None:
            config = local_weights.resolve(config, models_dir)
        return _diffusers_engine(on_gpus(config, gpus), residency or Residency())
    raise NotSupported(
        f"engine kind {config.kind!r} (engine {config.name!r}) is not available in this build"
    )


def on_gpus(config: EngineConfig, gpus: str) -> EngineConfig:
    """``config`` with its devices replaced by the GPUs named in ``gpus`` ("0,1,2,3")."""
    indices = [item.strip() for item in gpus.split(",") if item.strip()]
    if not indices:
        return config
    if not all(index.isdigit() for index in indices):
        raise ValueError(f"gpus {gpus!r} must be GPU indices separated by commas, e.g. 0,1")
    options = {k: v for k, v in config.options.items() if k not in ("device", "devices")}
    if len(indices) == 1:
        options["device"] = f"cuda:{indices[0]}"
    else:
        options["devices"] = [f"cuda:{index}" for index in indices]
    return EngineConfig(config.name, config.kind, config.fps, options)


def _import_engine(config: EngineConfig) -> Engine:
    """An engine class named ``module:Class`` by the catalog (``kind = "python"``)."""
    target = str(config.options.get("class", ""))
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"engine {config.name!r}: 'class' must look like 'package.module:Class'")
    options = {k: v for k, v in config.options.items() if k != "class"}
    engine: Engine = getattr(importlib.import_module(module_name), class_name)(options)
    return engine


def _diffusers_engine(config: EngineConfig, residency: Residency) -> Engine:
    module_name, class_name = DIFFUSERS_ENGINES[config.kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise NotSupported(
            f"engine {config.name!r} (kind {config.kind!r}) needs torch and diffusers: "
            f"pip install 'kinema[gpu]' ({error})"
        ) from None
    engine_type = getattr(module, class_name)
    engine: Engine = engine_type(config.options, name=config.name, residency=residency)
    return engine


class EngineHost:
    """Engines by name, built and ``setup()`` on first use, then kept resident."""

    def __init__(
        self,
        configs: Mapping[str, EngineConfig],
        gpus: str = "",
        environ: Mapping[str, str] | None = None,
        models_dir: Path | None = None,
        *,
        hub_offline: bool = False,
    ) -> None:
        for config in configs.values():  # a catalog built in code is checked too
            check_engine_config(config, hub_offline=hub_offline)
        self._configs = configs
        self._gpus = gpus
        self._environ = environ
        self._models_dir = models_dir
        self._engines: dict[str, AnyEngine] = {}
        self._lock = threading.Lock()
        self.residency = Residency()  # which diffusers models hold GPU memory

    def get(self, name: str) -> AnyEngine:
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = build_engine(
                    self._configs[name],
                    self.residency,
                    self._gpus,
                    self._environ,
                    self._models_dir,
                )
                engine.setup()
                self._engines[name] = engine
            return engine
