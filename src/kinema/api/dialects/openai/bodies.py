"""Reading a request body that OpenAI's Videos API takes as a form or as JSON.

The SDK sends create, extensions and edits as ``multipart/form-data``; raw callers may
send the same fields as a JSON object. Each call reads its own fields: this is only the
choice between the two readers, and the errors both share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request

from kinema.errors import FieldProblem, InvalidRequest

Body = TypeVar("Body")

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def read_form_or_json(
    request: Request,
    read_form: Callable[[Request], Awaitable[Body]],
    read_json: Callable[[dict[str, Any]], Body],
) -> Body:
    """The body read by ``read_form`` or ``read_json``, as its ``Content-Type`` says (JSON
    when there is none); 400 for JSON that is not an object, or another media type."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in FORM_TYPES:
        return await read_form(request)
    if media_type in ("application/json", ""):
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deep to read
            raise InvalidRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return read_json(body)
    raise InvalidRequest(
        f"Unsupported Content-Type {media_type!r}; send multipart/form-data or application/json."
    )


def unknown_parameter(name: str) -> InvalidRequest:
    """OpenAI's answer to a field it does not define."""
    return InvalidRequest(f"Unknown parameter: '{name}'.", [FieldProblem((name,), "unknown")])
