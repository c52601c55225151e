"""Placing a job's renamed files from its ZIP into OUT/<folder>/<name>: create-only, suffixed across jobs."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

from renamer_ray.cli.client.sources import Job
from renamer_ray.cli.client.summary import failed, record
from renamer_ray.io.storage import LOCAL, STORAGE_ERRORS, Location, TargetExists
from renamer_ray.naming import NamingStyle, NoRoom


def _usable(name: object) -> bool:
    """A name from the service that can only ever be a file name in its folder."""
    return (isinstance(name, str) and bool(name) and name not in (".", "..") and not name.startswith(".")
            and not any(ch in name for ch in "/\\\0"))


def _stem(name: str) -> tuple[str, str]:
    stem, dot, extension = name.rpartition(".")
    return (stem, dot + extension) if dot and stem else (name, "")


class Placer:
    """Puts renamed files into OUT/<folder>/<name>, create-only (``LocalStorage.copy``: a symbolic
    link is never followed, a different file never replaced, the same bytes count as done).

    Two jobs of one folder may give the same name; the later job's file gets the next free suffix in
    the job's style (``NamingStyle.with_suffix``, as the naming core does), skipping names this run
    placed and names its own job claims; a file already in OUT with the same bytes counts as placed
    (a re-run copies nothing twice), any other is never touched."""

    def __init__(self, out: Path, style: NamingStyle, scratch: Path):
        self.out, self.style, self.scratch, self.storage = out, style, scratch, LOCAL
        self.taken: dict[str, set[str]] = defaultdict(set)  # folder -> lowercase stems placed by this run
        self.kept = 0                                        # files found already in OUT, identical

    def _base(self, stem: str, claimed: dict[str, str]) -> str:
        """The stem a suffixed name of this job was made from (``red-circle`` for ``red-circle-001``
        when the job also named a ``red-circle``), so that a second suffix replaces the first."""
        for lower, original in claimed.items():
            rest = stem[len(original):]
            if stem.lower().startswith(lower) and rest[-3:].isdigit() and rest[-3:] != "000":
                with contextlib.suppress(NoRoom, ValueError):
                    if self.style.with_suffix(original, int(rest.lstrip(" -_") or 0)) == stem:
                        return original
        return stem

    def place_job(self, job: Job, results: list[dict], archive: Path | None) -> list[dict]:
        """The job's records (``results`` line up with ``job.files``), its renamed files placed."""
        folder = job.folder
        claimed = {_stem(r["name"])[0].lower(): _stem(r["name"])[0] for r in results
                   if r.get("status") == "ok" and _usable(r.get("name"))}
        taken, records = self.taken[folder], []
        with zipfile.ZipFile(archive) if archive else contextlib.nullcontext() as zipped:
            for source, result in zip(job.files, results):
                line = record(source, result, self.style)
                if line["status"] != "ok":
                    records.append(line)
                    continue
                name = result["name"]
                if not _usable(name) or zipped is None:
                    records.append(failed(line, f"the service gave no usable file ({name!r})"))
                    continue
                member = self.scratch / "member"
                try:  # in the ZIP under the folder it was sent with (the service's ``output``)
                    with zipped.open(str(result.get("output") or name)) as data, open(member, "wb") as stream:
                        shutil.copyfileobj(data, stream)
                except KeyError:
                    records.append(failed(line, f"{name!r} is missing from the job's archive"))
                    continue
                stem, extension = _stem(name)
                base, number, placed = self._base(stem, claimed), 0, None
                try:
                    os.makedirs(self.out / folder, exist_ok=True)
                except OSError as exc:  # a file where the folder belongs
                    records.append(failed(line, f"cannot make the folder {self.out / folder}: {exc}"))
                    continue
                while placed is None:
                    try:
                        candidate = stem if number == 0 else self.style.with_suffix(base, number)
                    except NoRoom as exc:
                        records.append(failed(line, f"no free name for {name!r} in {folder or '.'}/: {exc}"))
                        break
                    number += 1
                    if candidate.lower() in taken or (candidate != stem and candidate.lower() in claimed):
                        continue
                    target = self.out / folder / (candidate + extension)
                    existed = os.path.lexists(target)
                    try:
                        self.storage.copy(Location(self.storage, str(member), str(member)), str(target))
                    except TargetExists:
                        continue  # somebody else's file, or a link: left alone, next suffix
                    except STORAGE_ERRORS as exc:
                        records.append(failed(line, f"cannot write {target}: {exc}"))
                        break
                    taken.add(candidate.lower())
                    self.kept += existed
                    placed = candidate + extension
                if placed is not None:
                    relative = posixpath.join(folder, placed)
                    records.append({**line, "target": str(self.out / relative), "output": relative, "name": placed})
        return records
