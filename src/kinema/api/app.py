"""``create_app(settings)``: the HTTP server, with the embedded worker pool inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from kinema import __version__
from kinema.api import (
    aimlapi,
    files,
    gemini,
    openai_videos,
    ops,
    playground,
    unified,
    v1_generations,
)
from kinema.api.deps import Authenticator
from kinema.api.errors import ErrorRenderer, error_headers
from kinema.api.middleware import RequestGuard
from kinema.api.openapi import build_openapi
from kinema.api.webhooks import build_deliverer
from kinema.errors import (
    InvalidRequest,
    KinemaError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    safe_text,
)
from kinema.ratelimit import RateLimiter
from kinema.runtime import Runtime
from kinema.settings import Settings

# Path prefix -> the error envelope of the dialect served under it, most specific first:
# errors raised before a route is found (404, 405, 413, a bad Host) use these.
ENVELOPES: tuple[tuple[str, ErrorRenderer], ...] = (
    ("/v1/videos/generations", unified.render_error),
    ("/v1/tasks", unified.render_error),
    ("/v1/video/generations", v1_generations.render_error),
    ("/v1/videos", openai_videos.render_error),
    ("/v1beta", gemini.render_error),
    ("/v2", aimlapi.render_error),
    ("/files", files.render_error),
)


def render_for_path(request: Request, error: KinemaError) -> Response:
    """``error`` in the envelope of the dialect whose prefix ``request``'s path is under."""
    path = request.url.path
    for prefix, render in ENVELOPES:
        if path == prefix or path.startswith(prefix + "/"):
            return render(request, error)
    return JSONResponse(
        {"detail": error.message}, status_code=error.status, headers=error_headers(error)
    )


def _route_error(request: Request, error: HTTPException) -> KinemaError:
    """Starlette's routing and body errors as kinema's, for ``render_for_path``."""
    path = safe_text(request.url.path, 200)
    if error.status_code == 404:
        return NotFound(f"no such resource: {request.method} {path}")
    if error.status_code == 405:
        allow = (error.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed on {path}"
        return MethodNotAllowed(message + (f"; allowed: {allow}" if allow else ""), allow)
    if error.status_code == 413:
        return PayloadTooLarge(str(error.detail))
    if 400 <= error.status_code < 500:
        wrapped = InvalidRequest(str(error.detail))
        wrapped.status = error.status_code
        return wrapped
    raise error


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

    app = FastAPI(
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
    app.include_router(aimlapi.router)
    app.include_router(gemini.router)
    app.include_router(openai_videos.router)
    app.include_router(unified.router)
    app.include_router(v1_generations.router)
    app.include_router(files.router)
    app.include_router(ops.router)
    app.include_router(playground.router)
    app.add_middleware(ops.RequestMiddleware, metrics=runtime.metrics)

    async def route_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return render_for_path(request, _route_error(request, error))

    app.add_exception_handler(HTTPException, route_error)
    app.add_middleware(
        RequestGuard,
        render=render_for_path,
        trusted_hosts=runtime.settings.trusted_hosts,
        trusted_proxies=runtime.settings.trusted_proxies,
        max_body_bytes=runtime.settings.max_body_bytes,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    return app
