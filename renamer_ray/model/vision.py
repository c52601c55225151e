"""Qwen2-VL's image contract: what the vision tower accepts, as plain arithmetic (no torch here).

- Patch geometry: 14-px patches, merged 2 x 2, so the processor works on a 28-px unit; it refuses
  images with a side below :data:`MIN_SIDE` or a long/short ratio above :data:`MAX_ASPECT_RATIO`.
- The resize plan (:func:`plan`): the largest size that keeps the aspect ratio, is never upscaled,
  and, once padded to meet those limits (:func:`canvas`), fits a pixel budget.
- The pixel bounds (:func:`pixel_bounds`, :func:`pixel_budget`): the one place that reads a
  checkpoint's ``size.shortest_edge`` / ``size.longest_edge`` (``processor_config.json``), so the
  decode stage and the namer use the same numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping

from renamer_ray.model.checkpoint import resolve_checkpoint

__all__ = [
    "DEFAULT_MIN_PIXELS",
    "MAX_ASPECT_RATIO",
    "MERGE_SIZE",
    "MIN_SIDE",
    "PATCH_SIZE",
    "UNIT",
    "bounds",
    "canvas",
    "checkpoint_size",
    "pixel_bounds",
    "pixel_budget",
    "plan",
    "grid_size",
    "plan_on_grid",
]

#: Side of one ViT patch, in pixels ...
PATCH_SIZE = 14
#: ... and how many patches (per side) are merged into one visual token.
MERGE_SIZE = 2
#: The processor's resize unit: one merged patch, 28 px.
UNIT = PATCH_SIZE * MERGE_SIZE
#: Qwen2-VL's processor rejects images with a side below this many pixels ...
MIN_SIDE = UNIT
#: ... or with a long/short side ratio above this.
MAX_ASPECT_RATIO = 200
#: The processor's own lower bound when a checkpoint names none (``size.shortest_edge``): 56 x 56.
DEFAULT_MIN_PIXELS = 56 * 56


# --------------------------------------------------------------------------- resize plan


def canvas(long_side: int, short_side: int) -> tuple[int, int]:
    """Padded (long, short) so both sides are >= MIN_SIDE and the ratio <= MAX_ASPECT_RATIO."""
    long_c = max(long_side, MIN_SIDE)
    short_c = max(short_side, MIN_SIDE, math.ceil(long_c / MAX_ASPECT_RATIO))
    return long_c, short_c


def plan(width: int, height: int, max_pixels: int) -> tuple[int, int, int, int]:
    """Return (content_w, content_h, canvas_w, canvas_h).

    The content keeps the aspect ratio and is never upscaled; it is the largest size
    whose padded canvas fits in ``max_pixels`` (which must be at least ``MIN_SIDE ** 2``).
    """
    swap = height > width
    long0, short0 = (height, width) if swap else (width, height)

    def sizes(long_side: int) -> tuple[int, int, int, int]:
        short_side = max(1, min(long_side, round(long_side * short0 / long0)))
        return (long_side, short_side, *canvas(long_side, short_side))

    def fits(long_side: int) -> bool:
        _, _, lc, sc = sizes(long_side)
        return lc * sc <= max_pixels

    if fits(long0):
        best = long0
    else:  # canvas area is monotone in the long side: binary search the largest fit
        lo, hi = 1, long0  # fits(1) holds because max_pixels >= MIN_SIDE**2
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        best = lo
    cl, cs, kl, ks = sizes(best)
    return (cs, cl, ks, kl) if swap else (cl, cs, kl, ks)


def grid_size(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) the processor resizes an image to: both multiples of :data:`UNIT`, the pixel
    count within the bounds, the aspect ratio kept as closely as can be (Qwen2-VL's ``smart_resize``,
    the same arithmetic; a unit test holds them equal)."""
    h_bar, w_bar = round(height / UNIT) * UNIT, round(width / UNIT) * UNIT
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(UNIT, math.floor(height / beta / UNIT) * UNIT)
        w_bar = max(UNIT, math.floor(width / beta / UNIT) * UNIT)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / UNIT) * UNIT, math.ceil(width * beta / UNIT) * UNIT
    return h_bar, w_bar


def plan_on_grid(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int, int, int]:
    """:func:`plan`, then onto the patch grid: (content_w, content_h, canvas_w, canvas_h) where the
    canvas is what the processor would resize :func:`plan`'s canvas to (:func:`grid_size`), so
    resizing once to this content and padding gives the model's input with no second resample."""
    cw, ch, kw, kh = plan(width, height, max_pixels)
    gh, gw = grid_size(kh, kw, min_pixels, max_pixels)
    for _ in range(3):  # smart_resize's float rounding can overshoot a tiny image past max_pixels
        if (settled := grid_size(gh, gw, min_pixels, max_pixels)) == (gh, gw):
            break         # (38 x 38 → 84 x 84 > 6,272), which the processor would shrink again
        gh, gw = settled
    return max(1, min(gw, round(cw * gw / kw))), max(1, min(gh, round(ch * gh / kh))), gw, gh


# --------------------------------------------------------------------------- pixel bounds


def bounds(size: Mapping[str, int] | None, max_pixels: int) -> tuple[int, int]:
    """(min_pixels, max_pixels) for a processor whose ``size`` setting is ``size``: MAX_PIXELS, or
    less if the checkpoint caps it (``longest_edge``; the toy was trained on small images), and the
    checkpoint's ``shortest_edge`` (else :data:`DEFAULT_MIN_PIXELS`)."""
    size = size or {}
    return (int(size.get("shortest_edge", DEFAULT_MIN_PIXELS)),
            min(max_pixels, int(size.get("longest_edge", max_pixels))))


def checkpoint_size(model_id: str) -> dict[str, int]:
    """A local checkpoint's processor ``size`` setting, from its ``processor_config.json``; empty
    for hub ids (not looked up: no network at run time) and for folders without that file."""
    config = Path(resolve_checkpoint(model_id)) / "processor_config.json"
    if not config.is_file():
        return {}
    return dict(json.loads(config.read_text()).get("image_processor", {}).get("size", {}))


def pixel_bounds(model_id: str, max_pixels: int) -> tuple[int, int]:
    """(min_pixels, max_pixels) of ``model_id`` as read from its local checkpoint (see :func:`bounds`)."""
    return bounds(checkpoint_size(model_id), max_pixels)


def pixel_budget(model_id: str, max_pixels: int) -> int:
    """Pixels per image worth decoding: MAX_PIXELS, or less if a local checkpoint's processor caps
    it (the toy's 6,272), so the decode stage never ships pixels the processor would throw away.
    Hub ids are not looked up (no network at run time): MAX_PIXELS applies."""
    return pixel_bounds(model_id, max_pixels)[1]
