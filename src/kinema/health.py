"""Readiness: can this process do its work now? For load balancers and orchestrators.

Three checks, each answering ok or what is wrong: the database answers a query, storage
takes a write (and gives it back), and at least one model has a worker online.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text

from kinema.runtime import Runtime

log = logging.getLogger(__name__)

PROBE_PREFIX = "health/"
# /readyz answers anyone: a failed check says only this, the exception (which may name an
# endpoint, a bucket, a prefix or a key) goes to the log.
UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness(runtime: Runtime) -> list[Check]:
    return [_database(runtime), _storage(runtime), _workers(runtime)]


def _database(runtime: Runtime) -> Check:
    try:
        with runtime.db.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        log.warning("readiness: the database is unreachable", exc_info=True)
        return Check("database", False, UNREACHABLE)
    return Check("database", True, "reachable")


def _storage(runtime: Runtime) -> Check:
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        runtime.storage.put_bytes(key, b"ok")
        if runtime.storage.get_bytes(key) != b"ok":
            return Check("storage", False, "a probe read back different bytes")
        runtime.storage.delete(key)
    except Exception:
        log.warning("readiness: storage is unreachable", exc_info=True)
        return Check("storage", False, UNREACHABLE)
    return Check("storage", True, "writable")


def _workers(runtime: Runtime) -> Check:
    try:
        serving = {model: slots for model, slots in runtime.service.worker_slots().items() if slots}
    except Exception:
        log.warning("readiness: the worker registry is unreachable", exc_info=True)
        return Check("workers", False, UNREACHABLE)
    if not serving:
        return Check("workers", False, "no worker is online for any model")
    return Check("workers", True, f"{len(serving)} of {len(runtime.catalog.models)} models served")
