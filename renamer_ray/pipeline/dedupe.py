"""Stage: de-duplicate names, as a shuffle keyed by ``stems.RenderStems``' group key.

Every name that could collide with another lands in the same group, so groups are de-duplicated
independently and in parallel, and the result does not depend on which worker finished first.
"""

from __future__ import annotations

import ray

from renamer_ray.io.storage import StorageConfig, open_location
from renamer_ray.naming import assign_unique, file_name
from renamer_ray.pipeline.columns import RESULT, STEMMED
from renamer_ray.pipeline.stage import Stage

PASSED_ON = ("source", "relative", "original", "target_root", "raw", "pinned")


class Dedupe(Stage):
    """STEMMED (one output folder, one group key) → RESULT: final names and targets; skipped and
    failed rows pass through with their status."""

    needs = tuple(STEMMED.names)
    output = RESULT
    drops = tuple(set(STEMMED.names) - set(RESULT.names))

    def __init__(self, storage: StorageConfig):
        self.storage = storage

    def rows(self, rows: list[dict]) -> list[dict]:
        named = [row for row in rows if row["error"] is None and not row["skipped"]]
        unique = assign_unique([(row["source"], row["stem"]) for row in named],
                               pinned={row["source"]: row["stem"] for row in named if row["pinned"]})
        results = []
        for row in rows:
            common = {k: row[k] for k in PASSED_ON}
            if row["skipped"]:
                results.append({**common, "status": "skipped"})
            elif row["error"] is not None:
                results.append({**common, "status": "error", "error": row["error"]})
            else:
                name = file_name(unique[row["source"]], row["format"])
                target = open_location(row["target_root"], self.storage).join(name)
                results.append({**common, "format": row["format"], "target": target.uri, "name": name, "status": "ok"})
        return results

    def apply(self, ds):
        # Task-based sort shuffle: no long-lived aggregator actors competing with the model for CPUs.
        # Set on this pipeline's own DataContext (each dataset carries a copy), not the process's.
        ds.context.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
        return ds.groupby("key", num_partitions=shuffle_partitions()).map_groups(self, batch_format="pyarrow")


def shuffle_partitions() -> int:
    """One de-duplication partition per cluster CPU (each is a reduce task), at most 64."""
    return max(1, min(64, int(ray.cluster_resources().get("CPU", 1))))
