"""Accepting a generation: fetch and check its inputs, keep them, write the job row.

Images (and an extension's source video) are fetched and validated while the client
waits, so a bad input is a 400 and not a failed job; once accepted, the job only refers
to copies in its own storage directory and never depends on the client's URLs, or on the
earlier job it was derived from, again.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection

from kinema.catalog_models import ExtensionLimits
from kinema.errors import InvalidRequest
from kinema.jobs.budget import OutputBudget
from kinema.jobs.keys import input_key, job_prefix
from kinema.jobs.sources import SourceResolver
from kinema.jobs.store import JobStore
from kinema.media.fetch import ImageFetcher
from kinema.media.images import read_image_source, validate_image
from kinema.storage import Storage
from kinema.types import GenerationRequest, Job, parse_output_ref

__all__ = ["Submitter", "job_prefix"]

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


class Submitter:
    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        fetcher: ImageFetcher,
        *,
        max_video_bytes: int = 200 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.storage = storage
        self.fetcher = fetcher
        self.sources = SourceResolver(store, storage, max_video_bytes=max_video_bytes)

    def submit(
        self,
        *,
        owner: str,
        request: GenerationRequest,
        dialect: str,
        wire_names: Mapping[str, str],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        extension: ExtensionLimits | None = None,
        base_url: str | None = None,
        guard: Callable[[Connection, GenerationRequest], None] | None = None,
        budget: OutputBudget | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> tuple[Job, bool]:
        """Make ``request`` a durable queued job owned by ``owner``; the job and whether it
        was created (False: an identical create with the same ``idempotency_key`` won).

        ``wire_names`` maps canonical input fields to the names the client used, so input
        errors point at the right field. ``extension`` bounds a source video (the model's
        limits; a request with a video needs them). ``guard`` runs in the inserting
        transaction (``JobStore.submit``) with the request as it will be stored (an
        extension's source measured). ``budget`` bounds what the job makes, its videos
        being ``frame_size`` unless they continue a source (``OutputBudget``).
        """
        if budget is not None and frame_size is not None and not request.video:
            budget.check(request, *frame_size, wire_names)  # before fetching anything
        job_id = uuid.uuid4().hex
        try:
            stored = self._store_inputs(job_id, owner, request, wire_names, extension, budget)
            bound = None if guard is None else _bind(guard, stored)
            job, created = self.store.submit(
                owner=owner,
                request=stored,
                dialect=dialect,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                priority=request.priority,
                job_id=job_id,
                base_url=base_url,
                guard=bound,
            )
        except BaseException:
            self.storage.delete_prefix(job_prefix(job_id))
            raise
        if not created:  # lost a race with an identical submit: keep the winner only
            self.storage.delete_prefix(job_prefix(job_id))
        return job, created

    def _store_inputs(
        self,
        job_id: str,
        owner: str,
        request: GenerationRequest,
        wire_names: Mapping[str, str],
        extension: ExtensionLimits | None,
        budget: OutputBudget | None,
    ) -> GenerationRequest:
        changes: dict[str, Any] = {}

        def keep(source: str, name: str, field: str | tuple[str | int, ...]) -> str:
            if parse_output_ref(source) is not None:  # the picture of an earlier video
                data, source_job_id = self.sources.picture(owner, source, field)
                changes.setdefault("source_job_id", source_job_id)
                image = validate_image(data, field=field, max_bytes=len(data))
            elif source.startswith("data:video/"):  # the picture of an uploaded video
                data = self.sources.inline_picture(source, field)
                image = validate_image(data, field=field, max_bytes=len(data))
            else:
                image = read_image_source(source, self.fetcher, field=field)
            key = input_key(job_id, name, _EXTENSIONS[image.format])
            self.storage.put_bytes(key, image.data)
            return key

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
        if request.video:
            field = wire_names.get("video", "video")
            if extension is None:  # the catalog refuses a video for such models first
                message = f"model {request.model} does not extend videos"
                raise InvalidRequest.for_field(field, message)
            video = self.sources.video(owner, request.video, field, extension, request.duration_s)
            if budget is not None:  # the new video is the source's size and continues it
                facts = video.facts
                budget.check_source(facts.width, facts.height, wire_names)
                measured = dataclasses.replace(request, video_duration_s=facts.duration_s)
                budget.check(measured, facts.width, facts.height, wire_names)
            key = input_key(job_id, "video", "mp4")
            self.storage.put_bytes(key, video.data)
            changes.update(
                video=key,
                video_duration_s=video.facts.duration_s,
                source_job_id=video.source_job_id,
                source_kind="extend",
            )
        if request.source_job_id is not None:  # set by the caller (a remix names its source)
            changes.pop("source_job_id", None)
        return dataclasses.replace(request, **changes)


def _bind(
    guard: Callable[[Connection, GenerationRequest], None], request: GenerationRequest
) -> Callable[[Connection], None]:
    def bound(connection: Connection) -> None:
        guard(connection, request)

    return bound
