"""Stage: de-duplicate names, as a shuffle keyed by ``stems.RenderStems``' group key.

Every name that could collide with another lands in the same group, so groups are de-duplicated
independently and in parallel, and the result does not depend on which worker finished first.
"""

from __future__ import annotations

import posixpath

import ray

from renamer_ray.io.storage import StorageConfig, open_location, retrying, stem_taken
from renamer_ray.naming import NamingStyle, file_name
from renamer_ray.pipeline.columns import RESULT, STEMMED
from renamer_ray.pipeline.rows import OUTPUT_FOLDER, output_folder
from renamer_ray.pipeline.stage import Stage

PASSED_ON = ("source", "relative", "original", "target_root", "size", "mtime", "kept", "raw", "pinned", "node",
             "source_head")


def at_its_name(row: dict) -> bool:
    """Whether the row's source already is its pinned output (renamed in place earlier)."""
    return bool(row["pinned"]) and posixpath.join(output_folder(row), row["pinned"]) == row["relative"]


def no_room(style: NamingStyle) -> str:
    return (f"every name this file could have within {style.max_chars} characters and {style.max_words} words "
            f"({style.case} case, with a de-duplication suffix) is taken by another file: allow longer names "
            "(max_chars, max_words)")


class Dedupe(Stage):
    """STEMMED (one output root and folder, one group key) → RESULT: final names and targets;
    skipped and failed rows pass through with their status."""

    reads = (*PASSED_ON, *OUTPUT_FOLDER, "skipped", "error", "style", "stem", "key", "format")
    adds = ("target", "name", "output", "status")
    drops = tuple(name for name in STEMMED.names if name not in RESULT.names)
    output = RESULT
    group_by = "key"

    def __init__(self, storage: StorageConfig, *, look_at_targets: bool = False):
        """``look_at_targets``: DST already holds files (an incremental re-run), so a new name is
        also checked against what is there: a name taken by a file no row stands for (an earlier
        run's output whose source is gone or changed, a file a person put there) is given to nobody."""
        self.storage, self.look_at_targets = storage, look_at_targets

    def rows(self, rows: list[dict]) -> list[dict]:
        named = [row for row in rows if row["error"] is None and not row["skipped"]]
        unique: dict[str, str] = {}
        for style_json in {row["style"] for row in named}:  # one output (one job) has one style
            style = NamingStyle.from_json(style_json)
            mine = [row for row in named if row["style"] == style_json]
            # A file renamed in place by an interrupted run is there under both names (one file, two
            # links): both rows are pinned to the new name. The link at the new name stands aside;
            # the other row finishes the move.
            pins: dict[str, list[dict]] = {}
            for row in mine:
                if row["pinned"]:
                    pins.setdefault(row["stem"].lower(), []).append(row)
            aside = {row["source"] for same in pins.values() if len(same) > 1 for row in same if at_its_name(row)}
            unique.update({row["source"]: row["stem"] for row in mine if row["source"] in aside})
            mine = [row for row in mine if row["source"] not in aside]
            entries = [(row["source"], row["stem"]) for row in mine]
            pinned = {row["source"]: row["stem"] for row in mine if row["pinned"]}
            reserved: set[str] = set()
            while True:
                given = style.assign_unique(entries, pinned, reserved)
                taken = {given[row["source"]].lower() for row in mine if self.look_at_targets and not row["pinned"]
                         and row["source"] in given and self.taken_in_output(row, given[row["source"]])}
                if not taken:
                    break
                reserved |= taken  # and again: each round reserves at least one more name
            unique.update(given)
        results = []
        for row in rows:
            common = {k: row[k] for k in PASSED_ON}
            if row["skipped"]:
                results.append({**common, "status": "skipped"})
            elif row["error"] is not None:
                results.append({**common, "status": "error", "error": row["error"]})
            elif row["source"] not in unique:
                results.append({**common, "status": "error", "error": no_room(NamingStyle.from_json(row["style"]))})
            else:
                name = file_name(unique[row["source"]], row["format"])
                output = posixpath.join(output_folder(row), name)
                target = open_location(row["target_root"], self.storage).join(output)
                results.append({**common, "format": row["format"], "target": target.uri, "name": name, "output": output,
                                "status": "ok", "style": row["style"]})
        return results

    def taken_in_output(self, row: dict, stem: str) -> bool:
        root = open_location(row["target_root"], self.storage)
        folder = root.join(output_folder(row)) if output_folder(row) else root
        return retrying(stem_taken, open_location(row["source"], self.storage), folder, stem)

    def map_args(self) -> dict:
        # One partition per cluster CPU (each is a reduce task), at most 64.
        return dict(num_partitions=max(1, min(64, int(ray.cluster_resources().get("CPU", 1)))))
