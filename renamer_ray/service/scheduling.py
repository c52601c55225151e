"""Which waiting jobs the driver runs next, and together (pure: no I/O).

- A tenant (namespace) with the fewest runs going is served first, so one tenant's many or large
  jobs cannot hold back another's; among equals, the job that has waited longest.
- Small jobs share a run (one pipeline start for all of them), picked round-robin across tenants,
  up to ``max_jobs`` jobs and ``max_files`` files.
- A large job (more than ``max_files`` files) runs alone, and so does a job on its second or later
  attempt: a poison job cannot keep failing the jobs beside it.
- Beyond the ``max_running`` slots, one more is kept for small jobs (at most ``small_files`` files
  each): while large jobs hold every other slot, a one-image job still starts at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Waiting:
    """What scheduling needs to know of a waiting job."""

    job_id: str
    tenant: str
    files: int
    retried: bool


def alone(job: Waiting, max_files: int) -> bool:
    return job.retried or job.files > max_files


def next_run(waiting: Sequence[Waiting], running_per_tenant: dict[str, int], *, max_jobs: int,
             max_files: int) -> list[Waiting]:
    """The jobs of the next run (empty when nothing waits). ``waiting`` is in arrival order."""
    if not waiting:
        return []
    first = min(waiting, key=lambda job: (running_per_tenant.get(job.tenant, 0), waiting.index(job)))
    if alone(first, max_files):
        return [first]
    run, files = [first], first.files
    queues: dict[str, list[Waiting]] = {}
    for job in waiting:  # per tenant, in arrival order; the first job's tenant goes last in the round
        if job is not first and not alone(job, max_files):
            queues.setdefault(job.tenant, []).append(job)
    order = sorted(queues, key=lambda tenant: (tenant == first.tenant, running_per_tenant.get(tenant, 0),
                                               waiting.index(queues[tenant][0])))
    while len(run) < max_jobs and any(queues.values()):
        for tenant in order:
            if queues[tenant] and len(run) < max_jobs:
                job = queues[tenant].pop(0)
                if files + job.files <= max_files:
                    run.append(job)
                    files += job.files
    return run


@dataclass(frozen=True)
class Slot:
    """Where the next run may start: which waiting jobs it may take, and whether it is the small-job slot."""

    jobs: list[Waiting]
    small: bool


def free_slot(waiting: Sequence[Waiting], *, regular_going: int, small_going: bool, max_running: int,
              small_files: int) -> Slot | None:
    """The slot the next run starts in, or None when no slot is free for any waiting job.
    ``regular_going``: runs going in the ``max_running`` slots; ``small_going``: whether a run holds
    the small-job slot (``small_files`` 0: there is none)."""
    if regular_going < max_running:
        return Slot(list(waiting), small=False)
    small = [job for job in waiting if job.files <= small_files]
    if small_going or not small:
        return None
    return Slot(small, small=True)
