"""One rename run as a Ray Data pipeline: list → decode (CPU) → name (actor pool) → rules →
de-duplicate (shuffle by group key) → copy, then the manifest and a summary."""

from __future__ import annotations

import logging
import os
import posixpath
import time
from dataclasses import dataclass

import ray

from renamer_ray.config import Settings
from renamer_ray.io.storage import Location, list_files, make_dirs, open_location, write_text
from renamer_ray.manifest import MANIFEST_NAME, FileRecord, dump_lines
from renamer_ray.naming import IMAGE_EXTENSIONS, NameTemplate
from renamer_ray.pipeline.decode import DECODE_ARGS, decode_batch
from renamer_ray.pipeline.infer import NameImages, skip_model
from renamer_ray.pipeline.names import dedupe_group, render_stems
from renamer_ray.pipeline.write import copy_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    source: str
    target: str
    user_prompt: str | None = None
    template: str = "{subject}"
    dry_run: bool = False
    pool_size: int | None = None      # model actors; default: one per GPU, else 1
    max_file_bytes: int = 200 * 1024 * 1024


@dataclass
class RunSummary:
    records: list[FileRecord]
    skipped: int                      # listed keys that are not image files by extension
    seconds: float
    manifest: str
    source_root: str = ""             # sources are shown relative to this

    @property
    def ok(self) -> int:
        return sum(r.status == "ok" for r in self.records)

    @property
    def failed(self) -> int:
        return sum(r.status == "error" for r in self.records)


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS, or start a local Ray instance."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, logging_level=logging.WARNING,
                 log_to_driver=False)


def _listing(source: Location) -> tuple[list[dict], int]:
    rows, skipped = [], 0
    for listed in list_files(source):
        extension = posixpath.splitext(listed.relative)[1].lstrip(".").lower()
        if extension not in IMAGE_EXTENSIONS:
            skipped += 1
            continue
        rows.append({"source": source.join(listed.relative).uri, "relative": listed.relative,
                     "size": listed.size, "mtime": listed.mtime})
    for index, row in enumerate(rows, start=1):
        row["index"] = index
    return rows, skipped


def _model_stage_args(settings: Settings, pool_size: int | None) -> dict:
    """Actor pool for the namer: GPU actors when the cluster has GPUs, else CPU actors that leave
    one CPU free for listing and decoding (actors holding every CPU starve the reads: ray#44687)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and settings.model_device != "cpu":
        size = pool_size or gpus
        return dict(compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size), num_gpus=1, threads=None)
    cpus = max(1, int(resources.get("CPU", 1)) - 1)
    size = pool_size or 1
    per_actor = max(1, cpus // size)
    return dict(compute=ray.data.ActorPoolStrategy(size=size), num_cpus=per_actor, threads=per_actor)


def build_dataset(rows: list[dict], source: Location, target: Location, settings: Settings,
                  options: RunOptions) -> ray.data.Dataset:
    template = NameTemplate.parse(options.template)
    # Task-based sort shuffle: no long-lived aggregator actors competing with the model for CPUs.
    ray.data.DataContext.get_current().shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    ds = ray.data.from_items(rows) if rows else ray.data.from_items([])
    ds = ds.map_batches(decode_batch, batch_size=8, fn_kwargs=dict(
        source=source, max_pixels=settings.max_pixels, max_file_bytes=options.max_file_bytes), **DECODE_ARGS)
    if template.uses("subject"):
        stage = _model_stage_args(settings, options.pool_size)
        threads = stage.pop("threads")
        ds = ds.map_batches(
            NameImages, batch_size=settings.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs=dict(model_id=settings.model_id, max_pixels=settings.max_pixels,
                                       max_new_tokens=settings.max_new_tokens, device=settings.model_device,
                                       dtype=settings.model_dtype, user_prompt=options.user_prompt,
                                       threads=threads),
            **stage)
    else:
        ds = ds.map_batches(skip_model, batch_format="pyarrow")
    index_width = max(3, len(str(len(rows))))
    ds = ds.map_batches(render_stems, batch_format="pyarrow",
                        fn_kwargs=dict(template=template, index_width=index_width))
    # Few partitions: each is a reduce task, and groups are small (see naming.dedupe.group_key).
    partitions = max(1, min(64, len(rows) // 5000 + 1))
    ds = ds.groupby("key", num_partitions=partitions).map_groups(dedupe_group, batch_format="pyarrow", fn_kwargs=dict(target=target))
    if not options.dry_run:
        ds = ds.map_batches(copy_batch, batch_format="pyarrow", fn_kwargs=dict(source=source, target=target))
    return ds


def run(options: RunOptions, settings: Settings) -> RunSummary:
    """Rename every image under ``options.source`` into ``options.target``; write the manifest."""
    NameTemplate.parse(options.template)  # fail before any work on a bad template
    started = time.monotonic()
    loc = dict(region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    source, target = open_location(options.source, **loc), open_location(options.target, **loc)
    rows, skipped = _listing(source)
    make_dirs(target)
    records: list[FileRecord] = []
    if rows:
        ensure_ray()
        ds = build_dataset(rows, source, target, settings, options)
        records = [FileRecord.model_validate(row) for row in ds.iter_rows()]
    records.sort(key=lambda r: r.source)
    manifest = target.join(MANIFEST_NAME)
    write_text(manifest, dump_lines(records))
    return RunSummary(records=records, skipped=skipped, seconds=time.monotonic() - started, manifest=manifest.uri,
                      source_root=source.uri)
