"""What every naming engine is told about an image besides its pixels, and what it answers (no torch
here: the OpenAI-compatible engine and the pipeline's endpoint stage use these without loading a model)."""

from __future__ import annotations

from dataclasses import dataclass


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
