"""What every naming engine is told about an image besides its pixels, and what it answers (no torch
here: the OpenAI-compatible engine and the pipeline's endpoint stage use these without loading a model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class ImageContext:
    """What the namer knows about an image besides its pixels (EXIF facts the user may ask for)."""

    date: str | None = None
    camera: str | None = None


@dataclass(frozen=True)
class Naming:
    """The model's answer for one image: ``raw`` text, or ``error`` when this image failed."""

    raw: str | None = None
    error: str | None = None


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
