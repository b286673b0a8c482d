"""Accepting a generation: fetch and check its images, keep them, write the job row.

Images are fetched and validated while the client waits, so a bad image is a 400 and
not a failed job; once accepted, the job only refers to copies in storage and never
depends on the client's URLs again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from kinema.jobs.store import JobStore, hash_request
from kinema.media.fetch import ImageFetcher
from kinema.media.images import read_image_source
from kinema.storage import Storage
from kinema.types import GenerationRequest, Job

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def request_fingerprint(body: Any) -> str:
    """A stable hash of a request body, for Idempotency-Key comparisons."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_prefix(job_id: str) -> str:
    """The storage directory holding one job's inputs and outputs."""
    return f"jobs/{job_id}/"


class Submitter:
    def __init__(self, store: JobStore, storage: Storage, fetcher: ImageFetcher) -> None:
        self.store = store
        self.storage = storage
        self.fetcher = fetcher

    def submit(
        self,
        *,
        owner: str,
        request: GenerationRequest,
        dialect: str,
        wire_names: Mapping[str, str],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        base_url: str | None = None,
    ) -> Job:
        """Make ``request`` a durable queued job owned by ``owner`` and return it.

        ``wire_names`` maps canonical image fields to the names the client used, so image
        errors point at the right field.
        """
        if idempotency_key:  # a retry is answered before its images are fetched again
            earlier = self.store.find_idempotent(
                owner, idempotency_key, request_hash=request_hash or hash_request(request)
            )
            if earlier is not None:
                return earlier

        job_id = uuid.uuid4().hex
        try:
            stored = self._store_images(job_id, request, wire_names)
            job, created = self.store.submit(
                owner=owner,
                request=stored,
                dialect=dialect,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                priority=request.priority,
                job_id=job_id,
                base_url=base_url,
            )
        except BaseException:
            self.storage.delete_prefix(job_prefix(job_id))
            raise
        if not created:  # lost a race with an identical submit: keep the winner only
            self.storage.delete_prefix(job_prefix(job_id))
        return job

    def _store_images(
        self, job_id: str, request: GenerationRequest, wire_names: Mapping[str, str]
    ) -> GenerationRequest:
        def keep(source: str, name: str, field: str | tuple[str | int, ...]) -> str:
            image = read_image_source(source, self.fetcher, field=field)
            key = f"{job_prefix(job_id)}input-{name}.{_EXTENSIONS[image.format]}"
            self.storage.put_bytes(key, image.data)
            return key

        changes: dict[str, Any] = {}
        if request.image:
            changes["image"] = keep(request.image, "first", wire_names.get("image", "image"))
        if request.last_image:
            field = wire_names.get("last_image", "last_image")
            changes["last_image"] = keep(request.last_image, "last", field)
        if request.reference_images:
            field = wire_names.get("reference_images", "reference_images")
            changes["reference_images"] = tuple(
                keep(source, f"reference-{i}", (field, i))
                for i, source in enumerate(request.reference_images)
            )
        return dataclasses.replace(request, **changes)
