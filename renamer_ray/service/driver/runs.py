"""Pipeline runs: waiting jobs grouped into runs in free slots (``scheduling``), each run's Ray Data
pipeline on a thread of its own (a run in the small-job slot: in the ``lane``), and its jobs
finished, or failed, when it ends."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from renamer_ray.config import Settings
from renamer_ray.errors import one_line
from renamer_ray.naming import NameTemplate
from renamer_ray.pipeline.engines import NamerRef
from renamer_ray.pipeline.rows import Wishes, listed_row
from renamer_ray.records.manifest import FileRecord
from renamer_ray.service.driver.held import Holdings, Run
from renamer_ray.service.driver.lifecycle import Lifecycle, reason
from renamer_ray.service.driver.metrics import Metrics
from renamer_ray.service.jobs import CANCEL_REASON, JobRecord
from renamer_ray.service.scheduling import free_slot, next_run
from renamer_ray.service.store import JobStore

log = logging.getLogger("renamer_ray.driver")


class Runner:
    def __init__(self, settings: Settings, store: JobStore, held: Holdings, lifecycle: Lifecycle, metrics: Metrics,
                 namer: NamerRef | None):
        """``namer``: the warm deployment the runs ask (None: each run starts its own model actors)."""
        self.settings, self.store, self.held, self.lifecycle, self.metrics = settings, store, held, lifecycle, metrics
        self.namer = namer
        self.executor = ThreadPoolExecutor(max_workers=settings.max_running + bool(settings.small_job_files),
                                           thread_name_prefix="run")
        self.board = None                 # the progress board of every run: opened with the loop (it needs Ray)
        self.lane = None                  # the small-job slot's process (``lane.py``), with a warm namer
        self.runs_started = 0

    def open_actors(self) -> None:
        """The board and the lane, one each for all runs: a run never waits for an actor to start."""
        from renamer_ray.pipeline.progress import open_board
        from renamer_ray.service.driver.lane import open_lane

        self.board = open_board()
        if self.namer is not None and self.settings.small_job_files:
            self.lane = open_lane(self.settings, self.namer, self.board)

    @property
    def run_files(self) -> int:
        """Files up to which small jobs share one run; a larger job runs alone."""
        return 8 * self.settings.batch_size

    def start_runs(self) -> None:
        held, settings = self.held, self.settings
        with held.lock:
            while held.pending:
                going = list(held.runs.values())
                slot = free_slot([job.waiting for job in held.pending],
                                 regular_going=sum(not run.small for run in going),
                                 small_going=any(run.small for run in going), max_running=settings.max_running,
                                 small_files=settings.small_job_files)
                if slot is None:
                    break
                per_tenant: dict[str, int] = {}
                for run in going:
                    for tenant in {job.record.namespace for job in run.jobs}:
                        per_tenant[tenant] = per_tenant.get(tenant, 0) + 1
                chosen = {w.job_id for w in next_run(
                    slot.jobs, per_tenant, max_jobs=settings.max_jobs_per_run,
                    max_files=settings.small_job_files if slot.small else self.run_files)}
                jobs = [job for job in held.pending if job.record.job_id in chosen]
                held.pending = [job for job in held.pending if job.record.job_id not in chosen]
                run = Run(next(held.numbers), jobs, small=slot.small)
                held.runs[run.number] = run
                self.runs_started += 1
                self.executor.submit(self.execute, run)
            self.metrics.runs_going(len(held.runs))

    def execute(self, run: Run) -> None:
        """Run the jobs' pipeline, then finish each job; any failure stays with its jobs."""
        try:
            self.board.forget.remote(run.outputs(self.store))  # an earlier attempt's progress never leaks in
            for job in run.jobs:
                self.lifecycle.start(job)
            log.info("%s started", run.describe())
            self.pipeline(run)
        except Exception as exc:
            if not run.abandoned:
                log.exception("%s failed", run.describe())
                self.metrics.error("run")
                for job in run.jobs:
                    self.lifecycle.fail(job, f"the pipeline failed: {reason(exc)}")
        else:
            if not run.abandoned:
                for job in run.jobs:
                    self.lifecycle.finish(job)
        finally:
            self.end(run)

    def end(self, run: Run) -> None:
        with self.held.lock:  # the gauge in the order the runs end
            self.metrics.runs_going(self.held.drop(run))
        if not run.abandoned:
            self.board.forget.remote(run.outputs(self.store))

    def rows(self, job: JobRecord, *, resume: bool = False) -> list[dict]:
        """The job's files as listed rows. ``resume``: look for names claimed by an earlier try."""
        # Claims are only written by a started attempt, and starting counts it: a first attempt
        # has none to look for (unless the lane's process ended during this one: see pipeline).
        resume = resume or job.attempts > 1
        source, output = self.store.input_uri(job), self.store.output_uri(job)
        wishes = Wishes(target_root=output, prompt=job.user_prompt, template=job.template, resume=resume,
                        style=job.style)
        # Uploads were checked to be images when they were accepted.
        return [listed_row(f"{source}/{f.key}", f.key, wishes, size=f.size, mtime=None, index=number,
                           original=f.original, preview_to=self.store.preview_uri(job, f.key))
                for number, f in enumerate(job.files, start=job.first_index)]

    def pipeline(self, run: Run) -> None:
        """The run's rows through the pipeline: a small run through the lane, all at once. If the
        lane's process ends (a file whose decoder crashes or exits it, the memory monitor, a lost
        node), the run goes through Ray Data instead, keeping the names the lane claimed, with the
        retries of every Ray Data run; a new lane takes the later runs."""
        import ray
        from ray.exceptions import RayActorError

        from renamer_ray.pipeline.build import PipelineOptions, build_dataset
        from renamer_ray.pipeline.columns import LISTED, table

        uses_model = any(NameTemplate.parse(job.record.template).uses("subject") for job in run.jobs)
        resume = False
        if run.small and self.lane is not None:
            listed = table([row for job in run.jobs for row in self.rows(job.record)], LISTED)
            try:
                rows = ray.get(self.lane.run.remote(listed, uses_model)).to_pylist()
            except RayActorError as exc:
                log.warning("%s: the lane's process ended (%s); the run goes on with Ray Data", run.describe(),
                            one_line(exc))
                self.reopen_lane()
                resume = True
            else:
                self.record(run, rows)
                return
        listed = table([row for job in run.jobs for row in self.rows(job.record, resume=resume)], LISTED)
        self.record(run, build_dataset(ray.data.from_arrow(listed), self.settings, PipelineOptions(
            uses_model=uses_model, max_file_bytes=self.settings.max_file_bytes, progress=self.board,
            namer=self.namer)).iter_rows())

    def reopen_lane(self) -> None:
        import ray

        from renamer_ray.service.driver.lane import open_lane

        ray.kill(self.lane)  # (if it is still there: an actor that is merely unreachable)
        self.lane = open_lane(self.settings, self.namer, self.board)

    def record(self, run: Run, rows) -> None:
        """Each result row into its job's records, as it comes (none once the run is given up)."""
        by_output = {self.store.output_uri(job.record): job for job in run.jobs}
        for row in rows:
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

    def stop(self) -> None:
        """No more runs; the lane and the board go (a run still going ends with its actor's error,
        its jobs already handed back)."""
        import ray

        self.executor.shutdown(wait=False, cancel_futures=True)
        for actor in (self.lane, self.board):
            if actor is not None:
                ray.kill(actor)
