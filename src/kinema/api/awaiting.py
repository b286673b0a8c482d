"""A create answered once its job ends (the Interactions API's ``background: false``).

The job is durable from the moment it is created: the wait only decides when the create
is answered. It is bounded (``Settings.sync_wait_s``) and held on the event loop, not in
a worker thread, so clients waiting at once do not starve the thread pool that every
other route runs in. A job still unfinished when the wait runs out, or when the client
hangs up, is answered (to whoever still listens) as it stands and carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import Request

from kinema.types import Job

POLL_INTERVAL_S = 0.25  # how often the job is read again while waited on


async def job_end(
    request: Request,
    job: Job,
    read: Callable[[], Job],
    *,
    limit_s: float,
    interval_s: float = POLL_INTERVAL_S,
) -> Job:
    """``job`` once it has ended, or as it stands after ``limit_s`` (or once the client
    has gone); ``read`` fetches it again (run in a worker thread: it reads the database)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not job.status.terminal:
        left = deadline - loop.time()
        if left <= 0 or await request.is_disconnected():
            return job
        await asyncio.sleep(min(interval_s, left))
        job = await asyncio.to_thread(read)
    return job
