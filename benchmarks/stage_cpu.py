"""CPU-seconds per image for each stage of one pipeline run, from Ray Data's own execution stats.

Ray Data records, for every block an operator makes, the CPU time of the worker process that made
it (all its threads, ``time.process_time``). An operator is named after the stages it runs, joined
by "->" where Ray fused them into one task (``MapBatches(Dedupe)->MapBatches(ClaimNames)->...``); with
``DataContext.per_stage_map_timing`` set, it also records each fused stage's own share of the
transform time, which splits the operator's CPU between its stages (by time share: Ray measures CPU
per block, not per stage). A model actor running several batches at once (GPU actors) counts the
CPU of overlapping batches more than once. Work outside the operators is measured apart: the
driver's main thread (setup, rows out, records, manifest) and Ray's own processes.
"""

from __future__ import annotations

import re
from collections import defaultdict

from renamer_ray.pipeline.decode import Decode
from renamer_ray.pipeline.dedupe import Dedupe
from renamer_ray.pipeline.endpoint import AskEndpoint
from renamer_ray.pipeline.infer import AskNamer, NameImages, NoModel
from renamer_ray.pipeline.listing import SourceListing
from renamer_ray.pipeline.resume import ReadClaims
from renamer_ray.pipeline.stems import RenderStems
from renamer_ray.pipeline.vllm_stage import FromVllm
from renamer_ray.pipeline.write import ClaimNames, CopyFiles

DEDUPE_ROW = "rules and de-duplication"
# The table's rows in pipeline order, each with the names of the stages it covers: a stage's class
# name is its operator's name (``stage.Stage.__name__``), the listing is Ray's read of ``SourceListing``.
ROWS: dict[str, tuple[str, ...]] = {
    "listing": (f"Read{SourceListing.__name__}", "SplitBlocks"),  # Ray splits the read's blocks in its task
    "decode": (ReadClaims.__name__, Decode.__name__),
    "model step": (NameImages.__name__, AskNamer.__name__, AskEndpoint.__name__, NoModel.__name__, FromVllm.__name__),
    DEDUPE_ROW: (RenderStems.__name__, Dedupe.__name__),  # and the group-by's shuffle (see row_of)
    "claims": (ClaimNames.__name__,),
    "copy": (CopyFiles.__name__,),
}
DRIVER_ROW = "manifest, rows out and setup (the driver's main thread)"
RAY_ROW = "Ray's processes outside the operators (worker and model actor start, scheduling, raylet)"


def stage_name(segment: str) -> str:
    """The stage one segment of an operator's name runs: ``MapBatches(Decode)`` → ``Decode``,
    ``SortSample(partitions=2)`` → ``SortSample``."""
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?", segment.strip())
    if not match:
        return segment.strip()
    outer, inner = match.groups()
    return inner if outer in ("MapBatches", "MapRows", "Map", "FlatMap", "Filter") and inner else outer


def row_of(segment: str) -> str:
    """The table row of one stage; the group-by's sort and shuffle go with de-duplication, whose
    shuffle they are; a stage this table does not know gets a row of its own."""
    name = stage_name(segment)
    for row, names in ROWS.items():
        if name in names:
            return row
    if name.startswith("Sort") or "Shuffle" in name:
        return DEDUPE_ROW
    return f"other: {name}"


def operators(summary) -> list:
    """Every operator's stats in a ``DatasetStatsSummary``: its parents' (the operators before, one
    dataset each in a streamed run), then its own."""
    return [op for parent in summary.parents for op in operators(parent)] + list(summary.operators_stats)


def cpu_by_row(summary) -> dict[str, float]:
    """CPU-seconds of the run's operators by table row; a fused operator's CPU split between its
    stages by their shares of its transform time, or, where Ray gave no shares, kept whole under
    the joined rows."""
    cpu: dict[str, float] = defaultdict(float)
    for op in operators(summary):
        if not op.cpu_time:
            continue
        segments = op.operator_name.split("->")
        rows = [row_of(segment) for segment in segments]
        shares = [stage.sum for stage in op.stage_time or []]
        if len(set(rows)) == 1:
            cpu[rows[0]] += op.cpu_time.sum
        elif len(shares) == len(rows) and sum(shares) > 0:
            for row, share in zip(rows, shares):
                cpu[row] += op.cpu_time.sum * share / sum(shares)
        else:
            cpu[" + ".join(dict.fromkeys(rows)) + " (fused, not split)"] += op.cpu_time.sum
    return dict(cpu)


def table(summary, images: int, *, driver_s: float, ray_processes_s: float | None = None) -> list[str]:
    """The Markdown table: CPU-seconds and CPU milliseconds per image for each stage, the driver's
    main thread, Ray's own processes beyond the operators (when measured) and the total."""
    cpu = cpu_by_row(summary)
    order = list(ROWS) + sorted(set(cpu) - set(ROWS))
    measured = [(row, cpu.get(row, 0.0)) for row in order] + [(DRIVER_ROW, driver_s)]
    if ray_processes_s is not None:
        measured.append((RAY_ROW, max(0.0, ray_processes_s - sum(cpu.values()))))
    total = sum(seconds for _, seconds in measured)
    lines = ["| stage | CPU s | CPU ms per image | share |", "|---|---:|---:|---:|"]
    for row, seconds in measured + [("all of the above", total)]:
        lines.append(f"| {row} | {seconds:.2f} | {1000 * seconds / images:.1f} | {seconds / total:.0%} |")
    return lines
