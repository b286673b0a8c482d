"""The durable job store: the only code that writes job rows.

One class, ``JobStore``, made of one part per concept:

- ``base``: the engine, the clock, the dispatch, and the attempt-fenced write with the
  outbox event (and the queue entry) in the same transaction, which every write uses;
- ``creates``: accepting a job, and idempotent retries;
- ``reads``: one job, a poll's summary, pages of an owner's jobs, queue positions;
- ``attempts``: a worker's claim, lease, progress, route and outcome, all fenced;
- ``sweeps``: lost leases recovered, finished jobs expired, overdue off-peak jobs cancelled;
- ``owners``: an owner's cancel and delete.
"""

from kinema.jobs.store.attempts import Attempts
from kinema.jobs.store.base import Clock
from kinema.jobs.store.creates import Creates, hash_request
from kinema.jobs.store.owners import Owners
from kinema.jobs.store.reads import Reads
from kinema.jobs.store.sweeps import OFF_PEAK_TIMEOUT, WORKER_LOST, Sweeps

__all__ = ["OFF_PEAK_TIMEOUT", "WORKER_LOST", "Clock", "JobStore", "hash_request"]


class JobStore(Creates, Owners, Reads, Attempts, Sweeps):
    """Every job row's reads and writes (see the parts above)."""
