"""The two narrow interfaces of an engine: it renders frames, or it forwards to a provider.

A rendering ``Engine`` turns an ``EngineRequest`` into a ``Clip``; a ``Forwarder`` hands the
job to another service and returns the MP4 that service made. Neither sees HTTP, the
database or storage: the worker hands them decoded inputs and callbacks, and stores what
they return. The executor tells the two apart by one check, ``isinstance(engine, Forwarder)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from kinema.types import CancelCheck, Clip, EngineRequest, ProgressCallback

if TYPE_CHECKING:
    from kinema.engines.upstream.engine import Forwarding


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


@runtime_checkable
class Forwarder(Protocol):
    """An engine whose videos are made by another service (``kind = "upstream"``)."""

    name: str

    @property
    def max_in_flight(self) -> int:
        """How many jobs may be at the provider at once, across every worker."""
        ...

    def setup(self) -> None:
        """Read the provider's key and open the connection pool."""

    def forward(self, job: Forwarding) -> Path:
        """Submit (or resume) ``job`` at the provider; the path of the downloaded MP4."""
        ...


AnyEngine = Engine | Forwarder
