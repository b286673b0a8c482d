"""Signed, expiring downloads of stored files (``/files/{key}``), with HTTP range requests,
and the one way every route turns an ``Artifact`` into a response.

Plain routes (``router``), not a dialect: no job is ever rendered here, but errors under
``/files`` have their own envelope (``ENVELOPE``).

A local store's files are served from disk (ranges included). A remote store's (S3) are
not proxied by signed links: they answer 307 with a short-lived presigned URL of the
object, which serves the bytes, ranges included, straight from the bucket.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from kinema.api.deps import get_service
from kinema.api.errors import Envelope, dialect_route, error_headers
from kinema.artifacts import Artifact
from kinema.errors import KinemaError, NotFound

Expires = Annotated[
    str | None, Query(description="Unix time the link expires at", examples=["1796000000"])
]
Signature = Annotated[
    str | None,
    Query(description="HMAC-SHA256 of the key and expiry, hex", examples=["0" * 64]),
]

_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file (video/mp4 or image/jpeg); Range requests get 206",
        "content": {
            "video/mp4": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    206: {"description": "Part of the file, for a Range request"},
    307: {"description": "The file is in object storage: fetch it from the Location URL"},
}


class HeldFileResponse(FileResponse):
    """A file response over a file opened when the response is made, not when it is sent.

    Retention and deletes remove files while requests for them are in flight: a file
    removed after this response was made still serves whole (and in ranges) from the open
    descriptor, and one already gone is a 404 from the route, never a 500 once the status
    line is out.
    """

    def __init__(self, path: Path, *, media_type: str, filename: str) -> None:
        try:
            held: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed once sent, or when dropped
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound("this file no longer exists") from None
        self._held = held
        weakref.finalize(self, held.close)
        super().__init__(
            path, media_type=media_type, filename=filename, stat_result=os.fstat(held.fileno())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A server's pathsend would reopen the file by its name: send the held bytes.
        extensions = {
            name: value
            for name, value in scope.get("extensions", {}).items()
            if name != "http.response.pathsend"
        }
        try:
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:
            self._held.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        self._held.seek(0)
        yield anyio.wrap_file(self._held)


def artifact_response(artifact: Artifact) -> Response:
    if artifact.path is not None:
        return HeldFileResponse(
            artifact.path, media_type=artifact.media_type, filename=artifact.filename
        )
    if artifact.redirect is not None:
        return RedirectResponse(
            artifact.redirect, status_code=307, headers={"Cache-Control": "no-store"}
        )
    return Response(artifact.data, media_type=artifact.media_type)


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message", "path", "statusCode"],
    "properties": {
        "message": {"type": "string"},
        "path": {"type": "string"},
        "statusCode": {"type": "integer"},
    },
}


def render_error(request: Request, error: KinemaError) -> Response:
    """The signed links' own error shape ``{message, path, statusCode}``."""
    body = {"message": error.message, "path": request.url.path, "statusCode": error.status}
    return JSONResponse(body, status_code=error.status, headers=error_headers(error))


# Not a generation API: the signed links every dialect hands out, with their own errors.
ENVELOPE = Envelope("files", "files", ("/files",), ERROR_SCHEMA, render_error)
router = APIRouter(route_class=dialect_route(render_error), tags=[ENVELOPE.title])


@router.get("/files/{key:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
def download(
    request: Request, key: str, expires: Expires = None, signature: Signature = None
) -> Response:
    """A file named by a signed link: 403 when the signature is wrong, 410 once
    expired."""
    service = get_service(request)
    return artifact_response(service.signed_file(key, expires, signature))


@router.head("/files/{key:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
def download_head(
    request: Request, key: str, expires: Expires = None, signature: Signature = None
) -> Response:
    """Headers of a signed file (size, type), without its body."""
    return download(request, key, expires, signature)
