"""The webhook deliverer of a process: each event rendered in the dialect its job came in.

Built by every process that runs the API or workers (``create_app``, ``kinema worker``),
so a deployment of API-only and worker-only processes delivers whichever of them runs.
"""

from __future__ import annotations

from kinema.api.dialects import dialects
from kinema.api.mount import webhook_renderers
from kinema.media.http import SafeHttpClient
from kinema.runtime import Runtime
from kinema.webhooks.deliver import WebhookDeliverer


def build_deliverer(runtime: Runtime) -> WebhookDeliverer:
    """The outbox deliverer; links in its bodies start with each job's own base URL."""
    settings = runtime.settings
    http = SafeHttpClient(
        allow_hosts=settings.fetch_allow_hosts,
        timeout_s=settings.webhook_timeout_s,
        max_bytes=settings.max_image_bytes,
        max_redirects=0,
    )
    return WebhookDeliverer(
        runtime.outbox,
        runtime.store,
        http,
        webhook_renderers(dialects(), runtime.service),
        runtime.service.webhook_secret,
        retry_base_s=settings.webhook_retry_base_s,
        max_age_s=settings.webhook_max_age_s,
        poll_s=settings.webhook_poll_s,
        concurrency=settings.webhook_concurrency,
        per_endpoint=settings.webhook_per_endpoint,
        observer=runtime.metrics,
    )
