"""The ``upstream`` engine kind: forward a job to another service that makes videos.

One module per wire protocol (``gemini``, ``vertex``, ``aimlapi``, ``openai``, ``unified``,
``v1``), one HTTP layer that maps a provider's answers to retry or refusal, and the
engine that submits once, records the operation through the worker's callback before
polling it, and downloads the result. The engine never touches the database or storage:
the worker hands it a ``Forwarding`` and stores the file it returns.
"""

from kinema.engines.upstream.config import UpstreamConfig
from kinema.engines.upstream.engine import Forwarding, UpstreamEngine
from kinema.engines.upstream.errors import OperationLost, UpstreamRefused, UpstreamUnavailable
from kinema.engines.upstream.protocol import PROTOCOLS, Operation

__all__ = [
    "PROTOCOLS",
    "Forwarding",
    "Operation",
    "OperationLost",
    "UpstreamConfig",
    "UpstreamEngine",
    "UpstreamRefused",
    "UpstreamUnavailable",
]
