"""A tiny Ray actor the model stage reports to, so a driver can show per-job progress before the
de-duplication shuffle lets the first finished rows out."""

from __future__ import annotations

from collections import defaultdict

import ray


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Files named so far (their ``relative`` paths), per output folder (``target_root``)."""

    def __init__(self) -> None:
        self.named: defaultdict[str, set[str]] = defaultdict(set)

    def add(self, named: dict[str, list[str]]) -> None:
        for target_root, relatives in named.items():
            self.named[target_root].update(relatives)

    def snapshot(self) -> dict[str, list[str]]:
        return {target_root: sorted(relatives) for target_root, relatives in self.named.items()}
