"""How a forwarded job can go wrong, drawn once for every protocol.

Two outcomes reach the worker: ``UpstreamRefused`` fails the job with the provider's own
message (it will not get better by asking again: a validation or content-policy refusal),
and ``UpstreamUnavailable`` says this provider could not deliver now (overloaded, down,
lost the operation, past its deadline), so the job falls back to the model's next engine
or is retried later. ``RetryableCall`` is internal: one HTTP call that may succeed if
repeated (a 429 or 5xx, a timeout, a dropped connection).
"""

from __future__ import annotations

from kinema.errors import EngineError, TransientError


class UpstreamRefused(EngineError):
    """The provider refused the job for good; ``message`` is the provider's own."""

    code = "upstream_refused"


class UpstreamUnavailable(TransientError):
    """The provider could not deliver this job now; another engine or a later try may."""

    code = "upstream_unavailable"


class OperationLost(UpstreamUnavailable):
    """The provider no longer knows the operation kinema recorded (it restarted, say)."""

    code = "upstream_operation_lost"


class RetryableCall(Exception):
    """One call failed in a way that repeating it may fix; ``retry_after_s`` if the
    provider said how long to wait."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
