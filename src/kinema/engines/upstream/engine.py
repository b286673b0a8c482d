"""The upstream engine: submit a job to a provider once, follow it, bring the video home.

The worker hands ``forward`` a ``Forwarding``: the job's request and images, the
operation recorded on the job by an earlier attempt (if any), and callbacks. A new
submission is recorded through ``Forwarding.record`` (a fenced write on the job) before
the first poll, so a worker killed mid-job is followed by one that polls the same
operation: the provider sees one submission per job. Where the protocol takes one, the
submission carries an ``Idempotency-Key`` derived from the job, so even a submission
repeated after a crash between the provider's answer and that write is one job there.

Faults: a call that may succeed if repeated (``RetryableCall``: 429, 5xx, timeouts,
dropped connections) is repeated with exponential backoff, or after the provider's
``Retry-After``, up to ``max_retries`` times in a row and never past the engine's
``deadline_s`` (counted from the submission); then the provider is unavailable for this
job (``UpstreamUnavailable``) and the worker falls back to the model's next engine.
A refusal fails the job with the provider's message. An owner's cancel is forwarded
(where the protocol has a cancel call) and the job ends cancelled either way. The
deadline, a cancel and a shutdown are looked at during a call too, not only between
calls (``bounds``): a provider that answers a byte at a time holds no worker past them.

The provider's operation names are checked before they are used, logged or recorded
(``protocol.check_ref``): a name is put into the paths of keyed requests, so one that
climbs out of them (``..``), breaks a line or repeats the key is refused.

The output is downloaded through kinema's safe HTTP client (size cap, address rules), with
the configured provider's origin (scheme, host and port) allowed, and only requests to
that origin carry the key: a link or redirect to another port of the provider's host is
held to the same address rules as any other host. Its sockets are bounded like the API
calls' (``bounds.BoundedBackend``): a cancel or a shutdown stops a slow download too, with
nothing written, and a shutdown leaves the operation recorded for the next worker.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from kinema.engines.upstream.bounds import BoundedBackend, CallStopped, call_bounds
from kinema.engines.upstream.config import UpstreamConfig
from kinema.engines.upstream.errors import (
    OperationLost,
    RetryableCall,
    UpstreamRefused,
    UpstreamUnavailable,
)
from kinema.engines.upstream.http import UpstreamHTTP
from kinema.engines.upstream.protocol import (
    Image,
    Operation,
    Status,
    Submission,
    check_ref,
)
from kinema.engines.upstream.protocols import protocol_type
from kinema.errors import JobCancelled, RemoteFailure, UnsafeURL
from kinema.media.http import SafeHttpClient
from kinema.types import CancelCheck, GenerationRequest, ProgressCallback

log = logging.getLogger(__name__)

T = TypeVar("T")

_SLICE_S = 0.05  # how often a wait looks at cancel and shutdown


@dataclass
class Forwarding:
    """One job as the worker hands it to an upstream engine."""

    job_id: str
    request: GenerationRequest
    width: int
    height: int
    options: frozenset[str]  # the optional fields the model takes
    operation: Operation | None  # what an earlier attempt recorded on the job
    record: Callable[[Operation], None]  # commit on the job (fenced) before returning
    on_progress: ProgressCallback
    cancel_requested: CancelCheck  # the owner cancelled: forward it, end cancelled
    stopping: CancelCheck  # this worker is going away: leave the operation for the next
    scratch: Path
    image: Image | None = None
    last_image: Image | None = None
    reference_images: tuple[Image, ...] = ()


class UpstreamEngine:
    """An engine whose renders happen at another service."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        environ: Mapping[str, str],
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self._environ = environ
        self._transport = transport
        self._clock = clock
        self._protocol = protocol_type(config.protocol)(config.protocol_options)
        self._key: str | None = None
        self._http: UpstreamHTTP | None = None
        self._downloader = SafeHttpClient(
            allow_hosts=config.allow_hosts,
            allow_origins=(config.base_url,),
            timeout_s=config.download_timeout_s,
            max_bytes=config.max_video_bytes,
            # Its sockets look at the job's cancel and shutdown, as the API calls' do.
            connector=BoundedBackend(),
        )

    @property
    def max_in_flight(self) -> int:
        return self.config.max_in_flight

    def setup(self) -> None:
        env = self.config.api_key_env
        key = self._environ.get(env) if env else None
        if env and not key:
            raise UpstreamUnavailable(
                f"engine {self.name!r}: the environment variable {env} (its API key) is not set"
            )
        self._key = key
        self._http = UpstreamHTTP(
            self.config.base_url,
            headers=self._protocol.auth_headers(key),
            timeout_s=self.config.request_timeout_s,
            max_response_bytes=self.config.max_video_bytes * 2,  # inline base64 videos
            secret=key,
            transport=self._transport,
        )

    # --- one job ---

    def forward(self, job: Forwarding) -> Path:
        """Submit (or resume) ``job`` at the provider; the path of the downloaded MP4."""
        http = self._require_http()
        http.spool_dir = job.scratch
        if job.cancel_requested() or job.stopping():
            raise JobCancelled("stopped before anything was sent to the provider")
        operation = job.operation
        if operation is not None and operation.engine == self.name and operation.ref:
            problem = check_ref(operation.ref, self._protocol.ref_slashes, self._key)
            if problem is not None:  # recorded before names were checked: start again
                self._abandon(http, job, operation, cancel=False)
                raise UpstreamUnavailable(f"{self.name}: the recorded operation {problem}")
        if operation is None or operation.engine != self.name or not operation.ref:
            # The count runs over the job's submissions to any engine, so a new one never
            # reuses the key of an operation abandoned earlier; a submission repeated
            # after a crash before its record was written reuses it, as it must.
            submissions = operation.submissions + 1 if operation is not None else 1
            operation = self._submit(http, job, submissions)
        else:
            log.info("job %s: resuming %s operation %s", job.job_id, self.name, operation.ref)
        deadline = operation.submitted_at + self.config.deadline_s
        try:
            status = self._follow(http, job, operation, deadline)
        except OperationLost:
            self._abandon(http, job, operation, cancel=False)
            raise
        except UpstreamUnavailable:
            self._abandon(http, job, operation, cancel=True)
            raise
        if status.error is not None:
            message = self._scrub(status.error)
            if status.refused:
                raise UpstreamRefused(message)
            self._abandon(http, job, operation, cancel=False)
            raise UpstreamUnavailable(f"{self.name}: {message}")
        try:
            return self._download(http, job, status, deadline)
        finally:
            if status.video_file is not None:  # moved into place, or not wanted
                status.video_file.unlink(missing_ok=True)

    def _submit(self, http: UpstreamHTTP, job: Forwarding, submissions: int) -> Operation:
        submission = Submission(
            request=job.request,
            model=self.config.model or job.request.model,
            width=job.width,
            height=job.height,
            options=job.options,
            idempotency_key=f"kinema-{job.job_id}-{self.name}-{submissions}",
            image=job.image,
            last_image=job.last_image,
            reference_images=job.reference_images,
        )
        missing = self._protocol.unsent(submission)
        if missing is not None:
            raise UpstreamUnavailable(
                f"{self.name}: the {self._protocol.name} protocol cannot carry {missing}"
            )
        started = self._clock()
        try:
            ref = self._retrying(
                job,
                lambda: self._protocol.submit(http, submission),
                started + self.config.deadline_s,
                cancellable=True,
            )
        except CallStopped:
            raise JobCancelled("stopped while the provider was answering the submission") from None
        problem = check_ref(ref, self._protocol.ref_slashes, self._key)
        if problem is not None:  # never logged nor recorded: it may hold anything
            raise UpstreamUnavailable(f"{self.name}: the provider's operation {problem}")
        operation = Operation(self.name, ref, started, submissions)
        job.record(operation)  # durable before the first poll
        log.info("job %s: submitted to %s as %s", job.job_id, self.name, ref)
        return operation

    def _follow(
        self, http: UpstreamHTTP, job: Forwarding, operation: Operation, deadline: float
    ) -> Status:
        while True:
            self._check(http, job, operation, deadline)
            try:
                status = self._retrying(
                    job, lambda: self._protocol.poll(http, operation.ref), deadline
                )
            except CallStopped:  # cancelled or stopping during the poll: as between polls
                self._check(http, job, operation, deadline)
                raise JobCancelled("stopped while the provider was answering") from None
            if status.progress is not None:
                job.on_progress(status.progress)
            if status.done:
                return status
            self._wait(job, min(self.config.poll_s, max(0.0, deadline - self._clock())))

    def _check(
        self, http: UpstreamHTTP, job: Forwarding, operation: Operation, deadline: float
    ) -> None:
        """Between polls: forward a cancel, leave on shutdown, give up at the deadline."""
        if job.cancel_requested():
            self._cancel(http, operation)
            raise JobCancelled("cancelled by its owner; the provider was told")
        if job.stopping():
            raise JobCancelled("the worker is stopping; the operation stays recorded")
        if self._clock() >= deadline:
            raise UpstreamUnavailable(
                f"{self.name}: no video within the engine's deadline of "
                f"{self.config.deadline_s:g} s"
            )

    def _abandon(
        self, http: UpstreamHTTP, job: Forwarding, operation: Operation, *, cancel: bool
    ) -> None:
        """Give up on ``operation``: cancel it there if asked (it may still be running and
        billed) and drop its reference from the job, keeping the count of submissions so
        the next one carries a new idempotency key."""
        if cancel:
            self._cancel(http, operation)
        job.record(Operation(self.name, "", operation.submitted_at, operation.submissions))

    def _cancel(self, http: UpstreamHTTP, operation: Operation) -> None:
        try:
            if self._protocol.cancel(http, operation.ref):
                log.info("cancel of %s operation %s forwarded", self.name, operation.ref)
        except (RetryableCall, UpstreamUnavailable, UpstreamRefused) as error:
            log.warning("cancel of %s operation %s failed: %s", self.name, operation.ref, error)

    def _download(
        self, http: UpstreamHTTP, job: Forwarding, status: Status, deadline: float
    ) -> Path:
        path = job.scratch / f"{job.job_id}-{self.name}.mp4"
        if status.video_file is not None:
            if status.video_file.stat().st_size > self.config.max_video_bytes:
                raise UpstreamUnavailable(f"{self.name}: the video is larger than the limit")
            status.video_file.replace(path)
            return path
        if status.video_bytes is not None:
            if len(status.video_bytes) > self.config.max_video_bytes:
                raise UpstreamUnavailable(f"{self.name}: the video is larger than the limit")
            path.write_bytes(status.video_bytes)
            return path
        url = str(status.video_url)
        same_host = _origin(url) == _origin(self.config.base_url)
        headers = self._protocol.auth_headers(self._key) if same_host else {}

        def fetch() -> bytes:
            # The download is one more call: it ends by the job's deadline too.
            downloader = copy.copy(self._downloader)  # configuration only: cheap to copy
            left = max(1.0, deadline - self._clock())
            downloader.timeout_s = min(self.config.download_timeout_s, left)
            try:
                return downloader.get(
                    url, field="video", accept="video/mp4, */*", what="video", headers=headers
                )
            except UnsafeURL as error:
                raise UpstreamUnavailable(f"{self.name}: video link refused: {error}") from None
            except RemoteFailure as error:
                text = self._scrub(error.message)
                if "the limit is" in text:
                    raise UpstreamUnavailable(f"{self.name}: {text}") from None
                raise RetryableCall(f"downloading the video: {text}") from None

        try:
            video = self._retrying(job, fetch, deadline)
        except CallStopped:  # the body is held in memory: nothing was written yet
            if job.stopping() and not job.cancel_requested():
                raise JobCancelled("the worker is stopping; the operation stays recorded") from None
            raise JobCancelled("cancelled by its owner while the video was downloading") from None
        path.write_bytes(video)
        return path

    # --- retries and waiting ---

    def _retrying(
        self, job: Forwarding, call: Callable[[], T], deadline: float, *, cancellable: bool = False
    ) -> T:
        failures = 0
        left = deadline - self._clock()  # the deadline is wall-clock time, bounds count up
        bounds = time.monotonic() + left

        def stop() -> bool:
            return job.cancel_requested() or job.stopping()

        while True:
            try:
                with call_bounds(bounds, stop):
                    return call()
            except (KeyError, IndexError, TypeError) as error:
                raise UpstreamUnavailable(
                    f"{self.name}: the provider's answer was not understood "
                    f"({type(error).__name__}: {self._scrub(str(error))})"
                ) from None
            except RetryableCall as error:
                failures += 1
                message = self._scrub(error.message)
                if failures > self.config.max_retries:
                    raise UpstreamUnavailable(
                        f"{self.name}: {message} (gave up after {failures} tries)"
                    ) from None
                delay = error.retry_after_s
                if delay is None:
                    backoff = self.config.backoff_s * 2 ** (failures - 1)
                    delay = min(backoff, self.config.max_backoff_s)
                if self._clock() + delay >= deadline:
                    raise UpstreamUnavailable(
                        f"{self.name}: {message} (no time left before the deadline)"
                    ) from None
                log.warning(
                    "job %s: %s: %s; try %d again in %.1f s",
                    job.job_id,
                    self.name,
                    message,
                    failures + 1,
                    delay,
                )
                self._wait(job, delay)
                if cancellable and (job.cancel_requested() or job.stopping()):
                    raise JobCancelled("stopped before the provider accepted the job") from None

    def _wait(self, job: Forwarding, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early for a cancel or shutdown."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if job.cancel_requested() or job.stopping():
                return
            time.sleep(min(_SLICE_S, max(0.0, end - time.monotonic())))

    def _require_http(self) -> UpstreamHTTP:
        if self._http is None:
            self.setup()
        assert self._http is not None
        return self._http

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[key]") if self._key else text


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port
