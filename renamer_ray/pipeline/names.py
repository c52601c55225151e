"""Stages: apply the template and rules to each answer, then de-duplicate per group key.

De-duplication is a shuffle keyed by :func:`group_key`: every name that could collide with another
lands in the same group, so groups are de-duplicated independently and in parallel, and the result
does not depend on which worker finished first.
"""

from __future__ import annotations

import functools
import posixpath

import pyarrow as pa

from renamer_ray.io.storage import open_location
from renamer_ray.naming import NameTemplate, assign_unique, file_name, group_key
from renamer_ray.pipeline.columns import RESULT, STEMMED, table


_template = functools.lru_cache(maxsize=256)(NameTemplate.parse)


def render_stems(batch: pa.Table, *, index_width: int) -> pa.Table:
    """Each row's stem from its own template. The shuffle key is the output folder plus the stem's
    group key: names only compete within one output."""
    rows = batch.to_pylist()
    for row in rows:
        if row["pinned"]:
            row["stem"] = posixpath.splitext(row["pinned"])[0]
        elif row["error"] is None and not row["skipped"]:
            original = posixpath.splitext(posixpath.basename(row["original"] or row["relative"]))[0]
            row["stem"] = _template(row["template"]).render(
                subject=row["raw"] or "", date=row["date"], camera=row["camera"], original=original,
                index=row["index"], index_width=index_width)
        row["key"] = f"{row['target_root']}\n{group_key(row['stem'])}" if row.get("stem") else ""
    return table(rows, STEMMED)


def dedupe_group(group: pa.Table, *, s3: dict) -> pa.Table:
    """One group's rows (one output folder, one group key) → final names and targets (failed rows
    pass through)."""
    rows = group.to_pylist()
    named = [row for row in rows if row["error"] is None and not row["skipped"]]
    unique = assign_unique([(row["source"], row["stem"]) for row in named],
                           pinned={row["source"]: row["stem"] for row in named if row["pinned"]})
    results = []
    for row in rows:
        common = {k: row[k] for k in ("source", "relative", "original", "target_root", "raw", "pinned")}
        if row["skipped"]:
            results.append({**common, "status": "skipped"})
        elif row["error"] is not None:
            results.append({**common, "status": "error", "error": row["error"]})
        else:
            name = file_name(unique[row["source"]], row["format"])
            target = open_location(row["target_root"], **s3).join(name)
            results.append({**common, "format": row["format"], "target": target.uri, "name": name, "status": "ok"})
    return table(results, RESULT)
