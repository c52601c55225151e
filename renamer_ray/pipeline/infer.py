"""Stage: the namer on an actor pool (one model per actor; GPU actors when the cluster has GPUs)."""

from __future__ import annotations

import os

import pyarrow as pa
from PIL import Image

from renamer_ray.pipeline.columns import ANSWERED, table


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
        from renamer_ray.model.namer import ImageContext

        rows = batch.to_pylist()
        todo = [row for row in rows if row["error"] is None and not row["skipped"] and not row["pinned"]]
        if not todo:
            return self._done(rows)
        by_prompt: dict[str | None, list[dict]] = {}
        for row in todo:  # rows of several jobs may share a batch: one model call per prompt
            by_prompt.setdefault(row["prompt"], []).append(row)
        for prompt, group in by_prompt.items():
            images = [Image.frombytes("RGB", (row["width"], row["height"]), row["rgb"]) for row in group]
            contexts = [ImageContext(date=row["date"], camera=row["camera"]) for row in group]
            try:
                answers = self.namer.name(images, contexts, prompt)
            except RuntimeError as exc:
                if "CUDA error" in str(exc):
                    # A broken CUDA context never recovers: leave so Ray restarts the actor (ray#59522).
                    os._exit(1)
                raise
            for row, answer in zip(group, answers):
                row["raw"], row["error"] = answer.raw, answer.error
        return self._done(rows)

    def _done(self, rows: list[dict]) -> pa.Table:
        if self.progress is not None:  # fire and forget: progress must never slow the model down
            named: dict[str, list[str]] = {}
            for row in rows:
                if not row["skipped"]:
                    named.setdefault(row["target_root"], []).append(row["relative"])
            self.progress.add.remote(named)
        return table(rows, ANSWERED)


def skip_model(batch: pa.Table) -> pa.Table:
    """Used instead of :class:`NameImages` when the template never asks for {subject}."""
    return table(batch.to_pylist(), ANSWERED)
