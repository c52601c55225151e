"""Previews (renamer_ray/images/preview.py and the decode stage that writes them): a small upright
JPEG for every format a user uploads, bounded in pixels and in bytes; a file that cannot be decoded,
or a preview that cannot be written, costs the preview only."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from renamer_ray.images import decode
from renamer_ray.images import preview as preview_module
from renamer_ray.images.preview import PREVIEW_MAX_BYTES, PREVIEW_SIDE, make_preview, preview_size
from renamer_ray.io.storage import StorageConfig
from renamer_ray.pipeline.decode import Decode

pillow_heif.register_heif_opener()

SAMPLES = Path(__file__).parents[2] / "renamer_ray" / "data" / "samples"
MODEL_PIXELS = 786_432  # MAX_PIXELS' default: what the decode stage hands the model


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def opened(preview: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(preview))
    image.load()
    return image


def preview_of(data: bytes) -> bytes:
    preview = make_preview(decode(data, max_pixels=MODEL_PIXELS))
    assert preview is not None
    return preview


@pytest.mark.parametrize("name", ["IMG_0003.HEIC", "scan_0042.tiff", "wallpaper.png", "IMG_0001.JPG",
                                  "holiday/beach-day.webp"])
def test_every_bundled_format_gets_a_jpeg_preview_within_the_bounds(name):
    data = (SAMPLES / name).read_bytes()
    with Image.open(io.BytesIO(data)) as original:
        upright = original.size  # the bundled samples carry no EXIF rotation
    preview = preview_of(data)
    image = opened(preview)
    assert image.format == "JPEG" and image.mode == "RGB"
    assert max(image.size) <= PREVIEW_SIDE and len(preview) <= PREVIEW_MAX_BYTES
    assert image.size == preview_size(*upright)  # the file's own aspect ratio, not the model's grid


def test_a_heic_and_a_tiff_drawn_here_keep_their_colours():
    picture = Image.new("RGB", (300, 200), (200, 30, 30))
    for fmt in ("HEIF", "TIFF"):
        image = opened(preview_of(encoded(picture, fmt)))
        assert image.size == (256, 171)
        red, green, blue = image.getpixel((128, 85))
        assert red > 150 and green < 80 and blue < 80, fmt


def test_exif_orientation_is_applied():
    """Stored 400 x 200 with its left half red, EXIF orientation 6 (turn 90 degrees clockwise to
    show): the preview is upright, 128 x 256 with its top half red."""
    stored = Image.new("RGB", (400, 200), (0, 0, 230))
    stored.paste((230, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[274] = 6
    image = opened(preview_of(encoded(stored, "JPEG", exif=exif, quality=95)))
    assert image.size == (128, 256)
    top, bottom = image.getpixel((64, 40)), image.getpixel((64, 215))
    assert top[0] > 150 and top[2] < 80 and bottom[2] > 150 and bottom[0] < 80
    assert not image.getexif()  # nothing of the file's metadata travels into its preview


def test_a_huge_noisy_image_gives_a_bounded_preview():
    noise = Image.frombytes("RGB", (4000, 3000), os.urandom(4000 * 3000 * 3))
    preview = preview_of(encoded(noise, "JPEG", quality=95))
    assert opened(preview).size == (256, 192) and len(preview) <= PREVIEW_MAX_BYTES


def test_a_preview_is_never_larger_than_the_image():
    assert opened(preview_of(encoded(Image.new("RGB", (90, 60), "green"), "PNG"))).size == (90, 60)
    assert preview_size(10_000, 10) == (256, 1)


@pytest.mark.parametrize("size", [(30, 10), (10, 30), (8, 8), (6000, 20)])
def test_the_white_the_model_is_given_around_a_tiny_or_extreme_image_is_not_in_its_preview(size):
    """Half red, half blue: the preview's corners keep those colours, not the model's white padding."""
    picture = Image.new("RGB", size, (0, 0, 255))
    picture.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]) if size[0] > size[1] else (0, 0, size[0], size[1] // 2))
    image = opened(make_preview(decode(encoded(picture, "PNG"), max_pixels=MODEL_PIXELS, min_pixels=56 * 56)))
    assert image.size == preview_size(*size)
    first, last = image.getpixel((0, 0)), image.getpixel((image.width - 1, image.height - 1))
    assert first[0] > 200 and first[1] < 60 and last[2] > 200 and last[1] < 60, (first, last)


def test_no_preview_rather_than_one_over_the_byte_bound(monkeypatch):
    noise = Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3))
    monkeypatch.setattr(preview_module, "PREVIEW_MAX_BYTES", 2_000)
    assert make_preview(decode(encoded(noise, "PNG"), max_pixels=MODEL_PIXELS)) is None


def row(source: Path, preview_to: Path | None) -> dict:
    return dict(source=str(source), size=source.stat().st_size, mtime=None, target_root="unused", error=None,
                skipped=False, pinned=None, preview_to=str(preview_to) if preview_to else None)


def test_the_decode_stage_writes_previews_and_a_broken_file_or_place_costs_the_preview_only(tmp_path):
    heic, corrupt = tmp_path / "a.heic", tmp_path / "b.jpg"
    heic.write_bytes((SAMPLES / "IMG_0003.HEIC").read_bytes())
    whole = (SAMPLES / "IMG_0001.JPG").read_bytes()
    corrupt.write_bytes(whole[: len(whole) // 2])
    (tmp_path / "a-file").write_text("a file where a folder should be")
    rows = [row(heic, tmp_path / "previews" / "1.jpg"), row(corrupt, tmp_path / "previews" / "2.jpg"),
            row(heic, tmp_path / "a-file" / "3.jpg"), row(heic, None)]
    out = Decode(StorageConfig(), max_pixels=MODEL_PIXELS, max_file_bytes=10 ** 8).rows(rows)
    assert opened((tmp_path / "previews" / "1.jpg").read_bytes()).format == "JPEG"
    assert "truncated" in out[1]["error"] and not (tmp_path / "previews" / "2.jpg").exists()
    assert out[2]["error"] is None and out[2]["rgb"]  # no place for its preview: named all the same
    assert out[3]["error"] is None and sorted(p.name for p in (tmp_path / "previews").iterdir()) == ["1.jpg"]
