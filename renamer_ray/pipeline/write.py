"""Stage: copy each source to its new name (never overwriting a different file)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from renamer_ray.io.storage import Location, TargetExists, copy, is_transient, open_location, retrying
from renamer_ray.naming import content_type_for
from renamer_ray.pipeline.claims import claim
from renamer_ray.pipeline.columns import RESULT, table
from renamer_ray.pipeline.progress import stopped_reasons


def copy_one(source: Location, target: Location, fmt: str | None = None) -> str | None:
    """Copy; return an error sentence instead of raising. A copy of the same source counts as done.
    Transient storage errors are retried for a while first (``retrying``)."""
    try:
        retrying(copy, source, target, content_type=content_type_for(fmt) if fmt else None)
        return None
    except TargetExists as exc:
        return str(exc)
    except (OSError, ClientError, BotoCoreError) as exc:
        hint = "; this looks like a storage error: running again may succeed" if is_transient(exc) else ""
        return f"could not copy to {target.uri}: {exc}{hint}"


def _finish(row: dict, s3: dict) -> dict:
    """Claim the row's name (so a re-run after a crash keeps it), then copy."""
    if row["status"] != "ok":
        return row
    target = open_location(row["target_root"], **s3)
    if not row["pinned"]:
        holds = retrying(claim, target, row["relative"], row["name"], row["format"], row["raw"])
        if holds != row["name"]:
            return {**row, "status": "error", "target": None, "name": None,
                    "error": f"another attempt of this run named it {holds!r} at the same time; run again to finish"}
    error = copy_one(open_location(row["source"], **s3), target.join(row["name"]), row["format"])
    return {**row, "status": "error", "error": error, "target": None, "name": None} if error else row


# Copies are a few small S3 requests each (HEAD, HEAD, CopyObject, claim PUT): latency-bound, so
# each batch runs them on threads.
COPY_THREADS = 16


def copy_batch(batch: pa.Table, *, s3: dict, progress=None) -> pa.Table:
    """``progress``: the run's ProgressBoard; rows of a job it says to stop are not copied."""
    rows = batch.to_pylist()
    stopped = stopped_reasons(progress)
    for row in rows:
        if row["status"] == "ok" and row["target_root"] in stopped:
            row.update(status="error", error=stopped[row["target_root"]], target=None, name=None)
    with ThreadPoolExecutor(max_workers=min(COPY_THREADS, max(1, len(rows)))) as pool:
        done = list(pool.map(lambda row: _finish(row, s3), rows))
    return table(done, RESULT)
