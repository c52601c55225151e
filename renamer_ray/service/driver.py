"""The queue driver: drains SQS and runs waiting jobs together as one Ray Data pipeline.

Each loop: long-poll for a message, then take whatever else is waiting (up to MAX_JOBS_PER_RUN) so
the model actors start once for all of them; a lone small job runs at once. While jobs run, a
heartbeat extends their messages' visibility and publishes progress to the job records. A message
is deleted only after its outputs, manifest and final status are written. Failures: a job that
fails is given back to the queue; a job retried after a failure runs alone (so a poison job cannot
keep failing its neighbours); on its last receive it is marked ``failed`` with the reason and left
for SQS to move to the DLQ. Redelivery is harmless: finished jobs are only acknowledged, and an
interrupted job resumes with the names it had already claimed (``pipeline/claims.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from renamer_ray.config import Settings
from renamer_ray.io.storage import open_location, remove_folder
from renamer_ray.manifest import PARTS_FOLDER, FileRecord
from renamer_ray.naming import NameTemplate, TemplateError
from renamer_ray.service.jobs import JobFile, JobRecord, final_status
from renamer_ray.service.queue import JobQueue, Message
from renamer_ray.service.store import JobStore

log = logging.getLogger("renamer_ray.driver")
PROGRESS_EVERY_SECONDS = 1.0


class JobFailed(Exception):
    """This job cannot run as it is (e.g. its record is unreadable); the reason is for people."""


@dataclass
class Running:
    message: Message
    record: JobRecord
    records: list[FileRecord] = field(default_factory=list)
    dirty: bool = False

    def file(self, relative: str) -> JobFile:
        if not hasattr(self, "_by_key"):
            self._by_key = {f.key: f for f in self.record.files}
        return self._by_key[relative]


class Metrics:
    """Custom metrics through ``ray.util.metrics``: exported with Ray's own (dashboard, Prometheus)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self.renamed = Counter("renamer_images_renamed", description="images renamed and copied")
        self.failed = Counter("renamer_images_failed", description="images that failed (reason in the manifest)")
        self.jobs = Counter("renamer_jobs_finished", description="jobs finished", tag_keys=("status",))
        self.latency = Histogram("renamer_job_latency_seconds", description="submission to final status",
                                 boundaries=[1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600])
        self.depth = Gauge("renamer_queue_depth", description="jobs waiting in SQS (approximate)")


class Driver:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = JobStore(settings)
        self.queue = JobQueue(settings)
        self.s3 = dict(region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        self.metrics: Metrics | None = None

    # The loop ---------------------------------------------------------------------------------
    def serve_forever(self, stop: threading.Event | None = None) -> None:
        from renamer_ray.pipeline.run import ensure_ray

        stop = stop or threading.Event()
        ensure_ray()
        self.metrics = Metrics()
        log.info("driver: polling %s", self.queue.url)
        while not stop.is_set():
            self.step()

    def receive(self) -> list[Message]:
        s = self.settings
        messages = self.queue.receive(max_messages=s.max_jobs_per_run, wait_seconds=s.sqs_wait_seconds,
                                      visibility=s.visibility_timeout)
        while messages and len(messages) < s.max_jobs_per_run:  # take what else is already waiting
            more = self.queue.receive(max_messages=s.max_jobs_per_run - len(messages), wait_seconds=0,
                                      visibility=s.visibility_timeout)
            if not more:
                break
            messages += more
        return messages

    def step(self) -> int:
        """One receive and everything it took in; returns how many messages it handled."""
        if self.metrics:
            self.metrics.depth.set(self.queue.depth())
        messages = self.receive()
        jobs = [job for message in messages if (job := self.accept(message))]
        fresh = [job for job in jobs if job.message.receives == 1]
        retried = [job for job in jobs if job.message.receives > 1]
        for batch in ([fresh] if fresh else []) + [[job] for job in retried]:
            self.run_batch(batch)
        return len(messages)

    def accept(self, message: Message) -> Running | None:
        """The job to run for this message, or None when there is nothing to run."""
        if message.job_id is None:
            log.error("malformed message (it will reach the DLQ after %d receives): %.200s",
                      self.settings.max_receives, message.body)
            self.queue.release(message.handle)
            return None
        record = self.store.load(message.namespace, message.job_id)
        if record is None:
            log.error("no record for job %s/%s; leaving the message for the DLQ", message.namespace, message.job_id)
            self.queue.release(message.handle)
            return None
        if record.finished:  # a duplicate or late redelivery: the work is done, acknowledge it
            self.queue.delete(message.handle)
            return None
        try:
            NameTemplate.parse(record.template)
        except TemplateError as exc:
            self.fail(Running(message, record), f"the job's template is invalid: {exc}")
            return None
        record.status, record.attempts, record.error = "running", record.attempts + 1, None
        record.restart()
        self.store.save(record)
        return Running(message, record)

    # Running a batch --------------------------------------------------------------------------
    def run_batch(self, jobs: list[Running]) -> None:
        from renamer_ray.pipeline.progress import ProgressBoard

        board = ProgressBoard.remote()  # this run's own: an earlier run's names never leak in
        stop = threading.Event()
        heart = threading.Thread(target=self.heartbeat, args=(jobs, board, stop), daemon=True, name="heartbeat")
        heart.start()
        try:
            self.pipeline(jobs, board)
        except Exception as exc:  # the whole run failed: every job in it goes back to the queue
            log.exception("pipeline run of %d job(s) failed", len(jobs))
            stop.set()
            heart.join()
            for job in jobs:
                self.fail(job, f"the pipeline failed: {type(exc).__name__}: {exc}")
            return
        stop.set()
        heart.join()
        for job in jobs:
            self.finish(job)

    def rows(self, job: JobRecord) -> list[dict]:
        # Claims are only written by an accepted attempt, and accepting counts it: a first attempt
        # has none to look for.
        resume = job.attempts > 1
        source, output = self.store.input_uri(job), self.store.output_uri(job)
        return [dict(source=f"{source}/{f.key}", relative=f.key, size=f.size, mtime=None, index=number,
                     skipped=False, original=f.original, target_root=output, prompt=job.user_prompt,
                     template=job.template, resume=resume)
                for number, f in enumerate(job.files, start=1)]

    def pipeline(self, jobs: list[Running], board) -> None:
        import ray

        from renamer_ray.pipeline.columns import LISTED, table
        from renamer_ray.pipeline.run import build_dataset

        by_output = {self.store.output_uri(job.record): job for job in jobs}
        listed = ray.data.from_arrow(table([row for job in jobs for row in self.rows(job.record)], LISTED))
        uses_model = any(NameTemplate.parse(job.record.template).uses("subject") for job in jobs)
        dataset = build_dataset(listed, self.settings, uses_model=uses_model,
                                max_file_bytes=self.settings.max_file_bytes, progress=board)
        for row in dataset.iter_rows():
            job = by_output[row["target_root"]]
            job.records.append(FileRecord.model_validate(row))
            job.file(row["relative"]).state = "renamed" if row["status"] == "ok" else "failed"
            job.dirty = True

    def heartbeat(self, jobs: list[Running], board, stop: threading.Event) -> None:
        """Keep the messages invisible while they run, and publish progress about once a second."""
        import ray

        last_beat = time.monotonic()
        while not stop.wait(PROGRESS_EVERY_SECONDS):
            if time.monotonic() - last_beat >= self.settings.heartbeat_seconds:
                for job in jobs:
                    try:
                        self.queue.extend(job.message.handle, self.settings.visibility_timeout)
                    except Exception:  # the next beat tries again; a lost beat costs a redelivery at worst
                        log.exception("could not extend the visibility of job %s", job.record.job_id)
                last_beat = time.monotonic()
            try:
                named = ray.get(board.snapshot.remote(), timeout=5)
            except Exception:
                named = {}
            for job in jobs:
                for relative in named.get(self.store.output_uri(job.record), []):
                    file = job.file(relative)
                    if file.state == "waiting":
                        file.state, job.dirty = "named", True
                if job.dirty:
                    job.dirty = False
                    self.store.save(job.record.model_copy(deep=True))

    def finish(self, job: Running) -> None:
        record = job.record
        job.records.sort(key=lambda r: r.source)
        self.store.write_manifest(record, job.records)
        remove_folder(open_location(self.store.output_uri(record), **self.s3).join(PARTS_FOLDER))
        ok = record.done - record.failed
        record.status = final_status(ok, record.failed)
        self.store.save(record)
        self.queue.delete(job.message.handle)  # only now: outputs, manifest and status are written
        if self.metrics:
            if ok:  # Ray's counters refuse increments of zero
                self.metrics.renamed.inc(ok)
            if record.failed:
                self.metrics.failed.inc(record.failed)
            self.metrics.jobs.inc(tags={"status": record.status})
            self.metrics.latency.observe((datetime.fromisoformat(record.updated_at)
                                          - datetime.fromisoformat(record.created_at)).total_seconds())
        log.info("job %s %s: %d renamed, %d failed", record.job_id, record.status, ok, record.failed)

    def fail(self, job: Running, reason: str) -> None:
        """Give the job back for another attempt, or on its last receive mark it failed (SQS then
        moves the message to the DLQ)."""
        record = job.record
        record.restart()
        if job.message.receives >= self.settings.max_receives:
            record.status, record.error = "failed", f"{reason} (gave up after {job.message.receives} attempts)"
            self.store.save(record)
            if self.metrics:
                self.metrics.jobs.inc(tags={"status": "failed"})
            log.error("job %s failed for good: %s", record.job_id, reason)
            return  # not deleted: the next receive moves it to the DLQ
        record.status, record.error = "queued", f"attempt {job.message.receives} failed, retrying: {reason}"
        self.store.save(record)
        self.queue.release(job.message.handle)


def main(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Driver(settings).serve_forever()
    return 0
