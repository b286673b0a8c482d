"""The one fingerprint of a request body, for ``Idempotency-Key`` comparisons."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint(body: Any) -> str:
    """sha256 of the canonical JSON of ``body`` (keys sorted; values JSON cannot carry
    compared by their ``str``)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
