"""The one poll helper: every dialect's status read, served before the router.

Polling is the hottest path of the service (every client, every few seconds). A poll
here is one cached key check, one indexed row read, the dialect's render and one JSON
write, on the event loop: no dependency injection, no thread hop, and no walk through
the middleware stack or the router's route list. ``KinemaApp`` (the FastAPI app) asks
``PollLane`` first, which matches the polls of every dialect by method and path and
serves them; anything else goes on to FastAPI.
Each poll is also a normal FastAPI route (same code, ``serve_poll``), so the OpenAPI
document and the router's 405s know it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, cast

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from kinema.api.deps import get_service
from kinema.api.dialect import Dialect, Poll, alias_headers, query_value
from kinema.api.errors import outage_of
from kinema.api.events import job_event_stream
from kinema.errors import InvalidRequest, KinemaError
from kinema.inline_json import has_inline, materialized, prepared_body
from kinema.service import JobService
from kinema.views import JobView

log = logging.getLogger(__name__)


async def _json_body(request: Request) -> Any:
    raw = await request.body()  # a body the request guard stops, it answers for
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("the request body is not valid JSON") from None


def _read(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str], body: Any
) -> tuple[JobView, JobService, str]:
    service = get_service(request)
    owner = dialect.owner(request)
    ref = poll.locate(request, params, body)
    view = service.status(owner, ref, full=dialect.full_view, inline_video=dialect.inline_video)
    return view, service, owner


def _dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # what orjson refuses (a lone surrogate, a huge int) json escapes
        return json.dumps(body, separators=(",", ":")).encode()


async def _answer(
    dialect: Dialect,
    poll: Poll,
    request: Request,
    params: Mapping[str, str],
    inline_turns: asyncio.Semaphore,
) -> tuple[bytes, Mapping[str, str]] | Response:
    """The poll's JSON body and extra headers, or an error in the dialect's envelope
    (or, for a poll that streams when asked, its event stream). Bodies carrying a video
    are made one at a time (``inline_turns``)."""
    if poll.stream is not None and query_value(request, "stream") == "true":
        return await _stream(dialect, poll, request, params)
    try:
        body = await _json_body(request) if poll.method == "POST" else None
        view, service, _ = _read(dialect, poll, request, params, body)
        rendered = dialect.render_poll(request, view)
        # A job created under a retired model id says so on every read, as on its create.
        headers = {**alias_headers(service.catalog, view.model), **poll.headers(view)}
        if dialect.inline_video and has_inline(rendered):  # the video itself
            # One at a time: eight clients fetching megabytes at once held every other
            # poll's p99 at twice what it is when they take turns (bench/RESULTS.md).
            async with inline_turns:
                prepared = await prepared_body(rendered, service.storage)
            if prepared.rest is None:
                return prepared.head, headers
            return StreamingResponse(
                _chained(prepared.head, prepared.rest),
                media_type="application/json",
                headers=headers,
            )
        return _dumps(rendered), headers
    except KinemaError as error:
        return dialect.render_error(request, error)
    except Exception as error:
        outage = outage_of(request, error)
        if outage is None:
            raise
        return dialect.render_error(request, outage)


async def _chained(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk


async def serve_poll(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str]
) -> Response:
    """Read and render one poll; errors in the dialect's envelope."""
    lane: PollLane | None = getattr(request.app, "poll_lane", None)
    turns = lane.inline_turns if lane is not None else asyncio.Semaphore(1)
    answer = await _answer(dialect, poll, request, params, turns)
    if isinstance(answer, Response):
        return answer
    content, headers = answer
    return Response(content, headers=dict(headers), media_type="application/json")


def _first_read(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str]
) -> tuple[JobView, Callable[[], JobView], JobService] | Response:
    """What a stream starts from: the job as read now (an error in the dialect's envelope
    if it cannot be), and how to read it again."""
    try:
        view, service, owner = _read(dialect, poll, request, params, None)
    except KinemaError as error:
        return dialect.render_error(request, error)
    except Exception as error:
        outage = outage_of(request, error)
        if outage is None:
            raise
        return dialect.render_error(request, outage)
    ref = poll.locate(request, params, None)

    def read() -> JobView:
        return service.status(
            owner, ref, full=dialect.full_view, inline_video=dialect.inline_video
        )

    return view, read, service


async def serve_events(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str]
) -> Response:
    """The poll's server-sent events twin: the same object on every change, then done."""
    first = _first_read(dialect, poll, request, params)
    if isinstance(first, Response):
        return first
    view, read, service = first

    def render(view: JobView) -> dict[str, Any]:
        return cast(dict[str, Any], materialized(dialect.render(view), service.storage))

    stream: StreamingResponse = job_event_stream(request, view, read, render)
    stream.headers.update(alias_headers(service.catalog, view.model))
    return stream


async def _stream(
    dialect: Dialect, poll: Poll, request: Request, params: Mapping[str, str]
) -> Response:
    """The poll answered by its ``stream`` (the dialect's own event shapes)."""
    assert poll.stream is not None
    first = _first_read(dialect, poll, request, params)
    if isinstance(first, Response):
        return first
    view, read, service = first
    response = poll.stream(request, view, read)
    response.headers.update(alias_headers(service.catalog, view.model))
    return response


class _Compiled:
    def __init__(self, dialect: Dialect, poll: Poll) -> None:
        self.dialect = dialect
        self.poll = poll
        self.regex: re.Pattern[str] = compile_path(poll.path)[0]


class PollLane:
    """Serves ``polls`` ahead of the application (``KinemaApp`` asks it first)."""

    def __init__(self, polls: Sequence[tuple[Dialect, Poll]]) -> None:
        self._by_method: dict[str, list[_Compiled]] = {}
        self.inline_turns = asyncio.Semaphore(1)  # bodies with a video, made one at a time
        for dialect, poll in polls:
            self._by_method.setdefault(poll.method, []).append(_Compiled(dialect, poll))

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve the request if it is a poll (True); False to let ``app`` route it."""
        if scope["type"] != "http":
            return False
        path = scope["path"]
        for compiled in self._by_method.get(scope["method"], ()):
            match = compiled.regex.match(path)
            if match is None:
                continue
            params = match.groupdict()
            scope["app"] = app
            scope["path_params"] = params
            scope["route"] = compiled.poll  # its ``path`` names the route in metrics
            request = Request(scope, receive)
            try:
                answer = await _answer(
                    compiled.dialect, compiled.poll, request, params, self.inline_turns
                )
            except Exception:  # what the app's error middleware would do: log, answer 500
                log.exception("poll %s failed", path)
                answer = compiled.dialect.render_error(
                    request, KinemaError("internal error while reading the job")
                )
            if isinstance(answer, Response):
                await answer(scope, receive, send)
                return True
            content, extra = answer
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
            ]
            headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return True
        return False
