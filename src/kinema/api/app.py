"""``create_app(settings)``: the HTTP server, with the embedded worker pool inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

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
from kinema.api.openapi import build_openapi
from kinema.media.fetch import ImageFetcher
from kinema.ratelimit import RateLimiter
from kinema.runtime import Runtime
from kinema.settings import Settings
from kinema.webhooks.deliver import Renderer, WebhookDeliverer


def _webhook_deliverer(app: FastAPI, runtime: Runtime) -> WebhookDeliverer:
    """The outbox deliverer, rendering each event in the dialect its job came in."""
    settings = runtime.settings

    def base_url() -> str:
        configured = settings.public_base_url or app.state.seen_base_url
        return (configured or f"http://{settings.host}:{settings.port}").rstrip("/")

    renderers: dict[str, Renderer] = {
        aimlapi.DIALECT: lambda job: aimlapi.render_job(job, runtime, base_url()),
        gemini.DIALECT: lambda job: gemini.render_operation(job, base_url()),
        openai_videos.DIALECT: lambda job: openai_videos.render_video(job, runtime),
        unified.DIALECT: lambda job: unified.render_task(job, runtime, base_url()),
        v1_generations.DIALECT: lambda job: v1_generations.render_generation(
            job, runtime, base_url()
        ),
    }
    return WebhookDeliverer(
        runtime.outbox,
        runtime.store,
        ImageFetcher.from_settings(settings),
        renderers,
        runtime.webhook_secret,
        retry_base_s=settings.webhook_retry_base_s,
        max_age_s=settings.webhook_max_age_s,
        poll_s=settings.webhook_poll_s,
        observer=runtime.metrics,
    )


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; it opens the runtime (database, workers) on startup and closes it."""
    settings = settings or Settings()
    owned = runtime is None
    runtime = runtime or Runtime.build(settings)

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
    app.state.seen_base_url = None
    deliverer = _webhook_deliverer(app, runtime)
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

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    return app
