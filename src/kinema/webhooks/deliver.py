"""Delivering outbox events: render once, sign each attempt, retry with backoff.

A delivery that answers 2xx is done. 429, 5xx, timeouts and connection failures are
retried with exponential backoff (``retry_base_s`` doubling, capped at an hour) until
``max_age_s`` (24 h) after the event was created. Other 4xx answers, and URLs that now
resolve to refused addresses, fail the event at once: retrying cannot help.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kinema.errors import NotFound, RemoteFailure, UnsafeURL
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.http = http
        self.renderers = renderers
        self.secret_for = secret_for
        self.retry_base_s = retry_base_s
        self.max_age_s = max_age_s
        self.poll_s = poll_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kinema-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.deliver_due()
            except Exception:
                log.exception("webhook delivery pass failed")
                sent = 0
            if not sent:
                self._stop.wait(self.poll_s)

    def deliver_due(self) -> int:
        """Attempt every event that is due now, once each; how many were attempted."""
        attempted = 0
        lease_s = self.http.timeout_s + 30
        while not self._stop.is_set():
            event = self.outbox.claim_due(lease_s=lease_s)
            if event is None:
                return attempted
            self.attempt(event)
            attempted += 1
        return attempted

    def attempt(self, event: WebhookEvent) -> None:
        body = event.body
        if body is None:
            try:
                body = self._render(event)
            except NotFound:
                self.outbox.failed(event.id, "the job was deleted before delivery")
                return
            self.outbox.set_body(event.id, body)
        timestamp = int(self._clock().timestamp())
        headers = signing.headers(self.secret_for(event.owner), event.id, timestamp, body)
        try:
            status = self.http.post(event.url, body, headers, field="callback_url")
        except UnsafeURL as error:
            self.outbox.failed(event.id, error.message)
            return
        except RemoteFailure as error:  # timeouts and connection failures
            self._retry(event, error.message)
            return
        if 200 <= status < 300:
            self.outbox.delivered(event.id, status)
        elif status == 429 or status >= 500:
            self._retry(event, f"HTTP {status}")
        else:
            self.outbox.failed(event.id, f"HTTP {status}: not retried")

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
            return
        log.info("webhook %s: %s; retrying in %.1f s", event.id, reason, delay)
        self.outbox.retry_later(event.id, at, reason)
