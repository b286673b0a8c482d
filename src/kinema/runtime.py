"""Builds every long-lived object of a kinema process from one ``Settings`` value.

The web app, the CLI and the tests all get their store, storage, catalog and workers
from here; nothing is created at import time and nothing is kept in module globals. The
runtime builds, starts and closes; what a request asks of kinema goes through its job
service (``runtime.service``, ``kinema.service.JobService``).

Two dispatch modes (``KINEMA_DISPATCH``): *embedded*, where worker threads of this
process claim from the jobs table; and *procrastinate* (PostgreSQL), where jobs go
through one procrastinate queue per model to ``QueueWorker``s in any process. In the
latter the pool has no claim threads: it only keeps the leases of jobs running here and
recovers jobs whose worker died. procrastinate is imported only in that mode.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from kinema.catalog import Catalog
from kinema.db import make_engine, migrate
from kinema.engines.registry import EngineHost
from kinema.errors import KinemaError
from kinema.jobs.dispatch import ProcrastinateDispatch, install_procrastinate_schema
from kinema.jobs.execute import Executor
from kinema.jobs.inspect import JobInspector
from kinema.jobs.outbox import Outbox
from kinema.jobs.pool import WorkerPool
from kinema.jobs.store import JobStore
from kinema.jobs.submit import Submitter
from kinema.jobs.workers import WorkerRegistry
from kinema.keys import KeyStore
from kinema.media.fetch import ImageFetcher
from kinema.media.http import SafeHttpClient
from kinema.observability.metrics import Metrics, StateCollector
from kinema.profiles import load_catalog
from kinema.quotas import QuotaGate
from kinema.service import JobService
from kinema.settings import Settings
from kinema.storage import LinkSigner, Storage, open_storage
from kinema.storage.scratch import remove_stale_parts

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
    metrics: Metrics
    quotas: QuotaGate
    inspector: JobInspector
    http: SafeHttpClient  # webhooks and callback checks; image intake has its own
    service: JobService
    queue_worker: QueueWorker | None = None
    models: tuple[str, ...] | None = None  # what this process's workers take; None: all
    _metrics_server: Any = None

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
        migrate(db, extra_step=install_procrastinate_schema if scale_out else None)
        store = JobStore(db, dispatch=ProcrastinateDispatch() if scale_out else None)
        storage = open_storage(
            settings.storage_url, settings.resolved_storage_dir, settings.data_dir / "scratch"
        )
        catalog = load_catalog(settings)
        chosen = None if models is None else tuple(models)
        for model in chosen or ():
            catalog.get(model)  # an unknown model is an error now, not an idle worker
        fetcher = ImageFetcher.from_settings(settings)
        engines = EngineHost(
            catalog.engines,
            gpus=settings.gpus,
            environ=settings.provider_keys(),
            models_dir=settings.resolved_models_dir,
            hub_offline=settings.hf_hub_offline,
        )
        count = settings.workers if workers is None else workers
        registry = WorkerRegistry(db)
        metrics = Metrics()
        keys = KeyStore(db)
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
                observer=metrics,
                outage_wait_s=settings.outage_wait_s,
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
        signer = LinkSigner(settings.resolved_signing_secret(), settings.url_ttl_s)
        submitter = Submitter(store, storage, fetcher, max_video_bytes=settings.max_video_bytes)
        http = SafeHttpClient.from_settings(settings)
        quotas = QuotaGate(db)
        service = JobService(
            settings=settings,
            store=store,
            keys=keys,
            storage=storage,
            signer=signer,
            catalog=catalog,
            submitter=submitter,
            quotas=quotas,
            metrics=metrics,
            registry=registry,
            http=http,
            pool=pool,
            models=chosen,
        )
        runtime = cls(
            settings=settings,
            db=db,
            store=store,
            keys=keys,
            storage=storage,
            signer=signer,
            catalog=catalog,
            submitter=submitter,
            engines=engines,
            pool=pool,
            outbox=Outbox(db),
            registry=registry,
            http=http,
            queue_worker=queue_worker,
            models=chosen,
            metrics=metrics,
            quotas=quotas,
            service=service,
            inspector=JobInspector(db),
        )
        metrics.watch(
            StateCollector(runtime.inspector.queues, catalog.model_ids, service.worker_slots)
        )
        return runtime

    def start(self) -> None:
        if self.settings.auth_disabled:
            log.warning(
                "AUTHENTICATION IS DISABLED (KINEMA_AUTH_DISABLED): anyone who can reach "
                "this server can generate and read every video. Development only."
            )
        remove_stale_parts(self.storage.scratch_dir(), older_than_s=self.settings.lease_s)
        for model in self.models or ():  # load a worker's engines before it takes jobs
            chain = self.catalog.get(model).engines
            for name in chain:
                if self.catalog.engines[name].forwards:
                    continue  # nothing to load; it sets up at its first job
                try:
                    self.engines.get(name)
                except KinemaError as error:
                    if len(chain) == 1:
                        raise
                    log.warning("engine %s of model %s cannot run here: %s", name, model, error)
        if self.store.dispatch_waiting():
            log.info("queued jobs from before scale-out dispatch were handed to the queues")
        if self.pool is not None:
            self.pool.start()
        if self.queue_worker is not None:
            self.queue_worker.start()
        if self.settings.metrics_port > 0 and self._metrics_server is None:
            from prometheus_client import start_http_server

            self._metrics_server, _ = start_http_server(
                self.settings.metrics_port, addr=self.settings.host, registry=self.metrics.registry
            )

    def close(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        if self.queue_worker is not None:
            self.queue_worker.stop()
        if self.pool is not None:
            self.pool.stop()
        self.db.dispose()
