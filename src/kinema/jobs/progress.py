"""A running job's progress bar: what share of the work is done, and when that is written.

A sample a local engine makes goes through three stages, and the bar moves through each:

1. the engine's run (a diffusion engine's denoising steps), up to ``RUN_SHARE``;
2. encoding: frames handed to the encoder and frames in the file, up to ``ENCODED``. For an
   engine that renders each frame as the encoder pulls it (the motion engine) this is
   where all the rendering happens too, and the file lags the frames handed over by what
   x264 holds, so the stage counts both: its share is split between the frames still to
   hand over when encoding began and the frames still to write;
3. storing the video and its thumbnail, to ``STORED``; committing the success sets 1.0.

A job of several samples moves through the same stages once per sample. A forwarded job
shows the provider's progress, up to ``ENCODED``.

``ProgressWriter`` writes the bar for one attempt at most once per interval (and once at
its end), never lower than it was, so a bar polled from the database moves steadily up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kinema.errors import LeaseLost
from kinema.jobs.observer import JobObserver
from kinema.jobs.store import JobStore
from kinema.outages import as_outage

__all__ = ["ENCODED", "RUN_SHARE", "STORED", "ProgressWriter", "SampleProgress"]

log = logging.getLogger(__name__)

RUN_SHARE = 0.9  # the engine's run, before its clip is encoded
ENCODED = 0.97  # every frame in the file (a forwarded job: the provider's video ready)
STORED = 0.99  # the video and thumbnail stored; the rest is committing the success


class ProgressWriter:
    """Writes one attempt's progress to the store, at most once per ``interval_s``.

    The first write waits one interval, so a job shorter than that writes no progress at
    all (its success sets 1.0); once a bar is showing, its end is written at once. A lost
    lease sets ``lost``; a database outage leaves the bar where it was while the work goes on.
    """

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        attempt: int,
        *,
        engine: str,
        observer: JobObserver,
        lost: threading.Event,
        interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._attempt = attempt
        self._engine = engine
        self._observer = observer
        self._lost = lost
        self._interval_s = interval_s
        self._clock = clock
        self._started = clock()
        self._last_write = self._started
        self._written = 0.0
        self._last_step: float | None = None  # the first step's wait includes setup

    def engine_step(self) -> None:
        """Time the engine's reports, for the observer."""
        now = self._clock()
        if self._last_step is not None:
            self._observer.engine_step(self._engine, now - self._last_step)
        self._last_step = now

    def write(self, value: float, *, end: bool = False) -> None:
        """Show ``value`` (0..1) when an interval has passed since the last write, or at
        once when it is the bar's ``end`` and a bar is showing."""
        if value <= self._written:
            return
        now = self._clock()
        due = now - self._last_write >= self._interval_s
        if not due and not (end and self._last_write != self._started):
            return
        self._last_write = now
        try:
            self._store.set_progress(self._job_id, self._attempt, value)
        except LeaseLost:
            self._lost.set()
            return
        except Exception as error:  # a bar not moved for a while: the render goes on
            if as_outage(error) is None:
                raise
            log.warning("job %s: progress not written: %s", self._job_id, error)
            return
        self._written = value

    def forwarded(self, fraction: float) -> None:
        """A provider's progress (0..1) on a forwarded job."""
        self.engine_step()
        self.write(fraction * ENCODED, end=fraction >= 1.0)


class SampleProgress:
    """The bar while sample ``index`` of ``count`` is rendered, encoded and stored."""

    def __init__(self, writer: ProgressWriter, index: int, count: int) -> None:
        self._writer = writer
        self._index = index
        self._count = count
        self._run = 0.0  # the engine's own fraction
        self._run_at_encode: float | None = None  # where it was when encoding began
        self._in_file = 0.0  # the share of frames in the file

    def engine(self, fraction: float) -> None:
        """The engine's progress callback."""
        self._writer.engine_step()
        self._run = max(self._run, min(1.0, fraction))
        self._show()

    def encoding(self) -> None:
        """The engine's run returned its clip; the encoder starts pulling frames."""
        self._run_at_encode = self._run

    def written(self, frames: int, total: int) -> None:
        """``frames`` of the clip's ``total`` are in the file."""
        self._in_file = min(1.0, frames / total)
        self._show()

    def stored(self) -> None:
        """The sample's video and thumbnail are in storage."""
        last = self._index == self._count - 1
        self._writer.write(self._overall(STORED), end=last)

    def _show(self) -> None:
        self._writer.write(self._overall(self._sample_value()))

    def _sample_value(self) -> float:
        start = self._run_at_encode
        if start is None:
            return RUN_SHARE * self._run
        base = RUN_SHARE * start
        # Frames left to hand over when encoding began, and every frame to write: the two
        # overlap, so the stage is the sum of both counts over what there was to do. A
        # frame in the file was handed over, whatever the engine said (or did not say).
        handed_over = max(self._run, self._in_file)
        done = (handed_over - start) + self._in_file
        return base + (ENCODED - base) * done / ((1.0 - start) + 1.0)

    def _overall(self, value: float) -> float:
        return (self._index + value) / self._count
