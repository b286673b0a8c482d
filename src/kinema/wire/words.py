"""Status words of the APIs whose tasks have four states.

Several APIs say only queued, running, succeeded or failed: a cancelled job and an
expired one (its files removed after retention) read as failed there, and the error
code says which (each wire table's ``render``).
"""

from __future__ import annotations

from kinema.types import JobStatus


def four_states(queued: str, running: str, succeeded: str, failed: str) -> dict[JobStatus, str]:
    """kinema's status -> the API's word, every unsuccessful end reading ``failed``."""
    return {
        JobStatus.QUEUED: queued,
        JobStatus.RUNNING: running,
        JobStatus.SUCCEEDED: succeeded,
        JobStatus.FAILED: failed,
        JobStatus.CANCELLED: failed,
        JobStatus.EXPIRED: failed,
    }
