"""The peer for bench/api_poll.py: a bare Starlette endpoint returning a poll-sized body."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def poll(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "id": request.query_params.get("generation_id"),
            "status": "completed",
            "video": {"url": "http://127.0.0.1/files/jobs/x/video-1.mp4?expires=1&signature=ab"},
            "error": None,
            "meta": None,
        }
    )


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v2/video/generations", poll), Route("/healthz", health)])
