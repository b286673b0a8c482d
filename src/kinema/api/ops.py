"""Operator endpoints and the per-request middleware.

- ``GET /healthz``: the process answers (liveness).
- ``GET /readyz``: 200 when the database, storage and at least one model's workers are
  there, else 503; the body lists each check.
- ``GET /metrics``: Prometheus text format; with ``KINEMA_METRICS_TOKEN`` set it wants
  ``Authorization: Bearer <token>``.

``RequestMiddleware`` gives every request an id (the client's ``X-Request-Id`` when it is
sane, else a new one), returns it in ``X-Request-Id``, puts it on every log line written
while serving the request, and times the request by its route template.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema import __version__
from kinema.api.deps import RuntimeDep, bearer_token
from kinema.health import readiness
from kinema.observability import context
from kinema.observability.metrics import CONTENT_TYPE, Metrics

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


# /readyz and /metrics are for load balancers and scrapers, not API clients: they stay out
# of /openapi.json (a 503 from /readyz is its answer, not a server error).
@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", include_in_schema=False)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Database reachable, storage writable and a worker online for at least one model."""
    checks = await asyncio.to_thread(readiness, runtime)
    ready = all(check.ok for check in checks)
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics of this process (see docs/operations.md)."""
    token = runtime.settings.metrics_token
    if token:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse(
                {"message": "metrics need 'Authorization: Bearer <KINEMA_METRICS_TOKEN>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    body = await asyncio.to_thread(runtime.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)


_NOSNIFF = (b"x-content-type-options", b"nosniff")


class RequestMiddleware:
    """Request ids, HTTP latency and ``X-Content-Type-Options: nosniff``, as a plain ASGI
    middleware (streams pass through)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _SANE_ID.fullmatch(given) else os.urandom(16).hex()
        token = context.request_id.set(request_id)
        started = time.perf_counter()
        responded = False

        def observe(status: int) -> None:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_request(
                scope["method"], template, status, time.perf_counter() - started
            )

        async def send_with_id(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                # Every answer says what it is (a page, its assets, JSON, errors alike): no
                # browser may guess an error echoing its input to be a script or a page.
                if not any(name.lower() == _NOSNIFF[0] for name, _ in headers):
                    headers.append(_NOSNIFF)
                message = {**message, "headers": headers}
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not responded:  # the server's own 500 follows, outside this middleware
                observe(500)
                log.exception("request failed")
            raise
        finally:
            context.request_id.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
