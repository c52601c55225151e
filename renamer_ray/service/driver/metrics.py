"""The driver's metrics through ``ray.util.metrics``: exported with Ray's own (dashboard, Prometheus)."""

from __future__ import annotations

from datetime import datetime

from renamer_ray.service.jobs import JobRecord


class Metrics:
    """Nothing is counted until :meth:`start`: the metrics need Ray, which the driver's loop starts."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self.renamed = Counter("renamer_images_renamed", description="images renamed and copied")
        self.failed = Counter("renamer_images_failed", description="images that failed (reason in the manifest)")
        self.jobs = Counter("renamer_jobs_finished", description="jobs finished", tag_keys=("status",))
        self.latency = Histogram("renamer_job_latency_seconds", description="submission to final status",
                                 boundaries=[1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600])
        self.depth = Gauge("renamer_queue_depth", description="jobs waiting in SQS (approximate)")
        self.running = Gauge("renamer_runs_running", description="pipeline runs going in the driver")
        self.errors = Counter("renamer_driver_errors", description="driver steps that raised", tag_keys=("step",))
        self.started = True

    def error(self, step: str) -> None:
        """A driver step raised."""
        if self.started:
            self.errors.inc(tags={"step": step})

    def runs_going(self, runs: int) -> None:
        if self.started:
            self.running.set(runs)

    def queue_depth(self, jobs: int) -> None:
        if self.started:
            self.depth.set(jobs)

    def job_finished(self, record: JobRecord) -> None:
        """A job reached its final status."""
        if not self.started:
            return
        if ok := record.done - record.failed:  # Ray's counters refuse increments of zero
            self.renamed.inc(ok)
        if record.failed:
            self.failed.inc(record.failed)
        self.jobs.inc(tags={"status": record.status})
        self.latency.observe((datetime.fromisoformat(record.updated_at)
                              - datetime.fromisoformat(record.created_at)).total_seconds())
