"""The HTTP layer every protocol module calls: one configured provider, answers mapped.

A 2xx comes back as parsed JSON. A 429, 408 or 5xx, a timeout or a dropped connection
raises ``RetryableCall`` (with the provider's ``Retry-After`` when it sent one); 401 and
403 mean kinema's credentials are not accepted there, and 404 means the provider does
not know what was asked for, so both make this provider unavailable for the job (a poll
that meets 404 has lost its operation); any other 4xx is the provider refusing the
request, with its own message. The client ignores proxy variables (``trust_env=False``)
and follows no redirects: the provider's API is one configured base URL. The key is
sent in headers only, never in a URL, and is scrubbed from every message it could reach.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from kinema.engines.upstream.errors import (
    OperationLost,
    RetryableCall,
    UpstreamRefused,
    UpstreamUnavailable,
)

_RETRY_STATUSES = frozenset({408, 425, 429})
_MESSAGE_CHARS = 500


class UpstreamHTTP:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout_s: float,
        max_response_bytes: int,
        secret: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self._secret = secret
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=dict(headers),
            timeout=timeout_s,
            trust_env=False,
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def scrub(self, text: str) -> str:
        """``text`` with the provider key replaced, wherever it came from."""
        if self._secret:
            text = text.replace(self._secret, "[key]")
        return text

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        polling: bool = False,
    ) -> dict[str, Any]:
        """One request; the JSON object it answered, or one of the errors above.

        ``polling`` marks a read of a recorded operation, whose 404 means it was lost.
        """
        what = f"{method} {path}"
        try:
            with self._client.stream(
                method,
                path,
                json=json_body,
                data=data,
                files=files,
                params=params,
                headers=headers,
            ) as response:
                body = self._read(response, what)
        except httpx.TimeoutException:
            raise RetryableCall(f"{what}: no answer within {self.timeout_s:g} s") from None
        except httpx.TransportError as error:
            raise RetryableCall(
                f"{what}: the connection failed ({self.scrub(type(error).__name__)})"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return self._json(body, what)
        message = self.scrub(provider_message(body) or response.reason_phrase or "no message")
        if status in _RETRY_STATUSES or status >= 500:
            wait = retry_after(response)
            raise RetryableCall(f"HTTP {status} from the provider: {message}", wait)
        if status in (401, 403):
            raise UpstreamUnavailable(
                f"the provider did not accept kinema's credentials (HTTP {status}: {message})"
            )
        if status == 404:
            if polling:
                raise OperationLost(f"the provider no longer knows this operation ({message})")
            raise UpstreamUnavailable(f"HTTP 404 from the provider for {what}: {message}")
        raise UpstreamRefused(message)

    def _read(self, response: httpx.Response, what: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
            raise UpstreamUnavailable(f"{what}: the answer is larger than the limit")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise UpstreamUnavailable(f"{what}: the answer is larger than the limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            raise RetryableCall(f"{what}: the answer was not JSON") from None
        if not isinstance(parsed, dict):
            raise RetryableCall(f"{what}: the answer was not a JSON object")
        return parsed


def provider_message(body: bytes) -> str | None:
    """The human message of an error body in any of the dialects' envelopes."""
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:_MESSAGE_CHARS] or None
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:_MESSAGE_CHARS]
    if isinstance(error, str):
        return error[:_MESSAGE_CHARS]
    details = parsed.get("details")
    if isinstance(details, list) and details:  # the AI/ML API's "Body validation error!"
        parts = [str(d.get("message")) for d in details if isinstance(d, dict)]
        return "; ".join(p for p in parts if p)[:_MESSAGE_CHARS] or None
    for key in ("message", "detail"):
        value = parsed.get(key)
        if isinstance(value, str):
            return value[:_MESSAGE_CHARS]
        if value is not None:
            return json.dumps(value)[:_MESSAGE_CHARS]
    return None


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the provider asked to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
