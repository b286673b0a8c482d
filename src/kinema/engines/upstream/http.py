"""The HTTP layer every protocol module calls: one configured provider, answers mapped.

A 2xx comes back as parsed JSON. A 429, 408 or 5xx, a timeout or a dropped connection
raises ``RetryableCall`` (with the provider's ``Retry-After`` when it sent one); 401 and
403 mean kinema's credentials are not accepted there, and 404 means the provider does
not know what was asked for, so both make this provider unavailable for the job (a poll
that meets 404 has lost its operation); any other 4xx is the provider refusing the
request, with its own message. The client ignores proxy variables (``trust_env=False``)
and follows no redirects: the provider's API is one configured base URL. The key is
sent in headers only, never in a URL, and is scrubbed from every message it could reach.

Each call has one overall deadline (``timeout_s``, or the caller's ``call_bounds`` when
sooner) and stops when the caller's stop check says so (``CallStopped``), however slowly
the provider answers. A JSON answer is read up to a few MiB; a call that expects a video
inline (``inline``) has the answer spooled to a file and the video decoded to one
(``spool``), so no answer is ever held whole in memory.
"""

from __future__ import annotations

import email.utils
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from kinema.engines.upstream.bounds import BoundedTransport, call_bounds
from kinema.engines.upstream.errors import (
    OperationLost,
    RetryableCall,
    UpstreamRefused,
    UpstreamUnavailable,
)
from kinema.engines.upstream.spool import (
    JSON_LIMIT,
    Answer,
    AnswerTooLarge,
    InlineTrouble,
    parse,
    read_answer,
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
        self.max_response_bytes = max_response_bytes  # an answer carrying a video inline
        self.spool_dir = Path(tempfile.gettempdir())  # where such answers are taken apart
        self._secret = secret
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=dict(headers),
            timeout=timeout_s,
            trust_env=False,
            follow_redirects=False,
            transport=transport or BoundedTransport(),
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
        inline: str | None = None,
    ) -> dict[str, Any]:
        """One request; the JSON object it answered, or one of the errors above.

        ``polling`` marks a read of a recorded operation, whose 404 means it was lost.
        ``inline`` names the key whose value may be a large base64 video: it comes back
        as a ``spool.SpooledVideo`` when the answer is too large to read into memory.
        """
        what = f"{method} {path}"
        try:
            with (
                call_bounds(time.monotonic() + self.timeout_s),
                self._client.stream(
                    method,
                    path,
                    json=json_body,
                    data=data,
                    files=files,
                    params=params,
                    headers=headers,
                ) as response,
            ):
                ok = 200 <= response.status_code < 300
                answer = self._read(response, what, inline if ok else None)
        except httpx.TimeoutException:
            raise RetryableCall(
                f"{what}: no complete answer within {self.timeout_s:g} s"
            ) from None
        except httpx.TransportError as error:
            raise RetryableCall(
                f"{what}: the connection failed ({self.scrub(type(error).__name__)})"
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise UpstreamUnavailable(f"{method}: the provider's URL is not valid") from None
        status = response.status_code
        body = answer.text
        if 200 <= status < 300:
            return self._json(answer, what)
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

    def _read(self, response: httpx.Response, what: str, inline: str | None) -> Answer:
        limit = self.max_response_bytes if inline else min(JSON_LIMIT, self.max_response_bytes)
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise UpstreamUnavailable(f"{what}: the answer is larger than the limit")
        try:
            return read_answer(
                response.iter_bytes(),
                inline_key=inline,
                inline_limit=limit,
                spool_dir=self.spool_dir,
            )
        except AnswerTooLarge as error:
            raise UpstreamUnavailable(f"{what}: {error}") from None
        except InlineTrouble as error:
            raise UpstreamUnavailable(f"{what}: {error}") from None

    def _json(self, answer: Answer, what: str) -> dict[str, Any]:
        try:
            parsed = parse(answer)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            if answer.video is not None:
                answer.video.unlink(missing_ok=True)
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
