"""The queue driver: drains SQS and runs jobs as Ray Data pipelines, several at once.

- **Loop** (:meth:`Driver.serve_forever`): receive messages, accept each into ``pending`` (merging
  duplicate deliveries by job id), and start runs while fewer than MAX_RUNNING are going. Which jobs
  run next, and which share a run, is ``scheduling.next_run`` (fair across API keys). Every step is
  contained: an exception fails only the job it belongs to, or is logged and the loop goes on.
- **Runs** execute on their own threads; their model stage asks the warm ``namer`` deployment, so
  no run starts a model.
- **Upkeep** (one thread, every second): extends the visibility of every held message each
  HEARTBEAT_SECONDS, publishes per-file progress, stops cancelled jobs, and is the watchdog: a run
  with no progress for RUN_STALL_SECONDS is given up with a reason a person understands.
- **Completion order**: outputs, manifest, final status, delete the message, then remove claims. A
  crash anywhere before the delete makes SQS redeliver; the retry resumes from the claims
  (``pipeline/claims.py``) and a finished job's redelivery is only acknowledged.
- **Failures**: a failed job goes back to the queue with the reason in its status and its retry runs
  alone; on its last receive (MAX_RECEIVES) it is marked ``failed`` and released, and SQS moves the
  message to the DLQ.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Callable

from renamer_ray.config import Settings
from renamer_ray.io.queue import DRIVER_ATTEMPTS, JobQueue, Message, is_gone
from renamer_ray.io.storage import open_location, remove_folder
from renamer_ray.records.manifest import PARTS_FOLDER, FileRecord
from renamer_ray.naming import NameTemplate, TemplateError
from renamer_ray.pipeline.listing import Wishes, listed_row
from renamer_ray.pipeline.run import NamerRef
from renamer_ray.service.jobs import CANCEL_REASON, JobFile, JobRecord, final_status, now
from renamer_ray.service.scheduling import Waiting, next_run
from renamer_ray.service.store import JobStore

log = logging.getLogger("renamer_ray.driver")
UPKEEP_SECONDS = 1.0              # progress, cancellation and watchdog checks
BUSY_WAIT_SECONDS = 1             # SQS wait while runs are going (idle: SQS_WAIT_SECONDS)
ERROR_BACKOFF_SECONDS = 1.0       # pause after a loop step failed, so a broken endpoint is not hammered


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
    started: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)
    progress_mark: int = 0            # files named or finished when progress was last seen
    abandoned: bool = False           # given up by the watchdog: its results are not the jobs' any more

    def describe(self) -> str:
        return f"run {self.number} ({', '.join(job.record.job_id for job in self.jobs)})"


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
        self.running = Gauge("renamer_runs_running", description="pipeline runs going in the driver")
        self.errors = Counter("renamer_driver_errors", description="driver steps that raised", tag_keys=("step",))


class Driver:
    def __init__(self, settings: Settings, *, namer: NamerRef | None = NamerRef(), webhooks=None,
                 namer_status: Callable[[], str | None] | None = None):
        """``namer``: the warm deployment the runs ask (None: each run starts its own model actors).
        ``namer_status``: says why the namer cannot serve, if it cannot (the watchdog's reason)."""
        self.settings = settings
        self.store = JobStore(settings)
        self.queue = JobQueue(settings, attempts=DRIVER_ATTEMPTS)
        self.namer = namer
        self.webhooks = webhooks
        self.namer_status = namer_status
        self.metrics: Metrics | None = None
        self.lock = threading.RLock()     # guards pending and runs
        self.pending: list[HeldJob] = []
        self.runs: dict[int, Run] = {}
        self.numbers = count(1)
        self.slot_freed = threading.Event()
        self.executor = ThreadPoolExecutor(max_workers=settings.max_running, thread_name_prefix="run")
        self.last_poll = time.time()
        self.last_beat = time.monotonic()
        self.upkeep_alive = False
        self.runs_started = 0
        self.board = None

    # The loop ---------------------------------------------------------------------------------
    def serve_forever(self, stop: threading.Event | None = None) -> None:
        from renamer_ray.pipeline.run import ensure_ray

        from renamer_ray.pipeline.progress import ProgressBoard

        stop = stop or threading.Event()
        ensure_ray()
        self.metrics = Metrics()
        self.board = ProgressBoard.remote()  # one for all runs: a run never waits for an actor to start
        upkeep = threading.Thread(target=self.upkeep_forever, args=(stop,), daemon=True, name="upkeep")
        upkeep.start()
        log.info("driver: polling %s, up to %d runs at once", self.queue.url, self.settings.max_running)
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except Exception:  # contained: log, count, pause, go on
                    log.exception("driver step failed; going on")
                    self.count_error("poll")
                    stop.wait(ERROR_BACKOFF_SECONDS)
        finally:
            self.shutdown()

    @property
    def lookahead(self) -> int:
        """Jobs held waiting for a run slot: enough to pick fairly across tenants."""
        return 2 * self.settings.max_running * self.settings.max_jobs_per_run

    def poll_once(self) -> None:
        self.last_poll = time.time()
        self.start_runs()
        with self.lock:
            room, busy = self.lookahead - len(self.pending), bool(self.runs or self.pending)
        if room <= 0:  # enough waiting here: leave the rest in SQS until a run slot frees
            self.slot_freed.wait(BUSY_WAIT_SECONDS)
            self.slot_freed.clear()
            return
        wait = BUSY_WAIT_SECONDS if busy else self.settings.sqs_wait_seconds
        for message in self.receive(room, wait):
            self.take(message)
        self.start_runs()

    def receive(self, room: int, wait: int) -> list[Message]:
        visibility = self.settings.visibility_timeout
        messages = self.queue.receive(max_messages=room, wait_seconds=wait, visibility=visibility)
        while messages and len(messages) < room:  # take what else is already waiting
            more = self.queue.receive(max_messages=room - len(messages), wait_seconds=0, visibility=visibility)
            if not more:
                break
            messages += more
        return messages

    def take(self, message: Message) -> None:
        """Accept one message into ``pending``; any failure is this message's alone."""
        try:
            job = self.accept(message)
        except Exception as exc:
            log.exception("could not accept message %.200s; it goes back to the queue", message.body)
            self.count_error("accept")
            self.give_back(message, f"{type(exc).__name__}: {exc}")
            return
        if job is not None:
            with self.lock:
                self.pending.append(job)

    def all_held(self) -> list[HeldJob]:
        """Every job this driver holds a message for: waiting for a slot, or in a run."""
        with self.lock:
            return self.pending + [job for run in self.runs.values() for job in run.jobs]

    def held(self, job_id: str) -> HeldJob | None:
        return next((job for job in self.all_held() if job.record.job_id == job_id and not job.closed), None)

    def accept(self, message: Message) -> HeldJob | None:
        """The job to hold for this message, or None when there is nothing (more) to run."""
        if message.job_id is None:
            log.error("malformed message (it will reach the DLQ after %d receives): %.200s",
                      self.settings.max_receives, message.body)
            self.give_back(message, "malformed")
            return None
        if (holder := self.held(message.job_id)) is not None:
            self.merge(holder, message)
            return None
        record = self.store.load(message.namespace, message.job_id)
        if record is None:
            log.error("no record for job %s/%s; leaving the message for the DLQ", message.namespace, message.job_id)
            self.give_back(message, "no record")
            return None
        if record.finished:  # a duplicate or late redelivery: the work is done, acknowledge it
            self.delete(message)
            return None
        job = HeldJob(message, record)
        if self.store.cancel_requested(record):
            self.close_cancelled(job)
            return None
        try:
            NameTemplate.parse(record.template)
        except TemplateError as exc:
            self.fail(job, f"the job's template is invalid: {exc}")
            return None
        return job

    def merge(self, holder: HeldJob, message: Message) -> None:
        """A second delivery of a job this driver holds. The same SQS message again (its visibility
        ran out): keep the newer receipt handle. Another message for the same job (sent twice):
        acknowledge it; the held one stands for the job."""
        if message.message_id and message.message_id == holder.message.message_id:
            log.warning("job %s redelivered while held; keeping the new receipt", message.job_id)
            holder.message = message
        else:
            log.warning("duplicate message for job %s merged into the held one", message.job_id)
            self.delete(message)

    # Starting runs ----------------------------------------------------------------------------
    def start_runs(self) -> None:
        with self.lock:
            while len(self.runs) < self.settings.max_running and self.pending:
                per_tenant: dict[str, int] = {}
                for run in self.runs.values():
                    for tenant in {job.record.namespace for job in run.jobs}:
                        per_tenant[tenant] = per_tenant.get(tenant, 0) + 1
                chosen = {w.job_id for w in next_run([job.waiting for job in self.pending], per_tenant,
                                                     max_jobs=self.settings.max_jobs_per_run,
                                                     max_files=self.run_files)}
                jobs = [job for job in self.pending if job.record.job_id in chosen]
                self.pending = [job for job in self.pending if job.record.job_id not in chosen]
                run = Run(next(self.numbers), jobs)
                self.runs[run.number] = run
                self.runs_started += 1
                self.executor.submit(self.execute, run)
            if self.metrics:
                self.metrics.running.set(len(self.runs))

    @property
    def run_files(self) -> int:
        """Files up to which small jobs share one run; a larger job runs alone."""
        return 8 * self.settings.batch_size

    # One run ----------------------------------------------------------------------------------
    def execute(self, run: Run) -> None:
        """Run the jobs' pipeline, then finish each job; any failure stays with its jobs."""
        try:
            self.board.forget.remote(self.outputs(run))  # an earlier attempt's progress never leaks in
            for job in run.jobs:
                record = job.record
                record.status, record.attempts, record.error = "running", record.attempts + 1, None
                record.started_at = now()
                record.restart()
                self.store.save(record.model_copy(deep=True))
            log.info("%s started", run.describe())
            self.pipeline(run)
        except Exception as exc:
            if not run.abandoned:
                log.exception("%s failed", run.describe())
                self.count_error("run")
                for job in run.jobs:
                    self.fail(job, f"the pipeline failed: {reason(exc)}")
        else:
            if not run.abandoned:
                for job in run.jobs:
                    self.finish(job)
        finally:
            self.end(run)

    def end(self, run: Run) -> None:
        with self.lock:
            self.runs.pop(run.number, None)
            if self.metrics:
                self.metrics.running.set(len(self.runs))
        self.slot_freed.set()
        if not run.abandoned:
            self.board.forget.remote(self.outputs(run))

    def outputs(self, run: Run) -> list[str]:
        return [self.store.output_uri(job.record) for job in run.jobs]

    def rows(self, job: JobRecord) -> list[dict]:
        # Claims are only written by a started attempt, and starting counts it: a first attempt
        # has none to look for.
        resume = job.attempts > 1
        source, output = self.store.input_uri(job), self.store.output_uri(job)
        wishes = Wishes(target_root=output, prompt=job.user_prompt, template=job.template, resume=resume,
                        style=job.style)
        # Uploads were checked to be images when they were accepted.
        return [listed_row(f"{source}/{f.key}", f.key, wishes, size=f.size, mtime=None, index=number, original=f.original)
                for number, f in enumerate(job.files, start=job.first_index)]

    def pipeline(self, run: Run) -> None:
        import ray

        from renamer_ray.pipeline.columns import LISTED, table
        from renamer_ray.pipeline.run import build_dataset

        by_output = {self.store.output_uri(job.record): job for job in run.jobs}
        listed = ray.data.from_arrow(table([row for job in run.jobs for row in self.rows(job.record)], LISTED))
        uses_model = any(NameTemplate.parse(job.record.template).uses("subject") for job in run.jobs)
        dataset = build_dataset(listed, self.settings, uses_model=uses_model, max_file_bytes=self.settings.max_file_bytes,
                                progress=self.board, namer=self.namer)
        for row in dataset.iter_rows():
            if run.abandoned:
                return
            job = by_output[row["target_root"]]
            with job.lock:
                job.records.append(FileRecord.model_validate(row))
                state = "renamed" if row["status"] == "ok" else (
                    "cancelled" if row["error"] == CANCEL_REASON else "failed")
                job.file(row["relative"]).state = state
                job.dirty = True
            run.last_progress = time.monotonic()

    # Finishing --------------------------------------------------------------------------------
    def finish(self, job: HeldJob) -> None:
        """outputs (done) → manifest → final status → delete the message → remove claims."""
        with job.lock:
            if job.closed:
                return
            record = job.record
            try:
                cancelled = self.store.cancel_requested(record)
                job.records.sort(key=lambda r: r.source)
                self.store.write_manifest(record, job.records)
                ok = record.done - record.failed
                record.status = "cancelled" if cancelled else final_status(ok, record.failed)
                self.store.save(record)
            except Exception as exc:
                log.exception("could not finish job %s", record.job_id)
                self.count_error("finish")
                job.closed = True
                self._fail_locked(job, f"could not finish: {reason(exc)}")
                return
            job.closed = True
        self.delete(job.message)  # only now: outputs, manifest and status are written
        try:
            remove_folder(open_location(self.store.output_uri(record), self.settings.storage).join(PARTS_FOLDER))
        except Exception:  # leftover claims of a finished job are harmless: its redelivery is only acknowledged
            log.exception("could not remove the claims of job %s", record.job_id)
        self.finished(record, ok=record.done - record.failed)
        log.info("job %s %s: %d renamed, %d failed", record.job_id, record.status, record.done - record.failed,
                 record.failed)

    def finished(self, record: JobRecord, ok: int = 0) -> None:
        """Metrics and the callback, once a job has its final status."""
        if self.metrics:
            if ok:  # Ray's counters refuse increments of zero
                self.metrics.renamed.inc(ok)
            if record.failed:
                self.metrics.failed.inc(record.failed)
            self.metrics.jobs.inc(tags={"status": record.status})
            self.metrics.latency.observe((datetime.fromisoformat(record.updated_at)
                                          - datetime.fromisoformat(record.created_at)).total_seconds())
        if record.callback_url and self.webhooks is not None:
            try:
                from renamer_ray.service.views import job_view
                from renamer_ray.service.webhooks import secret_for

                body = job_view(self.store, record).model_dump_json(exclude_none=True).encode("utf-8")
                self.webhooks.send(record.callback_url, body, record.job_id,  # signed with its namespace's secret
                                   secret=secret_for(self.settings, record.namespace),
                                   allow_http=self.settings.callback_allow_http)
            except Exception:
                log.exception("could not send the callback of job %s", record.job_id)
                self.count_error("callback")

    def close_cancelled(self, job: HeldJob) -> None:
        """A job cancelled before it ran: final status, then acknowledge its message."""
        with job.lock:
            if job.closed:
                return
            job.closed = True
            job.record.status, job.record.error = "cancelled", None
            job.record.restart()
            self.store.save(job.record)
        self.delete(job.message)
        self.finished(job.record)
        log.info("job %s cancelled before it ran", job.record.job_id)

    def fail(self, job: HeldJob, reason: str) -> None:
        with job.lock:
            if job.closed:
                return
            job.closed = True
            self._fail_locked(job, reason)

    def _fail_locked(self, job: HeldJob, reason: str) -> None:
        """Give the job back for another attempt, or on its last receive mark it failed and release
        it, so that SQS moves the message to the DLQ."""
        record = job.record
        record.restart()
        last = job.message.receives >= self.settings.max_receives
        if last:
            record.status, record.error = "failed", f"{reason} (gave up after {job.message.receives} attempts)"
            log.error("job %s failed for good: %s", record.job_id, reason)
        else:
            record.status, record.error = "queued", f"attempt {job.message.receives} failed, retrying: {reason}"
            log.warning("job %s attempt %d failed: %s", record.job_id, job.message.receives, reason)
        try:
            self.store.save(record)
        except Exception:  # the message comes back after its visibility timeout and is tried again
            log.exception("could not save the status of job %s", record.job_id)
            self.count_error("release")
            return
        self.give_back(job.message, reason)
        if last:
            self.finished(record)

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
                self.count_error("release")

    def delete(self, message: Message) -> None:
        try:
            self.queue.delete(message.handle)
        except Exception as exc:
            # Gone: SQS will redeliver it, and a finished job's redelivery is only acknowledged.
            log.warning("could not delete the message of job %s: %s", message.job_id, exc)
            if not is_gone(exc):
                self.count_error("delete")

    def count_error(self, step: str) -> None:
        if self.metrics:
            self.metrics.errors.inc(tags={"step": step})

    # Upkeep: heartbeat, progress, cancellation, watchdog --------------------------------------
    def upkeep_forever(self, stop: threading.Event) -> None:
        self.upkeep_alive = True
        try:
            while not stop.wait(UPKEEP_SECONDS):
                try:
                    self.upkeep_once()
                except Exception:
                    log.exception("upkeep failed; going on")
                    self.count_error("upkeep")
        finally:
            self.upkeep_alive = False

    def upkeep_once(self) -> None:
        import ray

        with self.lock:
            pending, runs, held = list(self.pending), list(self.runs.values()), self.all_held()
        if time.monotonic() - self.last_beat >= self.settings.heartbeat_seconds:
            self.last_beat = time.monotonic()
            for job in held:
                self.extend(job)
            if self.metrics:
                try:
                    self.metrics.depth.set(self.queue.depth())
                except Exception:
                    log.debug("queue depth unavailable", exc_info=True)
        for job in pending:
            if self.safely(self.store.cancel_requested, job.record):
                with self.lock:
                    self.pending = [j for j in self.pending if j is not job]
                self.safely(self.close_cancelled, job)
        if runs:  # one snapshot of the shared board for every run
            named = ray.get(self.board.snapshot.remote(), timeout=5)
            for run in runs:
                self.safely(self.watch, run, named)

    def extend(self, job: HeldJob) -> None:
        try:
            self.queue.extend(job.message.handle, self.settings.visibility_timeout)
        except Exception as exc:
            if is_gone(exc):
                log.warning("lost the message of job %s (visibility ran out); its redelivery will be merged "
                            "here or resume elsewhere", job.record.job_id)
            else:  # the next beat tries again; a lost beat costs a redelivery at worst
                log.exception("could not extend the visibility of job %s", job.record.job_id)

    def safely(self, step: Callable, *args):
        try:
            return step(*args)
        except Exception:
            log.exception("upkeep step %s failed", getattr(step, "__name__", step))
            self.count_error("upkeep")
            return None

    def watch(self, run: Run, named: dict[str, list[str]]) -> None:
        """Publish the run's progress, stop its cancelled jobs, and give it up if it has stalled.
        ``named``: the board's snapshot (every run's outputs; only this run's count here)."""
        if run.abandoned:
            return
        mark = sum(len(named.get(output, [])) for output in self.outputs(run)) + sum(len(job.records) for job in run.jobs)
        if mark > run.progress_mark:
            run.progress_mark, run.last_progress = mark, time.monotonic()
        for job in run.jobs:
            output = self.store.output_uri(job.record)
            with job.lock:
                if job.closed:
                    continue
                for relative in named.get(output, []):
                    file = job.file(relative)
                    if file.state == "waiting":
                        file.state, job.dirty = "named", True
                snapshot = job.record.model_copy(deep=True) if job.dirty else None
                job.dirty = False
            if snapshot is not None:
                self.store.save(snapshot)
            if self.store.cancel_requested(job.record):
                self.board.stop.remote(output, CANCEL_REASON)
        stalled = time.monotonic() - run.last_progress
        if stalled >= self.settings.run_stall_seconds:
            self.abandon(run, self.stall_reason(stalled))

    def stall_reason(self, stalled: float) -> str:
        why = None
        if self.namer_status is not None:
            try:
                why = self.namer_status()
            except Exception:
                log.debug("namer status unavailable", exc_info=True)
        if why:
            return f"{why} in {stalled:.0f} s"
        return f"the run made no progress for {stalled:.0f} s"

    def abandon(self, run: Run, reason: str) -> None:
        """The watchdog gives up a stalled run: its jobs are failed (retried, or failed for good on
        their last receive) at once, its slot is freed, and its stages are told to stop."""
        log.error("%s stalled: %s", run.describe(), reason)
        run.abandoned = True
        for job in run.jobs:
            self.board.stop.remote(self.store.output_uri(job.record), f"the run was given up: {reason}")
            self.fail(job, reason)
        with self.lock:
            self.runs.pop(run.number, None)
        self.slot_freed.set()

    # Health and shutdown ----------------------------------------------------------------------
    def status(self) -> dict:
        with self.lock:
            return {"last_poll_age_s": round(time.time() - self.last_poll, 3), "pending": len(self.pending),
                    "running_runs": len(self.runs), "runs_started": self.runs_started,
                    "upkeep_alive": self.upkeep_alive}

    def health_problem(self) -> str | None:
        """Why this driver is unhealthy, or None. The loop polls at least every SQS_WAIT_SECONDS."""
        if (age := time.time() - self.last_poll) > self.settings.driver_stale_seconds:
            return f"the driver has not polled the queue for {age:.0f} s"
        if self.metrics is not None and not self.upkeep_alive:
            return "the driver's upkeep thread has stopped"
        return None

    def shutdown(self) -> None:
        """Hand back every message not finished here, so another driver can take it at once; runs
        in progress resume from their claims."""
        with self.lock:  # re-entrant: all_held takes it too
            held = self.all_held()
            self.pending = []
            for run in self.runs.values():
                run.abandoned = True
        for job in held:
            with job.lock:
                if job.closed:
                    continue
                job.closed = True
            self.give_back(job.message, "driver stopping")
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.webhooks is not None:
            self.webhooks.close()

