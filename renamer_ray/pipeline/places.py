"""Where a run reads, writes and records, checked before Ray starts: what a user mistypes costs a
second, not a cluster start."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from renamer_ray.errors import one_line
from renamer_ray.io.storage import (STORAGE_ERRORS, Location, StorageConfig, any_file_under, exists, explain,
                                    list_files, open_location)
from renamer_ray.naming import IMAGE_EXTENSIONS
from renamer_ray.pipeline.earlier import refused_records, unreadable_line
from renamer_ray.pipeline.listing import is_image, wanted
from renamer_ray.records.manifest import IN_PLACE_FOLDER, MANIFEST_NAME, PARTS_FOLDER

WARNED_RECORDS = 100  # warning lines about an earlier manifest's ignored records; then one line for the rest


class CannotStart(ValueError):
    """The run did not start: SRC holds no files, a place cannot be reached (credentials, bucket), an
    earlier manifest cannot be used, or the engine cannot run here."""


@dataclass(frozen=True)
class Places:
    source: Location
    target: Location                  # SRC itself for an in-place run
    manifest: Location
    exclude: tuple[str, ...]          # the user's globs, plus the run's own files where they lie under SRC

    @classmethod
    def of(cls, source: str, target: str, manifest: str | None, *, in_place: bool, exclude: tuple[str, ...],
           storage: StorageConfig) -> "Places":
        """An in-place run's manifest defaults to ``SRC/.renamer-ray/``, a copy run's to ``DST/``."""
        src = open_location(source, storage)
        dst = src if in_place else open_location(target, storage)
        record = (open_location(manifest, storage) if manifest
                  else src.join(IN_PLACE_FOLDER, MANIFEST_NAME) if in_place else dst.join(MANIFEST_NAME))
        root = src.uri.rstrip("/") + "/"
        if in_place:  # the run's own files: its parts, and the manifest where it is under SRC
            exclude += (f"{PARTS_FOLDER}/*", f"{IN_PLACE_FOLDER}/*") + ((record.uri[len(root):],)
                                                                        if record.uri.startswith(root) else ())
        elif dst.uri.startswith(root):  # never rename our own outputs on a re-run
            exclude += (dst.uri[len(root):].rstrip("/") + "/*",)
        return cls(src, dst, record, exclude)


def check_locations(source: Location, target: Location, include: tuple[str, ...] = (),
                    exclude: tuple[str, ...] = ()) -> None:
    """Both places answer (credentials, buckets, the endpoint) and SRC holds an image the filters let
    through (the listing stops at the first one)."""
    def reach(role: str, location: Location, probe) -> bool:
        try:
            return probe()
        except FileNotFoundError:
            return False
        except STORAGE_ERRORS as exc:
            raise CannotStart(f"{role} {location.uri}: {explain(exc) or one_line(exc)}") from None

    found = reach("SRC", source, lambda: any(is_image(listed.relative) and wanted(listed.relative, include, exclude)
                                             for listed in list_files(source)))
    reach("DST", target, lambda: any_file_under(target))
    if not found:
        raise CannotStart(f"no images under {source.uri}" + (" that the --include/--exclude filters let through"
                                                            if include or exclude else "")
                          + f" (it does not exist, or holds no {', '.join(sorted(IMAGE_EXTENSIONS))} files)")


def earlier_manifest(places: Places, *, redo: bool) -> Location | None:
    """The manifest of a finished earlier run into DST, whose names an incremental re-run keeps, or
    None. A symbolic link planted at its name is never read through (the new manifest replaces it).
    :class:`CannotStart` with ``redo`` or where it cannot be read; a warning line for each of its
    records this run ignores (``trust.py``)."""
    manifest = places.manifest
    if not exists(manifest) or os.path.islink(manifest.path):
        return None
    if redo:
        raise CannotStart(f"--redo names everything afresh into a new DST, and {manifest.uri} records an earlier "
                          "run's names: choose another DST (or leave out --redo to keep those names and name only "
                          "new and changed files)")
    if problem := unreadable_line(manifest):
        raise CannotStart(f"{manifest.uri} is not a manifest this program can read: {problem}. It records an "
                          "earlier run's names; move it away to name everything afresh, or give --manifest another "
                          "path")
    _warn_refused(manifest, places.source.uri, places.target.uri)
    return manifest


def _warn_refused(earlier: Location, source_root: str, target_root: str) -> None:
    """One warning line per record of the earlier manifest this run ignores (``trust.py``: its source
    is not under SRC, its target not under DST, or its name not one the rules give)."""
    log = logging.getLogger(__name__)
    refused = 0
    for source, why in refused_records(earlier, source_root, target_root):
        refused += 1
        if refused <= WARNED_RECORDS:
            log.warning("%s: ignored the record of %r: %s", earlier.uri, source, why)
    if refused > WARNED_RECORDS:
        log.warning("%s: ignored %d more records the same way", earlier.uri, refused - WARNED_RECORDS)
