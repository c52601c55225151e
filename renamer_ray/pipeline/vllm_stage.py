"""Stage: name the decoded images with Ray Data's own vLLM processor (``ENGINE=vllm``).

:class:`VllmEngine` is an ``infer.ModelStage`` like every engine: the processor (``ray.data.llm``)
runs vLLM on the cluster's GPUs, with structured output (a regular expression) that keeps names in
the rules' words, and :class:`FromVllm` turns its answers back into rows. Needs the ``vllm`` extra
and a GPU; neither is imported before a run asks for it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from types import ModuleType

from renamer_ray.config import Settings
from renamer_ray.naming.rules import name_regex
from renamer_ray.pipeline.columns import ROW
from renamer_ray.pipeline.infer import ASK_CPUS, ModelStage
from renamer_ray.pipeline.progress import report_named
from renamer_ray.pipeline.rows import is_open
from renamer_ray.pipeline.stage import Stage

ROW_COLUMN = "renamer_row"        # the row's own columns, as JSON, while it passes through the processor


class EngineUnavailable(RuntimeError):
    """ENGINE names an engine this installation or cluster cannot run (one line, before Ray starts)."""


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

    reads = (ROW_COLUMN, "generated_text")
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
        report_named(self.progress, out)
        return out

    def map_args(self) -> dict:
        return dict(batch_size=None, num_cpus=ASK_CPUS)


class VllmEngine(ModelStage):
    """Ray Data's vLLM processor as the run's model stage (the processor owns its GPU actor pool).
    ``llm``: the module that builds the processor, ``ray.data.llm`` (None), or a stand-in with its
    ``vLLMEngineProcessorConfig`` and ``build_processor`` where vLLM cannot run (the tests' fake engine)."""

    def __init__(self, settings: Settings, *, progress=None, llm: ModuleType | None = None):
        self.settings, self.progress, self.llm = settings, progress, llm

    def processor(self):
        s = self.settings
        llm = self.llm
        if llm is None:
            check_vllm(s)
            from ray.data import llm
        import ray

        from renamer_ray.model.checkpoint import resolve_checkpoint

        gpus = int(ray.cluster_resources().get("GPU", 0))
        check_gpus(s, {"GPU": gpus})
        source = str(resolve_checkpoint(s.model_id)) if s.model_id == "toy-shapes" else s.model_id
        config = llm.vLLMEngineProcessorConfig(
            model_source=source,
            engine_kwargs=dict(max_model_len=8192, limit_mm_per_prompt={"image": 1},
                               mm_processor_kwargs={"max_pixels": s.max_pixels},
                               **({"dtype": s.model_dtype} if s.model_dtype != "auto" else {})),
            batch_size=s.batch_size,
            concurrency=s.max_model_actors or max(gpus, 1),
            prepare_multimodal_stage=dict(enabled=True, apply_sys_msg_formatting=True),
            chat_template_stage=True, tokenize_stage=True, detokenize_stage=True,
            should_continue_on_error=True)
        return llm.build_processor(config, preprocess=functools.partial(vllm_request, max_new_tokens=s.max_new_tokens),
                                   preprocess_map_kwargs=dict(num_cpus=ASK_CPUS))

    def apply(self, ds):
        """A composite stage: the processor's own operators answer each row's request, then
        :class:`FromVllm` turns the answers back into rows."""
        return FromVllm(self.progress).apply(self.processor()(ds))
