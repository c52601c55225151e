"""Previews: a small upright JPEG of a decoded image, which any browser can draw (HEIC and TIFF it cannot).

Made from the pixels the decode stage has already decoded for the model (no second decode), so it is
upright (EXIF orientation applied) and carries no metadata of the file (no EXIF, no location).
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from renamer_ray.images.decoder import DecodedImage
from renamer_ray.model.vision import MIN_SIDE, canvas

__all__ = ["PREVIEW_CACHE_CONTROL", "PREVIEW_CONTENT_TYPE", "PREVIEW_MAX_BYTES", "PREVIEW_SIDE", "make_preview",
           "preview_size"]

PREVIEW_SIDE = 256                  # the preview's long side at most, in pixels (never larger than the image)
PREVIEW_MAX_BYTES = 64 * 1024       # a preview is never larger: lower qualities are tried, then none is made
PREVIEW_QUALITIES = (80, 55, 30)    # JPEG qualities, best first (random noise at 256 x 256 is ≈ 42 KB at 80)
PREVIEW_CONTENT_TYPE = "image/jpeg"
PREVIEW_CACHE_CONTROL = "private, max-age=86400"  # a job's preview never changes; only its owner sees it


def preview_size(width: int, height: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """(width, height) of the largest size with the aspect ratio of ``width`` x ``height`` whose long
    side is at most ``side``; never larger than the image, never below 1 pixel."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_preview(image: DecodedImage) -> bytes | None:
    """A JPEG of ``image`` whose long side is at most :data:`PREVIEW_SIDE` and whose size is at most
    :data:`PREVIEW_MAX_BYTES`, in the upright aspect ratio of the file (``image.meta``); None when no
    quality of :data:`PREVIEW_QUALITIES` fits the bound.

    The model's pixels may be rounded to its patch grid, or padded with white around a side below
    ``MIN_SIDE`` or an extreme aspect ratio (``vision.canvas``): the padding is cut off, and what is
    left is cropped to the file's own aspect ratio around its centre while scaled down."""
    pixels, (width, height) = image.to_pil(), (image.meta.width, image.meta.height)
    if min(width, height) < MIN_SIDE:  # the model's canvas, in the file's orientation
        long_side, short_side = canvas(max(width, height), min(width, height))
        canvas_w, canvas_h = (long_side, short_side) if width >= height else (short_side, long_side)
        keep_w = max(1, round(width * pixels.width / canvas_w))
        keep_h = max(1, round(height * pixels.height / canvas_h))
        left, top = (pixels.width - keep_w) // 2, (pixels.height - keep_h) // 2
        pixels = pixels.crop((left, top, left + keep_w, top + keep_h))
    limit = min(PREVIEW_SIDE, max(pixels.size))          # never scaled up beyond the decoded pixels
    size = preview_size(width, height, limit)
    small = ImageOps.fit(pixels, size, Image.Resampling.LANCZOS)
    for quality in PREVIEW_QUALITIES:
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() <= PREVIEW_MAX_BYTES:
            return out.getvalue()
    return None
