"""A rename job as the service records it (pure: no I/O).

Layout, as in the seed: uploads in S3_IN_BUCKET under ``{namespace}/jobs/{job_id}/input/``; in
S3_OUT_BUCKET the renamed files under ``{namespace}/jobs/{job_id}/output/``, the manifest at
``{namespace}/jobs/{job_id}/manifest.jsonl`` and this record at ``{namespace}/jobs/{job_id}/job.json``.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from renamer_ray.naming import DEFAULT_STYLE, NamingStyle

Status = Literal["queued", "running", "succeeded", "partial", "failed", "cancelled"]
FileState = Literal["waiting", "named", "renamed", "failed", "cancelled"]
FINISHED = ("succeeded", "partial", "failed", "cancelled")
JOB_ID = re.compile(r"^jr_[0-9a-f]{16}$")


def new_job_id() -> str:
    return "jr_" + secrets.token_hex(8)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobFile(BaseModel):
    """One upload: the name the user gave (data, never a path) and the key we stored it under."""

    original: str
    key: str                          # relative to the job's input prefix, e.g. "0001.jpg"
    size: int
    state: FileState = "waiting"      # waiting → named (by the model) → renamed (copied) or failed;
                                      # cancelled: the job was cancelled before this file was renamed


class JobRecord(BaseModel):
    job_id: str
    namespace: str
    status: Status = "queued"
    count: int
    user_prompt: str | None = None
    template: str = "{subject}"
    first_index: int = 1              # {index} of the first file; the others follow in upload order
    style: NamingStyle = DEFAULT_STYLE  # case, limits and language of the names
    callback_url: str | None = None   # POSTed the final view, signed (service/webhooks.py)
    files: list[JobFile] = Field(default_factory=list)
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

    def restart(self) -> None:
        """Forget an attempt's progress: a new attempt starts, or an abandoned one is not the job's."""
        for file in self.files:
            file.state = "waiting"

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
                "files": [{"original": f.original, "state": f.state} for f in self.files]}


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


def final_status(ok: int, failed: int) -> Status:
    """succeeded: every file renamed; partial: some failed; failed: none renamed."""
    if failed == 0:
        return "succeeded"
    return "partial" if ok else "failed"
