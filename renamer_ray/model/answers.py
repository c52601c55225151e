"""What every naming engine is told about an image besides its pixels, and what it answers (no torch
here: the OpenAI-compatible engine and the pipeline's endpoint stage use these without loading a model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence


@dataclass(frozen=True)
class ImageContext:
    """What the namer knows about an image besides its pixels (EXIF facts the user may ask for)."""

    date: str | None = None
    camera: str | None = None


@dataclass(frozen=True)
class Naming:
    """The model's answer for one image: ``raw`` text, or ``error`` when this image failed; and the
    tokens it took (0 where an engine does not count them)."""

    raw: str | None = None
    error: str | None = None
    prompt_tokens: int = 0       # what the model read: the prompt's text and the image's tokens
    completion_tokens: int = 0   # what it generated, its stop token included


def per_image(count: int, contexts: Sequence[ImageContext] | None, user_prompt, style) -> tuple[list, list, list]:
    """(contexts, prompts, styles), one of each for every one of ``count`` images: ``user_prompt``
    and ``style`` are one for every image, or a list or tuple of one per image (images of several
    jobs share a call); no ``contexts`` is an empty one for each."""
    contexts = list(contexts) if contexts is not None else [ImageContext()] * count
    prompts = list(user_prompt) if isinstance(user_prompt, (list, tuple)) else [user_prompt] * count
    styles = list(style) if isinstance(style, (list, tuple)) else [style] * count
    if not len(contexts) == len(prompts) == len(styles) == count:
        raise ValueError("one context, prompt and style per image is required")
    return contexts, prompts, styles


def first_line(text: str) -> str:
    """The name in an unconstrained answer: its first non-empty line (a chatty model may add more
    after it)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def generated_tokens(tokens: Sequence[int], stops: Collection[int]) -> int:
    """The tokens one generation made: up to its first stop token, which counts; the padding a
    batch adds after it does not."""
    return next((n + 1 for n, token in enumerate(tokens) if token in stops), len(tokens))
