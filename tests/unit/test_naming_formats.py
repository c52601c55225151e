"""Extension and content type from a sniffed Pillow format."""

from __future__ import annotations

import pytest

from renamer_ray.naming import (
    IMAGE_EXTENSIONS,
    SUPPORTED_FORMATS,
    UnsupportedFormat,
    content_type_for,
    extension_for,
    file_name,
)


@pytest.mark.parametrize(
    ("fmt", "ext", "mime"),
    [
        ("JPEG", "jpg", "image/jpeg"),
        ("MPO", "jpg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("WEBP", "webp", "image/webp"),
        ("GIF", "gif", "image/gif"),
        ("BMP", "bmp", "image/bmp"),
        ("TIFF", "tiff", "image/tiff"),
        ("HEIF", "heic", "image/heic"),
        ("AVIF", "avif", "image/avif"),
    ],
)
def test_format_table(fmt: str, ext: str, mime: str) -> None:
    assert extension_for(fmt) == ext
    assert content_type_for(fmt) == mime
    assert file_name("red-car", fmt) == f"red-car.{ext}"


def test_supported_formats_are_exactly_the_mapped_ones() -> None:
    assert SUPPORTED_FORMATS == {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"}


def test_format_name_case_is_ignored() -> None:
    assert extension_for("jpeg") == "jpg"


@pytest.mark.parametrize("fmt", ["PDF", "JPEG2000", "ICO", "", None])
def test_unsupported_formats_raise(fmt: str | None) -> None:
    with pytest.raises(UnsupportedFormat, match="supported"):
        extension_for(fmt)
    with pytest.raises(ValueError):
        content_type_for(fmt)
    with pytest.raises(UnsupportedFormat):
        file_name("x", fmt)


def test_listing_filter_never_skips_a_format_we_write() -> None:
    assert {extension_for(f) for f in SUPPORTED_FORMATS} <= IMAGE_EXTENSIONS
    assert {"jpeg", "jpe", "tif", "heif"} <= IMAGE_EXTENSIONS
    assert all(e == e.lower() and not e.startswith(".") for e in IMAGE_EXTENSIONS)
