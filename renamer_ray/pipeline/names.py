"""Stages: apply the template and rules to each answer, then de-duplicate per group key.

De-duplication is a shuffle keyed by :func:`group_key`: every name that could collide with another
lands in the same group, so groups are de-duplicated independently and in parallel, and the result
does not depend on which worker finished first.
"""

from __future__ import annotations

import posixpath

import pyarrow as pa

from renamer_ray.io.storage import Location
from renamer_ray.naming import NameTemplate, assign_unique, file_name, group_key
from renamer_ray.pipeline.columns import RESULT, STEMMED, table


def render_stems(batch: pa.Table, *, template: NameTemplate, index_width: int) -> pa.Table:
    rows = batch.to_pylist()
    for row in rows:
        if row["pinned"]:
            row["stem"] = posixpath.splitext(row["pinned"])[0]
            row["key"] = group_key(row["stem"])
        elif row["error"] is None and not row["skipped"]:
            original = posixpath.splitext(posixpath.basename(row["relative"]))[0]
            row["stem"] = template.render(subject=row["raw"] or "", date=row["date"], camera=row["camera"],
                                          original=original, index=row["index"], index_width=index_width)
            row["key"] = group_key(row["stem"])
        else:
            row["key"] = ""
    return table(rows, STEMMED)


def dedupe_group(group: pa.Table, *, target: Location) -> pa.Table:
    """One group's rows → final names and targets (failed rows pass through)."""
    rows = group.to_pylist()
    named = [row for row in rows if row["error"] is None and not row["skipped"]]
    unique = assign_unique([(row["source"], row["stem"]) for row in named],
                           pinned={row["source"]: row["stem"] for row in named if row["pinned"]})
    results = []
    for row in rows:
        if row["skipped"]:
            results.append({"source": row["source"], "relative": row["relative"], "status": "skipped"})
            continue
        if row["error"] is not None:
            results.append({"source": row["source"], "relative": row["relative"], "status": "error", "error": row["error"], "raw": row["raw"]})
            continue
        name = file_name(unique[row["source"]], row["format"])
        results.append({"source": row["source"], "relative": row["relative"], "format": row["format"], "target": target.join(name).uri, "name": name,
                        "status": "ok", "raw": row["raw"], "pinned": row["pinned"]})
    return table(results, RESULT)
