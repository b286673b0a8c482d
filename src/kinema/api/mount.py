"""One mount step: every dialect's routes, error envelope and OpenAPI.

``mount(app, dialects, envelopes)`` gives each dialect a router whose route class renders
errors in the dialect's envelope, registers its polls (served by ``PollLane``) with their
events twins, adds its other routes, and answers route-level 404/405 under each envelope's
path prefixes in that envelope. ``build_openapi`` reads the same lists. (Webhook bodies
are rendered from the wire tables: ``kinema.webhooks.renderers``.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from kinema.api.dialect import Dialect, Poll
from kinema.api.errors import Envelope, dialect_route, error_headers
from kinema.api.poll import PollLane, serve_events, serve_poll
from kinema.errors import (
    InvalidRequest,
    KinemaError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    safe_text,
)

_EVENT_STREAM = {
    "description": "Server-sent events: `progress` on every change, then one `done`; each "
    "event's `data` is the API's own status object as JSON",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "required": ["id", "event", "data"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$"},
                    "event": {"type": "string", "enum": ["progress", "done"]},
                    "data": {"type": "string"},
                },
            }
        }
    },
}


class KinemaApp(FastAPI):
    """FastAPI, with every dialect's polls served ahead of its middleware and router.

    ``front`` (the request guard) sees every HTTP request first and passes it to
    ``route``: a poll is served there at once, anything else goes through FastAPI.
    """

    poll_lane: PollLane | None = None
    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is not None and scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await self.route(scope, receive, send)

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.poll_lane
        if lane is not None and await lane.serve(self, scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def mount(app: KinemaApp, dialects: Sequence[Dialect], envelopes: Sequence[Envelope]) -> None:
    """Serve ``dialects`` on ``app`` (polls first, so they win over the other routes);
    route-level errors are rendered in the envelope of ``envelopes`` the path is under."""
    lane: list[tuple[Dialect, Poll]] = []
    for dialect in dialects:
        router = APIRouter(route_class=dialect_route(dialect.render_error), tags=[dialect.title])
        for poll in dialect.polls():
            _add_poll(router, dialect, poll)
            lane.append((dialect, poll))
        dialect.add_routes(router)
        app.include_router(router)
    app.poll_lane = PollLane(lane)
    app.state.dialects = tuple(dialects)

    render = path_renderer(envelopes)

    async def route_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return render(request, _route_error(request, error))

    app.add_exception_handler(HTTPException, route_error)


def path_renderer(envelopes: Sequence[Envelope]) -> Callable[[Request, KinemaError], Response]:
    """Renders an error in the envelope whose prefix the path is under; outside every
    envelope, FastAPI's plain ``{"detail"}``."""

    def render(request: Request, error: KinemaError) -> Response:
        envelope = envelope_for(envelopes, request.url.path)
        if envelope is None:
            return JSONResponse(
                {"detail": error.message}, status_code=error.status, headers=error_headers(error)
            )
        return envelope.render(request, error)

    return render


def _route_error(request: Request, error: HTTPException) -> KinemaError:
    """Starlette's routing and body errors as kinema's, for the path's envelope."""
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


def envelope_for(envelopes: Sequence[Envelope], path: str) -> Envelope | None:
    """The envelope with the longest prefix ``path`` is under (equal, or then a "/")."""
    best: tuple[int, Envelope | None] = (0, None)
    for envelope in envelopes:
        for prefix in envelope.prefixes:
            under = path == prefix or path.startswith(prefix + "/")
            if under and len(prefix) > best[0]:
                best = (len(prefix), envelope)
    return best[1]


def _add_poll(router: APIRouter, dialect: Dialect, poll: Poll) -> None:
    extra: dict[str, Any] = {}
    if poll.parameters:
        extra["parameters"] = list(poll.parameters)
    if poll.request_body is not None:
        extra["requestBody"] = poll.request_body

    async def poll_route(request: Request) -> Response:
        return await serve_poll(dialect, poll, request, request.path_params)

    router.add_api_route(
        poll.path,
        poll_route,
        methods=[poll.method],
        response_model=poll.response_model,
        summary=poll.summary or None,
        openapi_extra=extra or None,
        name=f"{dialect.name}:{poll.path}",
    )
    if poll.events is None:
        return

    async def events_route(request: Request) -> Response:
        return await serve_events(dialect, poll, request, request.path_params)

    router.add_api_route(
        poll.events,
        events_route,
        methods=["GET"],
        response_class=Response,
        summary="kinema extension: server-sent events (the status object on every change, "
        "then a final `done` event); resumable with Last-Event-ID",
        openapi_extra=extra or None,
        name=f"{dialect.name}:{poll.events}",
    )


def build_openapi(
    app: FastAPI, dialects: Sequence[Dialect], envelopes: Sequence[Envelope]
) -> dict[str, Any]:
    """FastAPI's document, with each dialect's error envelope as every operation's
    ``default`` response, event streams as ``text/event-stream``, and FastAPI's generic
    422 (never sent: dialects answer validation errors with 400) removed."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    schemas: Mapping[str, dict[str, Any]] = {e.title: e.schema for e in envelopes}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            if path.endswith("/events"):
                responses["200"] = _EVENT_STREAM
            tag = (operation.get("tags") or [None])[0]
            if tag in schemas:
                responses["default"] = {
                    "description": "An error, in this API's own error envelope",
                    "content": {"application/json": {"schema": schemas[tag]}},
                }
    for dialect in dialects:
        dialect.openapi(schema)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    return schema
