"""One rename run as a Ray Data pipeline: list (streamed read) → decode (CPU) → name (actor pool)
→ rules → de-duplicate (shuffle by group key) → copy, then the manifest and a summary."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import ray
from ray.exceptions import RayActorError, WorkerCrashedError

from renamer_ray.config import Settings
from renamer_ray.io.storage import (Location, any_file_under, make_dirs, open_location, open_output, read_lines,
                                    remove_folder, write_text)
from renamer_ray.manifest import MANIFEST_NAME, PART_ROWS, PARTS_FOLDER, FileRecord, dump_lines, merge_sorted
from renamer_ray.model.vision import pixel_budget
from renamer_ray.naming import NameTemplate
from renamer_ray.pipeline.claims import interrupted
from renamer_ray.pipeline.decode import DECODE_ARGS, DECODE_TASK_RETRIES, decode_batch, decode_memory
from renamer_ray.pipeline.infer import (ASK_CONCURRENCY, ASK_CPUS, MODEL_RESTARTS, NameImages, ask_namer,
                                        skip_model)
from renamer_ray.pipeline.listing import SourceListing, Wishes
from renamer_ray.pipeline.names import dedupe_group, render_stems
from renamer_ray.pipeline.write import copy_batch

@dataclass(frozen=True)
class RunOptions:
    source: str
    target: str
    user_prompt: str | None = None
    template: str = "{subject}"
    dry_run: bool = False
    pool_size: int | None = None      # model actors; default: one per GPU, else 1
    max_file_bytes: int = 200 * 1024 * 1024
    include: tuple[str, ...] = ()     # globs on the path relative to the source
    exclude: tuple[str, ...] = ()
    namer: "NamerRef | None" = None   # name with a running namer deployment instead of own actors


class ProcessLost(RuntimeError):
    """A worker process of the run ended more often than its budget allows (a model actor: see
    ``MODEL_RESTARTS``; a decode task: ``DECODE_TASK_RETRIES``): the run stops with this reason
    instead of retrying for ever. No manifest is written; a run again keeps the names already claimed."""


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


@dataclass(frozen=True)
class NamerRef:
    """Where a run finds the warm namer: a Serve application and deployment name."""

    app: str = "renamer"
    deployment: str = "namer"


SHOWN_RECORDS = 1000


@dataclass
class RunSummary:
    records: list[FileRecord]         # the first SHOWN_RECORDS by source (all of them in the manifest)
    skipped: int                      # listed keys that are not image files by extension
    seconds: float
    manifest: str
    source_root: str = ""             # sources are shown relative to this
    ok: int = 0
    failed: int = 0
    resumed: int = 0                  # named by an interrupted earlier attempt; kept, not asked again

    @classmethod
    def of(cls, records: list[FileRecord], **kwargs) -> "RunSummary":
        return cls(records=records, ok=sum(r.status == "ok" for r in records),
                   failed=sum(r.status == "error" for r in records), **kwargs)


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (set for `ray job submit` jobs), or start a local Ray.

    Never ``ray.init()`` with no address: that silently attaches to whatever `ray start` left on
    this machine (and hangs if that cluster has died)."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", logging_level=logging.WARNING,
                 log_to_driver=False)


def _model_stage_args(settings: Settings, pool_size: int | None) -> tuple[dict, int | None]:
    """Actor pool for the namer, and torch threads per actor: GPU actors when the cluster has GPUs
    (or MODEL_DEVICE=cuda: an autoscaling cluster may have none until asked), else CPU actors that
    leave one CPU free for listing and decoding (actors holding every CPU starve the reads: ray#44687).
    With MODEL_ACTOR_RESOURCES the actors also need those custom resources, and CPU actors are sized
    to the largest node that offers them (not to the whole cluster, or they would never fit)."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    wanted = settings.model_actor_resources
    # Ray Data's default for actors is infinite restarts and infinite retries of each batch: a batch
    # whose every attempt ends the model's process (a broken device: DeviceLost → os._exit) would
    # reload the model for ever. Restarts are bounded instead (MODEL_RESTARTS per actor: each lost
    # node costs one); batch retries are not, since a batch sent while its actor restarts on a new
    # node fails at once ("temporarily unavailable") and would spend any small budget in seconds.
    common = dict(max_restarts=MODEL_RESTARTS, max_task_retries=-1, **({"resources": wanted} if wanted else {}))
    if settings.model_device == "cuda" or (gpus and settings.model_device != "cpu"):
        size = pool_size or settings.max_model_actors or max(gpus, 1)
        return dict(compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size), num_gpus=1, **common), None
    if wanted:
        hosts = [node["Resources"] for node in ray.nodes() if node["Alive"]
                 and all(node["Resources"].get(name, 0) >= amount for name, amount in wanted.items())]
        cpus = max([int(host.get("CPU", 1)) for host in hosts] or [1]) - 1
    else:
        cpus = int(resources.get("CPU", 1)) - 1
    size = pool_size or 1
    per_actor = max(1, max(1, cpus) // size)
    return dict(compute=ray.data.ActorPoolStrategy(size=size), num_cpus=per_actor, **common), per_actor


def _shuffle_partitions() -> int:
    """One de-duplication partition per cluster CPU (each is a reduce task), at most 64."""
    return max(1, min(64, int(ray.cluster_resources().get("CPU", 1))))


def build_dataset(listed: ray.data.Dataset, settings: Settings, *, uses_model: bool = True,
                  pool_size: int | None = None, dry_run: bool = False,
                  max_file_bytes: int = 200 * 1024 * 1024, progress=None,
                  namer: NamerRef | None = None) -> ray.data.Dataset:
    """decode → name → rules → de-duplicate → copy, over rows of ``columns.LISTED`` (each row says
    where its output goes, so one run can carry several jobs). ``uses_model``: some row's template
    asks for {subject}. ``namer``: ask this running deployment instead of starting model actors.
    ``progress``: a ``ProgressBoard`` the stages report to and take stop orders from."""
    # Task-based sort shuffle: no long-lived aggregator actors competing with the model for CPUs.
    ray.data.DataContext.get_current().shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    s3 = dict(region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    ds = listed.map_batches(decode_batch, batch_size=8, fn_kwargs=dict(
        s3=s3, max_pixels=pixel_budget(settings.model_id, settings.max_pixels), max_file_bytes=max_file_bytes,
        progress=progress, max_decode_pixels=settings.max_decode_pixels),
        memory=decode_memory(settings.max_decode_pixels), **DECODE_ARGS)
    if uses_model and namer is not None:
        # Tasks that wait on the warm deployment: no CPU of their own, a few batches in flight.
        ds = ds.map_batches(ask_namer, batch_size=settings.batch_size, batch_format="pyarrow", num_cpus=ASK_CPUS,
                            concurrency=ASK_CONCURRENCY,
                            fn_kwargs=dict(app=namer.app, deployment=namer.deployment, progress=progress))
    elif uses_model:
        stage, threads = _model_stage_args(settings, pool_size)
        ds = ds.map_batches(
            NameImages, batch_size=settings.batch_size, batch_format="pyarrow",
            fn_constructor_kwargs=dict(model_id=settings.model_id, max_pixels=settings.max_pixels,
                                       max_new_tokens=settings.max_new_tokens, device=settings.model_device,
                                       dtype=settings.model_dtype, threads=threads, progress=progress),
            **stage)
    else:
        ds = ds.map_batches(skip_model, batch_format="pyarrow")
    ds = ds.map_batches(render_stems, batch_format="pyarrow", fn_kwargs=dict(index_width=3))
    ds = ds.groupby("key", num_partitions=_shuffle_partitions()).map_groups(
        dedupe_group, batch_format="pyarrow", fn_kwargs=dict(s3=s3))
    if not dry_run:
        ds = ds.map_batches(copy_batch, batch_format="pyarrow", fn_kwargs=dict(s3=s3, progress=progress))
    return ds


def run(options: RunOptions, settings: Settings) -> RunSummary:
    """Rename every image under ``options.source`` into ``options.target``; write the manifest."""
    template = NameTemplate.parse(options.template)  # fail before any work on a bad template
    started = time.monotonic()
    loc = dict(region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    source, target = open_location(options.source, **loc), open_location(options.target, **loc)
    exclude = options.exclude
    if target.uri.startswith(source.uri.rstrip("/") + "/"):  # never rename our own outputs on a re-run
        exclude += (target.uri[len(source.uri.rstrip("/")) + 1:].rstrip("/") + "/*",)
    ensure_ray()
    make_dirs(target)
    parts_folder = target.join(PARTS_FOLDER)
    make_dirs(parts_folder)
    parts: list[Location] = []
    buffer: list[FileRecord] = []
    shown: list[FileRecord] = []
    counts = {"ok": 0, "error": 0, "skipped": 0}
    wishes = Wishes(target_root=target.uri, prompt=options.user_prompt, template=options.template,
                    resume=not options.dry_run and interrupted(target))
    listed = ray.data.read_datasource(SourceListing(source, wishes, options.include, exclude))
    resumed = 0

    def flush() -> None:
        """Write the buffer as one sorted part: the driver never holds more than PART_ROWS records."""
        nonlocal shown
        buffer.sort(key=lambda r: r.source)
        parts.append(parts_folder.join(f"part-{len(parts):06d}.jsonl"))
        write_text(parts[-1], dump_lines(buffer))
        shown = sorted(shown + buffer, key=lambda r: r.source)[:SHOWN_RECORDS]
        buffer.clear()

    dataset = build_dataset(listed, settings, uses_model=template.uses("subject"), pool_size=options.pool_size,
                            dry_run=options.dry_run, max_file_bytes=options.max_file_bytes, namer=options.namer)
    try:
        for row in dataset.iter_rows():
            counts[row["status"]] += 1
            resumed += bool(row["pinned"])
            if row["status"] != "skipped":
                buffer.append(FileRecord.model_validate(row))
                if len(buffer) >= PART_ROWS:
                    flush()
    except RayActorError as exc:
        if options.namer is not None:
            raise
        raise ProcessLost(f"a model actor's process ended {1 + MODEL_RESTARTS} times (a fatal device error ends it "
                          "on purpose, see its log; so does a lost node), more than its restart budget, so the run "
                          f"stopped. Ray reported: {_first_line(exc)}") from exc
    except WorkerCrashedError as exc:
        raise ProcessLost(f"a worker process ended during each of the {1 + DECODE_TASK_RETRIES} attempts to read and "
                          "decode a batch of files (a decoder that crashed or exited on one of them, the memory "
                          "monitor, or lost nodes; see the Ray workers' logs), so the run stopped. Ray reported: "
                          f"{_first_line(exc)}") from exc
    flush()
    manifest = target.join(MANIFEST_NAME)
    with open_output(manifest) as out:  # S3: a streamed multipart upload; locally: never through a symlink
        for line in merge_sorted(read_lines(part) for part in parts):
            out.write(line.encode("utf-8"))
    if options.dry_run:  # a plan only: the claims of an interrupted real run into DST stay for it
        for part in parts:
            part.filesystem.delete_file(part.path)
    if not options.dry_run or not any_file_under(parts_folder):
        remove_folder(parts_folder)
    return RunSummary(records=shown, skipped=counts["skipped"], ok=counts["ok"], failed=counts["error"], resumed=resumed,
                      seconds=time.monotonic() - started, manifest=manifest.uri, source_root=source.uri)
