"""Stage: list the source as a Ray Data read — streamed, and sharded by top-level folder.

The driver only learns the source's top-level folders; each becomes a read task that walks its
folder page by page (1,000 keys per S3 request) and yields blocks as it goes, so a prefix of
millions of keys is never held in one process. Non-image keys are emitted marked ``skipped`` so
the run can count them; keys outside the include/exclude globs are not emitted at all.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Iterator

import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from renamer_ray.io.storage import ListedFile, Location, s3_client
from renamer_ray.naming import IMAGE_EXTENSIONS
from renamer_ray.pipeline.columns import LISTED, table

ROWS_PER_BLOCK = 1000


def _s3_prefix(root: Location) -> tuple[str, str]:
    bucket, key = root.bucket_and_key
    return bucket, (key.rstrip("/") + "/") if key else ""


def shards(root: Location) -> list[str]:
    """Top-level folders under ``root`` (relative, ending in "/"), plus "" for its direct files."""
    if root.is_s3:
        bucket, prefix = _s3_prefix(root)
        pages = s3_client(root.region, root.endpoint_url).get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/")
        folders = [p["Prefix"][len(prefix):] for page in pages for p in page.get("CommonPrefixes", [])]
    else:
        if not os.path.isdir(root.path):
            raise FileNotFoundError(root.uri)
        folders = [e.name + "/" for e in os.scandir(root.path) if e.is_dir(follow_symlinks=False)]
    return [""] + sorted(folders)


def iter_files(root: Location, shard: str) -> Iterator[ListedFile]:
    """Files of one shard in sorted order: "" = direct files of root, else the folder, recursively."""
    if root.is_s3:
        bucket, prefix = _s3_prefix(root)
        args = dict(Bucket=bucket, Prefix=prefix + shard, PaginationConfig={"PageSize": 1000})
        if not shard:
            args["Delimiter"] = "/"
        for page in s3_client(root.region, root.endpoint_url).get_paginator("list_objects_v2").paginate(**args):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    yield ListedFile(obj["Key"][len(prefix):], obj["Size"], obj["LastModified"].timestamp())
        return
    base = os.path.join(root.path, shard)
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        if not shard:
            dirs.clear()
        relative_folder = os.path.relpath(folder, root.path).replace(os.sep, "/")
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:  # a dangling symbolic link: listed, and it fails alone when it is read
                stat = os.lstat(path)
            yield ListedFile(posixpath.normpath(posixpath.join(relative_folder, name)), stat.st_size, stat.st_mtime)


def wanted(relative: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Glob filters on the path relative to the source (``*`` also crosses "/")."""
    if include and not any(fnmatch.fnmatchcase(relative, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(relative, p) for p in exclude)


@dataclass(frozen=True)
class Wishes:
    """Per-row job parameters every listed file carries (see ``columns.py``)."""

    target_root: str
    prompt: str | None = None
    template: str = "{subject}"
    resume: bool = False


def read_shard(root: Location, shard: str, include: tuple[str, ...], exclude: tuple[str, ...],
               wishes: Wishes) -> Iterator[pa.Table]:
    counters: dict[str, int] = defaultdict(int)  # {index}: a file's position in its own folder
    rows: list[dict] = []
    for listed in iter_files(root, shard):
        if not wanted(listed.relative, include, exclude):
            continue
        extension = posixpath.splitext(listed.relative)[1].lstrip(".").lower()
        row = {"source": root.join(listed.relative).uri, "relative": listed.relative, "size": listed.size,
               "mtime": listed.mtime, "skipped": extension not in IMAGE_EXTENSIONS, **asdict(wishes)}
        if not row["skipped"]:
            folder = posixpath.dirname(listed.relative)
            counters[folder] += 1
            row["index"] = counters[folder]
        rows.append(row)
        if len(rows) >= ROWS_PER_BLOCK:
            yield table(rows, LISTED)
            rows = []
    if rows:
        yield table(rows, LISTED)


class SourceListing(Datasource):
    """Ray Data datasource over a local folder or an S3 prefix; one read task per shard."""

    def __init__(self, root: Location, wishes: Wishes, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()):
        self.root, self.wishes, self.include, self.exclude = root, wishes, include, exclude
        self.shards = shards(root)

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        return [
            ReadTask(functools.partial(read_shard, self.root, shard, self.include, self.exclude, self.wishes),
                     BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None), schema=LISTED,
                     per_task_row_limit=per_task_row_limit)
            for shard in self.shards
        ]
