"""The one poll helper: every dialect's status read, served before the router.

Polling is the hottest path of the service (every client, every few seconds). A poll
here is one cached key check, one indexed row read, the dialect's render and one JSON
write, on the event loop: no dependency injection, no thread hop, and no walk through
the router's route list. ``PollLane`` is an ASGI middleware that matches the polls of
every dialect by path and method and serves them; anything else goes on to FastAPI.
Each poll is also a normal FastAPI route (same code, ``serve_poll``), so the OpenAPI
document and the router's 405s know it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from kinema.api.deps import public_base_url
from kinema.api.dialect import Dialect, Poll
from kinema.api.events import job_event_stream
from kinema.errors import InvalidRequest, KinemaError
from kinema.runtime import Runtime
from kinema.views import JobView


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidRequest("the request body is not valid JSON") from None


def _read(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str], body: Any
) -> tuple[JobView, Runtime, str, str]:
    runtime: Runtime = request.app.state.runtime
    owner = dialect.owner(request)
    ref = poll.locate(request, params, body)
    base_url = public_base_url(request, runtime)
    view = runtime.status(
        owner, ref, base_url=base_url, full=dialect.full_view, inline_video=dialect.inline_video
    )
    return view, runtime, owner, base_url


def _json(status: int, body: Any, headers: Mapping[str, str]) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status, headers=headers, media_type="application/json")


async def serve_poll(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str]
) -> Response:
    """Read and render one poll; errors in the dialect's envelope."""
    try:
        body = await _json_body(request) if poll.method == "POST" else None
        view = _read(dialect, poll, request, params, body)[0]
        return _json(200, dialect.render(view), poll.headers(view))
    except KinemaError as error:
        return dialect.render_error(request, error)


async def serve_events(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str]
) -> Response:
    """The poll's server-sent events twin: the same object on every change, then done."""
    try:
        view, runtime, owner, base_url = _read(dialect, poll, request, params, None)
    except KinemaError as error:
        return dialect.render_error(request, error)
    ref = poll.locate(request, params, None)

    def read() -> JobView:
        return runtime.status(
            owner,
            ref,
            base_url=base_url,
            full=dialect.full_view,
            inline_video=dialect.inline_video,
        )

    stream: StreamingResponse = job_event_stream(request, view, read, dialect.render)
    return stream


class _Compiled:
    def __init__(self, dialect: Dialect, poll: Poll) -> None:
        self.dialect = dialect
        self.poll = poll
        self.regex: re.Pattern[str] = compile_path(poll.path)[0]


class PollLane:
    """ASGI middleware serving ``polls`` ahead of the app they wrap."""

    def __init__(self, app: ASGIApp, polls: Sequence[tuple[Dialect, Poll]]) -> None:
        self.app = app
        self._by_method: dict[str, list[_Compiled]] = {}
        for dialect, poll in polls:
            self._by_method.setdefault(poll.method, []).append(_Compiled(dialect, poll))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for compiled in self._by_method.get(scope["method"], ()):
                match = compiled.regex.match(path)
                if match is not None:
                    scope["path_params"] = match.groupdict()
                    request = Request(scope, receive)
                    response = await serve_poll(
                        compiled.dialect, compiled.poll, request, match.groupdict()
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
