"""Per-key request rate limits: a token bucket per owner, in this process's memory.

Each key may burst up to ``per_minute`` requests and then gets ``per_minute / 60`` more
every second. Limits are per API process; with several API processes behind a balancer a
key's effective limit is the sum (documented; a shared store would be needed otherwise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kinema.errors import RateLimited


class RateLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # owner -> (tokens, last refill)
        self._lock = threading.Lock()

    def check(self, owner: str) -> None:
        """Take one token for ``owner`` or raise ``RateLimited`` saying when to retry."""
        if self.per_minute <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(owner, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[owner] = (tokens, now)
                wait = (1.0 - tokens) / self._rate
                raise RateLimited(
                    f"rate limit of {self.per_minute} requests per minute exceeded for this key",
                    retry_after_s=wait,
                )
            self._buckets[owner] = (tokens - 1.0, now)
