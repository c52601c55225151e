"""Stage: name the decoded images with an OpenAI-compatible endpoint (``ENGINE=openai``).

:class:`AskEndpoint` is an ``infer.ModelStage`` like every engine (same rows in and out, so the
rules, the style, de-duplication and the manifest that follow are those of every engine): tasks that
send each image to a chat-completions endpoint (``model/openai_engine.py``). At most
``ENGINE_CONCURRENCY`` requests of a run are in flight, each retried at most ``ENGINE_RETRIES`` times.
"""

from __future__ import annotations

import functools

from renamer_ray.config import Settings
from renamer_ray.pipeline.infer import ASK_CPUS, ModelStage
from renamer_ray.pipeline.progress import report_named, stop_rows
from renamer_ray.pipeline.rows import is_open

ENDPOINT_TASKS = 2                # asking tasks a run may have at once (ENGINE_CONCURRENCY is shared by them)


@functools.cache
def endpoint_namer(url: str, model: str, api_key: str | None, concurrency: int, timeout: float, retries: int,
                   max_tokens: int, structured: bool):
    """This worker's client (one per process: it holds the connection pool and the threads)."""
    from renamer_ray.model.openai_engine import EndpointNamer

    return EndpointNamer(url, model, api_key=api_key, concurrency=concurrency, timeout=timeout, retries=retries,
                         max_tokens=max_tokens, structured=structured)


class AskEndpoint(ModelStage):
    """Send every open image of the batch to ``ENGINE_URL`` and wait for the answers. Rows whose job
    was stopped (cancelled, given up) are not sent and carry the reason as their error."""

    def __init__(self, settings: Settings, *, progress=None):
        self.tasks = min(ENDPOINT_TASKS, settings.engine_concurrency)
        self.client = (settings.engine_url, settings.endpoint_model, settings.engine_api_key,
                       max(1, settings.engine_concurrency // self.tasks), settings.engine_timeout_seconds,
                       settings.engine_retries, settings.max_new_tokens, settings.engine_structured)
        self.batch_size, self.progress = settings.batch_size, progress

    def rows(self, rows: list[dict]) -> list[dict]:
        from PIL import Image

        from renamer_ray.model.answers import ImageContext
        from renamer_ray.naming import NamingStyle

        stop_rows(rows, self.progress)
        todo = [row for row in rows if is_open(row)]
        answers = endpoint_namer(*self.client).name(
            [Image.frombytes("RGB", (row["width"], row["height"]), row["rgb"]) for row in todo],
            [ImageContext(date=row["date"], camera=row["camera"]) for row in todo], [row["prompt"] for row in todo],
            style=[NamingStyle.from_json(row.get("style")).for_model() for row in todo])
        for row, answer in zip(todo, answers):
            row.update(raw=answer.raw, error=answer.error)
        report_named(self.progress, rows)
        return rows

    def map_args(self) -> dict:
        # Tasks that wait on the endpoint: (almost) no CPU of their own, a bounded number at once.
        return dict(batch_size=self.batch_size, num_cpus=ASK_CPUS, concurrency=self.tasks)
