"""A tiny Ray actor shared by pipeline runs' stages and the driver (one per driver, keyed by output
folder, so no run waits for an actor to start): the stages report which
files they named (so the driver can show per-job progress before the de-duplication shuffle lets
the first finished rows out), and the driver tells the stages which jobs to stop (cancelled, or
given up by the watchdog), so a stopped job's remaining rows skip the work and drain quickly."""

from __future__ import annotations

from collections import defaultdict

import ray


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


def stopped_reasons(board) -> dict[str, str]:
    """``target_root`` → reason, for the jobs of this run that must stop (none without a board)."""
    return ray.get(board.stopped.remote()) if board is not None else {}
