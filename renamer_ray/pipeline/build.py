"""The stages of one pipeline, in order, and the Ray Data dataset they make of the listed rows.

claims → decode → name → rules → de-duplicate → claim → copy, over rows of ``columns.LISTED``
(each row says where its output goes, so one pipeline can carry several jobs: the driver's).
A run of a few files can go through the same stages in one process instead (:func:`run_in_process`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from renamer_ray.config import Settings
from renamer_ray.io.storage import StorageConfig
from renamer_ray.model.vision import pixel_bounds
from renamer_ray.pipeline.decode import Decode, decode_cpus
from renamer_ray.pipeline.dedupe import Dedupe
from renamer_ray.pipeline.engines import NamerRef, naming_stage
from renamer_ray.pipeline.infer import ModelPool
from renamer_ray.pipeline.resume import ReadClaims
from renamer_ray.pipeline.stage import Stage
from renamer_ray.pipeline.stems import RenderStems
from renamer_ray.pipeline.write import ClaimNames, CopyFiles


@dataclass(frozen=True)
class PipelineOptions:
    """What shapes a pipeline beyond the settings."""

    uses_model: bool = True           # some row's template asks for {subject} (else no model stage runs)
    namer: NamerRef | None = None     # ask this running deployment instead of the run's own engine
    pool_size: int | None = None      # the run's own model actors; default: one per GPU, else 1
    dry_run: bool = False             # a plan: no claims, no copies
    max_file_bytes: int = 200 * 1024 * 1024
    look_at_targets: bool = False     # DST already holds files: new names avoid them
    progress: object = None           # a ``ProgressBoard`` the stages report to and take stop orders from


def stages(settings: Settings, options: PipelineOptions = PipelineOptions()) -> list[Stage]:
    """The pipeline, in order; each stage declares its columns and how it runs (see ``stage.py``)."""
    storage, progress = StorageConfig.of(settings), options.progress
    low, high = pixel_bounds(settings.model_id, settings.max_pixels)  # decoded straight onto the model's grid
    model = naming_stage(settings, uses_model=options.uses_model, namer=options.namer, pool_size=options.pool_size,
                         progress=progress)
    cpus = decode_cpus(isinstance(model, ModelPool) and model.on_gpu)
    return [
        ReadClaims(storage, cpus=cpus, max_decode_pixels=settings.max_decode_pixels),
        Decode(storage, max_pixels=high, min_pixels=low, max_file_bytes=options.max_file_bytes, cpus=cpus,
               max_decode_pixels=settings.max_decode_pixels, progress=progress),
        model,
        RenderStems(index_width=3),
        Dedupe(storage, look_at_targets=options.look_at_targets),
        *([] if options.dry_run else [ClaimNames(storage, progress=progress), CopyFiles(storage, progress=progress)]),
    ]


def build_dataset(listed, settings: Settings, options: PipelineOptions = PipelineOptions()):
    """The Ray Data dataset of ``listed`` (a dataset of ``columns.LISTED`` rows) through :func:`stages`:
    ``columns.RESULT`` rows, one per listed row."""
    dataset = listed
    for stage in stages(settings, options):
        dataset = stage.apply(dataset)
    return dataset


def run_in_process(listed: pa.Table, settings: Settings, options: PipelineOptions = PipelineOptions(),
                   seconds: dict[str, float] | None = None) -> pa.Table:
    """``listed`` through the same :func:`stages`, each called once in this process, without Ray
    Data: for a run of a few files, whose Ray Data tasks would each wait for a CPU (the service's
    small-job lane). A stage with ``group_by`` is called once per group, as its shuffle would.
    ``seconds``: filled with each stage's wall-clock time."""
    batch, seconds, pipeline = listed, {} if seconds is None else seconds, stages(settings, options)
    if own := [stage.__name__ for stage in pipeline if stage.udf() is not stage]:
        raise ValueError(f"{', '.join(own)} runs in actors of its own, not in this process: ask a running namer")
    for stage in pipeline:
        started = time.perf_counter()
        batch = _through(stage, batch)
        seconds[stage.__name__] = time.perf_counter() - started
    return batch


def _through(stage, batch: pa.Table) -> pa.Table:
    """One stage over the whole batch (a grouping stage: over each of its groups, in key order)."""
    if stage.group_by is None or not batch.num_rows:
        return stage(batch)
    keys = batch.column(stage.group_by)
    return pa.concat_tables([stage(batch.filter(pc.equal(keys, key))) for key in sorted(set(keys.to_pylist()))])
