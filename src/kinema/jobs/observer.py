"""What the job machinery reports as it works, for whoever counts (``Metrics``).

The executor and the runtime call these; they never know what listens. ``NoObserver``
is the default, so code that needs no numbers passes nothing.
"""

from __future__ import annotations

from typing import Protocol

from kinema.types import Job, JobStatus


class JobObserver(Protocol):
    def job_created(self, job: Job, *, engine: str) -> None:
        """A new job was accepted (not an idempotent replay of an earlier one)."""
        ...

    def job_finished(
        self,
        job: Job,
        *,
        engine: str,
        state: JobStatus,
        generation_s: float | None = None,
        video_s: float | None = None,
    ) -> None:
        """``job`` reached ``state``; a worker passes how long it ran and the seconds of
        video it made."""
        ...

    def engine_step(self, engine: str, seconds: float) -> None:
        """An engine reported progress ``seconds`` after its previous report."""
        ...

    def lease_expired(self, job: Job, *, worker_id: str) -> None:
        """``worker_id`` stopped renewing ``job``'s lease; ``job.status`` is what became
        of it (``queued`` again, ``failed`` or ``cancelled``)."""
        ...

    def webhook_outcome(self, dialect: str, outcome: str) -> None:
        """One webhook attempt ended: ``delivered``, ``retry`` or ``failed`` (for good)."""
        ...


class NoObserver:
    """Counts nothing."""

    def job_created(self, job: Job, *, engine: str) -> None:
        return None

    def job_finished(
        self,
        job: Job,
        *,
        engine: str,
        state: JobStatus,
        generation_s: float | None = None,
        video_s: float | None = None,
    ) -> None:
        return None

    def engine_step(self, engine: str, seconds: float) -> None:
        return None

    def lease_expired(self, job: Job, *, worker_id: str) -> None:
        return None

    def webhook_outcome(self, dialect: str, outcome: str) -> None:
        return None
