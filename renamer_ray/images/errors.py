"""What can go wrong with one file's bytes, worded for a person: the :class:`ImageError` family,
the messages for oversized images, and the exceptions Pillow / pillow-heif raise on hostile bytes
(caught by name, never as ``Exception``, so that a bug of ours is not reported as a bad file)."""

from __future__ import annotations

import re
import struct

from PIL import Image

__all__ = [
    "EXIF_ERRORS",
    "FOREIGN_PLUGIN_ERRORS",
    "PILLOW_ERRORS",
    "ImageError",
    "NotAnImage",
    "UnreadableHeader",
    "bomb_error",
    "describe",
    "too_large",
]


class ImageError(ValueError):
    """The bytes of one file are not a usable image; the message says why."""


class NotAnImage(ImageError):
    """Empty, or not in any supported image format (as opposed to a damaged or huge image)."""


class UnreadableHeader(NotAnImage):
    """Starts like a supported format, but Pillow cannot read its header: not identifiable as an
    image at all (the API refuses it with 415), unlike a file whose header is fine and body damaged."""


#: What reading damaged or hostile bytes of a supported format raises, from Pillow's plugins and
#: pillow-heif / libavif (seen with tests/support/hostile.py, the fuzz tests and mutated files of
#: every supported format): OSError for truncated or broken streams ("image file is truncated",
#: "broken data stream"); SyntaxError for malformed headers and frames; ValueError, RuntimeError
#: and EOFError from libheif / libavif ("Invalid input", "Decoding of color planes failed",
#: "Unexpected end of file"); struct.error, IndexError, KeyError, TypeError, ZeroDivisionError and
#: OverflowError from header fields that do not add up; AssertionError from Pillow's own sanity
#: checks (a palette image without a palette).
PILLOW_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, RuntimeError, EOFError, struct.error, IndexError, KeyError,
    TypeError, ZeroDivisionError, OverflowError, AssertionError,
)

#: The same for every other Pillow plugin, tried only to name an unsupported format: some of them
#: also fail with AttributeError (Spider: "no attribute 'stkoffset'"), NotImplementedError (DDS; a
#: RuntimeError) or Pillow's decompression-bomb guard.
FOREIGN_PLUGIN_ERRORS: tuple[type[BaseException], ...] = (
    *PILLOW_ERRORS, AttributeError, Image.DecompressionBombError,
)

#: What reading one EXIF field can raise: SyntaxError / struct.error for a block that is not a TIFF
#: structure, ValueError / OverflowError for a sub-IFD pointer outside the block (a negative or
#: huge seek), ValueError for a PNG's hex "Raw profile type exif", OSError for a short read, and
#: TypeError / KeyError / IndexError / ZeroDivisionError for values of the wrong type or size.
EXIF_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, struct.error, TypeError, KeyError, IndexError,
    ZeroDivisionError, OverflowError,
)

_BOMB_RE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


def describe(exc: BaseException) -> str:
    """An exception's own words, or its type's name when it has none."""
    text = str(exc).strip()
    return text or type(exc).__name__


def too_large(width: int, height: int, limit: int) -> ImageError:
    return ImageError(
        f"image too large: {width}x{height} pixels exceeds the {limit:,}-pixel limit "
        "(decompression-bomb guard)"
    )


def bomb_error(exc: Exception) -> ImageError:
    """Reword Pillow's own DecompressionBombError (raised at open, before our check)."""
    m = _BOMB_RE.search(str(exc))
    if m:
        n, limit = int(m.group(1)), int(m.group(2))
        return ImageError(
            f"image too large: {n:,} pixels exceeds the {limit:,}-pixel limit "
            "(decompression-bomb guard)"
        )
    return ImageError(f"image too large: {exc} (decompression-bomb guard)")
