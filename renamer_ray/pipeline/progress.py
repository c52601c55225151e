"""The progress board between a run's stages and its driver, and the stages' two uses of it.

A tiny Ray actor (one per driver, keyed by output folder, so no run waits for an actor to start):
the stages report which files they named (``report_named``: so the driver can show per-job progress
before the de-duplication shuffle lets the first finished rows out), and the driver tells the stages
which jobs to stop (cancelled, or given up by the watchdog; ``stop_rows``), so a stopped job's
remaining rows skip the work and drain quickly."""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import ray

from renamer_ray.pipeline.rows import is_open


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Per output folder (``target_root``): files named so far, and why it was stopped, if it was.
    Also counts, over all outputs: images ``listed`` and ``named`` (a CLI run's progress bar reads
    them; ``keep_names=False`` keeps only the counts, for runs of millions of files)."""

    def __init__(self, keep_names: bool = True) -> None:
        self.named: defaultdict[str, set[str]] = defaultdict(set)
        self.stops: dict[str, str] = {}
        self.keep_names = keep_names
        self.counts = {"listed": 0, "named": 0}

    def add(self, named: dict[str, list[str]]) -> None:
        for target_root, relatives in named.items():
            self.counts["named"] += len(relatives)
            if self.keep_names:
                self.named[target_root].update(relatives)

    def listed(self, images: int) -> None:
        self.counts["listed"] += images

    def totals(self) -> dict[str, int]:
        return dict(self.counts)

    def snapshot(self) -> dict[str, list[str]]:
        return {target_root: sorted(relatives) for target_root, relatives in self.named.items()}

    def stop(self, target_root: str, reason: str) -> None:
        self.stops.setdefault(target_root, reason)

    def forget(self, target_roots: list[str]) -> None:
        """A new attempt of these jobs starts (or an attempt ended): nothing of the old one counts."""
        for target_root in target_roots:
            self.named.pop(target_root, None)
            self.stops.pop(target_root, None)

    def stopped(self) -> dict[str, str]:
        return dict(self.stops)


def open_board(**options):
    """A new :class:`ProgressBoard` on this process's node: it lives and dies with its driver (the
    service's is on the head), never on a worker node that may be lost while its runs go on."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ProgressBoard.options(scheduling_strategy=here).remote(**options)


NAMED = ("skipped", "target_root", "relative")   # the columns report_named reads


def report_named(board, rows: list[dict]) -> None:
    """Tell the run's ``board`` which rows a model stage named (fire and forget; nothing without one)."""
    if board is None:
        return
    named: dict[str, list[str]] = {}
    for row in rows:
        if not row["skipped"]:
            named.setdefault(row["target_root"], []).append(row["relative"])
    board.add.remote(named)


def stop_rows(rows: list[dict], board, *, still_open: Callable[[dict], bool] = is_open,
              stop: Callable[[dict, str], object] = lambda row, reason: row.update(error=reason)) -> dict[str, str]:
    """Ask the run's ``board`` which jobs must stop (cancelled, or given up by the watchdog) and
    ``stop`` each row of theirs that is ``still_open`` with the reason (by default: it fails with it,
    so the stages after it pass it on untouched). Returns ``target_root`` → reason (none without a board)."""
    stopped = ray.get(board.stopped.remote()) if board is not None else {}
    for row in rows:
        if row["target_root"] in stopped and still_open(row):
            stop(row, stopped[row["target_root"]])
    return stopped
