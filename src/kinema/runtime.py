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
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import sqlalchemy as sa

from kinema.artifacts import Artifact, ArtifactKind, job_artifact, signed_file
from kinema.catalog import Catalog
from kinema.db import make_engine, migrate
from kinema.engines.registry import EngineHost
from kinema.errors import InvalidRequest, JobStillRunning, KinemaError, NotFound
from kinema.jobs.budget import OutputBudget
from kinema.jobs.dispatch import ProcrastinateDispatch, install_procrastinate_schema
from kinema.jobs.execute import Executor
from kinema.jobs.inspect import JobInspector
from kinema.jobs.keys import folder_problem, job_of_key, job_prefix
from kinema.jobs.outbox import Outbox
from kinema.jobs.pool import WorkerPool
from kinema.jobs.retry import retry_failed
from kinema.jobs.store import JobStore
from kinema.jobs.submit import Submitter, request_fingerprint
from kinema.jobs.workers import WorkerRegistry
from kinema.keys import ANONYMOUS_OWNER, KeyStore
from kinema.media.fetch import ImageFetcher
from kinema.media.http import SafeHttpClient
from kinema.observability.metrics import Metrics, StateCollector
from kinema.quotas import QuotaGate
from kinema.settings import Settings
from kinema.storage import LinkSigner, Storage, open_storage
from kinema.storage.scratch import remove_stale_parts
from kinema.types import (
    GenerationRequest,
    Job,
    JobStatus,
    JobSummary,
    SourceKind,
    VideoResult,
)
from kinema.views import Creation, JobRef, JobView, OutputView

if TYPE_CHECKING:
    from kinema.jobs.queue_worker import QueueWorker

log = logging.getLogger(__name__)

CANCEL_WAIT_MIN_S = 2.0  # a worker in this process stops within a frame or two
CANCEL_WAIT_MAX_S = 30.0


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
        catalog = Catalog.load(settings.catalog_path)
        chosen = None if models is None else tuple(models)
        for model in chosen or ():
            catalog.get(model)  # an unknown model is an error now, not an idle worker
        fetcher = ImageFetcher.from_settings(settings)
        engines = EngineHost(catalog, gpus=settings.gpus)
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
        runtime = cls(
            settings=settings,
            db=db,
            store=store,
            keys=keys,
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
            http=SafeHttpClient.from_settings(settings),
            queue_worker=queue_worker,
            models=chosen,
            metrics=metrics,
            quotas=QuotaGate(db),
            inspector=JobInspector(db),
        )
        metrics.watch(
            StateCollector(runtime.inspector.queues, catalog.model_ids, runtime.worker_slots)
        )
        return runtime

    def create(self, owner: str, dialect: str, creation: Creation) -> Job:
        """Accept a generation as every dialect does: check its callback URL, validate its
        canonical fields against the model, keep it as a queued job, and wake a worker.

        The request's fingerprint is computed here, once, from the canonical request; the
        store decides what an ``Idempotency-Key`` retry gets with it.
        """
        if creation.callback_url is not None:  # refused now (400) if it points inside
            self.catalog.check_text(creation.callback_url, creation.callback_field)
            self.http.vet(creation.callback_url, field=creation.callback_field)
        request = self.catalog.build_request(
            creation.model,
            creation.fields,
            dialect=dialect,
            wire_names=creation.wire_names,
            callback_url=creation.callback_url,
            off_peak=creation.off_peak,
            adjustments=creation.adjustments,
        )
        request = dataclasses.replace(
            request, storage_uri=creation.storage_uri, wire_scope=creation.wire_scope
        )
        described: dict[str, Any] = {
            "model": creation.model,
            "fields": dict(creation.fields),
            "callback_url": creation.callback_url,
            "off_peak": creation.off_peak,
            "storage_uri": creation.storage_uri,
        }
        if creation.wire_scope is not None:  # absent otherwise: earlier fingerprints hold
            described["wire_scope"] = creation.wire_scope
        fingerprint = request_fingerprint(described)
        if creation.derived_from is not None:
            source_job_id, kind = creation.derived_from
            request = dataclasses.replace(request, source_job_id=source_job_id, source_kind=kind)
        replay = creation.idempotency_key is not None and (
            self.store.find_idempotent(owner, creation.idempotency_key) is not None
        )
        guard = None
        if not replay:  # a retry of an accepted create is answered, whatever the quotas
            self.quotas.check(owner, request)  # before fetching images: refuse cheaply

            def guard(connection: sa.Connection, stored: GenerationRequest) -> None:
                # ... and again, atomically, with an extension's source measured
                self.quotas.check(owner, stored, connection)

        job = self.submitter.submit(
            owner=owner,
            request=request,
            dialect=dialect,
            wire_names=creation.wire_names,
            idempotency_key=creation.idempotency_key,
            request_hash=fingerprint,
            extension=self.catalog.get(creation.model).extension,
            base_url=creation.base_url,
            guard=guard,
            budget=OutputBudget.for_model(
                self.catalog, creation.model, self.settings.max_job_pixels
            ),
            frame_size=self.catalog.frame_size(request),
        )
        if self.pool is not None:
            self.pool.notify()
        if not replay:
            self.metrics.job_created(job, engine=self.catalog.get(creation.model).engine)
            log.info(
                "job %s created: %s via %s",
                job.id,
                job.model,
                dialect,
                extra={"job_id": job.id, "key_id": owner},
            )
        return job

    def remix(
        self,
        owner: str,
        dialect: str,
        source: str,
        creation: Creation,
        *,
        kind: SourceKind = "remix",
    ) -> Job:
        """A new job that re-films the picture of ``source`` (a ``job:`` reference to one of
        ``owner``'s finished videos) with its model and settings, changed by
        ``creation.fields`` (a new prompt, usually); ``creation.model`` is not used."""
        field = creation.wire_names.get("video", "video")
        job, _ = self.submitter.sources.output(owner, source, field)
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
        fields = {
            name: value
            for name, value in inherited.items()
            if value is not None and name in spec.accepted_fields()
        }
        fields.update(creation.fields)
        fields["image"] = source
        derived = dataclasses.replace(
            creation, model=earlier.model, fields=fields, derived_from=(job.id, kind)
        )
        return self.create(owner, dialect, derived)

    # --- reading ---

    def find(self, owner: str, ref: JobRef) -> Job:
        """``owner``'s job named by ``ref``; NotFound for anyone else's."""
        if ref.id is not None:
            job = self.store.get(owner, ref.id)
        else:
            job = self._find_by_prefix(owner, ref)
        if ref.model is not None and job.model != ref.model:
            raise NotFound(f"job {job.id} not found")
        return job

    def _find_by_prefix(self, owner: str, ref: JobRef) -> Job:
        for job in self.store.find_by_id_prefix(owner, ref.id_prefix or ""):
            if ref.created_s is None or int(job.created_at.timestamp()) == ref.created_s:
                return job
        raise NotFound(f"job {ref.id_prefix} not found")

    def jobs(
        self, owner: str, *, limit: int, after: str | None, order: Literal["asc", "desc"]
    ) -> list[Job]:
        """A page of ``owner``'s jobs by creation time (``after``: the last id seen)."""
        return self.store.list(owner, limit=limit, after=after, order=order)

    def link_base(self, job: Job | JobSummary) -> str:
        """The base URL of links to ``job``'s files: the configured public base URL, or
        the one of the request that created the job. Never another request's: whatever
        Host a poll names, the links of everyone's jobs stay as they were made."""
        base = self.settings.public_base_url or job.base_url
        return (base or f"http://{self.settings.host}:{self.settings.port}").rstrip("/")

    def status(
        self, owner: str, ref: JobRef, *, full: bool = True, inline_video: bool = False
    ) -> JobView:
        """What a poll renders. ``full=False`` reads only the status columns (the cheapest
        read there is) when the dialect renders nothing of the request or its times;
        ``inline_video`` carries a succeeded job's MP4 in the view."""
        if full or ref.id is None:
            return self.view(self.find(owner, ref), inline_video=inline_video)
        summary = self.store.summary(owner, ref.id)
        if ref.model is not None and summary.model != ref.model:
            raise NotFound(f"job {ref.id} not found")
        return self.view(summary, inline_video=inline_video)

    def view(self, job: Job | JobSummary, *, inline_video: bool = False) -> JobView:
        """``job`` with its signed links (starting with ``link_base``), frame size and
        queue facts worked out."""
        base_url = self.link_base(job)
        result = job.result
        outputs: tuple[OutputView, ...] = ()
        expires_at = None
        if job.status is JobStatus.SUCCEEDED and job.outputs:
            expires_at = self.signer.expires_at()
            wants_uri = isinstance(job, Job) and job.request.storage_uri is not None
            outputs = tuple(
                self._output_view(index, output, base_url, wants_uri, inline_video)
                for index, output in enumerate(job.outputs)
            )
        first = outputs[0] if outputs else None
        common: dict[str, Any] = {
            "id": job.id,
            "model": job.model,
            "status": job.status,
            "progress": job.progress,
            "error_code": job.error_code,
            "error_message": job.error_message,
            "result": result,
            "base_url": base_url,
            "url_ttl_s": self.settings.url_ttl_s,
            "video_url": first and first.video_url,
            "link_expires_at": expires_at,
            "video_bytes": first and first.video_bytes,
            "video_object_uri": first and first.video_object_uri,
            "outputs": outputs,
        }
        if isinstance(job, JobSummary):
            return JobView(**common)
        queued = job.status is JobStatus.QUEUED
        return JobView(
            **common,
            request=job.request,
            created_at=job.created_at,
            finished_at=job.finished_at,
            cancel_requested=job.cancel_requested,
            frame=self.catalog.frame_size(job.request),
            queue_position=self.store.queue_position(job) if queued else None,
            workers_online=self.workers_online(job.model) if queued else None,
        )

    def _output_view(
        self, index: int, output: VideoResult, base_url: str, wants_uri: bool, inline: bool
    ) -> OutputView:
        thumbnail = output.thumbnail_key
        # A job that succeeded before its videos were copied for the caller answers the
        # video's own object, as it always did.
        delivered = output.delivered_key or output.video_key
        return OutputView(
            index=index,
            result=output,
            video_url=base_url + self.signer.path_for(output.video_key),
            thumbnail_url=None if thumbnail is None else base_url + self.signer.path_for(thumbnail),
            video_object_uri=self.storage.object_uri(delivered) if wants_uri else None,
            video_bytes=(
                self.storage.get_bytes(output.video_key) if inline and not wants_uri else None
            ),
        )

    def check_storage_uri(self, uri: str) -> None:
        """Refuse (``InvalidRequest``) an output URI that is not a folder of kinema's own
        bucket (under its prefix, outside the folders kinema writes itself): kinema
        writes only to the storage it is configured with. The URI is not repeated in the
        message: it may be anything, of any length."""
        base = self.storage.object_uri("")
        where = base or "a local directory, not a bucket"
        if not uri.startswith("s3://"):
            raise InvalidRequest(f"only s3:// URIs are supported; this server stores in {where}")
        folder = self.storage.key_of_uri(uri.rstrip("/") + "/")
        if folder is None:
            raise InvalidRequest(f"is not storage this server writes to ({where})")
        problem = folder_problem(folder)
        if problem is not None:
            raise InvalidRequest(problem)

    def artifact(
        self, owner: str, job_id: str, kind: ArtifactKind, index: int = 0
    ) -> Artifact:
        """A file of ``owner``'s succeeded job: the video, thumbnail or spritesheet of its
        output ``index``."""
        job = self.store.get(owner, job_id)

        def still_exists() -> bool:
            try:
                self.store.get(owner, job_id)
            except NotFound:
                return False
            return True

        return job_artifact(self.storage, job, kind, still_exists, index)

    def signed_file(self, key: str, expires: str | None, signature: str | None) -> Artifact:
        """The file a signed link names: 403 for a wrong signature, 410 once the link
        expired, 404 once its job's video expired or the job was deleted (the row says so
        before the files go, so the link never serves a file being removed)."""
        self.signer.verify(key, expires, signature)
        job_id = job_of_key(key)
        if job_id is not None:
            try:
                job = self.store.get_any(job_id)
            except NotFound:
                raise NotFound("this file no longer exists: its job was deleted") from None
            if job.status is not JobStatus.SUCCEEDED:
                raise NotFound(f"this file no longer exists: its job is {job.status.value}")
        return signed_file(self.storage, key)

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
        before = self.store.get(owner, job_id)
        job = self.store.cancel(owner, job_id)
        if job.status is JobStatus.RUNNING and self.pool is not None:
            self.pool.interrupt(job.id)
        if not before.status.terminal:
            log.info(
                "job %s cancel asked while %s",
                job.id,
                before.status.value,
                extra={"job_id": job.id, "key_id": owner},
            )
        if before.status is JobStatus.QUEUED and job.status is JobStatus.CANCELLED:
            spec = self.catalog.models.get(job.model)
            engine = spec.engine if spec is not None else "unknown"
            self.metrics.job_finished(job, engine=engine, state=JobStatus.CANCELLED)
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed job (of any owner) again as a new job; for operators."""
        job = retry_failed(self.store, self.storage, job_id)
        if self.pool is not None:
            self.pool.notify()
        self.metrics.job_created(job, engine=self.catalog.get(job.model).engine)
        log.info(
            "job %s created as a retry of a failed job",
            job.id,
            extra={"job_id": job.id, "key_id": job.owner},
        )
        return job

    def delete(self, owner: str, job_id: str, *, wait: bool = False) -> Job:
        """Remove ``owner``'s finished job and every file it left in storage.

        With ``wait``, a queued or running job is cancelled first and awaited briefly
        (about a heartbeat); one still running after that is ``JobStillRunning``. Without
        it, deleting an unfinished job is an ``InvalidRequest``.
        """
        if wait:
            job = self.store.get(owner, job_id)
            if not job.status.terminal:
                job = self._wait_until_terminal(owner, self.cancel(owner, job_id))
                if not job.status.terminal:
                    raise JobStillRunning("the job is being cancelled; retry in a moment")
        job = self.store.delete(owner, job_id)
        self.storage.delete_prefix(job_prefix(job.id))
        log.info("job %s deleted", job.id, extra={"job_id": job.id, "key_id": owner})
        return job

    def _wait_until_terminal(self, owner: str, job: Job) -> Job:
        timeout_s = min(CANCEL_WAIT_MAX_S, max(CANCEL_WAIT_MIN_S, self.settings.heartbeat_s + 2))
        deadline = time.monotonic() + timeout_s
        while not job.status.terminal and time.monotonic() < deadline:
            time.sleep(0.02)
            job = self.store.get(owner, job.id)
        return job

    def workers_online(self, model: str) -> int | None:
        """Job slots that live workers hold for ``model`` (0: no worker takes its jobs), or
        None under embedded dispatch, whose in-process pool takes every model."""
        if self.settings.dispatch != "procrastinate":
            return None
        return self.registry.serving(model, within_s=self.settings.lease_s)

    def worker_slots(self) -> dict[str, int]:
        """Job slots online per model: live ``kinema worker``s' under scale-out dispatch
        (one read for every model), this process's pool under embedded dispatch. Empty
        when nothing is known to run jobs (an API-only process under embedded dispatch)."""
        models = self.catalog.model_ids()
        if self.settings.dispatch == "procrastinate":
            totals = dict.fromkeys(models, 0)
            for row in self.registry.live(within_s=self.settings.lease_s):
                served = cast("list[str] | None", row["models"])
                for model in models if served is None else set(served) & set(models):
                    totals[model] += cast(int, row["concurrency"])
            return totals
        if self.pool is None or self.pool.concurrency <= 0:
            return {}
        slots = self.pool.concurrency
        return {m: slots if self.models is None or m in self.models else 0 for m in models}

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
