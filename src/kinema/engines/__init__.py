"""Engines: the code that actually makes video, one folder per family (``motion``,
``sound``, ``diffusion``, ``upstream``), built from ``EngineConfig`` by ``registry``."""

from kinema.engines.base import AnyEngine, Engine, Forwarder
from kinema.engines.config import EngineConfig

__all__ = ["AnyEngine", "Engine", "EngineConfig", "Forwarder"]
