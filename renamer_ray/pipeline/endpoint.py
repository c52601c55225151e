"""The model stage for the other engines (``ENGINE``; see ``config.py`` and the README's "Other
inference engines"). Same rows in and out as ``infer.NameImages``: DECODED → ROW, ``raw`` (the
model's answer) or ``error`` for every open row, so the rules, the style, de-duplication and the
manifest that follow are those of every engine.

- :class:`AskEndpoint` (``ENGINE=openai``): tasks that send each image to an OpenAI-compatible
  chat-completions endpoint (``model/openai_engine.py``). At most ``ENGINE_CONCURRENCY`` requests of
  a run are in flight, each retried at most ``ENGINE_RETRIES`` times.
- :class:`VllmEngine` (``ENGINE=vllm``): Ray Data's own vLLM processor (``ray.data.llm``) on the
  cluster's GPUs, with structured output (a regular expression) that keeps names in the rules' words.
  Needs the ``vllm`` extra and a GPU; neither is imported before a run asks for it.
"""

from __future__ import annotations

import functools
import importlib.util
import json

from renamer_ray.config import Settings
from renamer_ray.naming.rules import name_regex
from renamer_ray.pipeline.columns import DECODED, PIXELS, ROW
from renamer_ray.pipeline.infer import ASK_CPUS, _report
from renamer_ray.pipeline.progress import stopped_reasons
from renamer_ray.pipeline.stage import Stage, is_open

ENDPOINT_TASKS = 2                # asking tasks a run may have at once (ENGINE_CONCURRENCY is shared by them)


class EngineUnavailable(RuntimeError):
    """ENGINE names an engine this installation or cluster cannot run (one line, before Ray starts)."""


@functools.cache
def endpoint_namer(url: str, model: str, api_key: str | None, concurrency: int, timeout: float, retries: int,
                   max_tokens: int, structured: bool):
    """This worker's client (one per process: it holds the connection pool and the threads)."""
    from renamer_ray.model.openai_engine import EndpointNamer

    return EndpointNamer(url, model, api_key=api_key, concurrency=concurrency, timeout=timeout, retries=retries,
                         max_tokens=max_tokens, structured=structured)


class AskEndpoint(Stage):
    """Send every open image of the batch to ``ENGINE_URL`` and wait for the answers. Rows whose job
    was stopped (cancelled, given up) are not sent and carry the reason as their error."""

    needs = tuple(DECODED.names)
    output = ROW
    drops = PIXELS

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

        stopped = stopped_reasons(self.progress)
        for row in rows:
            if is_open(row) and row["target_root"] in stopped:
                row["error"] = stopped[row["target_root"]]
        todo = [row for row in rows if is_open(row)]
        answers = endpoint_namer(*self.client).name(
            [Image.frombytes("RGB", (row["width"], row["height"]), row["rgb"]) for row in todo],
            [ImageContext(date=row["date"], camera=row["camera"]) for row in todo], [row["prompt"] for row in todo],
            style=[NamingStyle.from_json(row.get("style")).for_model() for row in todo])
        for row, answer in zip(todo, answers):
            row.update(raw=answer.raw, error=answer.error)
        _report(self.progress, rows)
        return rows

    def map_args(self) -> dict:
        # Tasks that wait on the endpoint: (almost) no CPU of their own, a bounded number at once.
        return dict(batch_size=self.batch_size, num_cpus=ASK_CPUS, concurrency=self.tasks)


# --- ENGINE=vllm -------------------------------------------------------------------------------------

ROW_COLUMN = "renamer_row"        # the row's own columns, as JSON, while it passes through the processor


def check_vllm(settings: Settings) -> None:
    """ENGINE=vllm can run here: the extra is installed (checked before Ray starts)."""
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailable("ENGINE=vllm needs vLLM, which this installation lacks: pip install "
                                "'renamer-ray[vllm]' (GPU nodes only), or use ENGINE=transformers or ENGINE=openai")


def check_gpus(settings: Settings, cluster: dict) -> None:
    """ENGINE=vllm runs on GPUs only: the cluster has one (or MODEL_DEVICE=cuda: an autoscaler will add one)."""
    if not cluster.get("GPU") and settings.model_device != "cuda":
        raise EngineUnavailable("ENGINE=vllm runs on GPUs only and this Ray cluster has none (set MODEL_DEVICE=cuda "
                                "if an autoscaler adds GPU nodes), or use ENGINE=transformers or ENGINE=openai")


def vllm_request(row: dict, *, max_new_tokens: int) -> dict:
    """A DECODED row → the processor's input: OpenAI-format ``messages`` with the image as a data URL,
    ``sampling_params`` (greedy, structured), and the row itself (without its pixels) as JSON. Rows that
    are not open carry a one-token request (every row passes through the processor)."""
    from PIL import Image

    from renamer_ray.model.answers import ImageContext
    from renamer_ray.model.openai_engine import chat_request, png_data_url
    from renamer_ray.naming import NamingStyle

    kept = {name: row.get(name) for name in ROW.names}
    if is_open(row):
        style = NamingStyle.from_json(row.get("style")).for_model()
        image = Image.frombytes("RGB", (row["width"], row["height"]), row["rgb"])
        messages = chat_request("", png_data_url(image), row["prompt"], ImageContext(row["date"], row["camera"]),
                                language=style.language, max_chars=style.max_chars, max_words=style.max_words,
                                max_tokens=max_new_tokens)["messages"]
        messages[0]["content"] = [{"type": "text", "text": messages[0]["content"]}]  # one shape for every message
        sampling = dict(temperature=0.0, max_tokens=max_new_tokens,
                        structured_outputs={"regex": name_regex(style.max_words, style.language)})
    else:
        messages = [{"role": "user", "content": [{"type": "text", "text": "-"}]}]
        sampling = dict(temperature=0.0, max_tokens=1, structured_outputs={"regex": "-"})
    return {ROW_COLUMN: json.dumps(kept), "messages": messages, "sampling_params": sampling}


class FromVllm(Stage):
    """The processor's output → ROW: ``raw`` from ``generated_text`` (its first line), or the row's
    error from the processor's ``__inference_error__`` (a failing image fails alone)."""

    output = ROW

    def __init__(self, progress=None):
        self.progress = progress

    def rows(self, rows: list[dict]) -> list[dict]:
        from renamer_ray.model.answers import first_line

        out = []
        for done in rows:
            row = json.loads(done[ROW_COLUMN])
            if is_open(row):
                if problem := done.get("__inference_error__"):
                    row["error"] = f"the model could not process this image: {str(problem)[:300]}"
                else:
                    row["raw"] = first_line(done.get("generated_text") or "")
            out.append(row)
        _report(self.progress, out)
        return out

    def map_args(self) -> dict:
        return dict(batch_size=None, num_cpus=ASK_CPUS)


class VllmEngine:
    """Ray Data's vLLM processor as the run's model stage (the processor owns its GPU actor pool)."""

    needs = tuple(DECODED.names)
    output = ROW

    def __init__(self, settings: Settings, progress=None):
        self.settings, self.progress = settings, progress

    def processor(self):
        s = self.settings
        check_vllm(s)
        import ray
        from ray.data.llm import vLLMEngineProcessorConfig, build_processor

        from renamer_ray.model.checkpoint import resolve_checkpoint

        gpus = int(ray.cluster_resources().get("GPU", 0))
        check_gpus(s, {"GPU": gpus})
        source = str(resolve_checkpoint(s.model_id)) if s.model_id == "toy-shapes" else s.model_id
        config = vLLMEngineProcessorConfig(
            model_source=source,
            engine_kwargs=dict(max_model_len=8192, limit_mm_per_prompt={"image": 1},
                               mm_processor_kwargs={"max_pixels": s.max_pixels},
                               **({"dtype": s.model_dtype} if s.model_dtype != "auto" else {})),
            batch_size=s.batch_size,
            concurrency=s.max_model_actors or max(gpus, 1),
            prepare_multimodal_stage=dict(enabled=True, apply_sys_msg_formatting=True),
            chat_template_stage=True, tokenize_stage=True, detokenize_stage=True,
            should_continue_on_error=True)
        max_new_tokens = s.max_new_tokens
        return build_processor(config, preprocess=functools.partial(vllm_request, max_new_tokens=max_new_tokens),
                               preprocess_map_kwargs=dict(num_cpus=ASK_CPUS))

    def apply(self, ds):
        return FromVllm(self.progress).apply(self.processor()(ds))
