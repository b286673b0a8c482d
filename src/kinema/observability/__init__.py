"""Metrics, logs and health: what an operator sees of a running kinema."""

from kinema.observability.context import job_context
from kinema.observability.logs import JsonFormatter, configure_logging
from kinema.observability.metrics import CONTENT_TYPE, Metrics, StateCollector

__all__ = [
    "CONTENT_TYPE",
    "JsonFormatter",
    "Metrics",
    "StateCollector",
    "configure_logging",
    "job_context",
]
