"""Running the app under uvicorn: in the foreground (``kinema serve``) or in a background
thread on a free loopback port (``kinema generate`` without ``--server``).

Both run with the same connection rules: a connection must finish its request headers
within ``header_timeout_s`` (half-open and trickling connections are closed), idle
keep-alive connections close after ``keep_alive_s``, uvicorn's own proxy-header handling
is off (``api.middleware`` honours X-Forwarded-* from trusted proxies only), and every
log line passes through ``logsafe.SecretFilter``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kinema.api.app import create_app
from kinema.logsafe import log_config
from kinema.runtime import Runtime
from kinema.settings import Settings


def header_deadline_protocol(timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP/1.1 protocol, closing connections whose request headers are not
    complete ``timeout_s`` after the connection opened or its previous response ended
    (uvicorn itself waits for them forever)."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            between_requests = self.cycle is None or self.cycle.response_complete
            if between_requests and self._header_timer is None:
                self._arm_header_timer()
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._header_timer = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


def uvicorn_config(
    app: Any, settings: Settings, *, host: str, port: int, log_level: str
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(LOGGING_CONFIG),
        http=header_deadline_protocol(settings.header_timeout_s),
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Serve until interrupted."""
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
