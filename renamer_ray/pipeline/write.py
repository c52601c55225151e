"""Stage: copy each source to its new name (never overwriting a different file)."""

from __future__ import annotations

import pyarrow as pa

from renamer_ray.io.storage import Location, copy, exists, read_bytes
from renamer_ray.pipeline.columns import RESULT, table


def copy_one(source: Location, target: Location) -> str | None:
    """Copy; return an error sentence instead of raising. A byte-identical target counts as done."""
    try:
        if exists(target):
            if read_bytes(target) == read_bytes(source):
                return None
            return f"{target.uri} already exists with other content; it was not overwritten"
        copy(source, target)
        return None
    except OSError as exc:
        return f"could not copy to {target.uri}: {exc}"


def copy_batch(batch: pa.Table, *, source: Location, target: Location) -> pa.Table:
    rows = batch.to_pylist()
    for row in rows:
        if row["status"] != "ok":
            continue
        error = copy_one(source.join(row["relative"]), target.join(row["name"]))
        if error:
            row.update(status="error", error=error, target=None, name=None)
    return table(rows, RESULT)
