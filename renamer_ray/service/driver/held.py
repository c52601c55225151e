"""What the driver holds: each accepted job with its SQS message, waiting for a run slot or in a run."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from itertools import count

from renamer_ray.io.queue import Message
from renamer_ray.records.manifest import FileRecord
from renamer_ray.service.jobs import JobFile, JobRecord
from renamer_ray.service.scheduling import Waiting
from renamer_ray.service.store import JobStore


@dataclass(eq=False)
class HeldJob:
    """A job this driver holds: its message (kept invisible) and record, and what its run produced."""

    message: Message
    record: JobRecord
    records: list[FileRecord] = field(default_factory=list)
    dirty: bool = False
    closed: bool = False              # finished, failed or handed back: nothing more may touch it
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def waiting(self) -> Waiting:
        return Waiting(self.record.job_id, self.record.namespace, self.record.count, self.message.receives > 1)

    def file(self, relative: str) -> JobFile:
        if not hasattr(self, "_by_key"):
            self._by_key = {f.key: f for f in self.record.files}
        return self._by_key[relative]


@dataclass(eq=False)
class Run:
    number: int
    jobs: list[HeldJob]
    small: bool = False               # in the slot kept for small jobs (beyond MAX_RUNNING)
    started: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)
    progress_mark: int = 0            # files named or finished when progress was last seen
    abandoned: bool = False           # given up by the watchdog: its results are not the jobs' any more

    def describe(self) -> str:
        return f"run {self.number} ({', '.join(job.record.job_id for job in self.jobs)})"

    def outputs(self, store: JobStore) -> list[str]:
        """The jobs' output folders: what the progress board keys their progress by."""
        return [store.output_uri(job.record) for job in self.jobs]


class Holdings:
    """The held jobs: ``pending`` (accepted, waiting for a slot) and ``runs`` (going), both guarded
    by ``lock``; ``slot_freed`` is set whenever a run ends or is given up."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pending: list[HeldJob] = []
        self.runs: dict[int, Run] = {}
        self.numbers = count(1)
        self.slot_freed = threading.Event()

    def all(self) -> list[HeldJob]:
        """Every job this driver holds a message for: waiting for a slot, or in a run."""
        with self.lock:
            return self.pending + [job for run in self.runs.values() for job in run.jobs]

    def find(self, job_id: str) -> HeldJob | None:
        """The open held job of this id, if any."""
        return next((job for job in self.all() if job.record.job_id == job_id and not job.closed), None)

    def add(self, job: HeldJob) -> None:
        with self.lock:
            self.pending.append(job)

    def unpend(self, job: HeldJob) -> None:
        with self.lock:
            self.pending = [j for j in self.pending if j is not job]

    def snapshot(self) -> tuple[list[HeldJob], list[Run], list[HeldJob]]:
        """(pending, runs, every held job) at one moment."""
        with self.lock:  # re-entrant: all takes it too
            return list(self.pending), list(self.runs.values()), self.all()

    def drop(self, run: Run) -> int:
        """Forget a run that ended or was given up, free its slot; the runs still going."""
        with self.lock:
            self.runs.pop(run.number, None)
            going = len(self.runs)
        self.slot_freed.set()
        return going

    def let_go(self) -> list[HeldJob]:
        """Stop holding: every run is abandoned, nothing waits; the jobs that were held."""
        with self.lock:
            held = self.all()
            self.pending = []
            for run in self.runs.values():
                run.abandoned = True
        return held
