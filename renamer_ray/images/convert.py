"""Pixel modes: any mode Pillow decodes to (palette, alpha, CMYK, 16-bit, 32-bit int, float...)
becomes 8-bit RGB, with transparency composited onto white."""

from __future__ import annotations

from PIL import Image

__all__ = ["WHITE", "to_rgb"]

#: The background for transparent pixels and for padding.
WHITE = (255, 255, 255)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB"; alpha is composited onto white.

    Raises ValueError for a mode Pillow cannot convert (e.g. "conversion from LAB to RGB not
    supported").
    """
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit grey: full range is 0..65535.
        im = im.convert("I").point(lambda v: v / 257).convert("L")
    elif im.mode in ("I", "F"):
        lo, hi = im.getextrema()
        if im.mode == "F" and lo >= 0 and hi <= 1:
            scale, offset = 255.0, 0.0  # normalised float data
        elif lo >= 0 and hi <= 255:
            scale, offset = 1.0, 0.0
        elif lo >= 0 and hi <= 65535:
            scale, offset = 1 / 257, 0.0
        else:  # arbitrary range: stretch to 0..255
            span = (hi - lo) or 1
            scale, offset = 255.0 / span, -lo * 255.0 / span
        im = im.point(lambda v: v * scale + offset).convert("L")
    if im.mode == "RGB":
        return im
    if im.has_transparency_data:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")
