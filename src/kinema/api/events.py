"""Live status as server-sent events, one stream per job, for every dialect.

The stream sends the job's status object (in the dialect's own shape) whenever its
status or progress changes, then one terminal event, then ends. Event ids are
``<status rank>.<percent>``, increasing through a job's life, so a client that
reconnects with ``Last-Event-ID`` only receives what is newer than what it saw. A
comment line every ``keepalive_s`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from kinema.errors import NotFound
from kinema.types import JobStatus
from kinema.views import JobView

_RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.RUNNING: 1,
    JobStatus.SUCCEEDED: 2,
    JobStatus.FAILED: 2,
    JobStatus.CANCELLED: 2,
    JobStatus.EXPIRED: 3,
}

def event_id(job: JobView) -> tuple[int, int]:
    return _RANK[job.status], round(job.progress * 100)


def _parse_last_event_id(value: str | None) -> tuple[int, int]:
    try:
        rank, percent = (value or "").split(".")
        return int(rank), int(percent)
    except ValueError:
        return (-1, -1)


def job_event_stream(
    request: Request,
    first: JobView,
    read: Callable[[], JobView],
    render: Callable[[JobView], dict[str, Any]],
    *,
    interval_s: float = 0.25,
    keepalive_s: float = 15.0,
) -> StreamingResponse:
    """A ``text/event-stream`` response following a job until it ends.

    ``first`` is the job as read before the response started (so a missing job was a
    normal error response in the caller's dialect); ``read`` fetches it again (raising
    ``NotFound``); ``render`` shapes it as the dialect's status object.
    """
    seen = _parse_last_event_id(request.headers.get("last-event-id"))

    async def events() -> AsyncIterator[bytes]:
        nonlocal seen
        job = first
        idle = 0.0
        while True:
            current = event_id(job)
            if current > seen:
                seen = current
                name = "done" if job.status.terminal else "progress"
                body = await asyncio.to_thread(render, job)  # it may read an inline video
                data = json.dumps(body, separators=(",", ":"))
                yield f"id: {current[0]}.{current[1]}\nevent: {name}\ndata: {data}\n\n".encode()
                idle = 0.0
            if job.status.terminal or await request.is_disconnected():
                return
            await asyncio.sleep(interval_s)
            idle += interval_s
            if idle >= keepalive_s:
                idle = 0.0
                yield b": keepalive\n\n"
            try:
                job = await asyncio.to_thread(read)
            except NotFound:  # deleted while watched: nothing more will happen
                return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
