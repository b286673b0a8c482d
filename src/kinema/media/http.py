"""The one safe HTTP client: GETs of clients' image URLs and POSTs of webhooks, without
letting a client reach what it should not.

Its errors are neutral: ``UnsafeURL`` for an address kinema does not connect to, and
``RemoteFailure`` for everything else (timeouts, refused connections, HTTP errors, bodies
over the limit); each names the wire field the URL came from. Callers give them meaning:
image intake turns a failure into an invalid image, webhook delivery retries it.

Three things make a request safe (SSRF):

* For each connection the host is resolved once, every address it resolves to is
  checked against ``netpolicy`` (one refused address refuses the host), and the socket
  connects to a checked address. There is no second DNS lookup that a rebinding name
  could answer differently. This happens in a network backend under ``httpcore``, so
  TLS still verifies the certificate against the host name and sends it as SNI.
* Redirects are followed here, one hop at a time, and every new connection goes through
  the same check, so a public URL cannot bounce the fetch to ``localhost``.
* Time and size are bounded: each socket operation is cut short at one overall deadline,
  and the body is refused as soon as it declares or delivers more than the limit. (Name
  resolution is bounded by the system resolver's own timeouts, not by this deadline.)

``httpcore`` is used directly rather than through an ``httpx.Client``: the client would
honour ``HTTP_PROXY`` and friends, and a proxy would make the connection's address
something other than the address checked here.

URLs that carry a user name or password are refused: they have no business in a link
that is stored with a job, and ``http://trusted@evil/`` is a well-known way to make
a URL look like it points somewhere it does not.

Hosts in ``allow_hosts`` (exact names or IP literals, compared case-insensitively) skip
the address check. That is for local development, where images are served from
``localhost`` or a private network on purpose. ``allow_origins`` (URLs) are narrower:
only that scheme, host and port skip it, so a link or redirect to another port of the
same host (a private service beside a provider) is checked like any other.

``connector`` is the network backend that opens the checked connections (httpcore's own by
default). A caller that must stop a fetch early passes one whose sockets look at its own
stop check: the upstream engine's downloads end for a job's cancel or a worker's shutdown
that way, with the address check unchanged above it.
"""

from __future__ import annotations

import math
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, TypeAlias

import httpcore
import httpx

import kinema
from kinema.errors import RemoteFailure, UnsafeURL
from kinema.media.netpolicy import refusal_reason

if TYPE_CHECKING:
    from kinema.settings import Settings

__all__ = ["FieldPath", "Resolver", "SafeHttpClient", "format_size", "resolve_host"]

FieldPath: TypeAlias = str | tuple[str | int, ...]
"""Where a value sits in the wire body: ``"image_url"`` or ``("image_urls", 2)``."""

IPAddress: TypeAlias = IPv4Address | IPv6Address

Resolver: TypeAlias = Callable[[str, int], Iterable[str]]
"""Maps ``(host, port)`` to the IP addresses (as text) to connect to, in order."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = f"kinema/{kinema.__version__}".encode()


def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host``, in its order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def format_size(size: int) -> str:
    """A byte count for an error message, rounded up: "80 MB", "512.5 KB", "90 bytes"."""
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            value = math.ceil(size / scale * 10) / 10
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


class SafeHttpClient:
    """GETs and POSTs over http(s), refusing unsafe addresses, slow or huge bodies.

    Holds configuration only, so one instance may serve many threads at once; each
    request builds its own connection pool and closes it before returning.
    """

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        timeout_s: float = 15.0,
        max_bytes: int = 50 * 2**20,
        max_redirects: int = 5,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        allow_origins: Iterable[str] = (),
        connector: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.allow_hosts: frozenset[str] = frozenset(h.strip().lower() for h in allow_hosts)
        # (host, port) of each allowed origin; a socket knows no scheme, and one port
        # serves one of them
        self.allow_origins: frozenset[tuple[str, int | None]] = frozenset(
            _origin(httpx.URL(url))[1:] for url in allow_origins
        )
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.resolver: Resolver = resolver or resolve_host
        self.connector: httpcore.NetworkBackend = connector or httpcore.SyncBackend()
        self._allowed_addresses = frozenset(
            address for address in map(_parse_ip, self.allow_hosts) if address is not None
        )
        # Default trust: certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set.
        self._ssl_context = ssl_context or httpx.create_ssl_context()

    @classmethod
    def from_settings(cls, settings: Settings) -> SafeHttpClient:
        return cls(
            allow_hosts=settings.fetch_allow_hosts,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_image_bytes,
            max_redirects=settings.fetch_max_redirects,
        )

    def get(
        self,
        url: str,
        *,
        field: FieldPath,
        accept: str = "*/*",
        what: str = "the body",
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """The body of ``url`` after following redirects, or ``RemoteFailure``/``UnsafeURL``.

        ``field`` names the wire field the URL came from, so the error points at it;
        ``what`` names the body in size errors ("image is 80 MB; the limit is 50 MB").
        ``headers`` (credentials for the first URL's server, say) go only to that URL's
        origin: a redirect elsewhere is followed without them.
        """
        target = _parse_url(url, field)
        origin = _origin(target)
        deadline = time.monotonic() + self.timeout_s
        backend = _VettingBackend(self, deadline, field)
        with httpcore.ConnectionPool(
            ssl_context=self._ssl_context, network_backend=backend
        ) as pool:
            for _ in range(self.max_redirects + 1):
                extra = headers if headers and _origin(target) == origin else None
                outcome = self._get(pool, target, field, accept.encode(), what, extra)
                if isinstance(outcome, bytes):
                    return outcome
                target = outcome
        raise RemoteFailure.for_field(
            field, f"too many redirects (more than {self.max_redirects})"
        )

    def post(self, url: str, body: bytes, headers: dict[str, str], *, field: FieldPath) -> int:
        """POST ``body`` to ``url`` under the same address rules as ``get``; the status.

        Used for webhooks: redirects are not followed (a redirect status is returned as
        is) and the response body is read only up to a small cap, then dropped.
        """
        target = _parse_url(url, field)
        backend = _VettingBackend(self, time.monotonic() + self.timeout_s, field)
        request_url = httpcore.URL(
            scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path
        )
        sent = [(b"Host", target.netloc), (b"User-Agent", _USER_AGENT)]
        sent += [(name.encode(), value.encode()) for name, value in headers.items()]
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.timeout_s)
        try:
            with (
                httpcore.ConnectionPool(
                    ssl_context=self._ssl_context, network_backend=backend
                ) as pool,
                pool.stream(
                    "POST",
                    request_url,
                    headers=sent,
                    content=body,
                    extensions={"timeout": timeouts},
                ) as response,
            ):
                for received, _ in enumerate(response.iter_stream()):
                    if received > 64:
                        break
                return int(response.status)
        except httpcore.TimeoutException as exc:
            raise RemoteFailure.for_field(field, f"timed out after {self.timeout_s:g} s") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise RemoteFailure.for_field(
                field, f"the connection to {target.host} failed ({_describe(exc)})"
            ) from exc

    def vet(self, url: str, *, field: FieldPath) -> None:
        """Check now that ``url`` is http(s) and resolves only to allowed addresses.

        Requests that name a callback URL are refused at once with a 400 this way; the
        address is checked again when each delivery connects.
        """
        target = _parse_url(url, field)
        port = target.port or (443 if target.scheme == "https" else 80)
        _VettingBackend(self, time.monotonic() + self.timeout_s, field)._vetted_addresses(
            target.host, port
        )

    def is_allowed(self, host: str, port: int | None = None) -> bool:
        """Whether ``host`` (a name or an IP literal), at ``port`` when given, skips the
        address check."""
        if host.lower() in self.allow_hosts or (host.lower(), port) in self.allow_origins:
            return True
        address = _parse_ip(host)
        return address is not None and address in self._allowed_addresses

    def _get(
        self,
        pool: httpcore.ConnectionPool,
        url: httpx.URL,
        field: FieldPath,
        accept: bytes,
        what: str,
        extra: Mapping[str, str] | None = None,
    ) -> bytes | httpx.URL:
        """One GET: the body of a 2xx, the next URL of a redirect, or an error."""
        request_url = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        headers = [
            (b"Host", url.netloc),
            (b"User-Agent", _USER_AGENT),
            (b"Accept", accept),
            (b"Accept-Encoding", b"identity"),
        ]
        headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.timeout_s)
        try:
            with pool.stream(
                "GET", request_url, headers=headers, extensions={"timeout": timeouts}
            ) as response:
                if response.status in _REDIRECT_STATUSES:
                    return _redirect_target(response, url, field)
                if not 200 <= response.status < 300:
                    raise RemoteFailure.for_field(
                        field, f"HTTP {response.status} from the URL"
                    )
                return self._read_body(response, field, what)
        except httpcore.TimeoutException as exc:
            raise RemoteFailure.for_field(field, f"timed out after {self.timeout_s:g} s") from exc
        except httpcore.ConnectError as exc:
            raise RemoteFailure.for_field(
                field, f"could not connect to {url.host} ({_describe(exc)})"
            ) from exc
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise RemoteFailure.for_field(
                field, f"the connection to {url.host} failed ({_describe(exc)})"
            ) from exc

    def _read_body(self, response: httpcore.Response, field: FieldPath, what: str) -> bytes:
        declared = _content_length(response)
        if declared is not None and declared > self.max_bytes:
            raise RemoteFailure.for_field(
                field,
                f"{what} is {format_size(declared)}; the limit is {format_size(self.max_bytes)}",
            )
        chunks: list[bytes] = []
        received = 0
        for chunk in response.iter_stream():
            received += len(chunk)
            if received > self.max_bytes:
                raise RemoteFailure.for_field(
                    field,
                    f"{what} is more than {format_size(self.max_bytes)}; "
                    f"the limit is {format_size(self.max_bytes)}",
                )
            chunks.append(chunk)
        return b"".join(chunks)


class _VettingBackend(httpcore.NetworkBackend):
    """Resolves each host once, refuses unsafe addresses, connects to a checked one.

    Every stream it opens is cut short at the fetch's overall deadline.
    """

    def __init__(self, fetcher: SafeHttpClient, deadline: float, field: FieldPath) -> None:
        self._fetcher = fetcher
        self._deadline = deadline
        self._field = field
        self._inner = fetcher.connector

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._vetted_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_within(self._deadline, timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None
        raise failure

    def _vetted_addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = _parse_ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ip_address(a) for a in self._fetcher.resolver(host, port)]
            except (OSError, UnicodeError, ValueError):
                addresses = []
            if not addresses:
                raise RemoteFailure.for_field(self._field, f"host {host} could not be resolved")
        if self._fetcher.is_allowed(host, port):
            return addresses
        for address in addresses:
            reason = refusal_reason(address)
            if reason is None:
                continue
            if literal is not None:
                message = f"address {address} is {reason}"
            else:
                message = f"host {host} resolves to {address}, {reason}"
            raise UnsafeURL.for_field(self._field, f"{message}, which kinema does not fetch from")
        return addresses


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read and write ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        secured = self._inner.start_tls(
            ssl_context, server_hostname, _within(self._deadline, timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(secured, self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


def _within(deadline: float, timeout: float | None, expired: type[Exception]) -> float:
    """``timeout`` shortened to what is left before ``deadline``; ``expired`` if nothing is."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the overall deadline has passed")
    return left if timeout is None else min(timeout, left)


def _parse_url(raw: str, field: FieldPath) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise RemoteFailure.for_field(field, f"not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https"):
        scheme = f"{url.scheme}:" if url.scheme else "a relative URL"
        raise UnsafeURL.for_field(field, f"only http and https URLs are fetched, not {scheme}")
    if not url.host:
        raise RemoteFailure.for_field(field, "the URL has no host")
    if url.userinfo:
        raise UnsafeURL.for_field(field, "URLs with a user name or password are not accepted")
    return url


def _redirect_target(response: httpcore.Response, url: httpx.URL, field: FieldPath) -> httpx.URL:
    location = _header(response, b"location")
    if location is None:
        raise RemoteFailure.for_field(
            field, f"HTTP {response.status} redirect without a Location header"
        )
    try:
        joined = url.join(location.decode("latin-1"))
    except httpx.InvalidURL as exc:
        raise RemoteFailure.for_field(field, f"redirect to an invalid URL ({exc})") from None
    return _parse_url(str(joined), field)


def _content_length(response: httpcore.Response) -> int | None:
    value = _header(response, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(response: httpcore.Response, name: bytes) -> bytes | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value
    return None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.lower(), url.port or (443 if url.scheme == "https" else 80)


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ip_address(host.strip("[]"))
    except ValueError:
        return None


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
