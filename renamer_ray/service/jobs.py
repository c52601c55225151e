"""A rename job as the service records it, and the moves of its status (pure: no I/O).

Every change of a job's status goes through :meth:`JobRecord.handle_transition`: the driver and the
API name what happened (a :class:`Trigger`); the table ``MOVES`` says from which statuses that may
happen and to which it moves; the transition sets the status, the error, the attempt count and the
timestamps.

Layout, as in the seed: uploads in S3_IN_BUCKET under ``{namespace}/jobs/{job_id}/input/``; in
S3_OUT_BUCKET the renamed files under ``{namespace}/jobs/{job_id}/output/``, the manifest at
``{namespace}/jobs/{job_id}/manifest.jsonl`` and this record at ``{namespace}/jobs/{job_id}/job.json``.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from enum import Enum, auto
from typing import Literal

from pydantic import BaseModel, Field

from renamer_ray.naming import DEFAULT_STYLE, NamingStyle

Status = Literal["queued", "running", "succeeded", "partial", "failed", "cancelled"]
FileState = Literal["waiting", "named", "renamed", "failed", "cancelled"]
FINISHED = ("succeeded", "partial", "failed", "cancelled")
UNFINISHED = ("queued", "running")
JOB_ID = re.compile(r"^jr_[0-9a-f]{16}$")


def new_job_id() -> str:
    return "jr_" + secrets.token_hex(8)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Trigger(Enum):
    """What happened to a job."""

    STARTED = auto()      # an attempt starts (the record says running still when a driver died mid-run)
    FINISHED = auto()     # the attempt's files are done: succeeded, partial or failed by the files' states
    STOPPED = auto()      # the run ended at a cancel: the files renamed before it stay in the manifest
    CANCELLED = auto()    # cancelled before an attempt ran: nothing of it is kept
    RETRIED = auto()      # an attempt failed (or could not start): the message goes back for another
    GAVE_UP = auto()      # the last attempt failed: failed for good


# Each trigger: the statuses it may move a job from, and the status it moves it to (FINISHED: by the
# files' states). An attempt can fail before it starts (an invalid template, a run that could not
# begin), so a queued job may be retried or given up too.
MOVES: dict[Trigger, tuple[tuple[Status, ...], Status | None]] = {
    Trigger.STARTED: (UNFINISHED, "running"),
    Trigger.FINISHED: (("running",), None),
    Trigger.STOPPED: (("running",), "cancelled"),
    Trigger.CANCELLED: (UNFINISHED, "cancelled"),
    Trigger.RETRIED: (UNFINISHED, "queued"),
    Trigger.GAVE_UP: (UNFINISHED, "failed"),
}
FORGETS_PROGRESS = (Trigger.STARTED, Trigger.CANCELLED, Trigger.RETRIED, Trigger.GAVE_UP)
WITH_ERROR = (Trigger.RETRIED, Trigger.GAVE_UP)


class TransitionError(ValueError):
    """A move the table does not allow: a bug in the caller, never a user's mistake."""


class JobFile(BaseModel):
    """One upload: the name the user gave (data, never a path), its path relative to the folder the
    user chose (checked: ``records.trust.normal_relative``), and the key we stored it under."""

    original: str
    key: str                          # relative to the job's input prefix, in its path's folder: "2024/0001.jpg"
    path: str | None = None           # e.g. "Phone export/2024/IMG_001.HEIC"; None: sent without one
    size: int
    state: FileState = "waiting"      # waiting → named (by the model) → renamed (copied) or failed;
                                      # cancelled: the job was cancelled before this file was renamed


class SkippedFile(BaseModel):
    """An upload that is not an image: never stored nor named, listed with the sniffer's reason."""

    original: str                     # the name the user gave (data, never a path)
    path: str | None = None           # its path relative to the chosen folder, as for JobFile
    reason: str                       # e.g. "not an image: the bytes are not in any supported format"


class JobRecord(BaseModel):
    job_id: str
    namespace: str
    status: Status = "queued"
    count: int
    user_prompt: str | None = None
    template: str = "{subject}"
    first_index: int = 1              # {index} of the first file; the others follow in upload order
    style: NamingStyle = DEFAULT_STYLE  # case, limits and language of the names
    callback_url: str | None = None   # POSTed the final view, signed (service/webhooks/)
    files: list[JobFile] = Field(default_factory=list)
    skipped: list[SkippedFile] = Field(default_factory=list)  # uploads that are not images, in upload order
    error: str | None = None          # why the whole job failed, or the last retried failure
    attempts: int = 0
    created_at: str = Field(default_factory=now)
    updated_at: str = Field(default_factory=now)
    started_at: str | None = None     # when the latest attempt started (queue wait = started - created)
    finished_at: str | None = None    # when it reached a final status

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    # Progress counts are derived from the files' states, never kept beside them.
    @property
    def named(self) -> int:
        """Files the model has named so far (progress before the copies)."""
        return sum(f.state != "waiting" for f in self.files)

    @property
    def done(self) -> int:
        """Files finished: renamed or failed."""
        return sum(f.state in ("renamed", "failed") for f in self.files)

    @property
    def failed(self) -> int:
        return sum(f.state == "failed" for f in self.files)

    @property
    def cancelled(self) -> int:
        return sum(f.state == "cancelled" for f in self.files)

    @property
    def has_manifest(self) -> bool:
        """Finished with its files processed, so its manifest was written (a job given up on, or
        cancelled, before any attempt completed has none)."""
        return self.finished and (self.done + self.cancelled) > 0

    def handle_transition(self, trigger: Trigger, error: str | None = None) -> Status:
        """Move the status on ``trigger`` (or raise :class:`TransitionError`) and set what the move
        sets: ``error`` (the words for RETRIED and GAVE_UP; every other move clears it), the attempt
        count and ``started_at`` on a start, ``finished_at`` on a final status. A start, cancel,
        retry or give-up forgets the files' progress: a new attempt starts, or the last one is not
        the job's."""
        sources, target = MOVES[trigger]
        if self.status not in sources:
            raise TransitionError(f"job {self.job_id} is {self.status}: {trigger.name} moves only a job that is "
                                  f"{' or '.join(sources)}")
        if (error is None) == (trigger in WITH_ERROR):
            raise TransitionError(f"{trigger.name} {'needs an error' if error is None else 'takes no error'}")
        if trigger in FORGETS_PROGRESS:
            for file in self.files:
                file.state = "waiting"
        self.status, self.error = target or self._outcome(), error
        if trigger is Trigger.STARTED:
            self.attempts += 1
            self.started_at = now()
        if self.finished:
            self.finished_at = now()
        return self.status

    def _outcome(self) -> Status:
        """succeeded: every file renamed; partial: some failed; failed: none renamed."""
        if self.failed == 0:
            return "succeeded"
        return "partial" if self.done > self.failed else "failed"

    @property
    def prefix(self) -> str:
        return f"{self.namespace}/jobs/{self.job_id}"

    @property
    def input_prefix(self) -> str:
        return f"{self.prefix}/input"

    @property
    def output_prefix(self) -> str:
        return f"{self.prefix}/output"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}/manifest.jsonl"

    @property
    def record_key(self) -> str:
        return record_key(self.namespace, self.job_id)

    @property
    def cancel_key(self) -> str:
        """Exists once someone asked to cancel the job (written by the API, read by the driver)."""
        return f"{self.prefix}/cancel"

    @property
    def index_key(self) -> str:
        """An empty object per job whose keys list newest first (``GET /v1/jobs``)."""
        return f"{index_prefix(self.namespace)}{newest_first(self.created_at)}-{self.job_id}"

    @property
    def in_flight_key(self) -> str:
        """An empty object while the job is unfinished: MAX_JOBS_IN_FLIGHT counts these."""
        return f"{in_flight_prefix(self.namespace)}{self.job_id}"

    def progress(self) -> dict:
        """What the events stream and the page show while it runs."""
        return {"job_id": self.job_id, "status": self.status, "count": self.count, "named": self.named,
                "done": self.done, "failed": self.failed, "cancelled": self.cancelled, "error": self.error,
                "files": [{"original": f.original, "state": f.state} | ({"path": f.path} if f.path else {})
                          for f in self.files],
                "skipped": [skipped.model_dump(exclude_none=True) for skipped in self.skipped]}


def record_key(namespace: str, job_id: str) -> str:
    return f"{namespace}/jobs/{job_id}/job.json"


def index_prefix(namespace: str) -> str:
    """Under ``{namespace}/jobs/`` like everything of a job (the node role may write only there)."""
    return f"{namespace}/jobs/_index/"


def in_flight_prefix(namespace: str) -> str:
    return f"{namespace}/jobs/_in_flight/"


def newest_first(created_at: str) -> str:
    """A fixed-width sort key that is smaller for later times (S3 lists keys in ascending order)."""
    millis = int(datetime.fromisoformat(created_at).timestamp() * 1000)
    return f"{10 ** 14 - millis:014d}"


CANCEL_REASON = "the job was cancelled before this file was renamed"
