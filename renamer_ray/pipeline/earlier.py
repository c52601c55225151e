"""Incremental re-runs: the names a finished earlier run into the same DST gave (its manifest).

A re-run into a DST that has a manifest keeps every name it records for a source that is unchanged
since (same path under SRC, same size, same modification time): the row is pinned to that name, as a
claim pins it on resume, and skips the download, the decode and the model. New and changed sources
are named as usual, around the kept names. The new manifest holds every file of this run plus the
earlier records of sources this run did not list (gone, or filtered out): their outputs are still in
DST, and their names stay taken.

Each worker process reads the manifest once (it is cached by location and size): a run's tasks
look rows up in memory, not with one request per file.

The manifest is data, not orders (``trust.py``): a record is used — to keep a name, or carried over
(and, for ``--in-place``, carried out) — only when its source lies under SRC, its target under DST
(both SRC for ``--in-place``) and its name is one the naming rules could have given. The driver says
once, before Ray starts, which records are ignored and why (``refused_records``); the readers below
ignore the same records silently.
"""

from __future__ import annotations

import functools
import heapq
import json
from typing import Iterable, Iterator

from pydantic import ValidationError

from renamer_ray.io.storage import Location, StorageConfig, open_location, read_lines
from renamer_ray.records.manifest import FileRecord
from renamer_ray.records.trust import Root, record_problem


def _problem(line: str, roots: tuple[Root, Root]) -> tuple[FileRecord | None, str | None]:
    """A line of the earlier manifest as a record, and why it may not be used (None: it may). Only
    renamed files (``status`` ok) are judged: another status is ``(record, None)``, and is never used
    anyway; a line that is no valid record is ``(None, why)``."""
    try:
        record = FileRecord.model_validate_json(line)
    except ValidationError as exc:
        return None, f"it is not a valid record ({exc.errors()[0]['msg']})"
    if record.status != "ok":
        return record, None
    return record, record_problem(record, *roots)


def refused_records(manifest: Location, source_root: str, target_root: str) -> Iterator[tuple[str, str]]:
    """``(source, why)`` for every renamed-file record of the earlier manifest that this run from
    ``source_root`` into ``target_root`` ignores (``trust.record_problem``); read in the driver."""
    roots = Root(source_root), Root(target_root)
    for line in read_lines(manifest):
        if line.strip():
            record, why = _problem(line, roots)
            if why:
                source = record.source if record else str(_source_of(line))
                yield source, why


def _source_of(line: str) -> object:
    try:
        return json.loads(line).get("source")
    except (ValueError, AttributeError):
        return None


@functools.lru_cache(maxsize=2)
def _index(uri: str, storage: StorageConfig, size: int, source_root: str,
           target_root: str) -> dict[str, tuple[int, float, str, str, str | None]]:
    """relative → (size, mtime, name, format, raw) of each renamed file the manifest records (those
    ``trust.record_problem`` lets a run from ``source_root`` into ``target_root`` use)."""
    del size  # part of the cache key only: a rewritten manifest is read again
    index = {}
    roots = Root(source_root), Root(target_root)
    for line in read_lines(open_location(uri, storage)):
        if not line.strip():
            continue
        record, why = _problem(line, roots)
        if record is None or why is not None:
            continue
        if record.status == "ok" and None not in (record.relative, record.size, record.mtime, record.name, record.format):
            index[record.relative] = (record.size, record.mtime, record.name, record.format, record.raw)
            if record.in_place and record.output and record.output != record.relative:
                # Renamed where it was: a re-run lists it under its new name. An S3 rename (a copy) has
                # a new modification time, so there the size alone says it is the same file.
                index[record.output] = (record.size, None, record.name, record.format, record.raw)
    return index


def unreadable_line(manifest: Location) -> str | None:
    """Why the earlier manifest cannot be used (its first line that is not a record), or None. Read
    once before Ray starts, so a damaged manifest is one line to the user, not a failed run."""
    for number, line in enumerate(read_lines(manifest), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            return f"line {number} is not JSON ({exc})"
        if not isinstance(record, dict) or not isinstance(record.get("source"), str) or "status" not in record:
            return f"line {number} is not a file record (it needs at least source and status)"
    return None


def earlier_name(storage: StorageConfig, row: dict) -> dict | None:
    """``{"name", "format", "raw"}`` the earlier run gave this row's source (the manifest named by its
    ``earlier`` and ``earlier_size`` columns), if the source is unchanged since."""
    source, relative = row["source"], row["relative"]
    if not relative or not source.endswith("/" + relative):
        return None
    known = _index(row["earlier"], storage, row["earlier_size"], source[:-len(relative) - 1] or "/",
                   row["target_root"]).get(relative)
    if known is None or known[0] != row["size"] or known[1] not in (None, row["mtime"]):
        return None
    return {"name": known[2], "format": known[3], "raw": known[4]}


def carry_over(new_lines: Iterable[str], earlier: Location | None, source_root: str,
               target_root: str) -> Iterator[str]:
    """This run's manifest lines (sorted by source) merged with the earlier manifest's renamed files
    whose source this run did not list and that a run from ``source_root`` into ``target_root`` may
    use (``trust.record_problem``; the others are left out); both are sorted by source, so memory is
    one line each."""
    if earlier is None:
        yield from new_lines
        return
    roots = Root(source_root), Root(target_root)

    def usable(lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            if line.strip():
                record, why = _problem(line, roots)
                if record is not None and record.status == "ok" and why is None:
                    yield line

    def tagged(lines: Iterable[str], tag: int) -> Iterator[tuple[str, int, str]]:
        for line in lines:
            if line.strip():
                yield json.loads(line)["source"], tag, line

    last_new = None
    for source, tag, line in heapq.merge(tagged(new_lines, 0), tagged(usable(read_lines(earlier)), 1)):
        if tag == 0:
            last_new = source
            yield line
        elif source != last_new and json.loads(line).get("status") == "ok":
            yield line if line.endswith("\n") else line + "\n"
