"""Image adapter: raw file bytes -> validated, model-ready RGB pixels plus metadata.

No I/O happens here: callers pass ``bytes``. Every failure caused by the input bytes is
reported as :class:`ImageError` with a message a person can act on. One concern per module:

- :mod:`.errors`: the ImageError family, its wording, the exceptions Pillow raises on bad bytes;
- :mod:`.sniff`: opening with supported plugins only, magic bytes, :func:`sniff_format`;
- :mod:`.exif`: orientation, capture date and camera from EXIF;
- :mod:`.convert`: any pixel mode -> RGB (palette, alpha on white, CMYK, 16-bit, float);
- :mod:`.decoder`: :func:`decode`, :class:`DecodedImage`, :class:`ImageMeta` and the memory limits.

The size pixels are scaled and padded to is the model's contract: :mod:`renamer_ray.model.vision`.
"""

from renamer_ray.images.decoder import (
    DEFAULT_MAX_DECODE_PIXELS,
    DEFAULT_MAX_IMAGE_PIXELS,
    REDUCED_DECODE_FORMATS,
    DecodedImage,
    ImageMeta,
    decode,
)
from renamer_ray.images.errors import ImageError, NotAnImage, UnreadableHeader
from renamer_ray.images.sniff import SUPPORTED_FORMATS, sniff_format
from renamer_ray.model.vision import MAX_ASPECT_RATIO, MIN_SIDE

__all__ = [
    "DEFAULT_MAX_DECODE_PIXELS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "MAX_ASPECT_RATIO",
    "MIN_SIDE",
    "REDUCED_DECODE_FORMATS",
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "ImageError",
    "ImageMeta",
    "NotAnImage",
    "UnreadableHeader",
    "decode",
    "sniff_format",
]
