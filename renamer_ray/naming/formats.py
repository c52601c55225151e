"""File extension and MIME type for an image format sniffed by Pillow.

Format names are Pillow's ``Image.format`` strings; Pillow itself is not imported.
"""

from __future__ import annotations


class UnsupportedFormat(ValueError):
    """The sniffed image format is not one this project writes."""


# Pillow format name -> (canonical extension, MIME type).
_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "MPO": ("jpg", "image/jpeg"),  # multi-picture JPEG (many phone cameras)
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
    "HEIF": ("heic", "image/heic"),
    "AVIF": ("avif", "image/avif"),
}

SUPPORTED_FORMATS: frozenset[str] = frozenset(_FORMATS)

# Lowercase extensions (no dot) that suggest an image. Only for cheaply skipping
# obvious non-image keys when listing; the output extension always comes from
# the sniffed format.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {"jpg", "jpeg", "jpe", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"}
)


def _lookup(fmt: str | None) -> tuple[str, str]:
    try:
        return _FORMATS[(fmt or "").upper()]
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_FORMATS))
        raise UnsupportedFormat(
            f"unsupported image format {fmt!r}; supported: {supported}"
        ) from None


def extension_for(fmt: str | None) -> str:
    """Canonical lowercase extension (no dot) for a Pillow format name."""
    return _lookup(fmt)[0]


def content_type_for(fmt: str | None) -> str:
    """MIME type for a Pillow format name."""
    return _lookup(fmt)[1]


def file_name(stem: str, fmt: str | None) -> str:
    return f"{stem}.{extension_for(fmt)}"
