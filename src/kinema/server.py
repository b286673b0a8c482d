"""Running the app under uvicorn: in the foreground (``kinema serve``) or in a background
thread on a free loopback port (``kinema generate`` without ``--server``)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from kinema.api.app import create_app
from kinema.observability.logs import configure_logging
from kinema.runtime import Runtime
from kinema.settings import Settings


def serve(settings: Settings, *, log_level: str = "info") -> None:
    """Serve until interrupted, logging in ``settings.log_format``."""
    configure_logging(settings.log_format, log_level)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=None,  # uvicorn's lines go through kinema's handler
        timeout_graceful_shutdown=5,
    )


class BackgroundServer:
    """A real HTTP server in a thread; ``url`` is valid inside the ``with`` block."""

    def __init__(self, runtime: Runtime, *, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            create_app(runtime.settings, runtime=runtime), host=host, port=port, log_level="warning"
        )
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
