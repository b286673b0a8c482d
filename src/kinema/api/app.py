"""``create_app(settings)``: the HTTP server, with the embedded worker pool inside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from kinema import __version__
from kinema.api.aimlapi import AimlApi
from kinema.api.deps import Authenticator
from kinema.api.dialect import Dialect
from kinema.api.files import Files
from kinema.api.gemini import Gemini
from kinema.api.mount import build_openapi, mount, webhook_renderers
from kinema.api.openai_videos import OpenAIVideos
from kinema.api.unified import UnifiedTasks
from kinema.api.v1_generations import VideoGenerations
from kinema.api.vertex import Vertex
from kinema.media.fetch import ImageFetcher
from kinema.ratelimit import RateLimiter
from kinema.runtime import Runtime
from kinema.settings import Settings
from kinema.webhooks.deliver import WebhookDeliverer


def dialects() -> list[Dialect]:
    """Every wire API the server speaks; a new one is a module and an entry here."""
    return [
        AimlApi(),
        Gemini(),
        Vertex(),
        OpenAIVideos(),
        UnifiedTasks(),
        VideoGenerations(),
        Files(),
    ]


def _webhook_deliverer(
    app: FastAPI, runtime: Runtime, served: list[Dialect]
) -> WebhookDeliverer:
    """The outbox deliverer, rendering each event in the dialect its job came in."""
    settings = runtime.settings

    def base_url() -> str:
        configured = settings.public_base_url or app.state.seen_base_url
        return (configured or f"http://{settings.host}:{settings.port}").rstrip("/")

    return WebhookDeliverer(
        runtime.outbox,
        runtime.store,
        ImageFetcher.from_settings(settings),
        webhook_renderers(served, runtime, base_url),
        runtime.webhook_secret,
        retry_base_s=settings.webhook_retry_base_s,
        max_age_s=settings.webhook_max_age_s,
        poll_s=settings.webhook_poll_s,
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
    served = dialects()
    deliverer = _webhook_deliverer(app, runtime, served)
    app.state.authenticator = Authenticator(
        runtime.keys,
        ttl_s=runtime.settings.key_cache_s,
        disabled=runtime.settings.auth_disabled,
        limiter=RateLimiter(runtime.settings.rate_limit_per_minute),
    )
    mount(app, served)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, served)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
