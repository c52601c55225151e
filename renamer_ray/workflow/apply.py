"""`renamer-ray apply`: carry out a plan (a dry-run manifest a person may have edited).

Every name is checked again before anything is copied: the naming rules of the record's style
(``style`` in the record; the default kebab-case when absent), the extension against
the file's real format, collisions within the plan (per output folder, case-insensitive, by name
without extension; the folder is that of ``output``, as the run that wrote the plan kept it)
and files already in the destination. One problem anywhere and nothing is copied.
"""

from __future__ import annotations

import posixpath
import time

from renamer_ray.config import Settings
from renamer_ray.images import ImageError, sniff_format
from renamer_ray.io.storage import (Location, StorageConfig, exists, make_dirs, open_location, read_bytes, read_head,
                                    size_of, transfer, write_text)
from renamer_ray.records.manifest import MANIFEST_NAME, FileRecord, dump_lines, parse_lines
from renamer_ray.naming import DEFAULT_STYLE, NamingStyle, StyleError, content_type_for, extension_for
from renamer_ray.pipeline.results import RunSummary
from renamer_ray.pipeline.rows import safe_folder


class PlanError(ValueError):
    """The plan breaks a rule; the message lists every problem, one per line."""


def _check(record: FileRecord, real_format: str, taken: dict[tuple[str, str], str]) -> str | None:
    name = record.name or ""
    stem, dot, ext = name.rpartition(".")
    try:
        style = DEFAULT_STYLE if record.style is None else NamingStyle.parse(**record.style)
    except (StyleError, TypeError) as exc:
        return f"{record.source}: its style {record.style!r} is not valid: {exc}"
    if not dot or not style.is_valid(stem):
        shown = "" if style.is_default else f"its {style.case} style: "
        return (f"{record.source}: {name!r} breaks the naming rules ({shown}{style.describe()}, "
                "plus the extension)")
    real = extension_for(real_format)
    if ext != real:
        return f"{record.source}: extension .{ext} does not match the file's real format (.{real})"
    key = (_folder(record), stem.lower())
    if key in taken:
        return f"{record.source}: {name!r} collides with the name planned for {taken[key]}"
    taken[key] = record.source
    return None


def _folder(record: FileRecord) -> str:
    """The output folder a record's name goes into, under DST (none for plans of --flat runs)."""
    return safe_folder(posixpath.dirname(record.output or ""))


# Bytes read to tell a file's format: every supported format's header fits (a JPEG's EXIF segment
# is at most 64 KiB); a file whose header does not is read whole before it is refused.
HEAD_BYTES = 256 * 1024


def _real_format(source: Location) -> str:
    """The format the file's first bytes say it is, without reading the rest."""
    head = read_head(source, HEAD_BYTES)
    try:
        return sniff_format(head)
    except ImageError:
        if len(head) < HEAD_BYTES:
            raise
        return sniff_format(read_bytes(source))


def _same_file(source: Location, target: Location) -> bool:
    """Whether the target already holds the source's bytes (sizes first: most differ there)."""
    return size_of(source) == size_of(target) and read_bytes(source) == read_bytes(target)


def read_plan(data: bytes) -> list[FileRecord]:
    """The records of a manifest's bytes; anything that is not one valid record per line is a
    PlanError naming the line (never a traceback)."""
    try:
        return list(parse_lines(data.decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise PlanError(f"the manifest is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise PlanError(f"the manifest is not valid: {str(exc).splitlines()[0]}") from None


def apply_plan(manifest_uri: str, dst_uri: str, settings: Settings) -> RunSummary:
    started = time.monotonic()
    storage = StorageConfig.of(settings)
    plan = read_plan(read_bytes(open_location(manifest_uri, storage)))
    target_dir = open_location(dst_uri, storage)
    problems, taken, jobs = [], {}, []
    for record in plan:
        if record.status != "ok":
            continue
        source = open_location(record.source, storage)
        try:
            fmt = _real_format(source)
        except OSError as exc:
            problems.append(f"{record.source}: cannot be read: {exc}")
            continue
        except ImageError as exc:
            problems.append(f"{record.source}: {exc}")
            continue
        problem = _check(record, fmt, taken)
        target = target_dir.join(posixpath.join(_folder(record), record.name or ""))
        if problem is None and exists(target) and not _same_file(source, target):
            problem = f"{record.source}: {target.uri} already exists with other content"
        if problem:
            problems.append(problem)
        jobs.append((record, source, target, fmt))
    manifest = target_dir.join(MANIFEST_NAME)
    if posixpath.normpath(manifest.uri) == posixpath.normpath(open_location(manifest_uri, storage).uri):
        problems.append("the output manifest would overwrite the plan itself: choose another DST")
    if problems:
        raise PlanError("\n".join(problems))

    make_dirs(target_dir)
    done = {}
    for record, source, target, fmt in jobs:
        if _folder(record):
            make_dirs(target.parent)
        error = transfer(source, target, content_type=content_type_for(fmt))
        done[record.source] = record.model_copy(update=dict(
            target=None if error else target.uri, status="error" if error else "ok", error=error,
            output=None if error else posixpath.join(_folder(record), record.name or "")))
    records = sorted((done.get(r.source, r) for r in plan), key=lambda r: r.source)
    write_text(manifest, dump_lines(records))
    return RunSummary.of(records, skipped=0, seconds=time.monotonic() - started, manifest=manifest.uri)
