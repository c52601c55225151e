"""Stages: claim each new name, then copy each source to it (never overwriting a different file)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from renamer_ray.io.storage import (STORAGE_ERRORS, StorageConfig, is_transient, make_dirs, open_location, retrying,
                                    size_of, transfer)
from renamer_ray.naming import content_type_for
from renamer_ray.pipeline.claims import claim
from renamer_ray.pipeline.columns import RESULT
from renamer_ray.pipeline.progress import stop_rows
from renamer_ray.pipeline.stage import Stage


def _fail(row: dict, error: str) -> dict:
    """The row, failed with ``error``: it has no target and no name."""
    row.update(status="error", error=error, target=None, name=None)
    return row


# Claims and copies are a few small storage requests each (claim PUT; HEAD, HEAD, CopyObject):
# latency-bound, so each batch runs them on threads.
THREADS = 16


class _Threaded(Stage):
    """RESULT → RESULT, one storage operation per ``ok`` row on ``THREADS`` threads."""

    reads = ("status",)
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

    reads = ("status", "target_root", "pinned", "relative", "name", "format", "raw")

    def rows(self, rows: list[dict]) -> list[dict]:
        stop_rows(rows, self.progress, still_open=lambda row: row["status"] == "ok", stop=_fail)
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
    """Copy each source to its claimed name, never over a different file (``storage.transfer``)."""

    reads = ("status", "target_root", "output", "kept", "size", "source", "format", "source_head")

    def one(self, row: dict) -> dict:
        target = open_location(row["target_root"], self.storage).join(row["output"])  # never resolved through a link
        if row["kept"] and retrying(size_of, target) == row["size"]:  # (a missing file's size is None)
            return row  # an earlier run's copy of this unchanged source (it made it: no need to read it)
        if "/" in row["output"]:
            retrying(make_dirs, target.parent)
        error = transfer(open_location(row["source"], self.storage), target,
                         content_type=content_type_for(row["format"]), source_head=row["source_head"])
        return _fail(row, error) if error else row
