"""Running the app under uvicorn: in the foreground (``kinema serve``) or in a background
thread on a free loopback port (``kinema generate`` without ``--server``).

Both run with the same connection rules, under either of uvicorn's HTTP/1.1 parsers
(``http_protocol``): a connection must finish its request headers within
``header_timeout_s`` (half-open and trickling connections are closed; a request's body has
its own deadline, ``body_timeout_s``, kept by ``api.middleware``), idle keep-alive
connections close after ``keep_alive_s``, uvicorn's own proxy-header handling is off
(``api.middleware`` honours X-Forwarded-* from trusted proxies only), and every log line
passes through ``logsafe.SecretFilter``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from kinema.api.app import create_app
from kinema.observability.logs import configure_logging
from kinema.runtime import Runtime
from kinema.settings import Settings


class _HeaderDeadline(asyncio.Protocol):
    """Mixed in ahead of one of uvicorn's HTTP/1.1 protocols (httptools or h11): closes a
    connection whose request headers are not complete ``header_timeout_s`` after it opened,
    or after the first byte that follows its previous response (uvicorn itself waits for
    them forever). Both protocols start a request's cycle when its headers are complete,
    so "waiting for headers" is the same test under either."""

    header_timeout_s: float
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers() and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        # An upgraded connection belongs to another protocol now.
        if self.transport.get_protocol() is self and not self.transport.is_closing():
            self.transport.close()


def http_protocol(name: str, header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol ``name`` ("auto": httptools when it is installed, else
    h11, as uvicorn chooses), with the request-header deadline of ``_HeaderDeadline``."""
    if name == "auto":
        name = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"
    base: type[asyncio.Protocol]
    if name == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    return type(
        f"HeaderDeadline{base.__name__}",
        (_HeaderDeadline, base),
        {"header_timeout_s": header_timeout_s},
    )


def uvicorn_config(
    app: Any, settings: Settings, *, host: str, port: int, log_level: str
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through kinema's handlers (and SecretFilter)
        http=http_protocol(settings.http_protocol, settings.header_timeout_s),
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Serve until interrupted, logging in ``settings.log_format``."""
    configure_logging(settings.log_format, log_level)
    app = create_app(settings)
    config = uvicorn_config(
        app, settings, host=settings.host, port=settings.port, log_level=log_level
    )
    uvicorn.Server(config).run()


class BackgroundServer:
    """A real HTTP server in a thread; ``url`` is valid inside the ``with`` block."""

    def __init__(self, runtime: Runtime, *, host: str = "127.0.0.1", port: int = 0) -> None:
        app = create_app(runtime.settings, runtime=runtime)
        config = uvicorn_config(app, runtime.settings, host=host, port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="kinema-http", daemon=True)
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded HTTP server did not start")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
