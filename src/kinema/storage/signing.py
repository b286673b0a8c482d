"""HMAC-signed, expiring download links.

A link is ``/files/{key}?expires={unix}&signature={hex}``; the signature is
HMAC-SHA256 over ``"{key}\\n{expires}"`` with the server's signing secret, so a link
cannot be altered to name another file or live longer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from urllib.parse import quote

from kinema.errors import Forbidden, LinkExpired

# ``expires`` is a unix time: ASCII digits only (``str.isdigit`` takes "²", which ``int``
# refuses), and no more of them than a time needs.
_EXPIRES = re.compile(r"[0-9]{1,12}")
_RECENT_LINKS = 4096


class LinkSigner:
    def __init__(
        self, secret: bytes, ttl_s: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock
        self._recent: dict[tuple[str, int], str] = {}

    def _signature(self, key: str, expires: int) -> str:
        # surrogatepass: a key decoded from a hostile path may hold lone surrogates
        message = f"{key}\n{expires}".encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def path_for(self, key: str, *, ttl_s: int | None = None) -> str:
        """The signed path (with query) for ``key``, valid for ``ttl_s`` seconds.

        Polls of one job within one second sign the same link: the last few thousand are
        kept, so a busy poll costs a dictionary lookup instead of an HMAC.
        """
        expires = int(self._clock()) + (self.ttl_s if ttl_s is None else ttl_s)
        path = self._recent.get((key, expires))
        if path is None:
            signature = self._signature(key, expires)
            path = f"/files/{quote(key)}?expires={expires}&signature={signature}"
            if len(self._recent) >= _RECENT_LINKS:
                self._recent.clear()  # links of past seconds: never asked for again
            self._recent[(key, expires)] = path
        return path

    def expires_at(self, *, ttl_s: int | None = None) -> int:
        return int(self._clock()) + (self.ttl_s if ttl_s is None else ttl_s)

    def verify(self, key: str, expires: str | None, signature: str | None) -> None:
        """Raise ``Forbidden`` for a missing or wrong signature, ``LinkExpired`` when late."""
        if not expires or not signature or not _EXPIRES.fullmatch(expires):
            raise Forbidden("this link is not signed")
        expected = self._signature(key, int(expires))
        # as bytes: compare_digest refuses str with non-ASCII characters (a TypeError)
        given = signature.encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected.encode("ascii"), given):
            raise Forbidden("this link's signature is not valid")
        if int(expires) < self._clock():
            raise LinkExpired("this link has expired; poll the generation again for a fresh one")
