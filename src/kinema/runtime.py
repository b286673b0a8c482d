"""Builds every long-lived object of a kinema process from one ``Settings`` value.

The web app, the CLI and the tests all get their store, storage, catalog and workers
from here; nothing is created at import time and nothing is kept in module globals.

Two dispatch modes (``KINEMA_DISPATCH``): *embedded*, where worker threads of this
process claim from the jobs table; and *procrastinate* (PostgreSQL), where jobs go
through one procrastinate queue per model to ``QueueWorker``s in any process. In the
latter the pool has no claim threads: it only keeps the leases of jobs running here and
recovers jobs whose worker died. procrastinate is imported only in that mode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kinema.catalog import Catalog
from kinema.db import make_engine, migrate
from kinema.engines.registry import EngineHost
from kinema.jobs.dispatch import ProcrastinateDispatch
from kinema.jobs.execute import Executor
from kinema.jobs.keys import job_prefix
from kinema.jobs.pool import WorkerPool
from kinema.jobs.store import JobStore
from kinema.jobs.submit import Submitter
from kinema.jobs.workers import WorkerRegistry
from kinema.keys import ANONYMOUS_OWNER, KeyStore
from kinema.media.fetch import ImageFetcher
from kinema.settings import Settings
from kinema.storage import LinkSigner, Storage, open_storage
from kinema.types import Job, JobStatus, SourceKind
from kinema.webhooks.outbox import Outbox

if TYPE_CHECKING:
    from kinema.jobs.queue_worker import QueueWorker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: sa.Engine
    store: JobStore
    keys: KeyStore
    storage: Storage
    signer: LinkSigner
    catalog: Catalog
    submitter: Submitter
    engines: EngineHost
    pool: WorkerPool | None
    outbox: Outbox
    registry: WorkerRegistry
    queue_worker: QueueWorker | None = None
    models: tuple[str, ...] | None = None  # what this process's workers take; None: all

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        workers: int | None = None,
        models: Collection[str] | None = None,
    ) -> Runtime:
        """Open the database (migrating it), storage and catalog; make ``workers`` job slots
        (default: ``settings.workers``; 0 for none) taking ``models`` (default: all)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        scale_out = settings.dispatch == "procrastinate"
        db = make_engine(settings.resolved_database_url)
        migrate(db, procrastinate=scale_out)
        store = JobStore(db, dispatch=ProcrastinateDispatch() if scale_out else None)
        storage = open_storage(
            settings.storage_url, settings.resolved_storage_dir, settings.data_dir / "scratch"
        )
        catalog = Catalog.load(settings.catalog_path)
        chosen = None if models is None else tuple(models)
        for model in chosen or ():
            catalog.get(model)  # an unknown model is an error now, not an idle worker
        fetcher = ImageFetcher.from_settings(settings)
        engines = EngineHost(catalog)
        count = settings.workers if workers is None else workers
        registry = WorkerRegistry(db)
        pool = None
        queue_worker = None
        if count > 0 or scale_out:
            executor = Executor(
                store,
                storage,
                catalog,
                engines,
                progress_interval_s=settings.progress_interval_s,
                max_attempts=settings.max_attempts,
                retry_base_s=settings.transient_retry_base_s,
            )
            pool = WorkerPool(
                store,
                executor,
                concurrency=0 if scale_out else count,
                lease_s=settings.lease_s,
                heartbeat_s=settings.heartbeat_s,
                poll_s=settings.poll_s,
                max_attempts=settings.max_attempts,
                off_peak_max_age_s=settings.off_peak_max_age_s,
                retention_s=settings.retention_s,
                models=chosen,
            )
        if scale_out and count > 0:
            from kinema.jobs.queue_worker import QueueWorker

            assert pool is not None
            queue_worker = QueueWorker(
                database_url=settings.resolved_database_url,
                store=store,
                pool=pool,
                registry=registry,
                models=chosen,
                concurrency=count,
                lease_s=settings.lease_s,
                heartbeat_s=settings.heartbeat_s,
                poll_s=settings.poll_s,
            )
        return cls(
            settings=settings,
            db=db,
            store=store,
            keys=KeyStore(db),
            storage=storage,
            signer=LinkSigner(settings.resolved_signing_secret(), settings.url_ttl_s),
            catalog=catalog,
            submitter=Submitter(
                store, storage, fetcher, max_video_bytes=settings.max_video_bytes
            ),
            engines=engines,
            pool=pool,
            outbox=Outbox(db),
            registry=registry,
            queue_worker=queue_worker,
            models=chosen,
        )

    def create(
        self,
        *,
        owner: str,
        model: str,
        fields: Mapping[str, Any],
        dialect: str,
        wire_names: Mapping[str, str],
        callback_url: str | None = None,
        callback_field: str = "callback_url",
        off_peak: bool = False,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        derived_from: tuple[str, SourceKind] | None = None,
    ) -> Job:
        """Accept a generation as every dialect does: check its callback URL, validate
        ``fields`` (canonical names) against the model, keep it as a queued job, and wake
        a worker. ``wire_names`` maps canonical names back to the client's, for errors.

        ``fields`` may name outputs of the owner's earlier jobs (``kinema.types.job_ref``):
        ``video`` for an extension, ``image`` for the picture of a remix, whose source job
        and kind ``derived_from`` records."""
        if callback_url is not None:
            self.submitter.vet_callback(callback_url, field=callback_field)
        request = self.catalog.build_request(
            model,
            fields,
            dialect=dialect,
            wire_names=wire_names,
            callback_url=callback_url,
            off_peak=off_peak,
        )
        if derived_from is not None:
            request = dataclasses.replace(
                request, source_job_id=derived_from[0], source_kind=derived_from[1]
            )
        job = self.submitter.submit(
            owner=owner,
            request=request,
            dialect=dialect,
            wire_names=wire_names,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            extension=self.catalog.get(model).extension,
        )
        if self.pool is not None:
            self.pool.notify()
        return job

    def remix(
        self,
        *,
        owner: str,
        source: str,
        fields: Mapping[str, Any],
        dialect: str,
        wire_names: Mapping[str, str],
        kind: SourceKind = "remix",
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Job:
        """A new job that re-films the picture of ``source`` (a ``job:`` reference to one of
        ``owner``'s finished videos) with the same model and settings, changed by
        ``fields`` (a new prompt, usually)."""
        job, _ = self.submitter.sources.output(owner, source, wire_names.get("video", "video"))
        earlier = job.request
        spec = self.catalog.get(earlier.model)
        inherited: dict[str, Any] = {
            "duration": earlier.duration_s,
            "aspect_ratio": earlier.aspect_ratio,
            "resolution": earlier.resolution,
            "generate_audio": earlier.generate_audio,
            "size": earlier.size,
            "negative_prompt": earlier.negative_prompt,
        }
        merged = {
            name: value
            for name, value in inherited.items()
            if value is not None and name in spec.accepted_fields()
        }
        merged.update(fields)
        merged["image"] = source
        return self.create(
            owner=owner,
            model=earlier.model,
            fields=merged,
            dialect=dialect,
            wire_names=wire_names,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            derived_from=(job.id, kind),
        )

    def webhook_secret(self, owner: str) -> str:
        """The secret that signs ``owner``'s webhooks: its key's, or the server's own when
        authentication is disabled."""
        if owner == ANONYMOUS_OWNER:
            return self.settings.anonymous_webhook_secret()
        return self.keys.webhook_secret(owner)

    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel ``owner``'s job: a queued job ends now; a running one is told to stop.

        A job running in this process is interrupted at once; one running in another
        process sees the request on its next heartbeat, or at once under procrastinate
        dispatch (the store aborts its queue entry, notified when the cancel commits).
        """
        job = self.store.cancel(owner, job_id)
        if job.status is JobStatus.RUNNING and self.pool is not None:
            self.pool.interrupt(job.id)
        return job

    def delete(self, owner: str, job_id: str) -> Job:
        """Remove ``owner``'s finished job and every file it left in storage."""
        job = self.store.delete(owner, job_id)
        self.storage.delete_prefix(job_prefix(job.id))
        return job

    def workers_online(self, model: str) -> int | None:
        """Job slots that live workers hold for ``model`` (0: no worker takes its jobs), or
        None under embedded dispatch, whose in-process pool takes every model."""
        if self.settings.dispatch != "procrastinate":
            return None
        return self.registry.serving(model, within_s=self.settings.lease_s)

    def start(self) -> None:
        if self.settings.auth_disabled:
            log.warning(
                "AUTHENTICATION IS DISABLED (KINEMA_AUTH_DISABLED): anyone who can reach "
                "this server can generate and read every video. Development only."
            )
        for model in self.models or ():  # load a worker's engines before it takes jobs
            self.engines.get(self.catalog.get(model).engine)
        if self.store.dispatch_waiting():
            log.info("queued jobs from before scale-out dispatch were handed to the queues")
        if self.pool is not None:
            self.pool.start()
        if self.queue_worker is not None:
            self.queue_worker.start()

    def close(self) -> None:
        if self.queue_worker is not None:
            self.queue_worker.stop()
        if self.pool is not None:
            self.pool.stop()
        self.db.dispose()
