"""``create_app(settings)``: the HTTP server, with the embedded worker pool inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kinema import __version__
from kinema.api import aimlapi, files, gemini, openai_videos, unified, v1_generations
from kinema.api.deps import Authenticator
from kinema.ratelimit import RateLimiter
from kinema.runtime import Runtime
from kinema.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it opens the runtime (database, workers) on startup and closes it."""
    settings = settings or Settings()
    owned = runtime is None
    runtime = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for path in aimlapi.POLL_PATHS:
                schema["paths"].setdefault(path, {})["get"] = aimlapi.POLL_OPERATION
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
