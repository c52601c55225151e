"""One rename run as a Ray Data pipeline: list (streamed read) → decode (CPU) → name (actor pool)
→ rules → de-duplicate (shuffle by group key) → copy, then the manifest and a summary."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import ray
from ray.exceptions import RayActorError, WorkerCrashedError

from renamer_ray.config import Settings
from renamer_ray.io.storage import (STORAGE_ERRORS, Location, any_file_under, exists, explain, list_files, make_dirs,
                                    open_location, open_output, read_lines, remove_folder, size_of, write_text)
from renamer_ray.records.manifest import (IN_PLACE_FOLDER, MANIFEST_NAME, PART_ROWS, PARTS_FOLDER, FileRecord, dump_lines,
                                  merge_sorted, parse_lines)
from renamer_ray.model.checkpoint import fetch_checkpoint
from renamer_ray.model.vision import pixel_bounds
from renamer_ray.naming import IMAGE_EXTENSIONS
from renamer_ray.naming import DEFAULT_STYLE, NameTemplate, NamingStyle
from renamer_ray.pipeline.claims import interrupted
from renamer_ray.pipeline.decode import DECODE_TASK_RETRIES, Decode, decode_cpus
from renamer_ray.pipeline.earlier import carry_over, refused_records, unreadable_line
from renamer_ray.pipeline.dedupe import Dedupe
from renamer_ray.pipeline.endpoint import AskEndpoint, EngineUnavailable, VllmEngine, check_gpus, check_vllm
from renamer_ray.pipeline.infer import MODEL_RESTARTS, AskNamer, ModelPool, NoModel
from renamer_ray.pipeline.listing import SourceListing, Wishes, is_image, wanted
from renamer_ray.pipeline.resume import ReadClaims
from renamer_ray.pipeline.stems import RenderStems
from renamer_ray.pipeline.write import ClaimNames, CopyFiles

@dataclass(frozen=True)
class RunOptions:
    source: str
    target: str
    user_prompt: str | None = None
    template: str = "{subject}"
    style: NamingStyle = DEFAULT_STYLE  # case, limits and language of the names
    dry_run: bool = False
    pool_size: int | None = None      # model actors; default: one per GPU, else 1
    max_file_bytes: int = 200 * 1024 * 1024
    include: tuple[str, ...] = ()     # globs on the path relative to the source
    exclude: tuple[str, ...] = ()
    namer: "NamerRef | None" = None   # name with a running namer deployment instead of own actors
    flat: bool = False                # every output straight into DST (else SRC's folders are kept)
    redo: bool = False                # name everything afresh (into a DST without a manifest)
    manifest: str | None = None       # where the manifest goes (default: DST/manifest.jsonl)
    in_place: bool = False            # rename where the files are (target = source; see inplace.py)


class ProcessLost(RuntimeError):
    """A worker process of the run ended more often than its budget allows (a model actor: see
    ``MODEL_RESTARTS``; a decode task: ``DECODE_TASK_RETRIES``): the run stops with this reason
    instead of retrying for ever. No manifest is written; a run again keeps the names already claimed."""


class CannotStart(ValueError):
    """The run did not start: SRC holds no files, or a place cannot be reached (credentials, bucket)."""


def check_locations(source: Location, target: Location, include: tuple[str, ...] = (),
                    exclude: tuple[str, ...] = ()) -> None:
    """Before Ray starts, so that what a user mistypes costs a second, not a cluster start: both
    places answer (credentials, buckets, the endpoint) and SRC holds an image the filters let
    through (the listing stops at the first one)."""
    def reach(role: str, location: Location, probe) -> bool:
        try:
            return probe()
        except FileNotFoundError:
            return False
        except STORAGE_ERRORS as exc:
            raise CannotStart(f"{role} {location.uri}: {explain(exc) or _first_line(exc)}") from None

    found = reach("SRC", source, lambda: any(is_image(listed.relative) and wanted(listed.relative, include, exclude)
                                             for listed in list_files(source)))
    reach("DST", target, lambda: any_file_under(target))
    if not found:
        raise CannotStart(f"no images under {source.uri}" + (" that the --include/--exclude filters let through"
                                                            if include or exclude else "")
                          + f" (it does not exist, or holds no {', '.join(sorted(IMAGE_EXTENSIONS))} files)")


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
    kept: int = 0                     # unchanged since an earlier run into DST named them (incremental)

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


def stages(settings: Settings, *, uses_model: bool = True, pool_size: int | None = None, dry_run: bool = False,
           max_file_bytes: int = 200 * 1024 * 1024, progress=None, namer: NamerRef | None = None,
           look_at_targets: bool = False) -> list:
    """The pipeline, in order; each stage declares its columns and how it runs (see ``stage.py``)."""
    storage = settings.storage
    low, high = pixel_bounds(settings.model_id, settings.max_pixels)  # decoded straight onto the model's grid
    if not uses_model:
        model = NoModel()
    elif namer is not None:
        model = AskNamer(namer.app, namer.deployment, batch_size=settings.batch_size, progress=progress)
    elif settings.engine == "openai":
        model = AskEndpoint(settings, progress=progress)
    elif settings.engine == "vllm":
        model = VllmEngine(settings, progress=progress)
    else:
        model = ModelPool(settings, pool_size, progress)
    cpus = decode_cpus(isinstance(model, ModelPool) and model.on_gpu)
    return [
        ReadClaims(storage, cpus=cpus),
        Decode(storage, max_pixels=high, min_pixels=low, max_file_bytes=max_file_bytes, cpus=cpus,
               max_decode_pixels=settings.max_decode_pixels, progress=progress),
        model,
        RenderStems(index_width=3),
        Dedupe(storage, look_at_targets=look_at_targets),
        *([] if dry_run else [ClaimNames(storage, progress=progress), CopyFiles(storage, progress=progress)]),
    ]


def build_dataset(listed: ray.data.Dataset, settings: Settings, **options) -> ray.data.Dataset:
    """claims → decode → name → rules → de-duplicate → claim → copy, over rows of ``columns.LISTED``
    (each row says where its output goes, so one run can carry several jobs). ``options``: those of
    :func:`stages` — ``uses_model`` (some row's template asks for {subject}), ``namer`` (ask this
    running deployment instead of starting model actors), ``progress`` (a ``ProgressBoard`` the
    stages report to and take stop orders from), ``dry_run`` (no claims, no copies),
    ``look_at_targets`` (DST already holds files: new names avoid them)."""
    ds = listed
    for stage in stages(settings, **options):
        ds = stage.apply(ds)
    return ds


def run(options: RunOptions, settings: Settings, on_progress: Callable[[dict[str, int]], None] | None = None,
        announce: Callable[[str], None] = logging.getLogger(__name__).info) -> RunSummary:
    """Rename every image under ``options.source`` into ``options.target``; write the manifest.
    ``on_progress``: called about twice a second with the run's own counts (``listed`` images so
    far, ``named`` by the model stage, ``done`` and ``failed`` out of the pipeline); Ray Data's
    per-operator bars are then off. ``announce``: told when the model is downloaded before Ray starts
    (a run on this machine only; see ``fetch_checkpoint``)."""
    template = NameTemplate.parse(options.template)  # fail before any work on a bad template
    started = time.monotonic()
    source = open_location(options.source, settings.storage)
    target = source if options.in_place else open_location(options.target, settings.storage)
    manifest = (open_location(options.manifest, settings.storage) if options.manifest
                else source.join(IN_PLACE_FOLDER, MANIFEST_NAME) if options.in_place else target.join(MANIFEST_NAME))
    exclude = options.exclude
    root = source.uri.rstrip("/") + "/"
    if options.in_place:  # the run's own files: its parts, and the manifest where it is under SRC
        exclude += (f"{PARTS_FOLDER}/*", f"{IN_PLACE_FOLDER}/*") + ((manifest.uri[len(root):],)
                                                                    if manifest.uri.startswith(root) else ())
    elif target.uri.startswith(root):  # never rename our own outputs on a re-run
        exclude += (target.uri[len(root):].rstrip("/") + "/*",)
    check_locations(source, target, options.include, exclude)
    plan_only = options.dry_run or options.in_place  # in place: the plan (the undo record) first, then the moves
    # A symbolic link planted at the manifest's name is never read through (and the new manifest replaces it).
    earlier = manifest if exists(manifest) and not os.path.islink(manifest.path) else None
    if earlier is not None and options.redo:
        raise CannotStart(f"--redo names everything afresh into a new DST, and {manifest.uri} records an earlier "
                          "run's names: choose another DST (or leave out --redo to keep those names and name only "
                          "new and changed files)")
    if earlier is not None and (problem := unreadable_line(earlier)):
        raise CannotStart(f"{manifest.uri} is not a manifest this program can read: {problem}. It records an "
                          "earlier run's names; move it away to name everything afresh, or give --manifest another "
                          "path")
    if earlier is not None:
        _warn_refused(earlier, source.uri, target.uri)
    own_engine = template.uses("subject") and options.namer is None
    if own_engine and settings.engine == "transformers" and not os.environ.get("RAY_ADDRESS"):
        fetch_checkpoint(settings.model_id, announce=announce)  # its download bar, before Ray's output
    try:
        if own_engine and settings.engine == "vllm":
            check_vllm(settings)
            ensure_ray()
            check_gpus(settings, ray.cluster_resources())
    except EngineUnavailable as exc:
        raise CannotStart(str(exc)) from None
    ensure_ray()
    make_dirs(target)
    parts_folder = target.join(PARTS_FOLDER)
    make_dirs(parts_folder)
    parts: list[Location] = []
    buffer: list[FileRecord] = []
    shown: list[FileRecord] = []
    counts = {"ok": 0, "error": 0, "skipped": 0}
    wishes = Wishes(target_root=target.uri, prompt=options.user_prompt, template=options.template,
                    resume=not plan_only and interrupted(target), style=options.style, flat=options.flat,
                    earlier=earlier and earlier.uri, earlier_size=earlier and size_of(earlier))
    board = _quiet_board() if on_progress is not None else None
    listed = ray.data.read_datasource(SourceListing(source, wishes, options.include, exclude, progress=board))
    resumed = kept = 0

    def flush() -> None:
        """Write the buffer as one sorted part: the driver never holds more than PART_ROWS records."""
        nonlocal shown
        buffer.sort(key=lambda r: r.source)
        parts.append(parts_folder.join(f"part-{len(parts):06d}.jsonl"))
        write_text(parts[-1], dump_lines(buffer))
        shown = sorted(shown + buffer, key=lambda r: r.source)[:SHOWN_RECORDS]
        buffer.clear()

    dataset = build_dataset(listed, settings, uses_model=template.uses("subject"), pool_size=options.pool_size,
                            dry_run=plan_only, max_file_bytes=options.max_file_bytes, namer=options.namer,
                            look_at_targets=earlier is not None or any_file_under(target), progress=board)
    finished = threading.Event()

    def progress_now() -> dict[str, int]:
        return {**ray.get(board.totals.remote()), "done": counts["ok"] + counts["error"], "failed": counts["error"]}

    if board is not None:
        dataset.context.enable_progress_bars = False

        def report() -> None:
            while not finished.wait(0.5):
                on_progress(progress_now())

        watcher = threading.Thread(target=report, daemon=True, name="progress")
        watcher.start()
    try:
        for row in dataset.iter_rows():
            counts[row["status"]] += 1
            kept += bool(row["kept"])
            resumed += bool(row["pinned"]) and not row["kept"]
            if options.in_place and row["kept"] and row["source"] == row["target"]:
                continue  # renamed by an earlier run: its record (with the original name) is carried over
            if row["status"] != "skipped":
                buffer.append(FileRecord.model_validate(row))
                if options.in_place and row["status"] == "ok":
                    buffer[-1].in_place, buffer[-1].root = True, source.uri
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
    finally:
        finished.set()
        if board is not None:
            watcher.join()
    if board is not None:  # the last word: every row is out
        on_progress(progress_now())
    flush()
    make_dirs(manifest.parent)
    with open_output(manifest) as out:  # S3: a streamed multipart upload; locally: never through a symlink
        for line in carry_over(merge_sorted(read_lines(part) for part in parts), earlier, source.uri, target.uri):
            out.write(line.encode("utf-8"))
    if plan_only:  # a plan only: the claims of an interrupted real run into DST stay for it
        for part in parts:
            part.filesystem.delete_file(part.path)
    if not plan_only or not interrupted(target):  # (pyarrow may leave an S3 "folder" marker behind)
        remove_folder(parts_folder)
    if options.in_place and not options.dry_run:
        shown = _rename_in_place(manifest, source, shown, counts, settings)
    return RunSummary(records=shown, skipped=counts["skipped"], ok=counts["ok"], failed=counts["error"], resumed=resumed,
                      kept=kept, seconds=time.monotonic() - started, manifest=manifest.uri, source_root=source.uri)


WARNED_RECORDS = 100  # warning lines about an earlier manifest's ignored records; then one line for the rest


def _warn_refused(earlier: Location, source_root: str, target_root: str) -> None:
    """One warning line per record of the earlier manifest this run ignores (``trust.py``: its source
    is not under SRC, its target not under DST, or its name not one the rules give), before Ray starts."""
    log = logging.getLogger(__name__)
    refused = 0
    for source, why in refused_records(earlier, source_root, target_root):
        refused += 1
        if refused <= WARNED_RECORDS:
            log.warning("%s: ignored the record of %r: %s", earlier.uri, source, why)
    if refused > WARNED_RECORDS:
        log.warning("%s: ignored %d more records the same way", earlier.uri, refused - WARNED_RECORDS)


def _quiet_board():
    """A ProgressBoard that keeps counts only, with Ray Data's own progress output silenced (the
    caller shows one bar instead of one per operator)."""
    from renamer_ray.pipeline.progress import ProgressBoard

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    return ProgressBoard.remote(keep_names=False)


def _rename_in_place(manifest: Location, source: Location, shown: list[FileRecord], counts: dict[str, int],
                     settings: Settings) -> list[FileRecord]:
    """The moves an in-place plan records, now that it is written; a file that could not be renamed
    keeps its name and becomes a failure, in the manifest too. Returns the records to show."""
    from renamer_ray.workflow.inplace import carry_out

    records = list(parse_lines("".join(read_lines(manifest))))
    errors = carry_out(records, settings, source.uri)
    if not errors:
        return shown

    def failed(record: FileRecord) -> FileRecord:
        if record.source not in errors:
            return record
        return record.model_copy(update=dict(status="error", error=errors[record.source], target=None, output=None,
                                             name=None, in_place=None))

    write_text(manifest, dump_lines(failed(r) for r in records))
    counts["ok"] -= len(errors)
    counts["error"] += len(errors)
    return [failed(r) for r in shown]
