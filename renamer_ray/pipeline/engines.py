"""Which engine names a run's images, chosen in one place, and what it needs before the run starts.

The engines (each an ``infer.ModelStage``, same rows in and out):

- the service's warm namer (``infer.AskNamer``) when the run is given one (:class:`NamerRef`);
- else ``ENGINE``: the run's own actor pool (``transformers``: ``infer.ModelPool``), an
  OpenAI-compatible endpoint (``openai``: ``endpoint.AskEndpoint``) or Ray Data's vLLM processor
  (``vllm``: ``vllm_stage.VllmEngine``);
- none (``infer.NoModel``) when no template asks for {subject}.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from renamer_ray.config import Settings
from renamer_ray.model.checkpoint import fetch_checkpoint
from renamer_ray.pipeline.endpoint import AskEndpoint
from renamer_ray.pipeline.infer import AskNamer, ModelPool, ModelStage, NoModel
from renamer_ray.pipeline.vllm_stage import VllmEngine, check_gpus, check_vllm


@dataclass(frozen=True)
class NamerRef:
    """Where a run finds the warm namer: a Serve application and deployment name."""

    app: str = "renamer"
    deployment: str = "namer"


def own_engine(settings: Settings, *, uses_model: bool, namer: NamerRef | None) -> str | None:
    """The ``ENGINE`` a run starts for itself, or None: it asks the warm namer, or needs no model."""
    return settings.engine if uses_model and namer is None else None


def before_ray(settings: Settings, engine: str | None, announce: Callable[[str], None]) -> None:
    """What the run's own ``engine`` needs before Ray starts, so that what is missing costs a second:
    the transformers model downloaded on this machine, with its bar before Ray's output (not for a
    `ray job submit` job, whose nodes fetch it: RAY_ADDRESS); vLLM installed (``EngineUnavailable``)."""
    if engine == "transformers" and not os.environ.get("RAY_ADDRESS"):
        fetch_checkpoint(settings.model_id, announce=announce)
    elif engine == "vllm":
        check_vllm(settings)


def on_cluster(settings: Settings, engine: str | None) -> None:
    """What the run's own ``engine`` needs of the running cluster: GPUs for vLLM (``EngineUnavailable``)."""
    if engine == "vllm":
        import ray

        check_gpus(settings, ray.cluster_resources())


def naming_stage(settings: Settings, *, uses_model: bool = True, namer: NamerRef | None = None,
                 pool_size: int | None = None, progress=None) -> ModelStage:
    """The stage that names a run's images. ``uses_model``: some row's template asks for {subject};
    ``namer``: ask this running deployment; ``pool_size``: the run's own model actors (default: one
    per GPU, else 1); ``progress``: the run's ``ProgressBoard``, told what was named, asked what to stop."""
    if not uses_model:
        return NoModel()
    if namer is not None:
        return AskNamer(namer.app, namer.deployment, batch_size=settings.batch_size, progress=progress)
    if settings.engine == "openai":
        return AskEndpoint(settings, progress=progress)
    if settings.engine == "vllm":
        return VllmEngine(settings, progress=progress)
    return ModelPool(settings, pool_size, progress)
