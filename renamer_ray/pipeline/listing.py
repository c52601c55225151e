"""Stage: list the source as a Ray Data read — streamed, and sharded by top-level folder.

The driver only learns the source's top-level folders; each becomes a read task that walks its
folder page by page (1,000 keys per S3 request) and yields blocks as it goes, so a prefix of
millions of keys is never held in one process. Non-image keys are emitted marked ``skipped`` so
the run can count them; keys outside the include/exclude globs are not emitted at all.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
from collections import defaultdict
from dataclasses import replace
from typing import Iterator

import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from renamer_ray.io.storage import ListedFile, Location, list_files, subfolders
from renamer_ray.naming import IMAGE_EXTENSIONS
from renamer_ray.pipeline.columns import LISTED, table
from renamer_ray.pipeline.rows import Wishes, listed_row

ROWS_PER_BLOCK = 1000
# A listing task mostly waits: on S3's pages, and on the stages after it (Ray Data holds a read task
# whose blocks are not taken yet). With the default whole CPU it starved the decode tasks: beside a
# CPU model actor on 2 cores, 960 images waited 21 s for their first decode. At most LISTING_TASKS
# folders are listed at once (each is a worker process).
LISTING_CPUS = 0.01
LISTING_TASKS = 16


def shards(root: Location) -> list[str]:
    """Top-level folders under ``root`` (relative, ending in "/"), plus "" for its direct files."""
    return [""] + sorted(subfolders(root))


def iter_files(root: Location, shard: str) -> Iterator[ListedFile]:
    """Files of one shard in listing order: "" = direct files of root, else the folder, recursively."""
    if not shard:
        yield from list_files(root, recursive=False)
        return
    for listed in list_files(root.join(shard), recursive=True):
        yield replace(listed, relative=shard + listed.relative)


def is_image(relative: str) -> bool:
    """An image file by its extension (other files are counted as skipped, never read)."""
    return posixpath.splitext(relative)[1].lstrip(".").lower() in IMAGE_EXTENSIONS


def wanted(relative: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    """Glob filters on the path relative to the source (``*`` also crosses "/")."""
    if include and not any(fnmatch.fnmatchcase(relative, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(relative, p) for p in exclude)


def read_shard(root: Location, shard: str, include: tuple[str, ...], exclude: tuple[str, ...],
               wishes: Wishes, progress=None) -> Iterator[pa.Table]:
    """The shard's rows in blocks of ROWS_PER_BLOCK; each block's image count goes to ``progress``
    (a ``ProgressBoard``), if any, as it is read."""
    def block(rows: list[dict]) -> pa.Table:
        if progress is not None:
            progress.listed.remote(sum(not row["skipped"] for row in rows))
        return table(rows, LISTED)

    counters: dict[str, int] = defaultdict(int)  # {index}: a file's position in its own folder
    rows: list[dict] = []
    for listed in iter_files(root, shard):
        if not wanted(listed.relative, include, exclude):
            continue
        image = is_image(listed.relative)
        if image:
            folder = posixpath.dirname(listed.relative)
            counters[folder] += 1
        rows.append(listed_row(root.join(listed.relative).uri, listed.relative, wishes, size=listed.size,
                               mtime=listed.mtime, index=counters[folder] if image else None, image=image))
        if len(rows) >= ROWS_PER_BLOCK:
            yield block(rows)
            rows = []
    if rows:
        yield block(rows)


class SourceListing(Datasource):
    """Ray Data datasource over a local folder or an S3 prefix; one read task per shard."""

    def __init__(self, root: Location, wishes: Wishes, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                 progress=None):
        self.root, self.wishes, self.include, self.exclude, self.progress = root, wishes, include, exclude, progress
        self.shards = shards(root)

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        return [
            ReadTask(functools.partial(read_shard, self.root, shard, self.include, self.exclude, self.wishes,
                                       self.progress),
                     BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None), schema=LISTED,
                     per_task_row_limit=per_task_row_limit)
            for shard in self.shards
        ]


def read_listing(listing: SourceListing):
    """The Ray Data dataset of ``listing``'s rows (``columns.LISTED``)."""
    import ray

    return ray.data.read_datasource(listing, num_cpus=LISTING_CPUS, concurrency=LISTING_TASKS)
