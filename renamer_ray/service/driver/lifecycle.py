"""A held job's life: its attempt started, finished, retried or given up, cancelled; its message
deleted (done) or released (another try); the metrics and the callback once it has ended."""

from __future__ import annotations

import logging
import re

from renamer_ray.config import Settings
from renamer_ray.io.queue import JobQueue, Message, is_gone
from renamer_ray.io.storage import StorageConfig, open_location, remove_folder
from renamer_ray.records.manifest import PARTS_FOLDER
from renamer_ray.service.driver.held import HeldJob
from renamer_ray.service.driver.metrics import Metrics
from renamer_ray.service.jobs import JobRecord, Trigger
from renamer_ray.service.store import JobStore

log = logging.getLogger("renamer_ray.driver")


def reason(exc: BaseException) -> str:
    """One line a job's ``error`` can show: the failed task's own exception, without Ray's wrappers
    (RayTaskError, Ray Data's UserCodeException), their traceback or colour codes."""
    while True:
        if hasattr(exc, "cause") and isinstance(exc.cause, BaseException):  # ray.exceptions.RayTaskError
            exc = exc.cause
        elif type(exc).__name__ == "UserCodeException" and exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            break
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:500]


class Lifecycle:
    """Every status a held job takes goes through here, as a trigger of its record's transition."""

    def __init__(self, settings: Settings, store: JobStore, queue: JobQueue, metrics: Metrics, webhooks=None):
        self.settings, self.store, self.queue, self.metrics, self.webhooks = settings, store, queue, metrics, webhooks

    def start(self, job: HeldJob) -> None:
        """Its run begins a new attempt (unless the job was closed, cancelled, as the run started)."""
        with job.lock:
            if job.closed:
                return
            job.record.handle_transition(Trigger.STARTED)
            self.store.save(job.record.model_copy(deep=True))  # the run goes on changing the held record

    def finish(self, job: HeldJob) -> None:
        """outputs (done) → manifest → final status → delete the message → remove claims."""
        with job.lock:
            if job.closed:
                return
            try:
                cancelled = self.store.cancel_requested(job.record)
                position = {f.key: i for i, f in enumerate(job.record.files)}  # the manifest in upload order
                job.records.sort(key=lambda r: position.get(r.relative, len(position)))
                self.store.write_manifest(job.record, job.records)
                # The held record stays running until the final status is saved: if saving fails,
                # the attempt is retried from there.
                record = job.record.model_copy(deep=True)
                record.handle_transition(Trigger.STOPPED if cancelled else Trigger.FINISHED)
                self.store.save(record)
            except Exception as exc:
                log.exception("could not finish job %s", job.record.job_id)
                self.metrics.error("finish")
                job.closed = True
                self._fail_locked(job, f"could not finish: {reason(exc)}")
                return
            job.closed = True
        self.delete(job.message)  # only now: outputs, manifest and status are written
        try:
            storage = StorageConfig.of(self.settings)
            remove_folder(open_location(self.store.output_uri(record), storage).join(PARTS_FOLDER))
        except Exception:  # leftover claims of a finished job are harmless: its redelivery is only acknowledged
            log.exception("could not remove the claims of job %s", record.job_id)
        self.ended(record)
        log.info("job %s %s: %d renamed, %d failed", record.job_id, record.status, record.done - record.failed,
                 record.failed)

    def close_cancelled(self, job: HeldJob) -> None:
        """A job cancelled before it ran: final status, then acknowledge its message."""
        with job.lock:
            if job.closed:
                return
            job.closed = True
            job.record.handle_transition(Trigger.CANCELLED)
            self.store.save(job.record)
        self.delete(job.message)
        self.ended(job.record)
        log.info("job %s cancelled before it ran", job.record.job_id)

    def fail(self, job: HeldJob, why: str) -> None:
        with job.lock:
            if job.closed:
                return
            job.closed = True
            self._fail_locked(job, why)

    def _fail_locked(self, job: HeldJob, why: str) -> None:
        """Give the job back for another attempt, or on its last receive mark it failed and release
        it, so that SQS moves the message to the DLQ."""
        record, receives = job.record, job.message.receives
        last = receives >= self.settings.max_receives
        if last:
            record.handle_transition(Trigger.GAVE_UP, f"{why} (gave up after {receives} attempts)")
            log.error("job %s failed for good: %s", record.job_id, why)
        else:
            record.handle_transition(Trigger.RETRIED, f"attempt {receives} failed, retrying: {why}")
            log.warning("job %s attempt %d failed: %s", record.job_id, receives, why)
        try:
            self.store.save(record)
        except Exception:  # the message comes back after its visibility timeout and is tried again
            log.exception("could not save the status of job %s", record.job_id)
            self.metrics.error("release")
            return
        self.give_back(job.message, why)
        if last:
            self.ended(record)

    def hand_back(self, job: HeldJob, why: str) -> None:
        """Release the job's message unfinished, its status as it is (another driver takes it)."""
        with job.lock:
            if job.closed:
                return
            job.closed = True
        self.give_back(job.message, why)

    # Once a job has its final status ----------------------------------------------------------
    def ended(self, record: JobRecord) -> None:
        self.metrics.job_finished(record)
        if record.callback_url and self.webhooks is not None:
            self.callback(record)

    def callback(self, record: JobRecord) -> None:
        """POST the job's final view to its callback URL, signed with its namespace's secret."""
        try:
            from renamer_ray.service.views import job_view
            from renamer_ray.service.webhooks import secret_for

            body = job_view(self.store, record).model_dump_json(exclude_none=True).encode("utf-8")
            self.webhooks.send(record.callback_url, body, record.job_id,
                               secret=secret_for(self.settings, record.namespace),
                               allow_http=self.settings.callback_allow_http)
        except Exception:
            log.exception("could not send the callback of job %s", record.job_id)
            self.metrics.error("callback")

    # Queue operations that may find the message gone ------------------------------------------
    def give_back(self, message: Message, why: str) -> None:
        try:
            self.queue.release(message.handle)
        except Exception as exc:
            if is_gone(exc):
                log.warning("message of job %s was already taken back by SQS (%s)", message.job_id, why)
            else:
                log.exception("could not release the message of job %s (it returns after its visibility "
                              "timeout)", message.job_id)
                self.metrics.error("release")

    def delete(self, message: Message) -> None:
        try:
            self.queue.delete(message.handle)
        except Exception as exc:
            # Gone: SQS will redeliver it, and a finished job's redelivery is only acknowledged.
            log.warning("could not delete the message of job %s: %s", message.job_id, exc)
            if not is_gone(exc):
                self.metrics.error("delete")
