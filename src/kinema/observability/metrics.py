"""Prometheus metrics of one kinema process, in a registry of its own.

Counters and histograms count what this process did (jobs it accepted or ran, webhooks it
sent, requests it served); the queue, workers and GPU figures are read when scraped, so
every API process reports the same cluster-wide queue. ``Metrics`` implements
``JobObserver``; nothing is kept in module globals, so each app or runtime (and each
test) has its own numbers. Example queries are in docs/operations.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kinema.types import Job, JobStatus, QueueStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Generation takes seconds (motion engine) to many minutes (large diffusion models).
_GENERATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
_VIDEO_BUCKETS = (1, 2, 4, 5, 6, 8, 10, 12, 16, 20, 30, 60)
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs_created = Counter(
            "kinema_jobs_created",
            "Jobs accepted by this process",
            ["model", "engine", "dialect"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "kinema_jobs_finished",
            "Jobs that reached a final state in this process (run here, or cancelled while "
            "queued through this API)",
            ["model", "engine", "dialect", "state"],
            registry=r,
        )
        self.generation_seconds = Histogram(
            "kinema_generation_seconds",
            "Wall time of one attempt, from claim to stored video or failure",
            ["engine"],
            buckets=_GENERATION_BUCKETS,
            registry=r,
        )
        self.video_seconds = Histogram(
            "kinema_video_seconds",
            "Seconds of video in each video made",
            ["engine"],
            buckets=_VIDEO_BUCKETS,
            registry=r,
        )
        self.engine_step_seconds = Histogram(
            "kinema_engine_step_seconds",
            "Time between an engine's progress reports (a denoising step; a frame for "
            "the motion engine)",
            ["engine"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.leases_expired = Counter(
            "kinema_job_leases_expired",
            "Running jobs whose worker stopped renewing the lease (it died or hung), by "
            "outcome: queued (run again), failed (worker_lost, no attempts left) or "
            "cancelled; the log line names the worker",
            ["outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "kinema_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, retry (will be sent again), "
            "failed (given up)",
            ["dialect", "outcome"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "kinema_http_request_duration_seconds",
            "HTTP request latency by route template (to the response's first byte)",
            ["method", "route", "status"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        # (method, route template, status) -> its histogram: all three come from fixed sets
        self._http_children: dict[tuple[str, str, int], Any] = {}

    def watch(self, collector: Collector) -> None:
        """Add a collector read at every scrape (``StateCollector``)."""
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- JobObserver ---

    def job_created(self, job: Job, *, engine: str) -> None:
        self.jobs_created.labels(job.model, engine, job.dialect).inc()

    def job_finished(
        self,
        job: Job,
        *,
        engine: str,
        state: JobStatus,
        generation_s: float | None = None,
        video_s: float | None = None,
    ) -> None:
        self.jobs_finished.labels(job.model, engine, job.dialect, state.value).inc()
        if generation_s is not None:
            self.generation_seconds.labels(engine).observe(generation_s)
        if video_s is not None:
            self.video_seconds.labels(engine).observe(video_s)

    def lease_expired(self, job: Job, *, worker_id: str) -> None:
        # Not labelled by worker: every lost worker would add series without bound (worker
        # ids are new in each process); the warning logged with it names the worker.
        self.leases_expired.labels(job.status.value).inc()

    def engine_step(self, engine: str, seconds: float) -> None:
        self.engine_step_seconds.labels(engine).observe(seconds)

    def webhook_outcome(self, dialect: str, outcome: str) -> None:
        self.webhooks.labels(dialect, outcome).inc()

    # --- HTTP ---

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # Anyone may send any method name (no key needed): one label value per invented
        # method would grow the series without bound, so those share ``other``.
        label = method if method in HTTP_METHODS else "other"
        key = (label, route, status)
        child = self._http_children.get(key)
        if child is None:  # ``labels()`` hashes and checks its strings on every call
            child = self._http_children[key] = self.http_seconds.labels(label, route, str(status))
        child.observe(seconds)


HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


class StateCollector(Collector):
    """Figures read from the database (and the GPU) at scrape time."""

    def __init__(
        self,
        queues: Callable[[], Iterable[QueueStats]],
        models: Callable[[], Iterable[str]],
        worker_slots: Callable[[], dict[str, int]],
    ) -> None:
        self._queues = queues
        self._models = models
        self._worker_slots = worker_slots

    def collect(self) -> Iterator[Metric]:
        stats = {s.model: s for s in self._queues()}
        slots = self._worker_slots()
        depth = GaugeMetricFamily(
            "kinema_queue_depth", "Jobs waiting for a worker, per model", labels=["model"]
        )
        oldest = GaugeMetricFamily(
            "kinema_queue_oldest_age_seconds",
            "How long the oldest waiting job of a model has waited (0: none waits)",
            labels=["model"],
        )
        online = GaugeMetricFamily(
            "kinema_workers_online",
            "Job slots of live workers that take a model's jobs",
            labels=["model"],
        )
        for model in sorted(set(self._models()) | set(stats)):
            queue = stats.get(model)
            depth.add_metric([model], queue.depth if queue else 0)
            oldest.add_metric([model], queue.oldest_age_s if queue else 0.0)
            if model in slots:
                online.add_metric([model], slots[model])
        yield depth
        yield oldest
        yield online
        yield from _gpu_memory()


def _gpu_memory() -> Iterator[Metric]:
    """Memory torch holds on each CUDA device, when this process has loaded torch and
    sees a GPU (torch is never imported just to ask)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return
    allocated = GaugeMetricFamily(
        "kinema_gpu_memory_allocated_bytes", "GPU memory held by tensors", labels=["device"]
    )
    reserved = GaugeMetricFamily(
        "kinema_gpu_memory_reserved_bytes",
        "GPU memory reserved by torch's caching allocator",
        labels=["device"],
    )
    total = GaugeMetricFamily(
        "kinema_gpu_memory_total_bytes", "GPU memory of the device", labels=["device"]
    )
    for index in range(torch.cuda.device_count()):
        device = str(index)
        allocated.add_metric([device], torch.cuda.memory_allocated(index))
        reserved.add_metric([device], torch.cuda.memory_reserved(index))
        total.add_metric([device], torch.cuda.get_device_properties(index).total_memory)
    yield allocated
    yield reserved
    yield total
