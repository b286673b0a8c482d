"""Each dialect renders kinema's errors in its own envelope.

A route class per dialect catches ``KinemaError`` (and FastAPI's request validation
errors) raised while serving that dialect's routes and hands them to the dialect's
renderer, so domain code raises one hierarchy and every client sees its own shape.
An ``Envelope`` says which paths an error shape covers: each dialect's, and the signed
file links' (``kinema.api.files``), which are no dialect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from kinema.errors import (
    FieldProblem,
    InvalidRequest,
    KinemaError,
    MethodNotAllowed,
    RateLimited,
    RequestTimeout,
)

ErrorRenderer = Callable[[Request, KinemaError], Response]


@dataclass(frozen=True)
class Envelope:
    """An error shape and the paths it covers.

    A path is under a prefix when equal to it or followed by "/"; errors raised before a
    route is found (404, 405, 413, a bad Host) are rendered by the envelope of the
    longest prefix the path is under."""

    name: str
    title: str  # the OpenAPI tag of its operations
    prefixes: tuple[str, ...]
    schema: dict[str, Any]
    render: ErrorRenderer


def error_headers(error: KinemaError) -> dict[str, str]:
    """Headers every dialect adds to an error response (``Retry-After`` on 429, ``Allow``
    on 405, and ``Connection: close`` on 408: the rest of a late body is not waited for)."""
    if isinstance(error, RateLimited):
        return {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))}
    if isinstance(error, MethodNotAllowed) and error.allow:
        return {"Allow": error.allow}
    if isinstance(error, RequestTimeout):
        return {"Connection": "close"}
    return {}


def from_validation_error(error: RequestValidationError) -> InvalidRequest:
    """Turn FastAPI's body/query validation error into kinema's ``InvalidRequest``."""
    problems = []
    for item in error.errors():
        location = tuple(p for p in item.get("loc", ()) if p not in ("body", "query", "header"))
        problems.append(FieldProblem(location or ("body",), str(item.get("msg", "is invalid"))))
    first = problems[0] if problems else FieldProblem(("body",), "is invalid")
    summary = f"{'.'.join(map(str, first.path))}: {first.message}"
    return InvalidRequest(summary, problems)


def dialect_route(render: ErrorRenderer) -> type[APIRoute]:
    """An ``APIRoute`` subclass whose handler renders errors with ``render``."""

    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except KinemaError as error:
                    return render(request, error)
                except RequestValidationError as error:
                    return render(request, from_validation_error(error))
                except HTTPException as error:
                    if error.status_code != 400:
                        raise
                    # FastAPI's own "error parsing the body" (e.g. bytes that are not UTF-8)
                    problem = FieldProblem(("body",), str(error.detail))
                    return render(request, InvalidRequest(f"body: {error.detail}", [problem]))

            return handle

    return DialectRoute
