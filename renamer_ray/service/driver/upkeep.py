"""Upkeep beside the loop, every second: the held messages' visibility heartbeat, the queue depth,
cancellations, per-file progress, and the watchdog that gives up a stalled run."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from renamer_ray.config import Settings
from renamer_ray.io.queue import JobQueue, is_gone
from renamer_ray.service.driver.held import HeldJob, Holdings, Run
from renamer_ray.service.driver.lifecycle import Lifecycle
from renamer_ray.service.driver.metrics import Metrics
from renamer_ray.service.driver.runs import Runner
from renamer_ray.service.jobs import CANCEL_REASON
from renamer_ray.service.store import JobStore

log = logging.getLogger("renamer_ray.driver")
UPKEEP_SECONDS = 1.0              # progress, cancellation and watchdog checks


class Upkeep:
    def __init__(self, settings: Settings, store: JobStore, queue: JobQueue, held: Holdings, lifecycle: Lifecycle,
                 runner: Runner, metrics: Metrics, namer_status: Callable[[], str | None] | None = None):
        """``namer_status``: says why the namer cannot serve, if it cannot (the watchdog's reason)."""
        self.settings, self.store, self.queue, self.held = settings, store, queue, held
        self.lifecycle, self.runner, self.metrics, self.namer_status = lifecycle, runner, metrics, namer_status
        self.last_beat = time.monotonic()
        self.alive = False

    def forever(self, stop: threading.Event) -> None:
        self.alive = True
        try:
            while not stop.wait(UPKEEP_SECONDS):
                try:
                    self.once()
                except Exception:
                    log.exception("upkeep failed; going on")
                    self.metrics.error("upkeep")
        finally:
            self.alive = False

    def once(self) -> None:
        import ray

        pending, runs, held = self.held.snapshot()
        if time.monotonic() - self.last_beat >= self.settings.heartbeat_seconds:
            self.last_beat = time.monotonic()
            for job in held:
                self.extend(job)
            try:
                self.metrics.queue_depth(self.queue.depth())
            except Exception:
                log.debug("queue depth unavailable", exc_info=True)
        for job in pending:
            if self.safely(self.store.cancel_requested, job.record):
                self.held.unpend(job)
                self.safely(self.lifecycle.close_cancelled, job)
        if runs:  # one snapshot of the shared board for every run
            named = ray.get(self.runner.board.snapshot.remote(), timeout=5)
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
            self.metrics.error("upkeep")
            return None

    def watch(self, run: Run, named: dict[str, list[str]]) -> None:
        """Publish the run's progress, stop its cancelled jobs, and give it up if it has stalled.
        ``named``: the board's snapshot (every run's outputs; only this run's count here)."""
        if run.abandoned:
            return
        mark = (sum(len(named.get(output, [])) for output in run.outputs(self.store))
                + sum(len(job.records) for job in run.jobs))
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
                self.runner.board.stop.remote(output, CANCEL_REASON)
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

    def abandon(self, run: Run, why: str) -> None:
        """The watchdog gives up a stalled run: its jobs are failed (retried, or failed for good on
        their last receive) at once, its slot is freed, and its stages are told to stop."""
        log.error("%s stalled: %s", run.describe(), why)
        run.abandoned = True
        for job in run.jobs:
            self.runner.board.stop.remote(self.store.output_uri(job.record), f"the run was given up: {why}")
            self.lifecycle.fail(job, why)
        self.held.drop(run)
