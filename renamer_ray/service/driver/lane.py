"""The small-job lane: a run in the slot kept for small jobs goes through the pipeline's own stages
in one warm process (``pipeline/build.run_in_process``) instead of a Ray Data pipeline.

Why: a Ray Data run is a handful of tasks (decode, the namer's calls, rules, the shuffle's map and
reduce, claim and copy), each waiting for a CPU. Behind large runs that hold every CPU, a one-image
run waited ≈ 10 s for its turns though its work is ≈ 0.2 s (``docs/benchmarks.md``). The lane's
actor reserves no CPU (its runs are small by definition: at most SMALL_JOB_FILES files), so it never
waits for one, and it starts with the driver, so a run never waits for a process either.

Untrusted files are still decoded outside the driver's process. A decoder that crashes or exits
ends the lane's process: the run then goes through Ray Data, with its retries (``runs.Runner.pipeline``),
keeping the names the lane had claimed, and the driver opens a new lane.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import ray

from renamer_ray.config import Settings
from renamer_ray.pipeline.build import PipelineOptions, run_in_process
from renamer_ray.pipeline.decode import decode_memory
from renamer_ray.pipeline.engines import NamerRef

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)  # one line per run, in the lane's worker log (the dashboard's Logs tab)


@ray.remote(num_cpus=0, max_restarts=0)  # the driver replaces a lane that ended (runs.Runner.reopen_lane)
class Lane:
    """One process that runs small runs, one at a time, asking the warm namer."""

    def __init__(self, settings: Settings, namer: NamerRef, board) -> None:
        self.settings, self.namer, self.board = settings, namer, board
        # What a first run would otherwise pay: the stages built (the model's pixel bounds read) and
        # the namer's handle made. No call to the namer: a namer scaled to zero stays there.
        from renamer_ray.pipeline.build import stages
        from renamer_ray.pipeline.infer import namer_handle

        stages(settings, PipelineOptions(namer=namer, progress=board))
        namer_handle(namer.app, namer.deployment)

    def run(self, listed: pa.Table, uses_model: bool) -> pa.Table:
        """``listed`` (``columns.LISTED`` rows) → ``columns.RESULT`` rows, one per listed row; a line
        in the lane's log says where the time went."""
        seconds: dict[str, float] = {}
        out = run_in_process(listed, self.settings, PipelineOptions(
            uses_model=uses_model, namer=self.namer, max_file_bytes=self.settings.max_file_bytes,
            progress=self.board), seconds)
        log.info("small run of %d files in %.2f s: %s", listed.num_rows, sum(seconds.values()),
                 ", ".join(f"{stage} {s:.2f} s" for stage, s in seconds.items()))
        return out


def open_lane(settings: Settings, namer: NamerRef, board):
    """The driver's lane: as much memory reserved as one decode task's (it decodes one file at a time)."""
    return Lane.options(memory=decode_memory(settings.max_decode_pixels)).remote(settings, namer, board)
