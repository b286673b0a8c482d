"""Signed, expiring downloads of stored files, with HTTP range requests."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from kinema.api.deps import RuntimeDep
from kinema.api.errors import dialect_route
from kinema.errors import KinemaError, NotFound


def render_error(request: Request, error: KinemaError) -> JSONResponse:
    return JSONResponse(
        {"message": error.message, "path": request.url.path, "statusCode": error.status},
        status_code=error.status,
    )


router = APIRouter(route_class=dialect_route(render_error), tags=["files"])


@router.api_route("/files/{key:path}", methods=["GET", "HEAD"], response_class=FileResponse)
def download(
    key: str,
    runtime: RuntimeDep,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> FileResponse:
    """A file named by a signed link: 403 when the signature is wrong, 410 once expired."""
    runtime.signer.verify(key, expires, signature)
    path = runtime.storage.local_path(key)
    if path is None:
        raise NotFound("this file no longer exists")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=path.name)
