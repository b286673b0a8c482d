"""Builds engines from catalog entries and keeps each one set up for the process's life."""

from __future__ import annotations

import importlib
import threading

from kinema.catalog import Catalog, EngineConfig
from kinema.engines.base import Engine
from kinema.errors import NotSupported


def build_engine(config: EngineConfig) -> Engine:
    """Instantiate the engine implementation named by ``config.kind``."""
    if config.kind == "motion":
        from kinema.engines.motion import MotionEngine

        return MotionEngine(config.options)
    if config.kind == "python":
        return _import_engine(config)
    raise NotSupported(
        f"engine kind {config.kind!r} (engine {config.name!r}) is not available in this build"
    )


def _import_engine(config: EngineConfig) -> Engine:
    """An engine class named ``module:Class`` by the catalog (``kind = "python"``)."""
    target = str(config.options.get("class", ""))
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"engine {config.name!r}: 'class' must look like 'package.module:Class'")
    options = {k: v for k, v in config.options.items() if k != "class"}
    engine: Engine = getattr(importlib.import_module(module_name), class_name)(options)
    return engine


class EngineHost:
    """Engines by name, built and ``setup()`` on first use, then kept resident."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Engine:
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = build_engine(self._catalog.engines[name])
                engine.setup()
                self._engines[name] = engine
            return engine
