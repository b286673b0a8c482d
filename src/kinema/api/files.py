"""Signed, expiring downloads of stored files (``/files/{key}``), with HTTP range requests,
and the one way every route turns an ``Artifact`` into a response.

A local store's files are served from disk (ranges included). A remote store's (S3) are
not proxied by signed links: they answer 307 with a short-lived presigned URL of the
object, which serves the bytes, ranges included, straight from the bucket.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from kinema.api.dialect import Dialect
from kinema.artifacts import Artifact
from kinema.errors import KinemaError
from kinema.runtime import Runtime

Expires = Annotated[str | None, Query()]
Signature = Annotated[str | None, Query()]

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


def artifact_response(artifact: Artifact) -> Response:
    if artifact.path is not None:
        return FileResponse(
            artifact.path, media_type=artifact.media_type, filename=artifact.filename
        )
    if artifact.redirect is not None:
        return RedirectResponse(
            artifact.redirect, status_code=307, headers={"Cache-Control": "no-store"}
        )
    return Response(artifact.data, media_type=artifact.media_type)


class Files(Dialect):
    """Not a generation API: the signed links every dialect hands out."""

    name = "files"
    title = "files"
    prefixes = ("/files",)
    status_words = {}
    error_schema = {
        "type": "object",
        "required": ["message", "path", "statusCode"],
        "properties": {
            "message": {"type": "string"},
            "path": {"type": "string"},
            "statusCode": {"type": "integer"},
        },
    }

    def error_body(self, request: Request, error: KinemaError) -> dict[str, Any]:
        return {"message": error.message, "path": request.url.path, "statusCode": error.status}

    def add_routes(self, router: APIRouter) -> None:
        @router.get("/files/{key:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
        def download(
            request: Request, key: str, expires: Expires = None, signature: Signature = None
        ) -> Response:
            """A file named by a signed link: 403 when the signature is wrong, 410 once
            expired."""
            runtime: Runtime = request.app.state.runtime
            return artifact_response(runtime.signed_file(key, expires, signature))

        @router.head("/files/{key:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
        def download_head(
            request: Request, key: str, expires: Expires = None, signature: Signature = None
        ) -> Response:
            """Headers of a signed file (size, type), without its body."""
            return download(request, key, expires, signature)
