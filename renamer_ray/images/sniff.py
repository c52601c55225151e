"""Opening: which format some bytes are in, from their header only (magic bytes, then Pillow's
supported plugins), and :func:`sniff_format` for callers that need nothing more."""

from __future__ import annotations

from io import BytesIO

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from renamer_ray.images.errors import (
    FOREIGN_PLUGIN_ERRORS,
    PILLOW_ERRORS,
    ImageError,
    NotAnImage,
    UnreadableHeader,
    bomb_error,
    describe,
)

# Pillow format names we accept (HEIC files report "HEIF"; multi-picture JPEGs "MPO"): exactly the
# formats the naming rules know an extension for.
from renamer_ray.naming.formats import SUPPORTED_FORMATS

pillow_heif.register_heif_opener()

__all__ = ["OPEN_ORDER", "SUPPORTED_FORMATS", "magic_format", "open_image", "sniff_format"]

# Pillow plugins tried, in order; only these are ever used to decode. (MPO has no
# opener of its own: the JPEG opener returns an MPO image when the file is one.)
OPEN_ORDER = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")


def open_image(data: bytes) -> ImageFile.ImageFile:
    """Identify ``data`` from its header (no pixel decode) with a supported plugin only."""
    if not data:
        raise NotAnImage("empty file (0 bytes)")
    try:
        return Image.open(BytesIO(data), formats=OPEN_ORDER)
    except Image.DecompressionBombError as exc:
        raise bomb_error(exc) from None
    except UnidentifiedImageError:
        pass
    except (*PILLOW_ERRORS, MemoryError) as exc:  # header recognised but broken
        raise UnreadableHeader(f"truncated or corrupt image data: {describe(exc)}") from None
    looks_like = magic_format(data)
    if looks_like:
        raise UnreadableHeader(
            f"truncated or corrupt image data: starts like a {looks_like} file "
            "but its header cannot be read"
        )
    # Not a supported format: find out whether it is some other image format, purely
    # to give a better message (header parse only; unsupported plugins never decode).
    other: str | None = None
    try:
        with Image.open(BytesIO(data)) as im:
            other = im.format
    except (*FOREIGN_PLUGIN_ERRORS, MemoryError):  # not one either (UnidentifiedImageError), or a broken one
        other = None
    if other and other not in SUPPORTED_FORMATS:
        raise NotAnImage(f"unsupported image format: {other}")
    raise NotAnImage("not an image: the bytes are not in any supported format")


def magic_format(data: bytes) -> str | None:
    """Name of the supported format whose signature ``data`` starts with, if any."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            return "HEIF"
    return None


def sniff_format(data: bytes) -> str:
    """Return Pillow's format name for ``data`` (e.g. "JPEG", "HEIF") from the header only.

    Cheap: nothing is decoded. Raises ImageError for empty, non-image or unsupported
    data (and for headers that already exceed Pillow's decompression-bomb limit).
    """
    with open_image(data) as im:
        fmt = im.format
    if fmt is None or fmt not in SUPPORTED_FORMATS:  # pragma: no cover - see open_image
        raise ImageError(f"unsupported image format: {fmt}")
    return fmt
