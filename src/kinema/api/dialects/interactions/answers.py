"""How an interaction is answered beyond its status object: a create with ``background:
false`` held until the interaction ends, the server-sent events of a streamed create or
read, and the create's ``input`` echoed on a read with ``include_input=true``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from kinema.api.awaiting import job_end
from kinema.api.deps import get_service
from kinema.api.dialect import Dialect, alias_headers, query_value
from kinema.api.events import job_event_stream
from kinema.inline_json import materialized
from kinema.types import Job
from kinema.views import JobRef, JobView
from kinema.wire import interactions as wire


async def ended(request: Request, owner: str, job: Job) -> Job:
    """``job`` once it has ended, as Google's API answers ``background: false``; after
    ``KINEMA_SYNC_WAIT_S`` as it stands (a durable job: the caller polls it)."""
    service = get_service(request)

    def read() -> Job:
        return service.find(owner, JobRef(id=job.id))

    limit_s = service.settings.sync_wait_s
    return await job_end(request, job, read, limit_s=limit_s)


def answer(dialect: Dialect, request: Request, owner: str, job: Job, stream: bool) -> Response:
    """The interaction as created (or, with ``stream``, its events until it ends)."""
    service = get_service(request)
    headers = alias_headers(service.catalog, job.model)
    if not stream:
        return dialect.respond(request, job)
    ref = JobRef(id=job.id)
    view = service.status(owner, ref, inline_video=True)

    def read() -> JobView:
        return service.status(owner, ref, inline_video=True)

    response = events(request, view, read, created=True)
    response.headers.update(headers)
    return response


def events(
    request: Request,
    first: JobView,
    read: Callable[[], JobView],
    *,
    created: bool = False,
) -> StreamingResponse:
    """The Interactions API's event stream of a job, followed until it ends."""
    storage = get_service(request).storage

    def encode(view: JobView, current: tuple[int, int], first_event: bool) -> bytes:
        event_id = f"{current[0]}.{current[1]}"  # run in a thread: it reads the video
        rendered = materialized(wire.events(view, created=created and first_event), storage)
        lines = [
            f"id: {event_id}\ndata: {json.dumps({**e, 'event_id': event_id})}\n\n" for e in rendered
        ]
        if view.status.terminal:
            lines.append("data: [DONE]\n\n")
        return "".join(lines).encode()

    return job_event_stream(request, first, read, wire.render, encode=encode)


def with_input(request: Request, body: dict[str, Any], view: JobView) -> dict[str, Any]:
    """A read's ``body`` with the create's ``input`` when it asks ``include_input=true``."""
    if query_value(request, "include_input") == "true":
        sent = wire.echoed_input(view)
        if sent is not None:
            body["input"] = sent
    return body
