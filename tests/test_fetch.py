from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from kinema.errors import InvalidImage, UnsafeURL
from kinema.media.fetch import ImageFetcher, format_size
from kinema.settings import Settings
from tests.conftest import missing_tool


def _png_bytes() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png_bytes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stopping: threading.Event

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up on the endless endpoints are expected; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        route = parts.path
        if route == "/image.png":
            self._send(200, PNG, "image/png")
        elif route == "/host":
            self._send(200, str(self.headers["Host"]).encode(), "text/plain")
        elif route.startswith("/hops/"):
            left = int(route.removeprefix("/hops/"))
            self._redirect(f"/hops/{left - 1}" if left > 1 else "/image.png")
        elif route == "/to":
            self._redirect(query["url"][0])
        elif route == "/relative/deeper":
            self._redirect("../image.png")
        elif route == "/no-location":
            self.send_response(302)
            self.end_headers()
        elif route == "/endless":
            self.send_response(200)
            self.end_headers()
            chunk = b"\0" * 65536
            while not self.server.stopping.is_set():
                self.wfile.write(chunk)
        elif route == "/declares-huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(PNG)
        elif route == "/slow":
            self.server.stopping.wait(3)
            self._send(200, PNG, "image/png")
        elif route == "/trickle":
            self.send_response(200)
            self.end_headers()
            while not self.server.stopping.wait(0.05):
                self.wfile.write(b"x")
                self.wfile.flush()
        else:
            self._send(404, b"not here", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    yield from _serve()


@dataclass(frozen=True)
class _Certificates:
    ca: Path  # trusted by the client
    chain: Path  # the server's certificate for TLS_NAME, signed by the CA
    key: Path


TLS_NAME = "images.example.test"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> _Certificates:
    """A throwaway CA and a server certificate for TLS_NAME, made with the openssl tool."""
    if shutil.which("openssl") is None:
        missing_tool("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    (folder / "leaf.ext").write_text(
        f"subjectAltName=DNS:{TLS_NAME}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    for command in (
        f"req -x509 {new_key} -keyout ca.key -out ca.pem -days 2 -subj /CN=kinema-test-ca",
        f"req {new_key} -keyout leaf.key -out leaf.csr -subj /CN={TLS_NAME}",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem"
        " -days 2 -extfile leaf.ext",
    ):
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)
    return _Certificates(folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key")


@pytest.fixture(scope="module")
def tls_port(certificates: _Certificates) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.chain, certificates.key)
    yield from _serve(context)


def _trusting(certificates: _Certificates, *names: str) -> ImageFetcher:
    """A fetcher that trusts the test CA and resolves every name to the test server."""
    return ImageFetcher(
        allow_hosts=names,
        resolver=lambda host, port: ["127.0.0.1"],
        ssl_context=ssl.create_default_context(cafile=certificates.ca),
    )


def _local(
    *, timeout_s: float = 15.0, max_bytes: int = 50 * 2**20, max_redirects: int = 5
) -> ImageFetcher:
    """A fetcher that may reach the test server on 127.0.0.1, and nothing else local."""
    return ImageFetcher(
        allow_hosts=("127.0.0.1",),
        timeout_s=timeout_s,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the allowed path ---------------------------------------------------------------


def test_fetches_image_from_allow_listed_host(port: int) -> None:
    assert _local().fetch(f"http://127.0.0.1:{port}/image.png", field="image_url") == PNG


def test_allow_list_matches_names_case_insensitively(port: int) -> None:
    # "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
    fetcher = ImageFetcher(allow_hosts=("LocalHost",))
    assert fetcher.fetch(f"http://LOCALHOST:{port}/image.png", field="image_url") == PNG


def test_follows_redirect_chain_up_to_the_limit(port: int) -> None:
    assert _local().fetch(f"http://127.0.0.1:{port}/hops/5", field="image_url") == PNG


def test_follows_relative_redirect(port: int) -> None:
    url = f"http://127.0.0.1:{port}/relative/deeper"
    assert _local().fetch(url, field="image_url") == PNG


# --- addresses ----------------------------------------------------------------------


def test_refuses_loopback_literal_when_not_allow_listed(port: int) -> None:
    with pytest.raises(UnsafeURL) as caught:
        ImageFetcher().fetch(f"http://127.0.0.1:{port}/image.png", field="image_url")
    assert caught.value.message == (
        "image_url: address 127.0.0.1 is a loopback address, which kinema does not fetch from"
    )
    assert caught.value.problems[0].path == ("image_url",)


def test_refuses_name_resolving_to_loopback(port: int) -> None:
    with pytest.raises(UnsafeURL, match=r"host localhost resolves to .*a loopback address"):
        ImageFetcher().fetch(f"http://localhost:{port}/image.png", field="image_url")


def test_refuses_ipv6_loopback_literal() -> None:
    with pytest.raises(UnsafeURL, match="address ::1 is a loopback address"):
        ImageFetcher().fetch("http://[::1]:9/image.png", field="image_url")


def test_error_points_at_the_field_it_came_from(port: int) -> None:
    with pytest.raises(UnsafeURL) as caught:
        ImageFetcher().fetch(f"http://127.0.0.1:{port}/", field=("image_urls", 2))
    assert caught.value.problems[0].path == ("image_urls", 2)
    assert caught.value.message.startswith("image_urls.2: ")


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{port}/image.png",
        "http://localhost:{port}/image.png",
        "http://[::1]:{port}/",
    ],
)
def test_redirect_from_allow_listed_host_to_other_loopback_is_refused(
    port: int, target: str
) -> None:
    url = f"http://127.0.0.1:{port}/to?url={target.format(port=port)}"
    with pytest.raises(UnsafeURL, match="a loopback address, which kinema does not fetch from"):
        _local().fetch(url, field="image_url")


def test_checked_address_is_the_one_connected_to(port: int) -> None:
    # The name does not exist in DNS; the fetch can only succeed by connecting to the
    # resolver's answer. The Host header still carries the name, as TLS would.
    calls: list[tuple[str, int]] = []

    def resolver(host: str, resolve_port: int) -> list[str]:
        calls.append((host, resolve_port))
        return ["127.0.0.1"]

    fetcher = ImageFetcher(allow_hosts=("images.example.test",), resolver=resolver)
    body = fetcher.fetch(f"http://images.example.test:{port}/host", field="image_url")

    assert body == f"images.example.test:{port}".encode()
    assert calls == [("images.example.test", port)]


def test_tls_verifies_the_name_while_connecting_to_the_checked_address(
    certificates: _Certificates, tls_port: int
) -> None:
    fetcher = _trusting(certificates, TLS_NAME)
    body = fetcher.fetch(f"https://{TLS_NAME}:{tls_port}/host", field="image_url")
    assert body == f"{TLS_NAME}:{tls_port}".encode()


def test_tls_refuses_a_certificate_for_another_name(
    certificates: _Certificates, tls_port: int
) -> None:
    fetcher = _trusting(certificates, "other.example.test")
    with pytest.raises(
        InvalidImage, match=r"could not connect to other\.example\.test .*CERTIFICATE"
    ):
        fetcher.fetch(f"https://other.example.test:{tls_port}/image.png", field="image_url")


def test_public_looking_name_resolving_to_private_address_is_refused() -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["10.0.0.7"]

    fetcher = ImageFetcher(resolver=resolver)
    with pytest.raises(UnsafeURL) as caught:
        fetcher.fetch("https://cdn.example.com/cat.png", field="image_url")
    assert caught.value.message == (
        "image_url: host cdn.example.com resolves to 10.0.0.7, a private address, "
        "which kinema does not fetch from"
    )
    assert calls == ["cdn.example.com"]


def test_any_refused_address_among_several_refuses_the_host() -> None:
    fetcher = ImageFetcher(resolver=lambda host, port: ["8.8.8.8", "169.254.169.254"])
    with pytest.raises(UnsafeURL, match=r"169\.254\.169\.254, a link-local address"):
        fetcher.fetch("http://metadata.example.com/", field="image_url")


def test_unresolvable_host_is_invalid_image() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(
        InvalidImage, match=r"host nowhere\.example could not be resolved"
    ) as caught:
        ImageFetcher(resolver=resolver).fetch("http://nowhere.example/", field="image_url")
    assert not isinstance(caught.value, UnsafeURL)


# --- URLs and redirects -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/cat.png", "only http and https URLs are fetched, not ftp:"),
        ("file:///etc/passwd", "only http and https URLs are fetched, not file:"),
        ("http://user:secret@example.com/cat.png", "URLs with a user name or password"),
        ("http://trusted.example@127.0.0.1/", "URLs with a user name or password"),
    ],
)
def test_refuses_unsafe_url_forms(url: str, message: str) -> None:
    with pytest.raises(UnsafeURL, match=message):
        ImageFetcher(resolver=lambda host, port: ["8.8.8.8"]).fetch(url, field="image_url")


def test_too_many_redirects(port: int) -> None:
    with pytest.raises(InvalidImage) as caught:
        _local().fetch(f"http://127.0.0.1:{port}/hops/6", field="image_url")
    assert caught.value.message == "image_url: too many redirects (more than 5)"


def test_redirect_limit_is_configurable(port: int) -> None:
    fetcher = _local(max_redirects=2)
    assert fetcher.fetch(f"http://127.0.0.1:{port}/hops/2", field="image_url") == PNG
    with pytest.raises(InvalidImage, match=r"too many redirects \(more than 2\)"):
        fetcher.fetch(f"http://127.0.0.1:{port}/hops/3", field="image_url")


def test_redirect_to_other_scheme_is_refused(port: int) -> None:
    url = f"http://127.0.0.1:{port}/to?url=file:///etc/passwd"
    with pytest.raises(UnsafeURL, match="not file:"):
        _local().fetch(url, field="image_url")


def test_redirect_without_location(port: int) -> None:
    with pytest.raises(InvalidImage, match="HTTP 302 redirect without a Location header"):
        _local().fetch(f"http://127.0.0.1:{port}/no-location", field="image_url")


def test_http_error_status(port: int) -> None:
    with pytest.raises(InvalidImage) as caught:
        _local().fetch(f"http://127.0.0.1:{port}/missing.png", field="image_url")
    assert caught.value.message == "image_url: HTTP 404 from the URL"
    assert not isinstance(caught.value, UnsafeURL)


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/image.png"
    with pytest.raises(InvalidImage, match=r"could not connect to 127\.0\.0\.1"):
        _local().fetch(url, field="image_url")


# --- size and time ------------------------------------------------------------------


def test_endless_body_stops_at_the_byte_limit(port: int) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidImage) as caught:
        _local(max_bytes=256 * 1024).fetch(f"http://127.0.0.1:{port}/endless", field="image_url")
    assert caught.value.message == "image_url: image is more than 256 KB; the limit is 256 KB"
    assert time.monotonic() - started < 2


def test_declared_length_over_the_limit_is_refused_before_reading(port: int) -> None:
    with pytest.raises(InvalidImage) as caught:
        _local().fetch(f"http://127.0.0.1:{port}/declares-huge", field="image_url")
    assert caught.value.message == "image_url: image is 953.7 MB; the limit is 50 MB"


def test_body_exactly_at_the_limit_is_accepted(port: int) -> None:
    fetcher = _local(max_bytes=len(PNG))
    assert fetcher.fetch(f"http://127.0.0.1:{port}/image.png", field="image_url") == PNG


def test_slow_server_times_out(port: int) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidImage) as caught:
        _local(timeout_s=0.5).fetch(f"http://127.0.0.1:{port}/slow", field="image_url")
    assert caught.value.message == "image_url: timed out after 0.5 s"
    assert time.monotonic() - started < 1.5


def test_trickling_body_hits_the_overall_deadline(port: int) -> None:
    # Each byte arrives well within the read timeout; only the overall deadline stops it.
    started = time.monotonic()
    with pytest.raises(InvalidImage, match=r"timed out after 0.5 s"):
        _local(timeout_s=0.5).fetch(f"http://127.0.0.1:{port}/trickle", field="image_url")
    assert time.monotonic() - started < 1.5


# --- construction -------------------------------------------------------------------


def test_built_from_settings() -> None:
    settings = Settings(
        fetch_allow_hosts=["Localhost", "10.0.0.5"],
        fetch_timeout_s=3.0,
        fetch_max_redirects=2,
        max_image_bytes=1234,
    )
    fetcher = ImageFetcher.from_settings(settings)

    http = fetcher.http
    assert http.allow_hosts == frozenset({"localhost", "10.0.0.5"})
    assert (http.timeout_s, http.max_redirects, http.max_bytes) == (3.0, 2, 1234)
    assert fetcher.is_allowed("LOCALHOST")
    assert fetcher.is_allowed("10.0.0.5")
    assert not fetcher.is_allowed("10.0.0.6")


def test_allow_listed_ipv6_literal_matches_any_spelling() -> None:
    fetcher = ImageFetcher(allow_hosts=("::1",))
    assert fetcher.is_allowed("0:0:0:0:0:0:0:1")
    assert fetcher.is_allowed("[::1]")


@pytest.mark.parametrize(
    ("size", "text"),
    [(90, "90 bytes"), (2048, "2 KB"), (50 * 2**20, "50 MB"), (50 * 2**20 + 1, "50.1 MB")],
)
def test_sizes_read_naturally_and_round_up(size: int, text: str) -> None:
    assert format_size(size) == text
