"""A tiny Ray actor the model stage reports to, so a driver can show per-job progress before the
de-duplication shuffle lets the first finished rows out."""

from __future__ import annotations

from collections import Counter

import ray


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Images named so far, per output folder (``target_root``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, counts: dict[str, int]) -> None:
        self.counts.update(counts)

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
