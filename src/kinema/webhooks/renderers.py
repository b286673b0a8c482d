"""The webhook deliverer of a process: each event's body rendered in the API its job came
in, from the wire tables (``kinema.wire``) alone, so a worker process never imports the
web framework or the dialects' routes.

Built by every process that runs the API or workers (``create_app``, ``kinema worker``),
so a deployment of API-only and worker-only processes delivers whichever of them runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kinema.inline_json import materialized
from kinema.media.http import SafeHttpClient
from kinema.runtime import Runtime
from kinema.service import JobService
from kinema.types import Job
from kinema.webhooks.deliver import Renderer, WebhookDeliverer
from kinema.wire import STATUS_OBJECTS, StatusObject


def webhook_renderers(
    service: JobService, objects: Mapping[str, StatusObject] = STATUS_OBJECTS
) -> dict[str, Renderer]:
    """Each API's webhook body: the job as that API's status object (its links start
    with the job's own base URL; an inline video is read in whole, since the body is
    signed). Called off the event loop, by the deliverer's threads."""

    def renderer(status_object: StatusObject) -> Renderer:
        def render(job: Job) -> dict[str, Any]:
            view = service.view(job, inline_video=status_object.inline_video)
            body = status_object.render(view)
            return cast(dict[str, Any], materialized(body, service.storage))

        return render

    return {name: renderer(status_object) for name, status_object in objects.items()}


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
        webhook_renderers(runtime.service),
        runtime.service.webhook_secret,
        retry_base_s=settings.webhook_retry_base_s,
        max_age_s=settings.webhook_max_age_s,
        poll_s=settings.webhook_poll_s,
        concurrency=settings.webhook_concurrency,
        per_endpoint=settings.webhook_per_endpoint,
        observer=runtime.metrics,
    )
