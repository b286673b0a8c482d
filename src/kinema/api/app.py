"""``create_app(settings)``: the HTTP server, with the embedded worker pool inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from kinema import __version__
from kinema.api import files, ops, playground
from kinema.api.deps import Authenticator
from kinema.api.dialect import Dialect
from kinema.api.dialects import dialects
from kinema.api.errors import Envelope
from kinema.api.middleware import RequestGuard
from kinema.api.mount import KinemaApp, build_openapi, mount, path_renderer
from kinema.ratelimit import RateLimiter
from kinema.runtime import Runtime
from kinema.settings import Settings
from kinema.webhooks.renderers import build_deliverer


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it opens the runtime (database, workers) on startup and closes it."""
    settings = settings or Settings()
    owned = runtime is None
    runtime = runtime or Runtime.build(settings)
    deliverer = build_deliverer(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        deliverer.start()
        try:
            yield
        finally:
            deliverer.stop()
            if owned:
                runtime.close()

    app = KinemaApp(
        title="kinema",
        version=__version__,
        description="Self-hosted image-to-video generation that speaks the Veo APIs.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.authenticator = Authenticator(
        runtime.keys,
        ttl_s=runtime.settings.key_cache_s,
        disabled=runtime.settings.auth_disabled,
        limiter=RateLimiter(runtime.settings.rate_limit_per_minute),
    )
    served = dialects()
    envelopes = error_envelopes(served)
    mount(app, served, envelopes)
    app.include_router(files.router)
    app.include_router(ops.router)
    app.include_router(playground.router)
    # Every request, polls included, passes the guard first (proxies, Host, body size and
    # deadline), inside the request-id and latency middleware.
    guard = RequestGuard(
        app.route,
        render=path_renderer(envelopes),
        trusted_hosts=runtime.settings.trusted_hosts,
        trusted_proxies=runtime.settings.trusted_proxies,
        max_body_bytes=runtime.settings.max_body_bytes,
        body_timeout_s=runtime.settings.body_timeout_s,
    )
    app.front = ops.RequestMiddleware(guard, metrics=runtime.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, served, envelopes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    return app


def error_envelopes(served: list[Dialect]) -> list[Envelope]:
    """Every error shape the app answers in: each dialect's, and the signed links'."""
    return [*(dialect.envelope() for dialect in served), files.ENVELOPE]
