"""Builds every long-lived object of a kinema process from one ``Settings`` value.

The web app, the CLI and the tests all get their store, storage, catalog and workers
from here; nothing is created at import time and nothing is kept in module globals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from kinema.catalog import Catalog
from kinema.db import make_engine, migrate
from kinema.engines.registry import EngineHost
from kinema.jobs.execute import Executor
from kinema.jobs.pool import WorkerPool
from kinema.jobs.store import JobStore
from kinema.jobs.submit import Submitter, job_prefix
from kinema.keys import ANONYMOUS_OWNER, KeyStore
from kinema.media.fetch import ImageFetcher
from kinema.settings import Settings
from kinema.storage import LinkSigner, LocalStorage, Storage
from kinema.types import Job, JobStatus
from kinema.webhooks.outbox import Outbox

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

    @classmethod
    def build(cls, settings: Settings, *, workers: int | None = None) -> Runtime:
        """Open the database (migrating it), storage and catalog; make a pool of
        ``workers`` threads (default: ``settings.workers``; 0 for none)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = make_engine(settings.resolved_database_url)
        migrate(db)
        store = JobStore(db)
        storage = LocalStorage(settings.resolved_storage_dir)
        catalog = Catalog.load(settings.catalog_path)
        fetcher = ImageFetcher.from_settings(settings)
        engines = EngineHost(catalog)
        count = settings.workers if workers is None else workers
        pool = None
        if count > 0:
            executor = Executor(
                store, storage, catalog, engines, progress_interval_s=settings.progress_interval_s
            )
            pool = WorkerPool(
                store,
                executor,
                concurrency=count,
                lease_s=settings.lease_s,
                heartbeat_s=settings.heartbeat_s,
                poll_s=settings.poll_s,
                max_attempts=settings.max_attempts,
                off_peak_max_age_s=settings.off_peak_max_age_s,
            )
        return cls(
            settings=settings,
            db=db,
            store=store,
            keys=KeyStore(db),
            storage=storage,
            signer=LinkSigner(settings.resolved_signing_secret(), settings.url_ttl_s),
            catalog=catalog,
            submitter=Submitter(store, storage, fetcher),
            engines=engines,
            pool=pool,
            outbox=Outbox(db),
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
    ) -> Job:
        """Accept a generation as every dialect does: check its callback URL, validate
        ``fields`` (canonical names) against the model, keep it as a queued job, and wake
        a worker. ``wire_names`` maps canonical names back to the client's, for errors."""
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
        job = self.submitter.submit(
            owner=owner,
            request=request,
            dialect=dialect,
            wire_names=wire_names,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        if self.pool is not None:
            self.pool.notify()
        return job

    def webhook_secret(self, owner: str) -> str:
        """The secret that signs ``owner``'s webhooks: its key's, or the server's own when
        authentication is disabled."""
        if owner == ANONYMOUS_OWNER:
            return self.settings.anonymous_webhook_secret()
        return self.keys.webhook_secret(owner)

    def cancel(self, owner: str, job_id: str) -> Job:
        """Cancel ``owner``'s job: a queued job ends now; a running one is told to stop.

        A job running in this process is interrupted at once; one running elsewhere sees
        the request on its next heartbeat.
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

    def start(self) -> None:
        if self.settings.auth_disabled:
            log.warning(
                "AUTHENTICATION IS DISABLED (KINEMA_AUTH_DISABLED): anyone who can reach "
                "this server can generate and read every video. Development only."
            )
        if self.pool is not None:
            self.pool.start()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        self.db.dispose()
