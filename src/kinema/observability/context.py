"""What a log line is about: the request, job and API key being served, as context
variables that the log formatter reads. Each request and each running job sets its own,
so lines from threads and tasks never borrow another's ids."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("kinema_request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("kinema_job_id", default=None)
key_id: ContextVar[str | None] = ContextVar("kinema_key_id", default=None)


@contextmanager
def job_context(job: str, key: str | None) -> Iterator[None]:
    """Every log line inside the block names ``job`` and the id of the key that owns it
    (the key's id, never the key)."""
    job_token = job_id.set(job)
    key_token = key_id.set(key)
    try:
        yield
    finally:
        key_id.reset(key_token)
        job_id.reset(job_token)


def current() -> dict[str, str]:
    """The ids in force here, omitting those unset."""
    values = {"request_id": request_id.get(), "job_id": job_id.get(), "key_id": key_id.get()}
    return {name: value for name, value in values.items() if value is not None}
