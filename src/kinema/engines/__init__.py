"""Engines: the code that actually makes video."""

from kinema.engines.base import Engine

__all__ = ["Engine"]
