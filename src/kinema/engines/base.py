"""The narrow interface every engine implements.

An engine turns an ``EngineRequest`` into a ``Clip``. It never sees HTTP, the database or
storage: the worker hands it decoded images and callbacks, and encodes what it returns.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback


@runtime_checkable
class Engine(Protocol):
    name: str

    def setup(self) -> None:
        """Load whatever the engine needs, once per process (weights, fonts, voices)."""

    def run(
        self, request: EngineRequest, on_progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> Clip:
        """Start rendering ``request``.

        ``on_progress`` receives the fraction done (0..1) as work happens, and
        ``is_cancelled`` is polled at least once per frame or step; when it turns true the
        engine raises ``kinema.errors.JobCancelled``. Engines that render lazily may do
        their per-frame work while the returned ``Clip.frames`` is iterated.
        """
        ...
