"""Renaming where the files are (`rename --in-place`) and undoing it (`renamer-ray undo`).

The run first writes its manifest — the undo record — with every planned name, and only then moves
files: locally a hard link under the new name and the old name removed (never over another file),
on S3 a create-only copy, checked, then the source deleted. A crash at any point leaves each file
under its old name, its new one, or both with the same bytes; running the same command again (or
`undo`) finishes the job, and no file is ever lost or overwritten.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from renamer_ray.config import Settings
from renamer_ray.io.storage import (STORAGE_ERRORS, Location, LocalStorage, TargetExists, exists, move, open_location,
                                    read_bytes, retrying, size_of)
from renamer_ray.io.storage.s3 import FINGERPRINT_KEY
from renamer_ray.manifest import FileRecord

THREADS = 16


class UndoError(ValueError):
    """The manifest cannot be undone (not an in-place run's, or not a manifest at all)."""


def _move(source: Location, target: Location) -> str | None:
    """Move; an error sentence instead of raising. Done already (only the target is there): None."""
    try:
        if not retrying(exists, source) and retrying(exists, target):
            return None
        retrying(move, source, target)
        return None
    except TargetExists as exc:
        return str(exc)
    except STORAGE_ERRORS as exc:
        return f"could not rename it to {target.uri}: {exc}"


def carry_out(records: list[FileRecord], settings: Settings) -> dict[str, str]:
    """Make every planned in-place rename (``status`` ok, a target other than the source); returns
    ``{source: why}`` for the files that could not be renamed (they keep their names)."""
    storage = settings.storage
    moves = [r for r in records if r.status == "ok" and r.in_place and r.target and r.target != r.source]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        errors = pool.map(lambda r: _move(open_location(r.source, storage), open_location(r.target, storage)), moves)
        return {r.source: error for r, error in zip(moves, errors) if error}


@dataclass
class UndoSummary:
    restored: int = 0                 # renamed back now
    already: int = 0                  # had their original names already (an earlier undo, or never moved)
    refused: list[str] = field(default_factory=list)   # one line per file that was left as it is
    seconds: float = 0.0


def _unchanged(record: FileRecord, target: Location) -> bool:
    """Whether the renamed file is still what the run renamed: the same size and, locally, the same
    modification time (a rename keeps it); on S3, a copy whose metadata names the original."""
    if record.size is not None and size_of(target) != record.size:
        return False
    if isinstance(target.storage, LocalStorage):
        import os

        return record.mtime is None or os.stat(target.path).st_mtime == record.mtime
    head = target.storage.head(target.path) or {}
    bucket_key = record.source.removeprefix("s3://")
    return head.get("Metadata", {}).get(FINGERPRINT_KEY, "").startswith(bucket_key + "@")


def undo(manifest_uri: str, settings: Settings) -> UndoSummary:
    """Give every file an in-place run renamed its original name back, except files changed since
    (listed in ``refused``, left as they are). Run again after a crash, it finishes the job. When
    nothing was refused the manifest is moved aside (``.undone-<time>.jsonl``), so a later
    ``rename --in-place`` names the files afresh."""
    from renamer_ray.apply import read_plan

    started = time.monotonic()
    storage = settings.storage
    manifest = open_location(manifest_uri, storage)
    records = [r for r in read_plan(read_bytes(manifest)) if r.status == "ok" and r.target]
    if records and not any(r.in_place for r in records):
        raise UndoError(f"{manifest.uri} is the manifest of a copy run: its originals were never touched "
                        "(delete its DST to undo it); undo is for `rename --in-place`")
    summary = UndoSummary()

    def one(record: FileRecord) -> str:
        """"restored", "already", or why the file was left as it is."""
        source, target = open_location(record.source, storage), open_location(record.target, storage)
        if record.target == record.source or not retrying(exists, target):
            if record.target != record.source and not retrying(exists, source):
                return f"{record.source}: neither it nor {record.target} exists any more"
            return "already"
        if not _unchanged(record, target):
            return f"{record.target}: changed since it was renamed; left as it is"
        error = _move(target, source)
        return f"{record.target}: {error}" if error else "restored"

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(one, [r for r in records if r.in_place]))
    summary.restored, summary.already = outcomes.count("restored"), outcomes.count("already")
    summary.refused = sorted(o for o in outcomes if o not in ("restored", "already"))
    if not summary.refused:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        retrying(move, manifest, open_location(manifest.uri.removesuffix(".jsonl") + f".undone-{stamp}.jsonl", storage))
    summary.seconds = time.monotonic() - started
    return summary
