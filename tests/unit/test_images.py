"""Tests for renamer_ray.images: every fixture is generated here with Pillow."""

from __future__ import annotations

import io
import os
import pickle
import random
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from renamer_ray.images import (
    SUPPORTED_FORMATS,
    DecodedImage,
    ImageError,
    ImageMeta,
    decode,
    sniff_format,
)
from renamer_ray.model.vision import plan

BIG = 10_000_000  # max_pixels large enough to never resize the small fixtures

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def solid(size=(64, 48), color=RED, mode="RGB") -> Image.Image:
    return Image.new(mode, size, color)


def pixel(d: DecodedImage, x: int, y: int) -> tuple[int, int, int]:
    i = (y * d.width + x) * 3
    return tuple(d.rgb[i : i + 3])


def close(a, b, tol=12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def check_shape(d: DecodedImage) -> None:
    """Invariants every caller relies on."""
    assert len(d.rgb) == d.width * d.height * 3
    assert min(d.width, d.height) >= 28
    assert max(d.width, d.height) / min(d.width, d.height) <= 200


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, *, complete: bool) -> bytes:
    """A 1-bit greyscale PNG whose IHDR says width x height.

    With ``complete`` the (all-zero) pixel data is really there, compressed; otherwise
    a single row is. Either way the file is tiny.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = bytes(1 + (width + 7) // 8)
    comp = zlib.compressobj(9)
    if complete:
        chunk = row * 256
        parts = [comp.compress(chunk) for _ in range(height // 256)]
        parts.append(comp.compress(row * (height % 256)))
    else:
        parts = [comp.compress(row)]
    parts.append(comp.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    data = png_claiming(40_000, 40_000, complete=True)
    assert len(data) < 1_000_000
    return data


def exif_with(**tags) -> Image.Exif:
    exif = Image.Exif()
    for key, value in tags.items():
        if key == "orientation":
            exif[274] = value
        elif key == "make":
            exif[271] = value
        elif key == "model":
            exif[272] = value
        elif key == "datetime":
            exif[306] = value
        elif key == "original":
            exif.get_ifd(0x8769)[36867] = value
        elif key == "digitized":
            exif.get_ifd(0x8769)[36868] = value
        else:  # pragma: no cover
            raise KeyError(key)
    return exif


def noisy(size=(400, 300)) -> Image.Image:
    """Incompressible content, so truncation cuts into real scan data."""
    return Image.effect_noise(size, 64).convert("RGB")


# --------------------------------------------------------------------------- formats

FORMAT_CASES = [
    ("JPEG", "JPEG", {"quality": 95}),
    ("PNG", "PNG", {}),
    ("WEBP", "WEBP", {"lossless": True}),
    ("GIF", "GIF", {}),
    ("BMP", "BMP", {}),
    ("TIFF", "TIFF", {}),
    ("HEIF", "HEIF", {"quality": 95}),  # what a .heic reports
    ("AVIF", "AVIF", {"quality": 95}),
]


@pytest.mark.parametrize(("save_as", "expected", "kwargs"), FORMAT_CASES)
def test_every_supported_format_sniffs_and_decodes(save_as, expected, kwargs):
    data = encode(solid((64, 48), RED), save_as, **kwargs)
    assert sniff_format(data) == expected
    d = decode(data, max_pixels=BIG)
    check_shape(d)
    assert d.meta.format == expected
    assert (d.meta.width, d.meta.height) == (64, 48)
    assert (d.width, d.height) == (64, 48)
    assert close(pixel(d, 32, 24), RED, tol=20)


def test_supported_formats_are_pillow_names():
    assert SUPPORTED_FORMATS >= {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "MPO"}


def test_mpo_reports_mpo_and_uses_first_picture():
    data = encode(solid((64, 48), RED), "MPO", save_all=True, append_images=[solid((64, 48), BLUE)])
    assert sniff_format(data) == "MPO"
    d = decode(data, max_pixels=BIG)
    assert d.meta.format == "MPO"
    assert close(pixel(d, 10, 10), RED)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_uses_first_frame(fmt):
    frames = [solid((40, 40), RED), solid((40, 40), BLUE)]
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kwargs
    )
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 2  # the fixture really is animated
    d = decode(data, max_pixels=BIG)
    assert close(pixel(d, 20, 20), RED)


def test_sniff_does_not_decode_pixels():
    # Header intact, pixel data missing: sniffing is cheap, so it still names the format.
    data = encode(noisy(), "JPEG", quality=90)
    assert sniff_format(data[: len(data) // 2]) == "JPEG"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [sniff_format, lambda b: decode(b, max_pixels=BIG)])
def test_empty_file(fn):
    with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
        fn(b"")


@pytest.mark.parametrize(
    "blob",
    [
        os.urandom(4096),
        b"Dear diary, today I renamed some photos.\n" * 50,
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    ],
    ids=["random", "text", "pdf"],
)
@pytest.mark.parametrize(
    "fn", [sniff_format, lambda b: decode(b, max_pixels=BIG)], ids=["sniff", "decode"]
)
def test_not_an_image(fn, blob):
    with pytest.raises(ImageError, match="not an image"):
        fn(blob)


@pytest.mark.parametrize("fmt", ["PCX", "ICO", "PPM"])
def test_known_but_unsupported_format_is_named(fmt):
    data = encode(solid((32, 32)), fmt)
    with pytest.raises(ImageError, match=f"unsupported image format: {fmt}"):
        sniff_format(data)
    with pytest.raises(ImageError, match=f"unsupported image format: {fmt}"):
        decode(data, max_pixels=BIG)


def test_truncated_jpeg_fails_instead_of_returning_grey():
    data = encode(noisy(), "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated or corrupt image data"):
        decode(data[: len(data) // 2], max_pixels=BIG)


def test_truncated_jpeg_fails_even_if_someone_enabled_lenient_loading(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(noisy(), "JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated"):
        decode(data[: len(data) // 2], max_pixels=BIG)


def test_lenient_loading_is_off_after_import():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_lenient_loading_is_refused_and_left_as_it_was(monkeypatch):
    # Whoever switched Pillow's process-wide lenient mode on keeps it: decode does not flip it back,
    # it decodes nothing while truncation cannot be told, and says so, file by file.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageError, match="LOAD_TRUNCATED_IMAGES is enabled"):
        decode(encode(solid(), "PNG"), max_pixels=BIG)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    with pytest.raises(ImageError, match="empty file"):  # files that are no image still say so
        decode(b"", max_pixels=BIG)


def test_jpeg_with_only_a_few_header_bytes_is_reported_as_corrupt():
    data = encode(noisy(), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt image data.*JPEG"):
        decode(data[:20], max_pixels=BIG)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "TIFF", "HEIF", "BMP"])
def test_truncated_files_of_other_formats(fmt):
    kwargs = {"compression": "tiff_deflate"} if fmt == "TIFF" else {}
    data = encode(noisy((200, 150)), fmt, **kwargs)
    with pytest.raises(ImageError):
        decode(data[: len(data) // 2], max_pixels=BIG)


def test_corrupt_png_data_is_an_image_error():
    data = bytearray(encode(noisy((100, 100)), "PNG"))
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)  # damage the compressed pixel stream
    with pytest.raises(ImageError):
        decode(bytes(data), max_pixels=BIG)


def test_random_corruption_never_escapes_as_another_exception():
    sources = [encode(noisy((80, 60)), f) for f in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")]
    rnd = random.Random(1234)
    for src in sources:
        for _ in range(15):
            data = bytearray(src)
            for _ in range(rnd.randint(1, 8)):
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            cut = rnd.choice([len(data), rnd.randrange(1, len(data))])
            try:
                d = decode(bytes(data[:cut]), max_pixels=BIG)
            except ImageError:
                continue
            check_shape(d)


# --------------------------------------------------------------------------- bomb guard


def peak_growth(call) -> int:
    """Bytes ``call()`` adds to this process's peak RSS (Linux: writing 5 to clear_refs resets the
    peak; malloc_trim first returns what earlier tests freed). Memory, not time: no clock asserts."""
    import ctypes
    import gc

    def status(field: str) -> int:
        line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = status("VmRSS")
    call()
    return status("VmHWM") - before


def refused(data: bytes, pattern: str, **kwargs) -> None:
    with pytest.raises(ImageError, match=pattern):
        decode(data, **kwargs)


def test_png_claiming_1_6_gigapixels_fails_before_decoding(huge_png):
    pattern = r"image too large: .*pixel limit \(decompression-bomb guard\)"
    # Refused from its header: nothing near the 4.8 GB it would decode to is ever allocated.
    assert peak_growth(lambda: refused(huge_png, pattern, max_pixels=BIG)) < 50 * 1024**2
    with pytest.raises(ImageError, match="image too large"):
        sniff_format(huge_png)  # header alone is enough to reject it


def test_own_pixel_limit_is_checked_before_decoding():
    data = png_claiming(5_000, 5_000, complete=False)  # 25 MP claimed, data missing
    with pytest.raises(ImageError, match=r"5000x5000 pixels exceeds the 1,000,000-pixel limit"):
        decode(data, max_pixels=BIG, max_image_pixels=1_000_000)


def test_pixel_limit_does_not_reject_normal_photos():
    d = decode(encode(solid((1200, 900)), "JPEG"), max_pixels=BIG, max_image_pixels=1_080_000)
    assert (d.meta.width, d.meta.height) == (1200, 900)


def test_max_pixels_below_the_model_minimum_is_a_programming_error():
    with pytest.raises(ValueError) as info:
        decode(encode(solid(), "PNG"), max_pixels=100)
    assert not isinstance(info.value, ImageError)


# --------------------------------------------------------------------------- pixel modes


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG", quality=95)
    d = decode(data, max_pixels=BIG)
    assert close(pixel(d, 32, 32), RED)


def test_16_bit_png_is_scaled_not_clipped():
    img = Image.new("I;16", (64, 64), 0)
    img.paste(65535, (0, 0, 32, 64))
    img.paste(32896, (32, 0, 64, 64))  # mid grey in 16 bits
    data = encode(img, "PNG")
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode.startswith("I")
    d = decode(data, max_pixels=BIG)
    assert close(pixel(d, 10, 10), WHITE, tol=1)
    assert close(pixel(d, 50, 10), (128, 128, 128), tol=2)


def test_float_tiff_in_unit_range_is_scaled():
    data = encode(Image.new("F", (40, 40), 0.5), "TIFF")
    d = decode(data, max_pixels=BIG)
    assert close(pixel(d, 20, 20), (127, 127, 127), tol=2)


def test_32_bit_int_tiff_with_wide_range_is_stretched():
    img = Image.new("I", (40, 40), -100_000)
    img.paste(100_000, (20, 0, 40, 40))
    d = decode(encode(img, "TIFF"), max_pixels=BIG)
    assert close(pixel(d, 5, 5), (0, 0, 0), tol=1)
    assert close(pixel(d, 35, 5), WHITE, tol=1)


def test_palette_png_transparency_composited_on_white():
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 0] + list(GREEN) + [0] * (256 - 2) * 3)
    img.paste(1, (20, 0, 40, 40))
    data = encode(img, "PNG", transparency=0)
    d = decode(data, max_pixels=BIG)
    assert pixel(d, 5, 5) == WHITE  # transparent black -> white, not black
    assert pixel(d, 30, 5) == GREEN


def test_rgba_png_alpha_composited_on_white():
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 20, 20))
    img.paste((0, 0, 0, 128), (20, 20, 40, 40))
    d = decode(encode(img, "PNG"), max_pixels=BIG)
    assert pixel(d, 30, 5) == WHITE
    assert pixel(d, 5, 5) == RED
    assert close(pixel(d, 30, 30), (127, 127, 127), tol=2)


def test_grey_alpha_png_composited_on_white():
    img = Image.new("LA", (40, 40), (0, 0))
    img.paste((0, 255), (0, 0, 20, 40))
    d = decode(encode(img, "PNG"), max_pixels=BIG)
    assert pixel(d, 5, 5) == (0, 0, 0)
    assert pixel(d, 30, 5) == WHITE


@pytest.mark.parametrize("mode", ["1", "L", "P"])
def test_low_depth_modes_become_rgb(mode):
    d = decode(encode(Image.new(mode, (40, 40), 1 if mode != "L" else 255), "PNG"), max_pixels=BIG)
    assert len(d.rgb) == 40 * 40 * 3
    assert d.to_pil().mode == "RGB"


# --------------------------------------------------------------------------- orientation


def marked(size=(90, 60)) -> Image.Image:
    """White image with a red 20x20 block in the stored top-left corner."""
    img = solid(size, WHITE)
    img.paste(RED, (0, 0, 20, 20))
    return img


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    [
        (1, "top-left"),
        (3, "bottom-right"),
        (6, "top-right"),  # stored sideways, displayed after rotating 90 deg clockwise
        (8, "bottom-left"),  # rotating 90 deg counter-clockwise
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(fmt, orientation, red_corner):
    kwargs = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
    data = encode(marked(), fmt, exif=exif_with(orientation=orientation), **kwargs)
    d = decode(data, max_pixels=BIG)
    upright = (60, 90) if orientation in (6, 8) else (90, 60)
    assert (d.meta.width, d.meta.height) == upright
    assert (d.width, d.height) == upright
    w, h = d.width, d.height
    corners = {
        "top-left": (5, 5),
        "top-right": (w - 6, 5),
        "bottom-left": (5, h - 6),
        "bottom-right": (w - 6, h - 6),
    }
    for name, (x, y) in corners.items():
        expected = RED if name == red_corner else WHITE
        assert close(pixel(d, x, y), expected, tol=30), (name, pixel(d, x, y))


def test_orientation_applies_after_downscale_too():
    img = solid((900, 600), WHITE)
    img.paste(RED, (0, 0, 200, 200))
    data = encode(img, "JPEG", exif=exif_with(orientation=6), quality=95)
    d = decode(data, max_pixels=60 * 90)  # 1/10 scale: goes through JPEG draft mode
    assert (d.meta.width, d.meta.height) == (600, 900)
    assert (d.width, d.height) == (60, 90)
    assert close(pixel(d, d.width - 5, 5), RED, tol=30)
    assert close(pixel(d, 5, 5), WHITE, tol=30)
    assert close(pixel(d, d.width - 5, d.height - 5), WHITE, tol=30)


@pytest.mark.parametrize("orientation", [0, 9, 42])
def test_bogus_orientation_is_ignored(orientation):
    data = encode(marked(), "PNG", exif=exif_with(orientation=orientation))
    d = decode(data, max_pixels=BIG)
    assert (d.width, d.height) == (90, 60)
    assert pixel(d, 5, 5) == RED


# --------------------------------------------------------------------------- EXIF metadata


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_capture_date_and_camera_from_exif(fmt):
    exif = exif_with(original="2023:07:14 10:22:01", make="Canon", model="Canon EOS R5")
    d = decode(encode(solid(), fmt, exif=exif), max_pixels=BIG)
    assert d.meta.date == "2023-07-14"
    assert d.meta.camera == "Canon EOS R5"


def test_date_falls_back_to_digitized_then_ifd0_datetime():
    digitized = exif_with(digitized="2021:01:02 03:04:05", datetime="2020:12:31 00:00:00")
    assert decode(encode(solid(), "JPEG", exif=digitized), max_pixels=BIG).meta.date == "2021-01-02"
    ifd0_only = exif_with(datetime="2020:12:31 23:59:59")
    assert decode(encode(solid(), "JPEG", exif=ifd0_only), max_pixels=BIG).meta.date == "2020-12-31"


def test_original_date_wins_over_others():
    exif = exif_with(
        original="2023:07:14 10:22:01",
        digitized="2023:07:15 00:00:00",
        datetime="2024:01:01 00:00:00",
    )
    assert decode(encode(solid(), "JPEG", exif=exif), max_pixels=BIG).meta.date == "2023-07-14"


@pytest.mark.parametrize(
    "value", ["0000:00:00 00:00:00", "    :  :     :  :  ", "2023:13:45 10:00:00", "yesterday", ""]
)
def test_unparsable_date_is_none(value):
    exif = exif_with(original=value)
    assert decode(encode(solid(), "JPEG", exif=exif), max_pixels=BIG).meta.date is None


def test_unparsable_original_date_falls_back():
    exif = exif_with(original="0000:00:00 00:00:00", datetime="2019:05:06 07:08:09")
    assert decode(encode(solid(), "JPEG", exif=exif), max_pixels=BIG).meta.date == "2019-05-06"


def test_no_exif_means_no_date_or_camera():
    meta = decode(encode(solid(), "PNG"), max_pixels=BIG).meta
    assert meta == ImageMeta(format="PNG", width=64, height=48, date=None, camera=None)


@pytest.mark.parametrize(
    ("make", "model", "camera"),
    [
        ("Canon", "Canon EOS R5", "Canon EOS R5"),
        ("Apple", "iPhone 12 Pro", "Apple iPhone 12 Pro"),
        ("NIKON CORPORATION\x00", "NIKON D750  \x00", "NIKON D750"),
        ("  SONY ", "ILCE-7M3", "SONY ILCE-7M3"),
        ("", "Pixel 7", "Pixel 7"),
        ("FUJIFILM", None, "FUJIFILM"),
        ("\x00\x00", "  ", None),
    ],
)
def test_camera_name(make, model, camera):
    tags = {"make": make}
    if model is not None:
        tags["model"] = model
    d = decode(encode(solid(), "JPEG", exif=exif_with(**tags)), max_pixels=BIG)
    assert d.meta.camera == camera


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_does_not_fail_the_image():
    img = solid()
    data = encode(img, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    d = decode(data, max_pixels=BIG)
    assert d.meta.date is None and d.meta.camera is None
    assert (d.width, d.height) == (64, 48)


def test_an_unreadable_exif_field_is_ignored_alone():
    # IFD0: Make, Model, DateTime and an Exif sub-IFD pointer of -8 (type SLONG): Pillow's seek to it
    # raises ValueError when the sub-IFD is read; its dates are lost, IFD0's fields are not.
    entries = [(271, 2, b"Canon\x00"), (272, 2, b"EOS R5\x00"), (306, 2, b"2019:05:06 07:08:09\x00")]
    count = len(entries) + 1
    offset = 8 + 2 + 12 * count + 4
    table, blobs = b"", b""
    for tag, typ, value in entries:
        table += struct.pack(">HHII", tag, typ, len(value), offset + len(blobs))
        blobs += value
    table += struct.pack(">HHIi", 0x8769, 9, 1, -8)
    ifd = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", count) + table + struct.pack(">I", 0) + blobs
    with Image.open(io.BytesIO(encode(solid(), "JPEG", exif=b"Exif\x00\x00" + ifd))) as im:
        with pytest.raises(ValueError):
            im.getexif().get_ifd(0x8769)  # the fixture really has an unreadable sub-IFD
    meta = decode(encode(solid(), "JPEG", exif=b"Exif\x00\x00" + ifd), max_pixels=BIG).meta
    assert (meta.date, meta.camera) == ("2019-05-06", "Canon EOS R5")


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (2001, 999)])
def test_downscale_keeps_aspect_and_respects_max_pixels(fmt, size):
    img = solid(size, WHITE)
    img.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))  # right half blue
    max_pixels = 500_000
    data = encode(img, fmt, quality=90) if fmt == "JPEG" else encode(img, fmt)
    d = decode(data, max_pixels=max_pixels)
    check_shape(d)
    assert (d.meta.width, d.meta.height) == size
    assert d.width * d.height <= max_pixels
    assert d.width * d.height >= 0.97 * max_pixels  # no needless loss of detail
    assert abs(d.width / d.height - size[0] / size[1]) < 0.01
    assert close(pixel(d, 2, d.height // 2), WHITE, tol=20)
    assert close(pixel(d, d.width - 3, d.height // 2), BLUE, tol=20)


def test_a_big_jpeg_is_decoded_at_reduced_size():
    big = Image.linear_gradient("L").resize((6000, 4000)).convert("RGB")
    data = encode(big, "JPEG", quality=85)
    decoded = []
    grown = peak_growth(lambda: decoded.append(decode(data, max_pixels=448 * 448)))
    assert decoded[0].width * decoded[0].height <= 448 * 448
    assert grown < 6000 * 4000 * 3 // 4  # well under one full-size RGB copy (72 MB): JPEG draft mode


def test_never_upscales_and_keeps_pixels_exact():
    img = noisy((100, 80))
    d = decode(encode(img, "PNG"), max_pixels=BIG)
    assert (d.width, d.height) == (100, 80)
    assert d.rgb == img.tobytes()


def test_extremely_wide_image_is_padded_for_the_model():
    img = solid((3000, 10), RED)
    d = decode(encode(img, "PNG"), max_pixels=BIG)
    check_shape(d)
    assert (d.meta.width, d.meta.height) == (3000, 10)
    assert d.width == 3000 and d.height == 28
    mid = d.height // 2
    assert pixel(d, 1500, mid) == RED  # content kept, vertically centred
    assert pixel(d, 1500, 0) == WHITE and pixel(d, 1500, d.height - 1) == WHITE


def test_extremely_tall_image_is_padded_for_the_model():
    d = decode(encode(solid((10, 3000), RED), "PNG"), max_pixels=BIG)
    check_shape(d)
    assert (d.width, d.height) == (28, 3000)
    assert pixel(d, 14, 1500) == RED and pixel(d, 0, 1500) == WHITE


def test_aspect_ratio_above_200_is_padded_and_still_fits_max_pixels():
    d = decode(encode(solid((20_000, 2), RED), "PNG"), max_pixels=1_000_000)
    check_shape(d)
    assert d.width * d.height <= 1_000_000
    assert pixel(d, d.width // 2, d.height // 2) == RED


def test_tiny_image_is_padded_to_28():
    d = decode(encode(solid((5, 5), RED), "PNG"), max_pixels=BIG)
    assert (d.width, d.height) == (28, 28)
    assert pixel(d, 14, 14) == RED and pixel(d, 0, 0) == WHITE


def test_geometry_invariants_over_many_sizes():
    sides = [1, 2, 5, 27, 28, 29, 100, 199, 1000, 5601, 40_000]
    for max_pixels in (784, 10_000, 448 * 448, 1_003_520):
        for w in sides:
            for h in sides:
                cw, ch, kw, kh = plan(w, h, max_pixels)
                assert kw * kh <= max_pixels, (w, h, max_pixels)
                assert min(kw, kh) >= 28 and max(kw, kh) / min(kw, kh) <= 200
                assert cw <= w and ch <= h and cw <= kw and ch <= kh  # never upscales
                if cw > 20 and ch > 20:
                    assert abs(cw / ch - w / h) / (w / h) < 0.1


# --------------------------------------------------------------------------- output form


def test_to_pil_round_trip_and_pickle():
    img = noisy((120, 90))
    d = decode(encode(img, "PNG"), max_pixels=BIG)
    pil = d.to_pil()
    assert pil.mode == "RGB" and pil.size == (d.width, d.height)
    assert pil.tobytes() == d.rgb
    again = pickle.loads(pickle.dumps(d))
    assert again == d
    assert isinstance(again.meta, ImageMeta)


def test_results_are_immutable():
    d = decode(encode(solid(), "PNG"), max_pixels=BIG)
    with pytest.raises(AttributeError):
        d.width = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        d.meta.date = "2020-01-01"  # type: ignore[misc]


def test_a_45_megapixel_png_is_refused_before_it_is_decoded():
    """A ~100 KiB PNG that decodes to ≈ 400 MB: formats without reduced decoding are bounded by
    MAX_DECODE_PIXELS (40 MP), checked from the header; JPEG decodes at reduced size and is exempt."""
    bomb = png_claiming(7_500, 6_000, complete=True)
    assert len(bomb) < 1_000_000
    pattern = r"7500x6000 pixels exceeds the 40,000,000-pixel limit for PNG"
    assert peak_growth(lambda: refused(bomb, pattern, max_pixels=BIG)) < 50 * 1024**2  # refused from its header
    big_jpeg = encode(solid((7_000, 6_000)), "JPEG")  # 42 MP, decoded at 1/8 scale
    assert decode(big_jpeg, max_pixels=BIG).meta.width == 7_000
    assert decode(bomb, max_pixels=BIG, max_decode_pixels=50_000_000).meta.width == 7_500  # the limit is a setting
