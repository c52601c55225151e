"""Stage: name the decoded images. Two ways to reach a model, same rows in and out:

- :class:`NameImages` — an actor pool owned by the run (one model per actor): right for one big
  bulk run, which pays the model's start once and keeps it busy.
- :func:`ask_namer` — tasks that send each image to the service's warm ``namer`` Serve deployment
  (``service/namer.py``): no model start per run, and images of concurrent runs share model batches.
  A run keeps at most ``ASK_CONCURRENCY`` batches in flight, so runs share the namer fairly.
"""

from __future__ import annotations

import functools
import logging
import os

import pyarrow as pa
from ray.exceptions import RayActorError

from renamer_ray.pipeline.columns import ANSWERED, table
from renamer_ray.pipeline.progress import stopped_reasons

# What the namer needs of a decoded row (see ``columns.DECODED``).
IMAGE_KEYS = ("width", "height", "rgb", "date", "camera", "prompt")
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


def needs_model(row: dict) -> bool:
    return row["error"] is None and not row["skipped"] and not row["pinned"]


def name_rows(namer, rows: list[dict]) -> list[dict]:
    """``{"raw", "error"}`` for each row (keys ``IMAGE_KEYS``), in order; one model call per prompt
    (rows of several jobs may share a batch)."""
    from PIL import Image

    from renamer_ray.model.namer import DeviceLost, ImageContext

    answers: list[dict | None] = [None] * len(rows)
    by_prompt: dict[str | None, list[int]] = {}
    for number, row in enumerate(rows):
        by_prompt.setdefault(row["prompt"], []).append(number)
    for prompt, numbers in by_prompt.items():
        images = [Image.frombytes("RGB", (rows[n]["width"], rows[n]["height"]), rows[n]["rgb"]) for n in numbers]
        contexts = [ImageContext(date=rows[n]["date"], camera=rows[n]["camera"]) for n in numbers]
        try:
            named = namer.name(images, contexts, prompt)
        except DeviceLost as exc:
            # A broken CUDA context never recovers: leave so Ray restarts the actor or replica
            # (ray#59522); the rows are retried there. A clean exit would not be restarted (ray#62746).
            logging.getLogger(__name__).error("fatal device error, leaving so that Ray restarts this process: %s", exc)
            os._exit(1)
        for n, answer in zip(numbers, named):
            answers[n] = {"raw": answer.raw, "error": answer.error}
    return answers


def _report(progress, rows: list[dict]) -> None:
    """Tell the run's ProgressBoard which rows were named (fire and forget)."""
    if progress is None:
        return
    named: dict[str, list[str]] = {}
    for row in rows:
        if not row["skipped"]:
            named.setdefault(row["target_root"], []).append(row["relative"])
    progress.add.remote(named)


class NameImages:
    """Ray Data callable class: loads the model once per actor, names each batch."""

    def __init__(self, model_id: str, *, max_pixels: int, max_new_tokens: int, device: str, dtype: str,
                 threads: int | None = None, progress=None):
        """``progress``: an optional ``ProgressBoard`` handle told which rows each batch named."""
        import torch

        from renamer_ray.model.namer import Qwen2VLNamer

        if threads:
            torch.set_num_threads(threads)
        self.progress = progress
        self.namer = Qwen2VLNamer(model_id, max_pixels=max_pixels, max_new_tokens=max_new_tokens,
                                  device=device, dtype=dtype)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        todo = [row for row in rows if needs_model(row)]
        if todo:
            for row, answer in zip(todo, name_rows(self.namer, todo)):
                row.update(answer)
        _report(self.progress, rows)
        return table(rows, ANSWERED)


@functools.cache
def namer_handle(app: str, deployment: str):
    """This worker's handle to the warm namer (one per process: handles are long-lived)."""
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name=app)


def ask_namer(batch: pa.Table, *, app: str, deployment: str, progress=None) -> pa.Table:
    """Send every image of the batch to the namer deployment and wait for the answers. Rows whose
    job was stopped (cancelled, or its run given up by the watchdog) stop waiting within
    ``ASK_POLL_SECONDS`` and carry the reason as their error."""
    rows = batch.to_pylist()
    stopped = stopped_reasons(progress)
    for row in rows:
        if needs_model(row) and row["target_root"] in stopped:
            row["error"] = stopped[row["target_root"]]
    todo = [row for row in rows if needs_model(row)]
    handle = namer_handle(app, deployment)

    def ask(row: dict):
        return handle.name.remote({k: row[k] for k in IMAGE_KEYS})

    pending = [(row, ask(row)) for row in todo]
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
        stopped = stopped_reasons(progress)
        for row, response in [p for p in pending if p[0]["target_root"] in stopped]:
            response.cancel()
            row["error"] = stopped[row["target_root"]]
        pending = [p for p in pending if p[0]["target_root"] not in stopped]
    _report(progress, rows)
    return table(rows, ANSWERED)


def skip_model(batch: pa.Table) -> pa.Table:
    """Used instead of a model stage when no row's template asks for {subject}."""
    return table(batch.to_pylist(), ANSWERED)
