"""Request dependencies shared by every dialect: the runtime and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kinema.errors import Unauthenticated
from kinema.runtime import Runtime

ANONYMOUS_OWNER = "anonymous"


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(runtime: Runtime, token: str | None) -> str:
    """The owner id for an API key, or ``Unauthenticated``."""
    if runtime.settings.auth_disabled:
        return ANONYMOUS_OWNER
    if token is None:
        raise Unauthenticated("missing API key: send the header 'Authorization: Bearer <key>'")
    key = runtime.keys.verify(token)
    if key is None:
        raise Unauthenticated("invalid or revoked API key")
    return key.id


def bearer_owner(request: Request, runtime: RuntimeDep) -> str:
    return authenticate(runtime, bearer_token(request))


BearerOwner = Annotated[str, Depends(bearer_owner)]


def public_base_url(request: Request, runtime: Runtime) -> str:
    """The absolute base for links handed to clients (configurable behind a proxy)."""
    configured = runtime.settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")
