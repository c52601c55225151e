"""The warm model tier: the namer as a Ray Serve deployment, alive as long as the service.

One Qwen2-VL model per replica (one GPU per replica where the cluster has GPUs). Each call names one
image; ``@serve.batch`` merges the calls that arrive together — from every running job — into model
batches of up to BATCH_SIZE, so a small job's images ride along with a big job's instead of waiting
for a pipeline of their own. Calls are served in arrival order, and each pipeline run keeps only a
few batches in flight (``pipeline/infer.py``), so concurrent jobs share the replicas fairly.
Replicas autoscale between NAMER_MIN_REPLICAS and NAMER_MAX_REPLICAS (0 lets idle GPU nodes go).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from ray import serve

from renamer_ray.config import Settings
from renamer_ray.pipeline.run import NamerRef

log = logging.getLogger("ray.serve")    # Serve's logger: lines land in the replica's log (dashboard, Serve tab)
NAMER = NamerRef().deployment     # the deployment's name in the Serve application
APP = NamerRef().app              # the Serve application (ingress, namer, driver)
BATCH_WAIT_SECONDS = 0.01         # how long a first call waits for others to share its batch


def namer_options(settings: Settings) -> dict:
    """Serve options from the settings (a Serve config file may override them per deployment)."""
    gpus = 1 if settings.model_device == "cuda" else 0
    per_replica = max(2 * settings.batch_size, 8)
    options: dict = dict(
        ray_actor_options={"num_cpus": settings.namer_num_cpus, "num_gpus": gpus},
        max_ongoing_requests=per_replica, health_check_period_s=10, health_check_timeout_s=60,
        # A replica loads the model before it is ready; on a GPU node that includes its start.
        graceful_shutdown_timeout_s=20)
    if settings.namer_min_replicas == settings.namer_max_replicas:
        options["num_replicas"] = settings.namer_max_replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": settings.namer_min_replicas, "max_replicas": settings.namer_max_replicas,
            "initial_replicas": settings.namer_min_replicas,
            "target_ongoing_requests": settings.batch_size, "upscale_delay_s": 5,
            "downscale_delay_s": 300}
    return options


@serve.deployment(name=NAMER)
class Namer:
    """Serve replica holding one loaded model. ``name(image)`` → ``{"raw", "error"}``."""

    def __init__(self, model_id: str, *, max_pixels: int, max_new_tokens: int, batch_size: int,
                 device: str = "auto", dtype: str = "auto", threads: int | None = None):
        import torch

        from renamer_ray.model.namer import Qwen2VLNamer

        started = time.monotonic()
        if threads:
            torch.set_num_threads(threads)
        self.namer = Qwen2VLNamer(model_id, max_pixels=max_pixels, max_new_tokens=max_new_tokens,
                                  device=device, dtype=dtype)
        self.name.set_max_batch_size(batch_size)
        self.images = 0
        # One line per replica start: "GPU start-up paid once per replica" is counted from these.
        log.warning("namer replica started: %s on %s in %.1f s (pid %d)", model_id, self.namer.device,
                    time.monotonic() - started, os.getpid())

    @serve.batch(max_batch_size=12, batch_wait_timeout_s=BATCH_WAIT_SECONDS)
    async def name(self, requests: list[dict]) -> list[dict]:
        # The model call blocks: run it off the event loop so health checks and queued calls are
        # still answered while it works.
        return await asyncio.to_thread(self._name_all, requests)

    def _name_all(self, requests: list[dict]) -> list[dict]:
        from renamer_ray.pipeline.infer import name_rows

        answers = name_rows(self.namer, requests)
        self.images += len(requests)
        return answers

    def check_health(self) -> None:
        """Serve restarts a replica whose check raises; a CUDA error leaves the process (infer.py)."""

    def stats(self) -> dict:
        return {"pid": os.getpid(), "device": self.namer.device, "images": self.images}


def namer_problem(app: str = APP, deployment: str = NAMER) -> str | None:
    """Why the namer cannot answer now (for the watchdog's reason), or None if a replica runs."""
    status = serve.status().applications.get(app)
    overview = status.deployments.get(deployment) if status else None
    if overview is None:
        return f"the namer deployment {app}/{deployment} does not exist"
    if overview.replica_states.get("RUNNING", 0):
        return None
    needs = overview.message or "no replica is running"
    return f"no namer replica could be scheduled ({needs.strip()[:200]})"


def bind_namer(settings: Settings, actor_options=lambda options: options):
    """The namer deployment bound with the model settings, ready to be part of an application;
    ``actor_options`` may add to its ``ray_actor_options`` (a runtime_env)."""
    threads = max(1, int(settings.namer_num_cpus)) if settings.model_device != "cuda" else None
    options = namer_options(settings)
    options["ray_actor_options"] = actor_options(options["ray_actor_options"])
    return Namer.options(**options).bind(
        settings.model_id, max_pixels=settings.max_pixels, max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size, device=settings.model_device, dtype=settings.model_dtype, threads=threads)
