"""Stage: name the decoded images with the transformers engine or the service's warm namer.

Every engine is a :class:`ModelStage` — DECODED → ROW: ``raw`` (the model's answer) or ``error`` for
every open row; the pixels stay behind — and ``engines.naming_stage`` chooses which one a run uses:

- :class:`ModelPool` (``ENGINE=transformers``) — an actor pool owned by the run, each actor a
  :class:`NameImages` with its own model: right for one big bulk run, which pays the model's start
  once and keeps it busy.
- :class:`AskNamer` — tasks that send each image to the service's warm ``namer`` Serve deployment
  (``service/namer.py``): no model start per run, and images of concurrent runs share model batches.
  A run keeps at most ``ASK_CONCURRENCY`` batches in flight, so runs share the namer fairly.
- :class:`NoModel` — when no row's template asks for ``{subject}``.
- ``endpoint.AskEndpoint`` (``ENGINE=openai``) and ``vllm_stage.VllmEngine`` (``ENGINE=vllm``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

from dataclasses import dataclass

import ray
from ray.exceptions import RayActorError

from renamer_ray.config import Settings
from renamer_ray.pipeline.columns import PIXELS, ROW
from renamer_ray.pipeline.progress import NAMED, report_named, stop_rows
from renamer_ray.pipeline.rows import STATE, is_open
from renamer_ray.pipeline.stage import Stage

# What the namer needs of a decoded row (see ``columns.DECODED``).
IMAGE_KEYS = ("width", "height", "rgb", "date", "camera", "prompt", "style")
ASK_CONCURRENCY = 2               # batches one run may have in flight at the namer
# The asking tasks only wait, but a zero-CPU map stage costs ≈ 1 s of scheduling per run in Ray
# Data 2.60 (measured: 1.2 s → 0.25 s for a one-image run); a hundredth of a CPU avoids it.
ASK_CPUS = 0.01
ASK_POLL_SECONDS = 1.0            # how often a waiting batch checks whether its run was stopped
ASK_RETRIES_ON_REPLICA_LOSS = 8   # calls of one batch asked again after their replica died
# Restarts of one model actor of a bulk run (its process ended: a lost node, DeviceLost). Its
# batches wait for the restart and run again there, however often; once the budget is spent the
# actor stays dead and the run fails with the reason, instead of reloading the model for ever.
MODEL_RESTARTS = 3
GPU_ACTOR_CPUS = 1                # CPUs a GPU model actor reserves beside its GPU
# Batches a GPU model actor takes at once: the namer runs one on the GPU while it prepares the next
# (reading rows, templating, the processor) and decodes the last (model/namer.py, its two locks).
GPU_ACTOR_BATCHES = 2
# Rows a GPU actor takes at once where BATCH_SIZE is not set: the namer cuts them into model batches
# of what its card's free memory holds (model/memory.py), so a T4 and an H100 both stay full.
GPU_ROWS_PER_BATCH = 64


def name_rows(namer, rows: list[dict], *, usage: bool = False) -> list[dict]:
    """``{"raw", "error"}`` for each row (keys ``IMAGE_KEYS``), in order, from one model call whatever
    the rows' prompts, languages and limits (rows of several jobs may share a batch; the case is
    applied after the model). With ``usage``, also the tokens each answer took (``prompt_tokens``,
    ``completion_tokens``: what the chat endpoint reports)."""
    from renamer_ray.model.device import DeviceLost
    from renamer_ray.model.namer import ImageContext, pixels
    from renamer_ray.naming import NamingStyle

    try:
        named = namer.name([pixels(row["rgb"], row["width"], row["height"]) for row in rows],
                           [ImageContext(date=row["date"], camera=row["camera"]) for row in rows],
                           [row["prompt"] for row in rows],
                           style=[NamingStyle.from_json(row.get("style")).for_model() for row in rows])
    except DeviceLost as exc:
        # A broken CUDA context never recovers: leave so Ray restarts the actor or replica
        # (ray#59522); the rows are retried there. A clean exit would not be restarted (ray#62746).
        logging.getLogger(__name__).error("fatal device error, leaving so that Ray restarts this process: %s", exc)
        os._exit(1)
    return [dataclasses.asdict(answer) if usage else {"raw": answer.raw, "error": answer.error} for answer in named]


class ModelStage(Stage):
    """The contract of every engine's stage: the image and its context of each open row in, its
    ``raw`` answer or ``error`` out (reported to the run's board), the pixels left behind."""

    reads = (*IMAGE_KEYS, *STATE, *NAMED)
    drops = PIXELS
    output = ROW


class NameImages(ModelStage):
    """Ray Data callable class (an actor pool): loads the model once per actor, names each batch."""

    def __init__(self, model_id: str, *, max_pixels: int, max_new_tokens: int, device: str, dtype: str,
                 static_cache: bool = False, threads: int | None = None, progress=None):
        """``progress``: an optional ``ProgressBoard`` handle told which rows each batch named."""
        import torch

        from renamer_ray.model.namer import Qwen2VLNamer

        if threads:
            torch.set_num_threads(threads)
        self.progress = progress
        self.node = ray.get_runtime_context().get_node_id()  # each row it names says so (``node``)
        self.namer = Qwen2VLNamer(model_id, max_pixels=max_pixels, max_new_tokens=max_new_tokens,
                                  device=device, dtype=dtype, static_cache=static_cache)

    def rows(self, rows: list[dict]) -> list[dict]:
        todo = [row for row in rows if is_open(row)]
        if todo:
            for row, answer in zip(todo, name_rows(self.namer, todo)):
                row.update(answer, node=self.node)
        report_named(self.progress, rows)
        return rows


@dataclass
class ModelPool(ModelStage):
    """The run's own :class:`NameImages` actors, and how they are placed: GPU actors when the cluster
    has GPUs (or MODEL_DEVICE=cuda: an autoscaling cluster may have none until asked), else CPU actors
    that leave one CPU free for listing and decoding (actors holding every CPU starve the reads: ray#44687).
    With MODEL_ACTOR_RESOURCES the actors also need those custom resources; CPU actors are then one per
    node that offers them (Ray Data spreads a pool's actors over the nodes), each sized to the largest
    such node (not to the whole cluster, or they would never fit)."""

    settings: Settings
    pool_size: int | None = None      # actors; default: one per GPU, else one per node offering
                                      # MODEL_ACTOR_RESOURCES, else 1
    progress: object = None

    def udf(self):
        return NameImages  # Ray Data starts one in each actor, with map_args' fn_constructor_kwargs

    def map_args(self) -> dict:
        placement, threads = self.placement()
        s = self.settings
        return dict(batch_size=self.rows_per_batch, **placement, fn_constructor_kwargs=dict(
            model_id=s.model_id, max_pixels=s.max_pixels, max_new_tokens=s.max_new_tokens, device=s.model_device,
            dtype=s.model_dtype, static_cache=s.model_static_cache, threads=threads, progress=self.progress))

    @property
    def rows_per_batch(self) -> int:
        """BATCH_SIZE where it was set; else GPU actors take ``GPU_ROWS_PER_BATCH`` rows (their namer
        cuts them to what the card holds) and CPU actors ``BATCH_SIZE``'s default."""
        s = self.settings
        return GPU_ROWS_PER_BATCH if self.on_gpu and "batch_size" not in s.model_fields_set else s.batch_size

    @property
    def on_gpu(self) -> bool:
        """GPU actors: the cluster has GPUs (or MODEL_DEVICE=cuda asks an autoscaler for them). Without
        a running Ray (a pipeline only being described) only MODEL_DEVICE can say."""
        device = self.settings.model_device
        if device != "auto" or not ray.is_initialized():
            return device == "cuda"
        return bool(int(ray.cluster_resources().get("GPU", 0)))

    def placement(self) -> tuple[dict, int | None]:
        """``map_batches`` arguments of the pool, and torch threads per actor (CPU actors only)."""
        settings, resources = self.settings, ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        wanted = settings.model_actor_resources
        # Ray Data's default for actors is infinite restarts and infinite retries of each batch: a batch
        # whose every attempt ends the model's process (a broken device: DeviceLost → os._exit) would
        # reload the model for ever. Restarts are bounded instead (MODEL_RESTARTS per actor: each lost
        # node costs one); batch retries are not, since a batch sent while its actor restarts on a new
        # node fails at once ("temporarily unavailable") and would spend any small budget in seconds.
        common = dict(max_restarts=MODEL_RESTARTS, max_task_retries=-1, **({"resources": wanted} if wanted else {}))
        if self.on_gpu:
            concurrent = dict(max_concurrent_calls_per_actor=GPU_ACTOR_BATCHES, enable_true_multi_threading=True)
            if settings.max_model_actors and not self.pool_size:  # autoscaling asked for: grow on demand
                compute = ray.data.ActorPoolStrategy(min_size=1, max_size=settings.max_model_actors, **concurrent)
            else:  # a fixed pool: every actor loads the model once, at the start, and none waits to be added
                compute = ray.data.ActorPoolStrategy(size=self.pool_size or max(gpus, 1), **concurrent)
            # One CPU of its own for the actor's Python thread (batch assembly, the copy to the GPU):
            # decode tasks on the same node must not take it.
            return dict(compute=compute, num_gpus=1, num_cpus=GPU_ACTOR_CPUS, **common), None
        if wanted:
            hosts = [node["Resources"] for node in ray.nodes() if node["Alive"]
                     and all(node["Resources"].get(name, 0) >= amount for name, amount in wanted.items())]
            cpus = max([int(host.get("CPU", 1)) for host in hosts] or [1]) - 1
            size = self.pool_size or max(1, len(hosts))
            sharing = -(-size // max(1, len(hosts)))  # actors on one node
        else:
            cpus = int(resources.get("CPU", 1)) - 1
            size = sharing = self.pool_size or 1
        per_actor = max(1, max(1, cpus) // sharing)
        return dict(compute=ray.data.ActorPoolStrategy(size=size), num_cpus=per_actor, **common), per_actor


@functools.cache
def namer_handle(app: str, deployment: str):
    """This worker's handle to the warm namer (one per process: handles are long-lived)."""
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name=app)


class AskNamer(ModelStage):
    """Send every open image of the batch to the namer deployment and wait for the answers. Rows whose
    job was stopped (cancelled, or its run given up by the watchdog) stop waiting within
    ``ASK_POLL_SECONDS`` and carry the reason as their error."""

    def __init__(self, app: str, deployment: str, *, batch_size: int, progress=None):
        self.app, self.deployment, self.batch_size, self.progress = app, deployment, batch_size, progress

    def rows(self, rows: list[dict]) -> list[dict]:
        stop_rows(rows, self.progress)
        handle = namer_handle(self.app, self.deployment)

        def ask(row: dict):
            return handle.name.remote({k: row[k] for k in IMAGE_KEYS})

        pending = [(row, ask(row)) for row in rows if is_open(row)]
        lost = 0
        while pending:
            row, response = pending[0]
            try:
                row.update(response.result(timeout_s=ASK_POLL_SECONDS))
                pending.pop(0)
                continue
            except TimeoutError:
                pass
            except RayActorError:
                # The replica died with the call (node lost, process killed): Serve replaces it; ask
                # again, so that losing a replica costs the job a short wait, not an attempt.
                lost += 1
                if lost > ASK_RETRIES_ON_REPLICA_LOSS:
                    raise
                pending[0] = (row, ask(row))
                continue
            stopped = stop_rows([row for row, _ in pending], self.progress)
            for row, response in pending:
                if row["target_root"] in stopped:
                    response.cancel()
            pending = [p for p in pending if p[0]["target_root"] not in stopped]
        report_named(self.progress, rows)
        return rows

    def map_args(self) -> dict:
        # Tasks that wait on the warm deployment: (almost) no CPU of their own, a few batches in flight.
        return dict(batch_size=self.batch_size, num_cpus=ASK_CPUS, concurrency=ASK_CONCURRENCY)


class NoModel(ModelStage):
    """Used instead of a model stage when no row's template asks for {subject}: it reads nothing."""

    reads = ()

    def rows(self, rows: list[dict]) -> list[dict]:
        return rows
