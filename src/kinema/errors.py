"""The one exception hierarchy of kinema.

Domain code raises these; each HTTP dialect maps them to its own status codes and
error envelope. Nothing here knows about HTTP beyond the suggested ``status`` hint.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE_CHARS = 1000  # error messages echo client input; never more than this of it


def safe_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` fit to be sent back: at most ``limit`` characters, and encodable as UTF-8
    (a lone surrogate from a JSON ``\\ud800`` escape is written as that escape)."""
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class KinemaError(Exception):
    """Base of every error kinema raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        message = safe_text(message)
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a request (``path`` as in the wire body)."""

    path: tuple[str | int, ...]
    message: str

    def __post_init__(self) -> None:
        path = tuple(p if isinstance(p, int) else safe_text(str(p), 200) for p in self.path)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "message", safe_text(self.message))


class InvalidRequest(KinemaError):
    """The request body is malformed or asks for something the model cannot do."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.problems: list[FieldProblem] = problems or []

    @classmethod
    def for_field(cls, path: str | tuple[str | int, ...], message: str) -> InvalidRequest:
        key = (path,) if isinstance(path, str) else path
        return cls(f"{'.'.join(map(str, key))}: {message}", [FieldProblem(key, message)])


class InvalidImage(InvalidRequest):
    """An input image could not be fetched, decoded or accepted."""

    code = "invalid_image"


class UnsafeURL(InvalidRequest):
    """A URL points somewhere kinema refuses to connect to (SSRF protection)."""

    code = "unsafe_url"


class RemoteFailure(InvalidRequest):
    """A URL could not be reached or answered badly: timeout, refused connection, HTTP
    error, a body over the limit. Image intake reports it as an ``InvalidImage``."""

    code = "remote_failure"


class UnknownModel(InvalidRequest):
    code = "unknown_model"


class Unauthenticated(KinemaError):
    status = 401
    code = "unauthenticated"


class NotFound(KinemaError):
    status = 404
    code = "not_found"


class IdempotencyConflict(KinemaError):
    """The same Idempotency-Key was used before with a different body."""

    status = 422
    code = "idempotency_conflict"


class MethodNotAllowed(KinemaError):
    """The path exists but not for this HTTP method."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allow: str = "") -> None:
        super().__init__(message)
        self.allow = allow


class PayloadTooLarge(KinemaError):
    """The request body is larger than the server accepts (``KINEMA_MAX_BODY_BYTES``)."""

    status = 413
    code = "payload_too_large"


class RequestTimeout(KinemaError):
    """The request body did not arrive in time (``KINEMA_BODY_TIMEOUT_S``)."""

    status = 408
    code = "request_timeout"


class JobStillRunning(KinemaError):
    """A job asked to stop has not stopped yet; the client should retry shortly."""

    status = 409
    code = "job_still_running"


class Forbidden(KinemaError):
    status = 403
    code = "forbidden"


class LinkExpired(KinemaError):
    status = 410
    code = "link_expired"


class RateLimited(KinemaError):
    """The caller's key sent more requests than its rate allows; retry after a while."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExceeded(RateLimited):
    """A create would take the caller's key past one of its quotas (``kinema keys quota``);
    the message names the quota. Dialects render it as their 429, like a rate limit."""

    code = "quota_exceeded"

    def __init__(self, message: str, retry_after_s: float, *, quota: str) -> None:
        super().__init__(message, retry_after_s)
        self.quota = quota


class NotSupported(KinemaError):
    """A capability that exists in the wire protocol but not (yet) in this build."""

    status = 501
    code = "not_supported"


class EngineError(KinemaError):
    """An engine failed to produce a clip; the job fails with this message."""

    code = "engine_error"


class TransientError(KinemaError):
    """A failure that may pass on its own (storage or an upstream service unreachable,
    overloaded): the job is retried later, with backoff, instead of failing at once."""

    status = 503
    code = "transient_error"


class Unavailable(TransientError):
    """A part the server depends on (its database, object storage) cannot be reached now.

    Not the request's fault and not the engine's: an HTTP request gets a 503 with
    ``Retry-After`` (RFC 9110, section 15.6.4), and a worker waits for the part to come back
    instead of spending the job's attempts (``Settings.outage_wait_s``)."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InsufficientStorage(Unavailable):
    """A disk the server writes to is full: 507 (RFC 4918, section 11.5), ``Retry-After``."""

    status = 507
    code = "insufficient_storage"


class JobCancelled(KinemaError):
    """Raised inside a running engine when its job was cancelled."""

    code = "cancelled"


class LeaseLost(KinemaError):
    """A worker's fenced write found a newer attempt or a terminal job: stop quietly."""

    code = "lease_lost"
