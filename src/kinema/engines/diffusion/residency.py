"""Which models hold accelerator memory, and which to unload when another needs room.

Models stay loaded between jobs (loading a 14B model takes a minute); when one more does
not fit, the least recently used idle ones are unloaded until it does. "Fits" means within
the loading engine's ``memory_budget_gb`` when it has one (which also makes the policy
testable on a CPU), else that the device reports enough free memory. A model that is
running a job is never unloaded under it.

This module holds no torch code: engines tell it their footprint and how to measure
free memory, and it calls their ``unload()``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class Resident(Protocol):
    """A loaded model that can give its memory back."""

    name: str

    def unload(self) -> None: ...


@dataclass
class _Entry:
    model: Resident
    device: str
    footprint: int  # bytes it holds on ``device``


class Residency:
    """Loaded models by name, least recently used first; shared by one process's engines."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._busy: dict[str, int] = {}  # jobs running (or loading) per model name
        self._lock = threading.RLock()

    def resident(self) -> list[str]:
        """Names of the loaded models, least recently used first."""
        with self._lock:
            return list(self._entries)

    def used_bytes(self, device: str) -> int:
        with self._lock:
            return sum(e.footprint for e in self._entries.values() if e.device == device)

    def make_room(
        self,
        model: Resident,
        device: str,
        need: int,
        *,
        budget: int | None,
        free_bytes: Callable[[], int | None],
        reserve: int = 0,
    ) -> list[str]:
        """Unload idle models on ``device``, oldest first, until ``need`` more bytes fit.

        With a ``budget``: until the models there plus ``need`` fit in it. Without: until
        ``free_bytes()`` (None when the device cannot tell, as a CPU) covers ``need`` plus
        ``reserve``. Returns the names unloaded; it may not be enough, and loading then
        goes ahead anyway (an out-of-memory error says so clearly).
        """
        evicted: list[str] = []
        with self._lock:
            while not self._fits(device, need, budget, free_bytes, reserve):
                victim = self._oldest_idle(device, besides=model.name)
                if victim is None:
                    break
                self._unload(victim)
                evicted.append(victim.model.name)
        return evicted

    def unload_idle(self, device: str, *, besides: str | None = None) -> list[str]:
        """Unload every idle model on ``device`` (after an out-of-memory error, say)."""
        evicted: list[str] = []
        with self._lock:
            while (victim := self._oldest_idle(device, besides=besides)) is not None:
                self._unload(victim)
                evicted.append(victim.model.name)
        return evicted

    def admit(self, model: Resident, device: str, footprint: int) -> None:
        """Record ``model`` as loaded, most recently used."""
        with self._lock:
            self._entries[model.name] = _Entry(model, device, footprint)
            self._entries.move_to_end(model.name)

    def forget(self, model: Resident) -> None:
        """Record that ``model`` unloaded itself."""
        with self._lock:
            self._entries.pop(model.name, None)

    @contextmanager
    def using(self, model: Resident) -> Iterator[None]:
        """Mark ``model`` busy while it loads or runs a job: it is never unloaded then, and
        it becomes the most recently used. Enter this before taking the engine's own lock."""
        with self._lock:
            self._busy[model.name] = self._busy.get(model.name, 0) + 1
            if model.name in self._entries:
                self._entries.move_to_end(model.name)
        try:
            yield
        finally:
            with self._lock:
                self._busy[model.name] -= 1
                if model.name in self._entries:
                    self._entries.move_to_end(model.name)

    def _fits(
        self,
        device: str,
        need: int,
        budget: int | None,
        free_bytes: Callable[[], int | None],
        reserve: int,
    ) -> bool:
        if budget is not None:
            return self.used_bytes(device) + need <= budget
        free = free_bytes()
        return free is None or free >= need + reserve

    def _oldest_idle(self, device: str, *, besides: str | None) -> _Entry | None:
        for entry in self._entries.values():
            name = entry.model.name
            if entry.device == device and not self._busy.get(name) and name != besides:
                return entry
        return None

    def _unload(self, entry: _Entry) -> None:
        log.info("unloading %s from %s to make room", entry.model.name, entry.device)
        self._entries.pop(entry.model.name, None)
        entry.model.unload()
