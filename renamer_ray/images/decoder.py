"""Decoding: raw file bytes -> upright, model-ready RGB pixels plus what the file says about
itself (:class:`DecodedImage`, :class:`ImageMeta`), within memory limits whatever the file claims.

The size the pixels are scaled and padded to is the model's contract (:mod:`renamer_ray.model.vision`).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageFile

from renamer_ray.images.convert import WHITE, to_rgb
from renamer_ray.images.errors import PILLOW_ERRORS, ImageError, bomb_error, describe, too_large
from renamer_ray.images.exif import ORIENTATION_TRANSPOSE, SWAPPED_ORIENTATIONS, read_exif
from renamer_ray.images.sniff import SUPPORTED_FORMATS, open_image
from renamer_ray.model.vision import MIN_SIDE, plan, plan_on_grid

__all__ = [
    "DEFAULT_MAX_DECODE_PIXELS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "REDUCED_DECODE_FORMATS",
    "DecodedImage",
    "ImageMeta",
    "decode",
]

DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # Pillow's own hard limit (2 * MAX_IMAGE_PIXELS)
# Formats without reduced-size decoding (all but JPEG) are decoded at full size before they are
# scaled down to what the model sees: above this many pixels they are refused (≈ 160 MB as RGBA).
DEFAULT_MAX_DECODE_PIXELS = 40_000_000
REDUCED_DECODE_FORMATS = ("JPEG", "MPO")  # libjpeg decodes at 1/2, 1/4, 1/8 scale (draft mode)


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


def _refuse_lenient_loading() -> None:
    """Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` (one switch for the whole process) makes a
    truncated file decode into grey instead of failing, and nothing on the image says so. It is
    left as whoever set it wants it; while it is on, nothing is decoded: each file fails, saying why."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageError(
            "cannot tell truncated or corrupt image data from whole images: PIL.ImageFile."
            "LOAD_TRUNCATED_IMAGES is enabled in this process (turn it off to decode)"
        )


def decode(
    data: bytes,
    *,
    max_pixels: int,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_decode_pixels: int = DEFAULT_MAX_DECODE_PIXELS,
    min_pixels: int | None = None,
) -> DecodedImage:
    """Fully decode ``data`` into upright RGB pixels that fit ``max_pixels``.

    - Rejects (ImageError) files whose header claims more than ``max_image_pixels``
      before decoding anything, and files of a format that cannot be decoded at reduced
      size (all but JPEG) that claim more than ``max_decode_pixels``: decode memory stays
      bounded whatever the file claims. Pillow's own guard (2 * ``Image.MAX_IMAGE_PIXELS``)
      still applies at open time, so a larger ``max_image_pixels`` needs that raised too.
    - Truncated files fail (ImageError); while Pillow's process-wide lenient mode
      (``ImageFile.LOAD_TRUNCATED_IMAGES``) is on, which would hide that, every file fails.
    - Uses frame 0 of animations, applies EXIF orientation, converts any mode to RGB.
    - Downscales (never upscales), keeping the aspect ratio, then pads with white so both
      sides are >= ``MIN_SIDE`` and the aspect ratio is <= ``MAX_ASPECT_RATIO`` (what
      Qwen2-VL's processor requires); the padded result still fits ``max_pixels``.
    - With ``min_pixels`` (the model's lower bound), lands straight on the patch grid: the size
      the processor would resize the result to (``vision.plan_on_grid``), in one resample, so the
      model's processor has nothing left to resize.
    """
    if max_pixels < MIN_SIDE * MIN_SIDE:
        raise ValueError(f"max_pixels must be at least {MIN_SIDE * MIN_SIDE}, got {max_pixels}")
    with open_image(data) as im:
        fmt = im.format or ""
        if fmt not in SUPPORTED_FORMATS:  # pragma: no cover - see open_image
            raise ImageError(f"unsupported image format: {fmt}")
        raw_w, raw_h = im.size
        if raw_w <= 0 or raw_h <= 0:
            raise ImageError(f"truncated or corrupt image data: invalid size {raw_w}x{raw_h}")
        if raw_w * raw_h > max_image_pixels:
            raise too_large(raw_w, raw_h, max_image_pixels)
        if fmt not in REDUCED_DECODE_FORMATS and raw_w * raw_h > max_decode_pixels:
            raise ImageError(
                f"image too large: {raw_w}x{raw_h} pixels exceeds the {max_decode_pixels:,}-pixel limit for "
                f"{fmt} files, which must be decoded at full size (MAX_DECODE_PIXELS; decompression-bomb guard)")
        _refuse_lenient_loading()
        try:
            sizes = (lambda w, h: plan(w, h, max_pixels)) if min_pixels is None else (
                lambda w, h: plan_on_grid(w, h, min_pixels, max_pixels))
            return _decode_open(im, fmt, raw_w, raw_h, sizes)
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:
            raise bomb_error(exc) from None
        except MemoryError:
            raise ImageError(
                f"image too large: not enough memory to decode {raw_w}x{raw_h} pixels"
            ) from None
        except PILLOW_ERRORS as exc:
            raise ImageError(f"truncated or corrupt image data: {describe(exc)}") from None


def _decode_open(im: ImageFile.ImageFile, fmt: str, raw_w: int, raw_h: int, sizes) -> DecodedImage:
    """``sizes(w, h)`` → (content_w, content_h, canvas_w, canvas_h) in stored coordinates."""
    drafted = False
    if fmt in REDUCED_DECODE_FORMATS:
        # Rotating by 90 degrees only swaps the sides, so planning in stored
        # coordinates gives the same scale as planning upright.
        cw, ch, _, _ = sizes(raw_w, raw_h)
        if cw * 2 <= raw_w and ch * 2 <= raw_h:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (still >= the target size).
            im.draft("RGB", (cw, ch))
            drafted = True
    im.load()
    # Read EXIF after load: PNG may keep it after the pixel data, and TIFF applies
    # (and then drops) its orientation tag while loading.
    orientation, date, camera = read_exif(im)
    base_w, base_h = (raw_w, raw_h) if drafted else im.size
    cw, ch, kw, kh = sizes(base_w, base_h)

    try:
        img: Image.Image = to_rgb(im)
    except ValueError as exc:  # e.g. "conversion from LAB to RGB not supported"
        raise ImageError(f"unsupported pixel mode {im.mode}: {describe(exc)}") from None
    if img.size != (cw, ch):
        img = img.resize((cw, ch), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if (kw, kh) != (cw, ch):
        canvas = Image.new("RGB", (kw, kh), WHITE)
        canvas.paste(img, ((kw - cw) // 2, (kh - ch) // 2))
        img = canvas
    method = ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        img = img.transpose(method)

    swapped = orientation in SWAPPED_ORIENTATIONS
    meta = ImageMeta(
        format=fmt,
        width=base_h if swapped else base_w,
        height=base_w if swapped else base_h,
        date=date,
        camera=camera,
    )
    w, h = img.size
    return DecodedImage(meta=meta, width=w, height=h, rgb=img.tobytes())
