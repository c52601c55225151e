"""Renaming where the files are (`rename --in-place`) and undoing it (`renamer-ray undo`).

The run (``pipeline.run``) first writes its manifest — the undo record — with every planned name,
and only then ``move_as_planned`` moves files: locally a hard link under the new name and the old
name removed (never over another file), on S3 a create-only copy, checked, then the source deleted.
A crash at any point leaves each file under its old name, its new one, or both with the same bytes;
running the same command again (or `undo`) finishes the job, and no file is ever lost or overwritten.

Neither moves a file outside the tree the run renamed (``trust.py``): ``carry_out`` only within SRC,
and ``undo`` only within the root the manifest's place says — ``ROOT/.renamer-ray/`` — or, for a
manifest kept elsewhere, the one its records name; a record without the size and modification time
that tell whether the file changed since is refused too.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from renamer_ray.config import Settings
from renamer_ray.io.storage import (Location, LocalStorage, StorageConfig, exists, move, open_location, read_bytes,
                                    read_lines, retrying, size_of, transfer, write_text)
from renamer_ray.io.storage.s3 import FINGERPRINT_KEY
from renamer_ray.pipeline.results import RunSummary
from renamer_ray.records.manifest import IN_PLACE_FOLDER, FileRecord, dump_lines, parse_lines
from renamer_ray.records.trust import Root
from renamer_ray.workflow.apply import read_plan

THREADS = 16


class UndoError(ValueError):
    """The manifest cannot be undone (not an in-place run's, or not a manifest at all)."""


def carry_out(records: list[FileRecord], settings: Settings, root: str) -> dict[str, str]:
    """Make every planned in-place rename (``status`` ok, a target other than the source) whose
    source and target both lie inside ``root``, the run's SRC (``trust.Root``); returns ``{source:
    why}`` for the files that could not be renamed (they keep their names)."""
    storage, tree = StorageConfig.of(settings), Root(root)
    moves = [r for r in records if r.status == "ok" and r.in_place and r.target and r.target != r.source]

    def one(record: FileRecord) -> str | None:
        if why := _outside(record, tree):
            return f"not renamed: {why}"
        return transfer(open_location(record.source, storage), open_location(record.target, storage),
                        remove_source=True)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        errors = pool.map(one, moves)
        return {r.source: error for r, error in zip(moves, errors) if error}


def move_as_planned(summary: RunSummary, settings: Settings) -> RunSummary:
    """The second step of `rename --in-place`, once the run (``pipeline.run``, ``in_place``) wrote
    its plan, the undo record: the moves it records (``carry_out``). A file that could not be renamed
    keeps its name and becomes a failure, in the manifest too. Returns the summary with them."""
    started = time.monotonic()
    manifest = open_location(summary.manifest, StorageConfig.of(settings))
    records = list(parse_lines("".join(read_lines(manifest))))
    errors = carry_out(records, settings, summary.source_root)
    seconds = summary.seconds + time.monotonic() - started
    if not errors:
        return replace(summary, seconds=seconds)

    def failed(record: FileRecord) -> FileRecord:
        if record.source not in errors:
            return record
        return record.model_copy(update=dict(status="error", error=errors[record.source], target=None, output=None,
                                             name=None, in_place=None))

    write_text(manifest, dump_lines(failed(r) for r in records))
    return replace(summary, records=[failed(r) for r in summary.records], ok=summary.ok - len(errors),
                   failed=summary.failed + len(errors), seconds=seconds)


def _outside(record: FileRecord, tree: Root) -> str | None:
    """Why the record points outside ``tree`` (None: both its names lie inside)."""
    for role, uri in (("its original name", record.source), ("its new name", record.target)):
        if why := tree.problem(uri or ""):
            return f"{role} {uri!r} {why}"
    return None


@dataclass
class UndoSummary:
    restored: int = 0                 # renamed back now
    already: int = 0                  # had their original names already (an earlier undo, or never moved)
    refused: list[str] = field(default_factory=list)   # one line per file that was left as it is
    seconds: float = 0.0
    root: str = ""                    # the tree the run renamed: nothing outside it is moved


def undo_root(manifest: Location, records: list[FileRecord]) -> str:
    """The tree the manifest's in-place run renamed, the only one undo moves files in. A manifest at
    ``ROOT/.renamer-ray/`` (where ``rename --in-place`` keeps it): ROOT, whatever its records say —
    whoever could write it there can write only under ROOT. Kept elsewhere (``--manifest``): the
    ``root`` its records name, which must be one (UndoError otherwise: nothing is moved)."""
    folder = manifest.parent
    if folder.uri.rstrip("/").rsplit("/", 1)[-1] == IN_PLACE_FOLDER:
        return folder.parent.uri or "/"
    roots = {r.root for r in records if r.in_place and r.root}
    if len(roots) == 1 and all(r.root for r in records if r.in_place):
        return roots.pop()
    if not roots:
        raise UndoError(f"{manifest.uri} does not say which folder its run renamed (no \"root\" in its records: it "
                        f"was written by an older version, or by hand) and does not lie in ROOT/{IN_PLACE_FOLDER}/: "
                        f"nothing was moved. Copy it to <the folder renamed>/{IN_PLACE_FOLDER}/manifest.jsonl and "
                        "undo that copy")
    raise UndoError(f"{manifest.uri} names {len(roots)} different folders as the one its run renamed "
                    f"({', '.join(sorted(roots))}) or records without one: nothing was moved")


def _unverifiable(record: FileRecord, storage_is_local: bool) -> str | None:
    """Why whether the renamed file changed since cannot be told from the record (None: it can)."""
    missing = [what for what, value in (("size", record.size), ("modification time", record.mtime))
               if value is None and (storage_is_local or what == "size")]
    return f"the record has no {' and no '.join(missing)}" if missing else None


def _unchanged(record: FileRecord, target: Location) -> bool:
    """Whether the renamed file is still what the run renamed: the same size and, locally, the same
    modification time (a rename keeps it); on S3, a copy whose metadata names the original. A record
    without them (``_unverifiable``) never is."""
    if record.size is None or size_of(target) != record.size:
        return False
    if isinstance(target.storage, LocalStorage):
        import os

        return record.mtime is not None and os.stat(target.path).st_mtime == record.mtime
    head = target.storage.head(target.path) or {}
    bucket_key = record.source.removeprefix("s3://")
    return head.get("Metadata", {}).get(FINGERPRINT_KEY, "").startswith(bucket_key + "@")


def undo(manifest_uri: str, settings: Settings) -> UndoSummary:
    """Give every file an in-place run renamed its original name back, except files changed since
    (listed in ``refused``, left as they are). Run again after a crash, it finishes the job. When
    nothing was refused the manifest is moved aside (``.undone-<time>.jsonl``), so a later
    ``rename --in-place`` names the files afresh."""
    started = time.monotonic()
    storage = StorageConfig.of(settings)
    manifest = open_location(manifest_uri, storage)
    records = [r for r in read_plan(read_bytes(manifest)) if r.status == "ok" and r.target]
    if records and not any(r.in_place for r in records):
        raise UndoError(f"{manifest.uri} is the manifest of a copy run: its originals were never touched "
                        "(delete its DST to undo it); undo is for `rename --in-place`")
    if not all(r.in_place for r in records):
        raise UndoError(f"{manifest.uri} holds records of a copy run beside those of an in-place run: no run writes "
                        "such a manifest, so it is not an undo record; nothing was moved")
    summary = UndoSummary(root=undo_root(manifest, records) if records else "")
    tree = Root(summary.root)

    def one(record: FileRecord) -> str:
        """"restored", "already", or why the file was left as it is."""
        if why := _outside(record, tree):
            return f"{record.source}: refused, nothing moved: {why}"
        if record.root and record.root.rstrip("/") != tree.uri.rstrip("/"):
            return f"{record.source}: refused, nothing moved: it names another root ({record.root}) than {tree.uri}"
        if why := _unverifiable(record, not tree.uri.startswith("s3://")):
            return (f"{record.source}: refused, nothing moved: {why}, so whether {record.target} changed since it "
                    "was renamed cannot be told")
        source, target = open_location(record.source, storage), open_location(record.target, storage)
        if record.target == record.source or not retrying(exists, target):
            if record.target != record.source and not retrying(exists, source):
                return f"{record.source}: neither it nor {record.target} exists any more"
            return "already"
        if not _unchanged(record, target):
            return f"{record.target}: changed since it was renamed; left as it is"
        error = transfer(target, source, remove_source=True)
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
