"""The driver's loop: receive SQS messages, hold each as a job (or merge, acknowledge or hand it
back), start runs while slots are free; the parts it is built of, its health and its shutdown."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from renamer_ray.config import Settings
from renamer_ray.io.queue import DRIVER_ATTEMPTS, JobQueue, Message
from renamer_ray.naming import NameTemplate, TemplateError
from renamer_ray.pipeline.engines import NamerRef
from renamer_ray.service.driver.held import HeldJob, Holdings
from renamer_ray.service.driver.lifecycle import Lifecycle
from renamer_ray.service.driver.metrics import Metrics
from renamer_ray.service.driver.runs import Runner
from renamer_ray.service.driver.upkeep import Upkeep
from renamer_ray.service.store import JobStore

log = logging.getLogger("renamer_ray.driver")
BUSY_WAIT_SECONDS = 1             # SQS wait while runs are going (idle: SQS_WAIT_SECONDS)
ERROR_BACKOFF_SECONDS = 1.0       # pause after a loop step failed, so a broken endpoint is not hammered


class Driver:
    def __init__(self, settings: Settings, *, namer: NamerRef | None = NamerRef(), webhooks=None,
                 namer_status: Callable[[], str | None] | None = None):
        """``namer``: the warm deployment the runs ask (None: each run starts its own model actors).
        ``namer_status``: says why the namer cannot serve, if it cannot (the watchdog's reason)."""
        self.settings = settings
        self.store = JobStore(settings)
        self.queue = JobQueue(settings.sqs_queue_url, region=settings.aws_region,
                              endpoint_url=settings.aws_endpoint_url, attempts=DRIVER_ATTEMPTS)
        self.webhooks = webhooks
        self.metrics = Metrics()
        self.held = Holdings()
        self.lifecycle = Lifecycle(settings, self.store, self.queue, self.metrics, webhooks)
        self.runner = Runner(settings, self.store, self.held, self.lifecycle, self.metrics, namer)
        self.upkeep = Upkeep(settings, self.store, self.queue, self.held, self.lifecycle, self.runner, self.metrics,
                             namer_status)
        self.last_poll = time.time()

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        from renamer_ray.pipeline.run import ensure_ray

        stop = stop or threading.Event()
        ensure_ray()
        self.metrics.start()
        self.runner.open_actors()
        upkeep = threading.Thread(target=self.upkeep.forever, args=(stop,), daemon=True, name="upkeep")
        upkeep.start()
        log.info("driver: polling %s, up to %d runs at once and %s for small jobs", self.queue.url,
                 self.settings.max_running, "one more" if self.settings.small_job_files else "none kept")
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except Exception:  # contained: log, count, pause, go on
                    log.exception("driver step failed; going on")
                    self.metrics.error("poll")
                    stop.wait(ERROR_BACKOFF_SECONDS)
        finally:
            self.shutdown()

    @property
    def lookahead(self) -> int:
        """Jobs held waiting for a run slot: enough to pick fairly across tenants."""
        return 2 * self.settings.max_running * self.settings.max_jobs_per_run

    def poll_once(self) -> None:
        self.last_poll = time.time()
        self.runner.start_runs()
        with self.held.lock:
            room, busy = self.lookahead - len(self.held.pending), bool(self.held.runs or self.held.pending)
        if room <= 0:  # enough waiting here: leave the rest in SQS until a run slot frees
            self.held.slot_freed.wait(BUSY_WAIT_SECONDS)
            self.held.slot_freed.clear()
            return
        wait = BUSY_WAIT_SECONDS if busy else self.settings.sqs_wait_seconds
        for message in self.receive(room, wait):
            self.take(message)
        self.runner.start_runs()

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
            self.metrics.error("accept")
            self.lifecycle.give_back(message, f"{type(exc).__name__}: {exc}")
            return
        if job is not None:
            self.held.add(job)

    def accept(self, message: Message) -> HeldJob | None:
        """The job to hold for this message, or None when there is nothing (more) to run."""
        if message.job_id is None:
            log.error("malformed message (it will reach the DLQ after %d receives): %.200s",
                      self.settings.max_receives, message.body)
            self.lifecycle.give_back(message, "malformed")
            return None
        if (holder := self.held.find(message.job_id)) is not None:
            self.merge(holder, message)
            return None
        record = self.store.load(message.namespace, message.job_id)
        if record is None:
            log.error("no record for job %s/%s; leaving the message for the DLQ", message.namespace, message.job_id)
            self.lifecycle.give_back(message, "no record")
            return None
        if record.finished:  # a duplicate or late redelivery: the work is done, acknowledge it
            self.lifecycle.delete(message)
            return None
        job = HeldJob(message, record)
        if self.store.cancel_requested(record):
            self.lifecycle.close_cancelled(job)
            return None
        try:
            NameTemplate.parse(record.template)
        except TemplateError as exc:
            self.lifecycle.fail(job, f"the job's template is invalid: {exc}")
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
            self.lifecycle.delete(message)

    # Health and shutdown ----------------------------------------------------------------------
    def status(self) -> dict:
        with self.held.lock:
            return {"last_poll_age_s": round(time.time() - self.last_poll, 3), "pending": len(self.held.pending),
                    "running_runs": len(self.held.runs), "runs_started": self.runner.runs_started,
                    "upkeep_alive": self.upkeep.alive}

    def health_problem(self) -> str | None:
        """Why this driver is unhealthy, or None. The loop polls at least every SQS_WAIT_SECONDS."""
        if (age := time.time() - self.last_poll) > self.settings.driver_stale_seconds:
            return f"the driver has not polled the queue for {age:.0f} s"
        if self.metrics.started and not self.upkeep.alive:
            return "the driver's upkeep thread has stopped"
        return None

    def shutdown(self) -> None:
        """Hand back every message not finished here, so another driver can take it at once; runs
        in progress resume from their claims."""
        for job in self.held.let_go():
            self.lifecycle.hand_back(job, "driver stopping")
        self.runner.stop()
        if self.webhooks is not None:
            self.webhooks.close()
