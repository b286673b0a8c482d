"""Running a failed job again, as a new job: the operator's ``kinema jobs retry``.

The new job has its own id and the failed one stays as it was (its clients saw it fail,
its webhook was sent). The request is the same, with the inputs copied under the new
job's files, so deleting either job leaves the other whole.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from kinema.errors import InvalidRequest
from kinema.jobs.store import JobStore
from kinema.jobs.submit import job_prefix
from kinema.storage import Storage
from kinema.types import Job, JobStatus


def retry_failed(store: JobStore, storage: Storage, job_id: str) -> Job:
    """Queue a copy of failed job ``job_id`` for its owner; returns the new job."""
    job = store.get_any(job_id)
    if job.status is not JobStatus.FAILED:
        raise InvalidRequest(f"job {job.id} is {job.status.value}; only a failed job is retried")
    new_id = uuid.uuid4().hex
    old_prefix, new_prefix = job_prefix(job.id), job_prefix(new_id)

    def copy(key: str) -> str:
        if not key.startswith(old_prefix):
            return key
        moved = new_prefix + key.removeprefix(old_prefix)
        storage.put_bytes(moved, storage.get_bytes(key))
        return moved

    request = job.request
    changes: dict[str, Any] = {}
    try:
        if request.image:
            changes["image"] = copy(request.image)
        if request.last_image:
            changes["last_image"] = copy(request.last_image)
        if request.reference_images:
            changes["reference_images"] = tuple(copy(k) for k in request.reference_images)
        retried, _ = store.submit(
            owner=job.owner,
            request=dataclasses.replace(request, **changes),
            dialect=job.dialect,
            priority=job.priority,
            job_id=new_id,
        )
    except BaseException:
        storage.delete_prefix(new_prefix)
        raise
    return retried
