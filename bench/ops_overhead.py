"""What observability costs: the request middleware per request, and one /metrics scrape.

- Middleware: CPU time of a trivial ASGI app called directly, bare and wrapped in
  ``RequestMiddleware`` (request id, context variable, latency histogram).
- Scrape: ``Metrics.render()`` of a runtime over SQLite holding ``--jobs`` queued jobs spread
  over the shipped catalog's models (queue depth and age are read at each scrape).

    python bench/ops_overhead.py [--requests 50000] [--jobs 2000] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from kinema.api.ops import RequestMiddleware
from kinema.observability.metrics import Metrics
from kinema.runtime import Runtime
from kinema.settings import Settings
from kinema.types import GenerationRequest


class _Route:
    path = "/v2/video/generations"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope["route"] = _Route
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _per_request_us(target: Any, count: int) -> float:
    async def send(message: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {}

    headers = [(b"host", b"x"), (b"authorization", b"Bearer k"), (b"accept", b"*/*")]
    started = time.process_time()
    for _ in range(count):
        await target({"type": "http", "method": "GET", "headers": headers}, receive, send)
    return (time.process_time() - started) / count * 1e6


def middleware(count: int) -> None:
    wrapped = RequestMiddleware(_app, Metrics())
    bare = asyncio.run(_per_request_us(_app, count))
    with_ids = asyncio.run(_per_request_us(wrapped, count))
    print(f"middleware: {with_ids - bare:.1f} us CPU per request ({bare:.1f} -> {with_ids:.1f})")


def scrape(jobs: int, scrapes: int) -> None:
    runtime = Runtime.build(
        Settings(data_dir=Path(tempfile.mkdtemp()), signing_secret="bench"), workers=0
    )
    try:
        models = runtime.catalog.model_ids()
        for i in range(jobs):
            request = GenerationRequest(model=models[i % len(models)], prompt="p", duration_s=4)
            runtime.store.submit(owner="bench", request=request, dialect="v1")
        started = time.perf_counter()
        for _ in range(scrapes):
            body = runtime.metrics.render()
        each_ms = (time.perf_counter() - started) / scrapes * 1000
        print(
            f"scrape: {each_ms:.1f} ms ({len(models)} models, {jobs} queued jobs, "
            f"{len(body)} bytes)"
        )
    finally:
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    middleware(args.requests)
    scrape(args.jobs, args.scrapes)


if __name__ == "__main__":
    main()
