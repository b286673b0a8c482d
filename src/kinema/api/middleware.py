"""Checks every HTTP request gets before routing: who forwarded it, which Host it names,
and how large its body is.

- ``X-Forwarded-Proto``, ``-Host`` and ``-For`` are applied only when the connecting
  address is one of ``trusted_proxies``; from anyone else they are ignored (the server
  runs uvicorn with its own proxy-header handling off).
- With ``trusted_hosts`` set, a request naming another Host is a 400; a Host that is not
  a host name at all is a 400 in any case. A job keeps its creating request's base URL
  for its links, so this is what stands between a forged Host and a client's links.
- A body longer than ``max_body_bytes`` is a 413: at once when ``Content-Length`` says
  so, else as soon as that many bytes have arrived (a chunked body, any content type).
- A body not complete ``body_timeout_s`` after the request's headers is a 408, with
  ``Connection: close``: a client trickling its body holds a connection no longer than
  that. (The headers' own deadline is the HTTP protocol's, in ``kinema.server``.)

Errors are rendered in the envelope of the dialect whose path the request is under. A body
the guard stopped is answered by the guard itself, whatever the app made of the exception
its ``receive`` raised (a form parser may take it for a malformed body), and before the app
could act on a body it never got whole.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Callable, Sequence

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema.errors import InvalidRequest, KinemaError, PayloadTooLarge, RequestTimeout

PathRenderer = Callable[[Request, KinemaError], Response]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A Host header: a DNS name or IPv4 address, or a bracketed IPv6 address; then a port.
_HOST = re.compile(
    r"(?:[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(?:\.[A-Za-z0-9_-]{1,63})*\.?|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?"
)


def too_large(limit: int) -> str:
    return f"the request body is larger than this server accepts ({limit} bytes)"


class BodyRefused(HTTPException):
    """Raised from ``receive`` once the guard stopped a request body (``error`` says why).

    An ``HTTPException``, which FastAPI's body reading passes on rather than calling it a
    parse error; the guard answers with ``error`` in any case.
    """

    def __init__(self, error: KinemaError) -> None:
        super().__init__(error.status, error.message)
        self.error = error


class _Body:
    """One request's body as the app reads it through ``receive``: stopped past ``limit``
    bytes, or when it is not complete by ``deadline`` (event-loop time). Once complete,
    reads pass through untouched: they wait for the client to disconnect (a stream)."""

    def __init__(self, receive: Receive, limit: int, timeout_s: float) -> None:
        self._receive = receive
        self.limit = limit
        self.timeout_s = timeout_s
        self.deadline = asyncio.get_running_loop().time() + timeout_s
        self.seen = 0
        self.complete = False
        self.refusal: KinemaError | None = None

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise BodyRefused(self.refusal)
        if self.complete:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self._receive()
        except TimeoutError:
            seconds = f"{self.timeout_s:g}"
            raise self._refuse(
                RequestTimeout(f"the request body did not arrive within {seconds} s")
            ) from None
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit:
                raise self._refuse(PayloadTooLarge(too_large(self.limit)))
            self.complete = not message.get("more_body", False)
        return message

    def _refuse(self, error: KinemaError) -> BodyRefused:
        self.refusal = error
        return BodyRefused(error)


def _has_body(scope: Scope) -> bool:
    """Whether the request may carry a body: HTTP/1.1 has none without ``Content-Length``
    or ``Transfer-Encoding`` (HTTP/2 frames a body without either)."""
    if scope.get("http_version") not in ("1.0", "1.1"):
        return True
    for name, _ in scope["headers"]:
        if name == b"content-length" or name == b"transfer-encoding":
            return True
    return False


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        render: PathRenderer,
        trusted_hosts: Sequence[str] = (),
        trusted_proxies: Sequence[str] = (),
        max_body_bytes: int = 20 * 2**20,
        body_timeout_s: float = 120.0,
    ) -> None:
        self.app = app
        self.render = render
        self.trusted_hosts = tuple(h.strip().lower() for h in trusted_hosts if h.strip())
        self.proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p, strict=False) for p in trusted_proxies
        )
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = self._forwarded(scope)
        # Load balancers probe health by address; every other path names a trusted host.
        checked = scope.get("path") != "/healthz"
        error = (self._check_host(scope) if checked else None) or self._check_length(scope)
        if error is not None:
            await self.render(Request(scope), error)(scope, receive, send)
            return
        if not _has_body(scope):  # nothing to guard (a poll): no wrapping on the hot path
            await self.app(scope, receive, send)
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app on a guarded body; answer for it if the guard stopped the body."""
        body = _Body(receive, self.max_body_bytes, self.body_timeout_s)
        responded = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal responded
            if body.refusal is not None and not responded:
                return  # the app's answer to a body it never got whole; the guard answers
            responded = True
            await send(message)

        try:
            await self.app(scope, body.receive, send_unless_refused)
        except BodyRefused:
            if responded:  # too late to answer: the server closes the connection
                raise
        if body.refusal is not None and not responded:
            await self.render(Request(scope), body.refusal)(scope, receive, send)

    # --- proxies ---

    def _from_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not self.proxies or not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def _forwarded(self, scope: Scope) -> Scope:
        if not self._from_proxy(scope):
            return scope
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        found = {name: value for name, value in headers if name.startswith(b"x-forwarded-")}
        scope = dict(scope)

        def first(name: bytes) -> str | None:
            value = found.get(name)
            if value is None:
                return None
            text = value.decode("latin-1").split(",")[0].strip()
            return text or None

        proto = first(b"x-forwarded-proto")
        if proto in ("http", "https"):
            scope["scheme"] = proto
        host = first(b"x-forwarded-host")
        if host is not None:
            headers = [(n, v) for n, v in headers if n != b"host"] + [(b"host", host.encode())]
            scope["headers"] = headers
        client = first(b"x-forwarded-for")
        if client is not None:
            scope["client"] = (client, 0)
        return scope

    # --- host ---

    def _check_host(self, scope: Scope) -> KinemaError | None:
        host = next((v for n, v in scope["headers"] if n == b"host"), None)
        if host is None:
            if self.trusted_hosts:
                return InvalidRequest.for_field("Host", "is required")
            return None
        text = host.decode("latin-1")
        if _HOST.fullmatch(text) is None:
            return InvalidRequest.for_field("Host", f"{text[:100]!r} is not a host name")
        if not self.trusted_hosts:
            return None
        name = text.lower().rsplit(":", 1)[0] if not text.endswith("]") else text.lower()
        if name.startswith("[") and "]:" in name:
            name = name.rsplit(":", 1)[0]
        name = name.rstrip(".")
        for pattern in self.trusted_hosts:
            if pattern == "*" or name == pattern:
                return None
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                return None
        return InvalidRequest.for_field("Host", f"{name[:100]!r} is not a host this server serves")

    # --- body size ---

    def _check_length(self, scope: Scope) -> KinemaError | None:
        value = next((v for n, v in scope["headers"] if n == b"content-length"), None)
        if value is None:
            return None
        text = value.decode("latin-1").strip()
        if not re.fullmatch(r"[0-9]{1,19}", text):
            return InvalidRequest.for_field("Content-Length", "is not a byte count")
        if int(text) > self.max_body_bytes:
            return PayloadTooLarge(too_large(self.max_body_bytes))
        return None
