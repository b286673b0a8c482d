"""Delivering outbox events: render once, sign each attempt, retry with backoff.

A delivery that answers 2xx is done. 429, 5xx, timeouts and connection failures are
retried with exponential backoff (``retry_base_s`` doubling, capped at an hour) until
``max_age_s`` (24 h) after the event was created. Other 4xx answers, and URLs that now
resolve to refused addresses, fail the event at once: retrying cannot help.

Deliveries run concurrently on a bounded pool of threads (``concurrency``), and at most
``per_endpoint`` of them go to one receiver (scheme, host and port) at a time, so one
slow receiver holds back only its own events. Each attempt has a short timeout (the
``http`` client's); a receiver slower than that is retried later like one that failed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from kinema.errors import NotFound, RemoteFailure, UnsafeURL
from kinema.jobs.observer import JobObserver, NoObserver
from kinema.jobs.outbox import Outbox, WebhookEvent
from kinema.jobs.store import JobStore
from kinema.media.http import SafeHttpClient
from kinema.types import Job
from kinema.webhooks import signing

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600.0

# dialect name -> the job as that dialect's status object
Renderer = Callable[[Job], dict[str, Any]]
SecretLookup = Callable[[str], str]  # owner -> whsec_ secret


def endpoint(url: str) -> str:
    """The receiver a webhook URL names: scheme, host and port (its path does not count,
    so many paths on one slow host share that host's slots)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"
    except ValueError:
        return url


def _busy(endpoints: set[str]) -> Callable[[str], bool]:
    """Whether a URL's receiver is one of ``endpoints`` (those with no free slot)."""
    return lambda url: endpoint(url) in endpoints


class WebhookDeliverer:
    def __init__(
        self,
        outbox: Outbox,
        store: JobStore,
        http: SafeHttpClient,
        renderers: dict[str, Renderer],
        secret_for: SecretLookup,
        *,
        retry_base_s: float = 5.0,
        max_age_s: float = 24 * 3600,
        poll_s: float = 1.0,
        concurrency: int = 8,
        per_endpoint: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observer: JobObserver | None = None,
    ) -> None:
        self.observer: JobObserver = observer or NoObserver()
        self.outbox = outbox
        self.store = store
        self.http = http
        self.renderers = renderers
        self.secret_for = secret_for
        self.retry_base_s = retry_base_s
        self.max_age_s = max_age_s
        self.poll_s = poll_s
        self.concurrency = max(1, concurrency)
        self.per_endpoint = max(1, per_endpoint)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.Condition()
        self._in_flight: Counter[str] = Counter()  # endpoint -> deliveries under way

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="kinema-webhook")
        self._thread = threading.Thread(target=self._loop, name="kinema-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._slots:
            self._slots.notify_all()
        if self._thread is not None:
            self._thread.join(10)
        if self._pool is not None:
            # Attempts under way end within the http timeout; unfinished ones are simply
            # retried by whichever process claims them after their lease.
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                started = self._start_due()
            except Exception:
                log.exception("webhook delivery pass failed")
                started = 0
            if not started:
                with self._slots:
                    self._slots.wait(self.poll_s)

    def _start_due(self) -> int:
        """Hand due events to the pool while slots are free; how many were started."""
        assert self._pool is not None
        started = 0
        while not self._stop.is_set():
            with self._slots:
                if sum(self._in_flight.values()) >= self.concurrency:
                    return started
                busy = {ep for ep, n in self._in_flight.items() if n >= self.per_endpoint}
            event = self.outbox.claim_due(lease_s=self._lease_s(), skip=_busy(busy))
            if event is None:
                return started
            key = endpoint(event.url)
            with self._slots:
                self._in_flight[key] += 1
            self._pool.submit(self._run, event, key)
            started += 1
        return started

    def _run(self, event: WebhookEvent, key: str) -> None:
        try:
            self.attempt(event)
        except Exception:
            log.exception("webhook %s: delivery failed", event.id)
        finally:
            with self._slots:
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]
                self._slots.notify_all()

    def _lease_s(self) -> float:
        return self.http.timeout_s + 30

    def attempt(self, event: WebhookEvent) -> None:
        body = event.body
        if body is None:
            try:
                body = self._render(event)
            except NotFound:
                self.outbox.failed(event.id, "the job was deleted before delivery")
                self.observer.webhook_outcome(event.dialect, "failed")
                return
            self.outbox.set_body(event.id, body)
        timestamp = int(self._clock().timestamp())
        headers = signing.headers(self.secret_for(event.owner), event.id, timestamp, body)
        try:
            status = self.http.post(event.url, body, headers, field="callback_url")
        except UnsafeURL as error:
            self.outbox.failed(event.id, error.message)
            self.observer.webhook_outcome(event.dialect, "failed")
            return
        except RemoteFailure as error:  # timeouts and connection failures
            self._retry(event, error.message)
            return
        if 200 <= status < 300:
            self.outbox.delivered(event.id, status)
            self.observer.webhook_outcome(event.dialect, "delivered")
        elif status == 429 or status >= 500:
            self._retry(event, f"HTTP {status}")
        else:
            self.outbox.failed(event.id, f"HTTP {status}: not retried")
            self.observer.webhook_outcome(event.dialect, "failed")

    def _render(self, event: WebhookEvent) -> bytes:
        job = self.store.get_any(event.job_id)
        render = self.renderers.get(event.dialect)
        data = render(job) if render else {"id": job.id, "status": job.status.value}
        payload = {
            "id": event.id,
            "object": "event",
            "type": event.event_type,
            "created_at": int(event.created_at.timestamp()),
            "data": data,
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def _retry(self, event: WebhookEvent, reason: str) -> None:
        delay = min(self.retry_base_s * 2**event.attempts, MAX_BACKOFF_S)
        at = self._clock() + timedelta(seconds=delay)
        if (at - event.created_at).total_seconds() > self.max_age_s:
            self.outbox.failed(event.id, f"gave up after {event.attempts + 1} attempts: {reason}")
            self.observer.webhook_outcome(event.dialect, "failed")
            return
        log.info(
            "webhook %s of job %s: %s; retrying in %.1f s",
            event.id,
            event.job_id,
            reason,
            delay,
            extra={"job_id": event.job_id, "key_id": event.owner},
        )
        self.outbox.retry_later(event.id, at, reason)
        self.observer.webhook_outcome(event.dialect, "retry")
