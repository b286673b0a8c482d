"""One overall deadline per provider call, and a way to stop it while it is under way.

httpx's timeouts bound each socket operation, not a call: a provider that answers a byte
a second, just inside the read timeout, holds a worker as long as it likes, and a cancel
or a shutdown waits for it. Here every socket of the upstream client reads, writes and
connects in slices of at most ``SLICE_S``; before each slice it checks the call's
deadline (``httpcore.ReadTimeout`` and friends once it has passed, which the HTTP layer
treats as any timeout) and the job's stop check (``CallStopped``). The limits are those
of the calling thread (``call_bounds``), so one client serves several jobs at once, each
call bounded by its own job.

The video download goes through kinema's safe HTTP client rather than this transport, and
opens its (address-checked) connections through the same ``BoundedBackend``: it ends by
the job's deadline and stops for a cancel or a shutdown like any other call.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpcore
import httpx

__all__ = ["BoundedBackend", "BoundedTransport", "CallStopped", "call_bounds"]

SLICE_S = 0.1  # how often a blocked socket operation looks at the deadline and stop check


class CallStopped(Exception):
    """The job stopped (cancelled, or its worker is going away) while a call was in flight."""


@dataclass(frozen=True)
class _Bounds:
    deadline: float  # time.monotonic() by which the call must be over
    stop: Callable[[], bool]


_local = threading.local()


def _never() -> bool:
    return False


def _current() -> _Bounds | None:
    bounds: _Bounds | None = getattr(_local, "bounds", None)
    return bounds


@contextmanager
def call_bounds(deadline: float, stop: Callable[[], bool] | None = None) -> Iterator[None]:
    """Calls of this thread inside the block end by ``deadline`` (``time.monotonic``), or
    as soon as ``stop()`` is true. Nested blocks keep the earlier deadline and both checks."""
    outer = _current()
    if outer is not None:
        deadline = min(deadline, outer.deadline)
        inner_stop = stop or _never

        def both() -> bool:
            return outer.stop() or inner_stop()

        stop = both
    _local.bounds = _Bounds(deadline, stop or _never)
    try:
        yield
    finally:
        _local.bounds = outer


def _slice(timeout: float | None, expired: type[Exception]) -> float:
    """The next slice of a socket operation that may take ``timeout``; raises when the
    call is stopped or past its deadline."""
    bounds = _current()
    step = SLICE_S if timeout is None else min(SLICE_S, timeout)
    if bounds is None:
        return step
    if bounds.stop():
        raise CallStopped("the job stopped while the provider was answering")
    left = bounds.deadline - time.monotonic()
    if left <= 0:
        raise expired("the call's overall deadline has passed")
    return min(step, left)


def _sliced(
    operation: Callable[[float], bytes | None],
    timeout: float | None,
    timed_out: type[Exception],
) -> bytes | None:
    """Run ``operation`` in slices until it completes or ``timeout`` passes."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            raise timed_out("timed out")
        step = _slice(left, timed_out)  # raises once stopped or past the deadline
        try:
            return operation(step)
        except timed_out:
            continue  # a slice ended: look at the deadline and stop check again


class _BoundedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = _sliced(lambda t: self._inner.read(max_bytes, t), timeout, httpcore.ReadTimeout)
        assert data is not None
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # A slice that ends mid-write may have sent part of ``buffer``: write it whole,
        # within the call's deadline, rather than in slices that could repeat bytes.
        bounds = _current()
        if bounds is not None:
            if bounds.stop():
                raise CallStopped("the job stopped while a request was being sent")
            left = max(0.0, bounds.deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounds = _current()
        if bounds is not None:
            left = max(0.0, bounds.deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class BoundedBackend(httpcore.NetworkBackend):
    """httpcore's own backend, each socket it opens bounded by the thread's ``call_bounds``."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounds = _current()
        if bounds is not None:
            if bounds.stop():
                raise CallStopped("the job stopped before the provider was reached")
            left = max(0.0, bounds.deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _BoundedStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class BoundedTransport(httpx.HTTPTransport):
    """httpx's own transport (no proxies from the environment), its sockets bounded."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # HTTPTransport takes no network backend: its pool is replaced by the same pool
        # over the bounded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=BoundedBackend(),
        )
