"""What `submit` sends: the images under DIR, and how they are cut into jobs within the service's limits."""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from renamer_ray.io.storage import LocalStorage
from renamer_ray.naming import IMAGE_EXTENSIONS

FIELD_MARGIN = 16 * 1024           # form fields and framing, beside the files, in a job's bytes


@dataclass
class Source:
    """An image under DIR: its path relative to DIR (with "/"), where it is, its size, and its
    position among its folder's images sorted by name (``{index}``, as `rename` numbers them)."""

    relative: str
    path: str
    size: int
    mtime: float | None = None
    position: int = 1
    _digest: str | None = None

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.relative)

    @property
    def name(self) -> str:
        return posixpath.basename(self.relative)

    def digest(self) -> str:
        """SHA-256 of the bytes (OSError when the file cannot be read)."""
        if self._digest is None:
            sha = hashlib.sha256()
            with open(self.path, "rb") as stream:
                while chunk := stream.read(1 << 20):
                    sha.update(chunk)
            self._digest = sha.hexdigest()
        return self._digest


@dataclass
class Job:
    """Files of one folder sent as one job, its id, whether the service had it already (the same
    Idempotency-Key), and its final view once it ended."""

    files: list[Source]
    job_id: str = ""
    replayed: bool = False
    final: dict | None = None

    @property
    def folder(self) -> str:
        return self.files[0].folder


def list_images(root: Path, *, leave_out: Path | None = None) -> tuple[list[Source], int]:
    """The images under ``root`` (by extension, as every listing of the project), sorted by path,
    and how many other files there are; ``leave_out`` (OUT inside DIR) is not listed."""
    skip = None
    if leave_out is not None and leave_out.is_relative_to(root) and leave_out != root:
        skip = leave_out.relative_to(root).as_posix() + "/"
    images, others = [], 0
    for listed in LocalStorage().list_files(str(root), recursive=True):
        relative = listed.relative.removeprefix("./")
        if skip and relative.startswith(skip):
            continue
        if posixpath.splitext(relative)[1].lstrip(".").lower() in IMAGE_EXTENSIONS:
            images.append(Source(relative, str(root / relative), listed.size, listed.mtime))
        else:
            others += 1
    images.sort(key=lambda s: s.relative)
    counted: dict[str, int] = defaultdict(int)
    for source in images:
        counted[source.folder] += 1
        source.position = counted[source.folder]
    return images, others


@dataclass
class Limits:
    """What one job may hold; lowered by what the service's 413 sentences say."""

    max_files: int
    max_job_bytes: int
    max_file_bytes: int

    PATTERNS = {"max_files": r"at most ([\d,]+) per job", "max_job_bytes": r"at most ([\d,]+) bytes per job",
                "max_file_bytes": r"at most ([\d,]+) bytes per file"}

    def learn(self, detail: str) -> bool:
        """Lower a limit the service named in a refusal; True if one changed."""
        changed = False
        for name, pattern in self.PATTERNS.items():
            match = re.search(pattern, detail)
            if match and (value := int(match.group(1).replace(",", ""))) < getattr(self, name):
                setattr(self, name, max(1, value))
                changed = True
        return changed

    def too_large(self, source: Source) -> str | None:
        if source.size > self.max_file_bytes:
            return f"too large for the service: at most {self.max_file_bytes:,} bytes per file"
        return None

    def split(self, files: list[Source]) -> list[list[Source]]:
        """``files`` (one folder's, in order) in jobs within the limits, greedily."""
        jobs, current, size = [], [], 0
        for source in files:
            if current and (len(current) >= self.max_files or size + source.size > self.max_job_bytes - FIELD_MARGIN):
                jobs.append(current)
                current, size = [], 0
            current.append(source)
            size += source.size
        return jobs + ([current] if current else [])


def consecutive(files: list[Source]) -> list[list[Source]]:
    """``files`` (one folder's, in order) in runs of consecutive positions: the service numbers a
    job's files on from its ``first_index``, so a job holds no gap."""
    runs: list[list[Source]] = []
    for source in files:
        if runs and source.position == runs[-1][-1].position + 1:
            runs[-1].append(source)
        else:
            runs.append([source])
    return runs
