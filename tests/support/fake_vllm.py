"""A stand-in for vLLM behind Ray Data's LLM processor (``ray.data.llm``), for where vLLM cannot run
(not installed, no GPU). It has the two names ``vllm_stage.VllmEngine`` uses — given to the engine
as its ``llm`` — and runs:

- ``vLLMEngineProcessorConfig`` is Ray's own class, so an option its processor does not take fails;
- ``build_processor`` returns a processor that runs as Ray Data operators, as the real one does: the
  preprocess with its map arguments, then an engine that reads each request as vLLM would (chat
  messages with at most one image, as a PNG data URL; the sampling parameters) and answers within
  the request's structured-output pattern: the image's colour, e.g. ``red-image``. A request it cannot
  serve (a user text holding ``FAIL``) gets ``__inference_error__``, as with ``should_continue_on_error``.
"""

from __future__ import annotations

import base64
import functools
import io
import re

from PIL import Image, ImageStat
from ray.data.llm import vLLMEngineProcessorConfig  # the real one: its checks are part of the contract

FAIL = "FAIL"
COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 220), "yellow": (230, 210, 40),
           "black": (0, 0, 0), "white": (255, 255, 255)}


def build_processor(config: vLLMEngineProcessorConfig, preprocess=None, postprocess=None,
                    preprocess_map_kwargs: dict | None = None, **unused) -> "Processor":
    if not isinstance(config, vLLMEngineProcessorConfig) or preprocess is None or postprocess is not None:
        raise TypeError("the vLLM stage builds its processor from a vLLMEngineProcessorConfig and a preprocess only")
    return Processor(config, preprocess, preprocess_map_kwargs or {})


class Processor:
    def __init__(self, config: vLLMEngineProcessorConfig, preprocess, preprocess_map_kwargs: dict):
        self.config, self.preprocess, self.preprocess_map_kwargs = config, preprocess, preprocess_map_kwargs

    def __call__(self, ds):
        max_pixels = self.config.engine_kwargs["mm_processor_kwargs"]["max_pixels"]
        return ds.map(self.preprocess, **self.preprocess_map_kwargs).map(functools.partial(generate,
                                                                                            max_pixels=max_pixels))


def generate(row: dict, *, max_pixels: int) -> dict:
    """The row with what vLLM adds to it: ``generated_text`` and ``__inference_error__`` ("" when none)."""
    parts = [part for message in row["messages"] for part in message["content"]]
    texts = [part["text"] for part in parts if part["type"] == "text"]
    urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    sampling = row["sampling_params"]
    if len(urls) > 1:
        return {**row, "generated_text": "", "__inference_error__": "more than one image in a request"}
    if any(FAIL in text for text in texts):
        return {**row, "generated_text": "", "__inference_error__": "the engine could not serve this request"}
    text = _colour(urls[0], max_pixels) + "-image" if urls else "-"
    if not re.fullmatch(sampling["structured_outputs"]["regex"], text) or sampling["temperature"] != 0:
        raise ValueError(f"{text!r} is not what a greedy, structured request {sampling} gets")
    return {**row, "generated_text": text, "__inference_error__": ""}


def _colour(url: str, max_pixels: int) -> str:
    prefix = "data:image/png;base64,"
    if not url.startswith(prefix):
        raise ValueError(f"not a PNG data URL: {url[:40]}")
    image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):])))
    if image.format != "PNG" or image.width * image.height > max_pixels:
        raise ValueError(f"a {image.format} of {image.width}x{image.height}, over the engine's {max_pixels} pixels")
    mean = ImageStat.Stat(image.convert("RGB")).mean
    return min(COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], mean)))
