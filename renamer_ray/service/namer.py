"""The warm model tier: the namer as a Ray Serve deployment, alive as long as the service.

One Qwen2-VL model per replica (one GPU per replica where the cluster has GPUs). Each call names one
image; ``@serve.batch`` merges the calls that arrive together — from every running job — into model
batches of up to BATCH_SIZE, so a small job's images ride along with a big job's instead of waiting
for a pipeline of their own. Calls are served in arrival order, and each pipeline run keeps only a
few batches in flight (``pipeline/infer.py``), so concurrent jobs share the replicas fairly.
Replicas autoscale between NAMER_MIN_REPLICAS and NAMER_MAX_REPLICAS (0 lets idle GPU nodes go).

A call carries decoded pixels (a pipeline run's rows, decoded by its Ray Data tasks), or the bytes
of an untrusted image (``{"image": …}``: what ``/v1/chat/completions`` sends): those are decoded
here, on the namer's node, with the pipeline's decoder and limits (MAX_DECODE_PIXELS, the model's
pixel bounds), DECODE_THREADS at a time per replica — never in the API's process on the head.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Awaitable, Callable

from ray import serve

from renamer_ray.config import Settings
from renamer_ray.images import DEFAULT_MAX_DECODE_PIXELS, ImageError, decode
from renamer_ray.pipeline.engines import NamerRef

log = logging.getLogger("ray.serve")    # Serve's logger: lines land in the replica's log (dashboard, Serve tab)
NAMER = NamerRef().deployment     # the deployment's name in the Serve application
APP = NamerRef().app              # the Serve application (ingress, namer, driver)
BATCH_WAIT_SECONDS = 0.01         # how long a first call waits for others to share its batch
# Images' bytes decoded at once per replica: each may take up to 2 × 4 bytes × MAX_DECODE_PIXELS (as much
# as one of a run's decode tasks reserves, pipeline/decode.py), so a replica's memory stays bounded.
DECODE_THREADS = 2


def decoded_row(request: dict, *, max_pixels: int, min_pixels: int | None, max_decode_pixels: int) -> dict:
    """A call carrying an image's bytes (``image``) as the row the model takes, decoded as the
    pipeline's decode stage does (``pipeline/decode.py``: the same decoder, limits and pixel grid).
    Raises ImageError for bytes that are not a usable image."""
    image = decode(request["image"], max_pixels=max_pixels, min_pixels=min_pixels,
                   max_decode_pixels=max_decode_pixels)
    return {"width": image.width, "height": image.height, "rgb": image.rgb, "date": None, "camera": None,
            "prompt": request.get("prompt"), "style": request.get("style")}


async def name_request(request: dict, name: Callable[[dict], Awaitable[dict]], *, executor: Executor | None = None,
                       **decode_options) -> dict:
    """``name(row)`` for one call. A pipeline run's row gets ``{"raw", "error"}``: what its columns
    hold. A call carrying an image's bytes is decoded first, in ``executor`` (``decode_options``:
    those of :func:`decoded_row`), and gets the model's whole answer, its token counts included (the
    chat endpoint's ``usage``); bytes that are not a usable image are answered
    ``{"raw": None, "error": why, "unusable": True}`` without reaching the model."""
    if "image" not in request:
        answer = await name(request)
        return {"raw": answer["raw"], "error": answer["error"]}
    try:
        row = await asyncio.get_running_loop().run_in_executor(
            executor, functools.partial(decoded_row, request, **decode_options))
    except ImageError as exc:
        return {"raw": None, "error": str(exc), "unusable": True}
    return await name(row)


def namer_options(settings: Settings) -> dict:
    """Serve options from the settings (a Serve config file may override them per deployment)."""
    gpus = 1 if settings.model_device == "cuda" else 0
    per_replica = max(2 * settings.batch_size, 8)
    options: dict = dict(
        ray_actor_options={"num_cpus": settings.namer_num_cpus, "num_gpus": gpus},
        max_ongoing_requests=per_replica, health_check_period_s=10, health_check_timeout_s=60,
        # A replica that stops (a downscale, a redeploy) has 20 s to finish the calls it holds.
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
    """Serve replica holding one loaded model. ``name(image)`` → ``{"raw", "error"}`` (and the token
    counts for an image's bytes); ``image`` is a decoded row or ``{"image": bytes, "prompt", "style"}``
    (see :func:`name_request`). No health check of its own: a device error ends the replica's process
    (``pipeline/infer.py``), and Serve restarts it."""

    def __init__(self, model_id: str, *, max_pixels: int, max_new_tokens: int, batch_size: int,
                 device: str = "auto", dtype: str = "auto", static_cache: bool = False, threads: int | None = None,
                 max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS):
        import torch

        from renamer_ray.model.namer import Qwen2VLNamer

        started = time.monotonic()
        if threads:
            torch.set_num_threads(threads)
        self.namer = Qwen2VLNamer(model_id, max_pixels=max_pixels, max_new_tokens=max_new_tokens,
                                  device=device, dtype=dtype, static_cache=static_cache)
        self._batch.set_max_batch_size(batch_size)
        # Decoded where the model runs, onto its pixel grid, as the pipeline's decode stage does.
        self.decode_options = dict(max_pixels=self.namer.max_pixels, min_pixels=self.namer.min_pixels,
                                   max_decode_pixels=max_decode_pixels)
        self.decoders = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="namer-decode")
        # One line per replica start: "GPU start-up paid once per replica" is counted from these.
        log.warning("namer replica started: %s on %s in %.1f s (pid %d)", model_id, self.namer.device,
                    time.monotonic() - started, os.getpid())

    async def name(self, request: dict) -> dict:
        """One image: its decoded row, or its bytes (decoded here first, off the event loop)."""
        return await name_request(request, self._batch, executor=self.decoders, **self.decode_options)

    # Two batches at once: the namer prepares one while the other is on the model (model/namer.py).
    @serve.batch(max_batch_size=12, batch_wait_timeout_s=BATCH_WAIT_SECONDS, max_concurrent_batches=2)
    async def _batch(self, requests: list[dict]) -> list[dict]:
        # The model call blocks: run it off the event loop so health checks and queued calls are
        # still answered while it works.
        return await asyncio.to_thread(self._name_all, requests)

    def _name_all(self, requests: list[dict]) -> list[dict]:
        from renamer_ray.pipeline.infer import name_rows

        return name_rows(self.namer, requests, usage=True)


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
        batch_size=settings.batch_size, device=settings.model_device, dtype=settings.model_dtype,
        static_cache=settings.model_static_cache, threads=threads,
        max_decode_pixels=settings.max_decode_pixels)
