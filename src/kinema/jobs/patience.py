"""A worker waits out an unavailable database or bucket instead of failing its jobs.

An outage of a part the server depends on (``kinema.outages``: object storage
unreachable, the database down, a full disk) is neither the job's fault nor the engine's.
While a job attempt runs, each storage call and each write of the job's outcome that
meets one is repeated in place after a pause that doubles from ``base_s`` up to
``cap_s``; the attempt keeps its number, its rendered frames and its files, and no
attempt is spent. Only an outage longer than ``window_s`` (``KINEMA_OUTAGE_WAIT_S``)
fails the job, with ``OutageTooLong`` naming the part. A cancel or a shutdown ends the
wait at once.

``PatientStorage`` wraps the store the executor uses. It waits only inside
``Patience.watching`` (a job attempt, in its own thread); anywhere else, as for the
supervisor's retention sweep, an outage error passes through at once. Opening a stored
file (``open_read``) waits like any other call; what is read from it afterwards is the
caller's, who repeats its whole read when the store goes away part way.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from kinema.errors import JobCancelled, KinemaError
from kinema.outages import as_outage
from kinema.storage import Storage

log = logging.getLogger(__name__)

T = TypeVar("T")


class OutageTooLong(KinemaError):
    """A part the job needs stayed unavailable for longer than the worker waits."""

    code = "unavailable"


@dataclass
class _Watch:
    should_stop: Callable[[], bool]
    gave_up: bool = False  # once one call gave up, the attempt's clean-up does not wait


_WATCH: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar("watch", default=None)


class Patience:
    """Repeats calls that meet an outage, with exponential backoff, for ``window_s``."""

    def __init__(
        self,
        window_s: float,
        *,
        base_s: float = 0.5,
        cap_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.base_s = base_s
        self.cap_s = cap_s
        self._clock = clock
        self._wake = threading.Event()  # never set: waits are ``should_stop`` polls

    @contextmanager
    def watching(self, should_stop: Callable[[], bool]) -> Iterator[None]:
        """Within this block (one job attempt), storage calls wait out outages."""
        token = _WATCH.set(_Watch(should_stop))
        try:
            yield
        finally:
            _WATCH.reset(token)

    def call(
        self, action: Callable[[], T], what: str, should_stop: Callable[[], bool] | None = None
    ) -> T:
        """``action()``, repeated while it meets an outage, for ``window_s`` at most.

        ``should_stop`` (default: the attempt's, in ``watching``) ends a wait with
        ``JobCancelled``; outside ``watching`` and without it, nothing is repeated."""
        watch = _WATCH.get()
        if should_stop is None:
            if watch is None or watch.gave_up:
                return action()
            should_stop = watch.should_stop
        started: float | None = None
        delay = self.base_s
        while True:
            try:
                return action()
            except Exception as error:
                outage = as_outage(error)
                if outage is None:
                    raise
                now = self._clock()
                started = now if started is None else started
                waited = now - started
                if waited >= self.window_s:
                    if watch is not None:
                        watch.gave_up = True
                    raise OutageTooLong(
                        f"{outage.message.removesuffix('; retry later')}: gave up after "
                        f"{waited:.0f} s ({what})"
                    ) from error
                pause = min(delay, self.cap_s, self.window_s - waited)
                log.warning("%s: %s; trying again in %.1f s", what, outage.message, pause)
                self._pause(pause, should_stop)
                delay *= 2

    def _pause(self, seconds: float, should_stop: Callable[[], bool]) -> None:
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            if should_stop():
                raise JobCancelled("stopped while waiting for an unavailable part")
            self._wake.wait(min(left, 0.2))


class PatientStorage:
    """``Storage`` whose calls inside a job attempt wait out an outage (see module)."""

    def __init__(self, storage: Storage, patience: Patience) -> None:
        self.inner = storage
        self.patience = patience

    def put_file(self, key: str, source: Path) -> int:
        return self.patience.call(lambda: self.inner.put_file(key, source), f"storing {key}")

    def put_bytes(self, key: str, data: bytes) -> None:
        self.patience.call(lambda: self.inner.put_bytes(key, data), f"storing {key}")

    def get_bytes(self, key: str) -> bytes:
        return self.patience.call(lambda: self.inner.get_bytes(key), f"reading {key}")

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        # Opening (an S3 GET) is repeated; the stream's reads happen after this, in the
        # caller's hands, and a stream cut part way cannot be resumed here.
        with ExitStack() as stack:
            opened = self.patience.call(
                lambda: stack.enter_context(self.inner.open_read(key)), f"reading {key}"
            )
            yield opened

    def delete(self, key: str) -> None:
        self.patience.call(lambda: self.inner.delete(key), f"deleting {key}")

    def copy(self, source: str, target: str) -> None:
        self.patience.call(lambda: self.inner.copy(source, target), f"copying {source}")

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def download_url(self, key: str, *, ttl_s: int) -> str | None:
        return self.inner.download_url(key, ttl_s=ttl_s)

    def object_uri(self, key: str) -> str | None:
        return self.inner.object_uri(key)

    def key_of_uri(self, uri: str) -> str | None:
        return self.inner.key_of_uri(uri)

    def delete_prefix(self, prefix: str) -> int:
        return self.patience.call(lambda: self.inner.delete_prefix(prefix), f"deleting {prefix}")

    def scratch_dir(self) -> Path:
        return self.inner.scratch_dir()
