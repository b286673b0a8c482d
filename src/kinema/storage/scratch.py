"""Leftovers in the scratch directory: partial files of a process that was killed.

An encode writes ``*.part`` and renames it when complete; a process killed mid-encode
(``kill -9``, a lost machine) leaves its ``.part`` behind. At start every process
removes those not written to for ``older_than_s`` (a lease: a live writer touches its
file with every frame, and a job silent that long has lost its worker anyway), so a
process sharing the directory never loses a file it is still writing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def remove_stale_parts(directory: Path, *, older_than_s: float) -> int:
    """Delete ``*.part`` files in ``directory`` unmodified for ``older_than_s``; how many."""
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in directory.glob("*.part"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another process removed it first
            continue
    if removed:
        log.info("removed %d partial file(s) left in %s by a stopped process", removed, directory)
    return removed
