"""Fetching a client's image URL: the safe HTTP client, with its failures as image errors.

Everything about connecting safely lives in ``kinema.media.http``; here a failure to
get the image (a timeout, an HTTP error, a body over the size limit) becomes an
``InvalidImage`` on the wire field, so the client sees a 400 about its image. Refused
addresses stay ``UnsafeURL``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kinema.errors import InvalidImage, RemoteFailure
from kinema.media.http import FieldPath, Resolver, SafeHttpClient, format_size, resolve_host

if TYPE_CHECKING:
    from kinema.settings import Settings

__all__ = ["FieldPath", "ImageFetcher", "Resolver", "format_size", "resolve_host"]

_ACCEPT = "image/png, image/jpeg, image/webp;q=0.9, */*;q=0.1"


class ImageFetcher:
    """Downloads image URLs through a ``SafeHttpClient`` (built from the same limits)."""

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        timeout_s: float = 15.0,
        max_bytes: int = 50 * 2**20,
        max_redirects: int = 5,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.http = SafeHttpClient(
            allow_hosts=allow_hosts,
            timeout_s=timeout_s,
            max_bytes=max_bytes,
            max_redirects=max_redirects,
            resolver=resolver,
            ssl_context=ssl_context,
        )
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageFetcher:
        return cls(
            allow_hosts=settings.fetch_allow_hosts,
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_image_bytes,
            max_redirects=settings.fetch_max_redirects,
        )

    def fetch(self, url: str, *, field: FieldPath) -> bytes:
        """The image at ``url``, or ``InvalidImage`` / ``UnsafeURL`` naming ``field``."""
        try:
            return self.http.get(url, field=field, accept=_ACCEPT, what="image")
        except RemoteFailure as error:
            raise InvalidImage(error.message, error.problems) from None

    def is_allowed(self, host: str) -> bool:
        return self.http.is_allowed(host)
