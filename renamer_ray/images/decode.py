"""Image adapter: raw file bytes -> validated, model-ready RGB pixels plus metadata.

No I/O happens here: callers pass ``bytes``. Every failure caused by the input bytes is
reported as :class:`ImageError` with a message a person can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date as _date
from io import BytesIO

import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

# Pillow format names we accept (HEIC files report "HEIF"; multi-picture JPEGs "MPO"): exactly the
# formats the naming rules know an extension for.
from renamer_ray.naming.formats import SUPPORTED_FORMATS

pillow_heif.register_heif_opener()

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "MIN_SIDE",
    "MAX_ASPECT_RATIO",
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "ImageError",
    "ImageMeta",
    "decode",
    "sniff_format",
]

# Pillow plugins tried, in order; only these are ever used to decode. (MPO has no
# opener of its own: the JPEG opener returns an MPO image when the file is one.)
_OPEN_ORDER = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")

DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # Pillow's own hard limit (2 * MAX_IMAGE_PIXELS)
# Formats without reduced-size decoding (all but JPEG) are decoded at full size before they are
# scaled down to what the model sees: above this many pixels they are refused (≈ 160 MB as RGBA).
DEFAULT_MAX_DECODE_PIXELS = 40_000_000
REDUCED_DECODE_FORMATS = ("JPEG", "MPO")  # libjpeg decodes at 1/2, 1/4, 1/8 scale (draft mode)
#: Qwen2-VL's processor rejects images with a side below this many pixels ...
MIN_SIDE = 28
#: ... or with a long/short side ratio above this.
MAX_ASPECT_RATIO = 200

_WHITE = (255, 255, 255)

# EXIF tags.
_TAG_ORIENTATION = 274
_TAG_MAKE = 271
_TAG_MODEL = 272
_TAG_DATETIME = 306
_IFD_EXIF = 0x8769
_TAG_DATETIME_ORIGINAL = 36867
_TAG_DATETIME_DIGITIZED = 36868

# Same mapping as PIL.ImageOps.exif_transpose (orientations 2-8; 1 is "as stored").
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_DATE_RE = re.compile(r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})")
_BOMB_RE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


class ImageError(ValueError):
    """The bytes of one file are not a usable image; the message says why."""


class NotAnImage(ImageError):
    """Empty, or not in any supported image format (as opposed to a damaged or huge image)."""


class UnreadableHeader(NotAnImage):
    """Starts like a supported format, but Pillow cannot read its header: not identifiable as an
    image at all (the API refuses it with 415), unlike a file whose header is fine and body damaged."""


@dataclass(frozen=True)
class ImageMeta:
    """What the file says about itself (dimensions are the original ones, upright)."""

    format: str
    width: int
    height: int
    date: str | None = None  # capture date, "YYYY-MM-DD"
    camera: str | None = None  # e.g. "Canon EOS R5"


@dataclass(frozen=True)
class DecodedImage:
    """Model-ready pixels: RGB888, row-major, ``len(rgb) == width * height * 3``.

    ``width``/``height`` are those of the resized (and possibly padded) pixels,
    not of the original file (see ``meta``). Plain bytes keep it cheap to pickle.
    """

    meta: ImageMeta
    width: int
    height: int
    rgb: bytes

    def to_pil(self) -> Image.Image:
        return Image.frombytes("RGB", (self.width, self.height), self.rgb)


# --------------------------------------------------------------------------- opening


def _too_large(width: int, height: int, limit: int) -> ImageError:
    return ImageError(
        f"image too large: {width}x{height} pixels exceeds the {limit:,}-pixel limit "
        "(decompression-bomb guard)"
    )


def _bomb_error(exc: Exception) -> ImageError:
    """Reword Pillow's own DecompressionBombError (raised at open, before our check)."""
    m = _BOMB_RE.search(str(exc))
    if m:
        n, limit = int(m.group(1)), int(m.group(2))
        return ImageError(
            f"image too large: {n:,} pixels exceeds the {limit:,}-pixel limit "
            "(decompression-bomb guard)"
        )
    return ImageError(f"image too large: {exc} (decompression-bomb guard)")


def _open(data: bytes) -> ImageFile.ImageFile:
    """Identify ``data`` from its header (no pixel decode) with a supported plugin only."""
    if not data:
        raise NotAnImage("empty file (0 bytes)")
    try:
        return Image.open(BytesIO(data), formats=_OPEN_ORDER)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc) from None
    except UnidentifiedImageError:
        pass
    except Exception as exc:  # header recognised but broken
        raise UnreadableHeader(f"truncated or corrupt image data: {_describe(exc)}") from None
    looks_like = _magic_format(data)
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
    except Exception:
        other = None
    if other and other not in SUPPORTED_FORMATS:
        raise NotAnImage(f"unsupported image format: {other}")
    raise NotAnImage("not an image: the bytes are not in any supported format")


def _magic_format(data: bytes) -> str | None:
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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def sniff_format(data: bytes) -> str:
    """Return Pillow's format name for ``data`` (e.g. "JPEG", "HEIF") from the header only.

    Cheap: nothing is decoded. Raises ImageError for empty, non-image or unsupported
    data (and for headers that already exceed Pillow's decompression-bomb limit).
    """
    with _open(data) as im:
        fmt = im.format
    if fmt is None or fmt not in SUPPORTED_FORMATS:  # pragma: no cover - see _open
        raise ImageError(f"unsupported image format: {fmt}")
    return fmt


# --------------------------------------------------------------------------- metadata


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text or None


def _parse_date(value: object) -> str | None:
    text = _exif_text(value)
    if text is None:
        return None
    m = _DATE_RE.match(text)
    if not m:
        return None
    try:
        return _date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:  # "0000:00:00 00:00:00" and friends
        return None


def _camera(make: object, model: object) -> str | None:
    mk, md = _exif_text(make), _exif_text(model)
    if mk and md:
        # "Canon" + "Canon EOS R5" -> "Canon EOS R5"; "NIKON CORPORATION" + "NIKON D750" too.
        if md.lower().startswith(mk.lower()) or md.lower().startswith(
            mk.split()[0].lower() + " "
        ):
            return md
        return f"{mk} {md}"
    return md or mk


def _read_exif(im: Image.Image) -> tuple[int, str | None, str | None]:
    """(orientation, date, camera) from EXIF; malformed EXIF counts as absent."""
    try:
        exif = im.getexif()
    except Exception:
        return 1, None, None
    try:
        orientation = exif.get(_TAG_ORIENTATION, 1)
        if not isinstance(orientation, int) or orientation not in range(1, 9):
            orientation = 1
    except Exception:
        orientation = 1
    try:
        sub = exif.get_ifd(_IFD_EXIF)
    except Exception:
        sub = {}
    date = None
    for tag, ifd in (
        (_TAG_DATETIME_ORIGINAL, sub),
        (_TAG_DATETIME_DIGITIZED, sub),
        (_TAG_DATETIME, exif),
    ):
        try:
            date = _parse_date(ifd.get(tag))
        except Exception:
            date = None
        if date:
            break
    try:
        camera = _camera(exif.get(_TAG_MAKE), exif.get(_TAG_MODEL))
    except Exception:
        camera = None
    return orientation, date, camera


# --------------------------------------------------------------------------- geometry


def _canvas(long_side: int, short_side: int) -> tuple[int, int]:
    """Padded (long, short) so both sides are >= MIN_SIDE and the ratio <= MAX_ASPECT_RATIO."""
    long_c = max(long_side, MIN_SIDE)
    short_c = max(short_side, MIN_SIDE, math.ceil(long_c / MAX_ASPECT_RATIO))
    return long_c, short_c


def _plan(width: int, height: int, max_pixels: int) -> tuple[int, int, int, int]:
    """Return (content_w, content_h, canvas_w, canvas_h).

    The content keeps the aspect ratio and is never upscaled; it is the largest size
    whose padded canvas fits in ``max_pixels``.
    """
    swap = height > width
    long0, short0 = (height, width) if swap else (width, height)

    def sizes(long_side: int) -> tuple[int, int, int, int]:
        short_side = max(1, min(long_side, round(long_side * short0 / long0)))
        return (long_side, short_side, *_canvas(long_side, short_side))

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


# --------------------------------------------------------------------------- pixels


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB"; alpha is composited onto white."""
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
        out = Image.new("RGB", rgba.size, _WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")


def decode(
    data: bytes,
    *,
    max_pixels: int,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
) -> DecodedImage:
    """Fully decode ``data`` into upright RGB pixels that fit ``max_pixels``.

    - Rejects (ImageError) files whose header claims more than ``max_image_pixels``
      before decoding anything, and files of a format that cannot be decoded at reduced
      size (all but JPEG) that claim more than ``max_decode_pixels``: decode memory stays
      bounded whatever the file claims. Pillow's own guard (2 * ``Image.MAX_IMAGE_PIXELS``)
      still applies at open time, so a larger ``max_image_pixels`` needs that raised too.
    - Uses frame 0 of animations, applies EXIF orientation, converts any mode to RGB.
    - Downscales (never upscales), keeping the aspect ratio, then pads with white so both
      sides are >= ``MIN_SIDE`` and the aspect ratio is <= ``MAX_ASPECT_RATIO`` (what
      Qwen2-VL's processor requires); the padded result still fits ``max_pixels``.
    """
    if max_pixels < MIN_SIDE * MIN_SIDE:
        raise ValueError(f"max_pixels must be at least {MIN_SIDE * MIN_SIDE}, got {max_pixels}")
    # Truncated files must fail; never decode in the lenient mode, whoever enabled it.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    with _open(data) as im:
        fmt = im.format or ""
        if fmt not in SUPPORTED_FORMATS:  # pragma: no cover - see _open
            raise ImageError(f"unsupported image format: {fmt}")
        raw_w, raw_h = im.size
        if raw_w <= 0 or raw_h <= 0:
            raise ImageError(f"truncated or corrupt image data: invalid size {raw_w}x{raw_h}")
        if raw_w * raw_h > max_image_pixels:
            raise _too_large(raw_w, raw_h, max_image_pixels)
        if fmt not in REDUCED_DECODE_FORMATS and raw_w * raw_h > max_decode_pixels:
            raise ImageError(
                f"image too large: {raw_w}x{raw_h} pixels exceeds the {max_decode_pixels:,}-pixel limit for "
                f"{fmt} files, which must be decoded at full size (MAX_DECODE_PIXELS; decompression-bomb guard)")
        try:
            return _decode_open(im, fmt, raw_w, raw_h, max_pixels)
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc) from None
        except MemoryError:
            raise ImageError(
                f"image too large: not enough memory to decode {raw_w}x{raw_h} pixels"
            ) from None
        except Exception as exc:
            raise ImageError(f"truncated or corrupt image data: {_describe(exc)}") from None


def _decode_open(
    im: ImageFile.ImageFile, fmt: str, raw_w: int, raw_h: int, max_pixels: int
) -> DecodedImage:
    drafted = False
    if fmt in ("JPEG", "MPO"):
        # Rotating by 90 degrees only swaps the sides, so planning in stored
        # coordinates gives the same scale as planning upright.
        cw, ch, _, _ = _plan(raw_w, raw_h, max_pixels)
        if cw * 2 <= raw_w and ch * 2 <= raw_h:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (still >= the target size).
            im.draft("RGB", (cw, ch))
            drafted = True
    im.load()
    # Read EXIF after load: PNG may keep it after the pixel data, and TIFF applies
    # (and then drops) its orientation tag while loading.
    orientation, date, camera = _read_exif(im)
    base_w, base_h = (raw_w, raw_h) if drafted else im.size
    cw, ch, kw, kh = _plan(base_w, base_h, max_pixels)

    try:
        img: Image.Image = _to_rgb(im)
    except ValueError as exc:  # e.g. "conversion from LAB to RGB not supported"
        raise ImageError(f"unsupported pixel mode {im.mode}: {_describe(exc)}") from None
    if img.size != (cw, ch):
        img = img.resize((cw, ch), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if (kw, kh) != (cw, ch):
        canvas = Image.new("RGB", (kw, kh), _WHITE)
        canvas.paste(img, ((kw - cw) // 2, (kh - ch) // 2))
        img = canvas
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        img = img.transpose(method)

    swapped = orientation in (5, 6, 7, 8)
    meta = ImageMeta(
        format=fmt,
        width=base_h if swapped else base_w,
        height=base_w if swapped else base_h,
        date=date,
        camera=camera,
    )
    w, h = img.size
    return DecodedImage(meta=meta, width=w, height=h, rgb=img.tobytes())
