"""One rename run (`renamer-ray rename`): its places checked, its engine readied, its pipeline
(``build.py``) run over the streamed listing of SRC, then its manifest written and a summary.

An in-place run (``RunOptions.in_place``) writes the plan only; ``workflow/inplace.py`` makes the moves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import ray
from ray.exceptions import RayActorError, WorkerCrashedError

from renamer_ray.config import Settings
from renamer_ray.errors import one_line
from renamer_ray.io.storage import StorageConfig, any_file_under, make_dirs, size_of
from renamer_ray.naming import DEFAULT_STYLE, NameTemplate, NamingStyle
from renamer_ray.pipeline.build import PipelineOptions, build_dataset
from renamer_ray.pipeline.claims import interrupted
from renamer_ray.pipeline.decode import DECODE_TASK_RETRIES
from renamer_ray.pipeline.engines import NamerRef, before_ray, on_cluster, own_engine
from renamer_ray.pipeline.infer import MODEL_RESTARTS
from renamer_ray.pipeline.listing import SourceListing, read_listing
from renamer_ray.pipeline.places import CannotStart, Places, check_locations, earlier_manifest
from renamer_ray.pipeline.results import Results, RunSummary
from renamer_ray.pipeline.rows import Wishes
from renamer_ray.pipeline.vllm_stage import EngineUnavailable

if TYPE_CHECKING:  # Ray Data's own type (get_stats_summary), not exported by ray.data
    from ray.data._internal.stats import DatasetStatsSummary


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
    namer: NamerRef | None = None     # name with a running namer deployment instead of own actors
    flat: bool = False                # every output straight into DST (else SRC's folders are kept)
    redo: bool = False                # name everything afresh (into a DST without a manifest)
    manifest: str | None = None       # where the manifest goes (default: DST/manifest.jsonl)
    in_place: bool = False            # the plan of a rename where the files are (target = source; see inplace.py)


class ProcessLost(RuntimeError):
    """A worker process of the run ended more often than its budget allows (a model actor: see
    ``MODEL_RESTARTS``; a decode task: ``DECODE_TASK_RETRIES``): the run stops with this reason
    instead of retrying for ever. No manifest is written; a run again keeps the names already claimed."""


def ensure_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (set for `ray job submit` jobs), or start a local Ray.

    Never ``ray.init()`` with no address: that silently attaches to whatever `ray start` left on
    this machine (and hangs if that cluster has died)."""
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", logging_level=logging.WARNING,
                 log_to_driver=False)


def run(options: RunOptions, settings: Settings, on_progress: Callable[[dict[str, int]], None] | None = None,
        announce: Callable[[str], None] = logging.getLogger(__name__).info,
        on_stats: Callable[[DatasetStatsSummary], None] | None = None) -> RunSummary:
    """Rename every image under ``options.source`` into ``options.target``; write the manifest.
    ``on_progress``: called about twice a second with the run's own counts (``listed`` images so
    far, ``named`` by the model stage, ``done`` and ``failed`` out of the pipeline); Ray Data's
    per-operator bars are then off. ``announce``: told when the model is downloaded before Ray starts
    (a run on this machine only; see ``fetch_checkpoint``). ``on_stats``: given Ray Data's execution
    stats of the pipeline once every row is out (``benchmarks/stage_cpu.py`` reads its CPU per stage)."""
    template = NameTemplate.parse(options.template)  # fail before any work on a bad template
    started = time.monotonic()
    places = Places.of(options.source, options.target, options.manifest, in_place=options.in_place,
                       exclude=options.exclude, storage=StorageConfig.of(settings))
    check_locations(places.source, places.target, options.include, places.exclude)
    earlier = earlier_manifest(places, redo=options.redo)
    _start(settings, own_engine(settings, uses_model=template.uses("subject"), namer=options.namer), announce)
    plan_only = options.dry_run or options.in_place  # in place: the plan (the undo record) first, then the moves
    make_dirs(places.target)
    results = Results(places.target, in_place_root=places.source.uri if options.in_place else None)
    board = _quiet_board() if on_progress is not None else None
    wishes = Wishes(target_root=places.target.uri, prompt=options.user_prompt, template=options.template,
                    resume=not plan_only and interrupted(places.target), style=options.style, flat=options.flat,
                    earlier=earlier and earlier.uri, earlier_size=earlier and size_of(earlier))
    listed = read_listing(SourceListing(places.source, wishes, options.include, places.exclude, progress=board))
    dataset = build_dataset(listed, settings, PipelineOptions(
        uses_model=template.uses("subject"), namer=options.namer, pool_size=options.pool_size, dry_run=plan_only,
        max_file_bytes=options.max_file_bytes, progress=board,
        look_at_targets=earlier is not None or any_file_under(places.target)))
    with _reporting(board, results, on_progress, dataset), _stopped_by_lost_processes(namer=options.namer):
        for row in dataset.iter_rows():
            results.add(row)
    if on_stats is not None:
        on_stats(dataset.get_stats_summary())
    results.write_manifest(places.manifest, earlier, places.source.uri)
    results.clean_up(plan_only=plan_only)
    return results.summary(seconds=time.monotonic() - started, manifest=places.manifest,
                           source_root=places.source.uri)


def _start(settings: Settings, engine: str | None, announce: Callable[[str], None]) -> None:
    """Ray started (or joined) with what the run's own ``engine`` needs before and after that."""
    try:
        before_ray(settings, engine, announce)
        ensure_ray()
        on_cluster(settings, engine)
    except EngineUnavailable as exc:
        raise CannotStart(str(exc)) from None


@contextlib.contextmanager
def _reporting(board, results: Results, on_progress: Callable[[dict[str, int]], None] | None,
               dataset) -> Iterator[None]:
    """``on_progress`` told the run's counts about twice a second while the rows come out, and once
    more when every row is out (nothing without a ``board``)."""
    if board is None:
        yield
        return
    dataset.context.enable_progress_bars = False

    def progress_now() -> dict[str, int]:
        return {**ray.get(board.totals.remote()), "done": results.done, "failed": results.counts["error"]}

    finished = threading.Event()

    def report() -> None:
        while not finished.wait(0.5):
            on_progress(progress_now())

    watcher = threading.Thread(target=report, daemon=True, name="progress")
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()
    on_progress(progress_now())  # the last word: every row is out


@contextlib.contextmanager
def _stopped_by_lost_processes(*, namer: NamerRef | None) -> Iterator[None]:
    """A worker process that ended more often than its budget allows: :class:`ProcessLost`, with why."""
    try:
        yield
    except RayActorError as exc:
        if namer is not None:  # not the run's own model actors: said as Ray said it
            raise
        raise ProcessLost(f"a model actor's process ended {1 + MODEL_RESTARTS} times (a fatal device error ends it "
                          "on purpose, see its log; so does a lost node), more than its restart budget, so the run "
                          f"stopped. Ray reported: {one_line(exc)}") from exc
    except WorkerCrashedError as exc:
        raise ProcessLost(f"a worker process ended during each of the {1 + DECODE_TASK_RETRIES} attempts to read and "
                          "decode a batch of files (a decoder that crashed or exited on one of them, the memory "
                          "monitor, or lost nodes; see the Ray workers' logs), so the run stopped. Ray reported: "
                          f"{one_line(exc)}") from exc


def _quiet_board():
    """A ProgressBoard that keeps counts only, with Ray Data's own progress output silenced (the
    caller shows one bar instead of one per operator)."""
    from renamer_ray.pipeline.progress import open_board

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    return open_board(keep_names=False)
