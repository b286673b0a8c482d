"""Request dependencies shared by every dialect: the job service and the caller's identity.

Routes reach kinema through ``ServiceDep`` (``get_service`` where a function has the
request but is not a route); only the operator routes (``/readyz``, ``/metrics``) see the
runtime that built it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from kinema.errors import Unauthenticated
from kinema.keys import ANONYMOUS_OWNER, KeyStore, hash_key
from kinema.ratelimit import RateLimiter
from kinema.runtime import Runtime
from kinema.service import JobService


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.runtime.service
    return service


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServiceDep = Annotated[JobService, Depends(get_service)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """Maps an API key to its owner id, remembering good keys for ``ttl_s`` seconds.

    Polling clients send the same key many times a second; the cache saves a database
    read per request. The price: a key revoked by another process (``kinema keys
    revoke``) keeps working for at most ``ttl_s`` seconds.
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        ttl_s: float,
        disabled: bool = False,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._limiter = limiter or RateLimiter(0)
        self._ttl_s = ttl_s
        self._disabled = disabled
        self._clock = clock
        self._known: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def owner(self, token: str | None) -> str:
        """The owner id for ``token``, after counting the request against its rate limit."""
        owner = self._verify(token)
        self._limiter.check(owner)
        return owner

    def _verify(self, token: str | None) -> str:
        if self._disabled:
            return ANONYMOUS_OWNER
        if token is None:
            raise Unauthenticated("missing API key: send the header 'Authorization: Bearer <key>'")
        digest = hash_key(token)
        now = self._clock()
        with self._lock:
            cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        key = self._keys.verify(token)
        if key is None:
            with self._lock:
                self._known.pop(digest, None)
            raise Unauthenticated("invalid or revoked API key")
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (key.id, now + self._ttl_s)
        return key.id


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def bearer_owner(request: Request) -> str:
    return get_authenticator(request).owner(bearer_token(request))


BearerOwner = Annotated[str, Depends(bearer_owner)]

# Every dialect's create honours this header: same key and body -> the same job.
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def request_base_url(request: Request) -> str:
    """The base URL this request came in on: kept with the job a create makes, so that
    job's links start with it (``Runtime.link_base``); no other request's Host counts.

    The Host header was checked against the trusted hosts, and the scheme and host come
    from X-Forwarded-* only when a trusted proxy sent them (``api.middleware``).
    """
    scope = request.scope
    host = request.headers.get("host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}".rstrip("/")
