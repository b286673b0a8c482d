"""Signed, expiring downloads of stored files, with HTTP range requests.

A local store's files are served from disk. A remote store's (S3) are not proxied: the
signed link answers 307 with a short-lived presigned URL of the object, which serves the
bytes, ranges included, straight from the bucket.
"""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from kinema.api.deps import RuntimeDep
from kinema.api.errors import dialect_route, error_headers
from kinema.errors import KinemaError, NotFound


def render_error(request: Request, error: KinemaError) -> JSONResponse:
    return JSONResponse(
        {"message": error.message, "path": request.url.path, "statusCode": error.status},
        status_code=error.status,
        headers=error_headers(error),
    )


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message", "path", "statusCode"],
    "properties": {
        "message": {"type": "string"},
        "path": {"type": "string"},
        "statusCode": {"type": "integer"},
    },
}
router = APIRouter(route_class=dialect_route(render_error), tags=["files"])

PRESIGNED_TTL_S = 900  # a redirect is followed at once; the signed link carries the real TTL


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


@router.head("/files/{key:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
def download_head(
    key: str,
    runtime: RuntimeDep,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> Response:
    """Headers of a signed file (size, type), without its body."""
    return download(key, runtime, expires, signature)


@router.get("/files/{key:path}", response_class=FileResponse, responses=_FILE_RESPONSES)
def download(
    key: str,
    runtime: RuntimeDep,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> Response:
    """A file named by a signed link: 403 when the signature is wrong, 410 once expired."""
    runtime.signer.verify(key, expires, signature)
    path = runtime.storage.local_path(key)
    if path is None:
        remote = runtime.storage.download_url(key, ttl_s=PRESIGNED_TTL_S)
        if remote is None:
            raise NotFound("this file no longer exists")
        return RedirectResponse(remote, status_code=307, headers={"Cache-Control": "no-store"})
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=path.name)
