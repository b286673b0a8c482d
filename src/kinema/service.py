"""The job service: everything the HTTP layer (and the operator CLI) asks of kinema.

Create, remix, find, status and view, artifacts and signed files, cancel, delete, retry.
The runtime builds one per process from its parts (``Runtime.build``); a route reaches it
through one FastAPI dependency (``kinema.api.deps.ServiceDep``) and never touches the
store, storage or catalog itself.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa

from kinema.artifacts import Artifact, ArtifactKind, job_artifact, signed_file
from kinema.catalog import Catalog
from kinema.errors import InvalidRequest, JobStillRunning, NotFound
from kinema.jobs.budget import OutputBudget
from kinema.jobs.keys import (
    folder_problem,
    job_of_key,
    job_prefix,
    output_of_delivered_key,
    output_of_video_key,
)
from kinema.jobs.pool import WorkerPool
from kinema.jobs.retry import retry_failed
from kinema.jobs.store import JobStore
from kinema.jobs.submit import Submitter
from kinema.jobs.workers import WorkerRegistry
from kinema.keys import ANONYMOUS_OWNER, KeyStore
from kinema.media.http import SafeHttpClient
from kinema.observability.metrics import Metrics
from kinema.quotas import QuotaGate
from kinema.settings import Settings
from kinema.storage import LinkSigner, Storage
from kinema.types import (
    GenerationRequest,
    Job,
    JobStatus,
    JobSummary,
    SourceKind,
    VideoResult,
)
from kinema.views import (
    Creation,
    InlineFile,
    JobRef,
    JobView,
    OutputView,
    creation_fingerprint,
)

log = logging.getLogger(__name__)

CANCEL_WAIT_MIN_S = 2.0  # a worker in this process stops within a frame or two
CANCEL_WAIT_MAX_S = 30.0


@dataclass
class JobService:
    settings: Settings
    store: JobStore
    keys: KeyStore
    storage: Storage
    signer: LinkSigner
    catalog: Catalog
    submitter: Submitter
    quotas: QuotaGate
    metrics: Metrics
    registry: WorkerRegistry
    http: SafeHttpClient  # callback URL checks
    pool: WorkerPool | None = None  # this process's workers, woken by a create
    models: tuple[str, ...] | None = None  # what this process's workers take; None: all

    def create(self, owner: str, dialect: str, creation: Creation) -> Job:
        """Accept a generation as every dialect does: check its callback URL, validate its
        canonical fields against the model, keep it as a queued job, and wake a worker.

        Idempotency is decided here, once: a retry with an ``Idempotency-Key`` already
        used gets the earlier job back (or ``IdempotencyConflict`` for another body)
        before quotas are counted or images fetched again. Two racing first tries end on
        one row through the store's unique index.
        """
        if creation.callback_url is not None:  # refused now (400) if it points inside
            self.catalog.check_text(creation.callback_url, creation.callback_field)
            self.http.vet(creation.callback_url, field=creation.callback_field)
        request = self.catalog.validate(creation, dialect=dialect)
        request_hash = creation_fingerprint(creation)
        if creation.idempotency_key is not None:
            earlier = self.store.find_idempotent(
                owner, creation.idempotency_key, request_hash=request_hash
            )
            if earlier is not None:
                return earlier
        self.quotas.check(owner, request)  # before fetching images: refuse cheaply

        def guard(connection: sa.Connection, stored: GenerationRequest) -> None:
            # ... and again, atomically, with an extension's source measured
            self.quotas.check(owner, stored, connection)

        job, created = self.submitter.submit(
            owner=owner,
            request=request,
            dialect=dialect,
            wire_names=creation.wire_names,
            idempotency_key=creation.idempotency_key,
            request_hash=request_hash,
            extension=self.catalog.get(creation.model).extension,
            base_url=creation.base_url,
            guard=guard,
            budget=OutputBudget.for_model(
                self.catalog, creation.model, self.settings.max_job_pixels
            ),
            frame_size=self.catalog.frame_size(request),
        )
        if not created:  # an identical create won the race
            return job
        if self.pool is not None:
            self.pool.notify()
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
            "inline": first and first.inline,
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
        carried = inline and not wants_uri  # the MP4 in the body, streamed by its writer
        return OutputView(
            index=index,
            result=output,
            video_url=base_url + self.signer.path_for(output.video_key),
            thumbnail_url=None if thumbnail is None else base_url + self.signer.path_for(thumbnail),
            video_object_uri=self.storage.object_uri(delivered) if wants_uri else None,
            inline=InlineFile(output.video_key, output.size_bytes) if carried else None,
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

    def output_of_uri(self, owner: str, uri: str) -> tuple[str, int] | None:
        """The (job id, output index) of a video this server wrote that ``uri`` names in
        its bucket: the output's own object, or the copy a ``storageUri`` answer named
        (recorded with ``owner``'s job, so only that key is taken); None for any other
        URI. Another key's copy is a ``NotFound``, as another key's job is."""
        key = self.storage.key_of_uri(uri)
        if key is None:
            return None
        output = output_of_video_key(key)
        if output is not None:
            return output
        copied = output_of_delivered_key(key)
        if copied is None:
            return None
        job_id, index = copied
        try:
            job = self.store.get(owner, job_id)
        except NotFound:
            raise NotFound(f"video {job_id} not found") from None
        if index < len(job.outputs) and job.outputs[index].delivered_key == key:
            return copied
        return None

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
