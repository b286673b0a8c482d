"""The peer for bench/api_poll.py: a bare Starlette endpoint returning a poll-sized body.

With ``KINEMA_BENCH_BODY`` naming a JSON file (``bench/api_poll.py`` writes there the
answer kinema gave to the same poll), the endpoint returns that object, so the peer
serialises and sends the very bytes the measured poll does; without it, a short body of
the AI/ML shape (the peer of the earlier rounds).
"""

import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_SHORT = {
    "status": "completed",
    "video": {"url": "http://127.0.0.1/files/jobs/x/video-1.mp4?expires=1&signature=ab"},
    "error": None,
    "meta": None,
}


def _body() -> dict:
    path = os.environ.get("KINEMA_BENCH_BODY")
    if not path:
        return _SHORT
    with open(path) as file:
        return dict(json.load(file))


BODY = _body()


async def poll(request: Request) -> JSONResponse:
    return JSONResponse({**BODY, "id": request.query_params.get("generation_id")})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v2/video/generations", poll), Route("/healthz", health)])
