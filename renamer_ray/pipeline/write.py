"""Stages: claim each new name, then copy each source to it (never overwriting a different file)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from renamer_ray.io.storage import (STORAGE_ERRORS, Location, StorageConfig, TargetExists, copy, is_transient,
                                    make_dirs, open_location, retrying, size_of)
from renamer_ray.naming import content_type_for
from renamer_ray.pipeline.claims import claim
from renamer_ray.pipeline.columns import RESULT
from renamer_ray.pipeline.progress import stopped_reasons
from renamer_ray.pipeline.stage import Stage


def copy_one(source: Location, target: Location, fmt: str | None = None) -> str | None:
    """Copy; return an error sentence instead of raising. A copy of the same source counts as done.
    Transient storage errors are retried for a while first (``retrying``)."""
    try:
        retrying(copy, source, target, content_type=content_type_for(fmt) if fmt else None)
        return None
    except TargetExists as exc:
        return str(exc)
    except STORAGE_ERRORS as exc:
        hint = "; this looks like a storage error: running again may succeed" if is_transient(exc) else ""
        return f"could not copy to {target.uri}: {exc}{hint}"


def _fail(row: dict, error: str) -> dict:
    return {**row, "status": "error", "error": error, "target": None, "name": None}


# Claims and copies are a few small storage requests each (claim PUT; HEAD, HEAD, CopyObject):
# latency-bound, so each batch runs them on threads.
THREADS = 16


class _Threaded(Stage):
    """RESULT → RESULT, one storage operation per ``ok`` row on ``THREADS`` threads."""

    needs = tuple(RESULT.names)
    output = RESULT

    def __init__(self, storage: StorageConfig, *, progress=None):
        self.storage, self.progress = storage, progress

    def rows(self, rows: list[dict]) -> list[dict]:
        with ThreadPoolExecutor(max_workers=min(THREADS, max(1, len(rows)))) as pool:
            return list(pool.map(lambda row: self.one(row) if row["status"] == "ok" else row, rows))

    def one(self, row: dict) -> dict:
        raise NotImplementedError


class ClaimNames(_Threaded):
    """Claim each new name (``claims.py``) before anything is copied, so that a re-run after a crash
    keeps it. Rows of a job the run's ``progress`` board says to stop fail with its reason instead."""

    def rows(self, rows: list[dict]) -> list[dict]:
        stopped = stopped_reasons(self.progress)
        rows = [_fail(row, stopped[row["target_root"]]) if row["status"] == "ok" and row["target_root"] in stopped
                else row for row in rows]
        return super().rows(rows)

    def one(self, row: dict) -> dict:
        if row["pinned"]:
            return row
        target = open_location(row["target_root"], self.storage)
        try:
            holds = retrying(claim, target, row["relative"], row["name"], row["format"], row["raw"])
        except STORAGE_ERRORS as exc:  # this file fails, with the reason; the rest of the run goes on
            hint = "; this looks like a storage error: running again may succeed" if is_transient(exc) else ""
            return _fail(row, f"could not record its new name {row['name']!r}: {exc}{hint}")
        if holds != row["name"]:
            return _fail(row, f"another attempt of this run named it {holds!r} at the same time; run again to finish")
        return row


class CopyFiles(_Threaded):
    """Copy each source to its claimed name, never over a different file (``copy_one``)."""

    def one(self, row: dict) -> dict:
        target = open_location(row["target_root"], self.storage).join(row["output"])  # never resolved through a link
        if row["kept"] and retrying(size_of, target) == row["size"]:  # (a missing file's size is None)
            return row  # an earlier run's copy of this unchanged source (it made it: no need to read it)
        if "/" in row["output"]:
            retrying(make_dirs, target.parent)
        error = copy_one(open_location(row["source"], self.storage), target, row["format"])
        return _fail(row, error) if error else row
