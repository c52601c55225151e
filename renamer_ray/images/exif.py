"""EXIF: the orientation to apply, the capture date and the camera, read from a loaded image.

Malformed EXIF never fails an image: a field that cannot be read counts as absent, alone.
"""

from __future__ import annotations

import re
from datetime import date as _date

from PIL import Image

from renamer_ray.images.errors import EXIF_ERRORS

__all__ = ["ORIENTATION_TRANSPOSE", "SWAPPED_ORIENTATIONS", "camera", "parse_date", "read_exif"]

# EXIF tags.
_TAG_ORIENTATION = 274
_TAG_MAKE = 271
_TAG_MODEL = 272
_TAG_DATETIME = 306
_IFD_EXIF = 0x8769
_TAG_DATETIME_ORIGINAL = 36867
_TAG_DATETIME_DIGITIZED = 36868

#: Same mapping as PIL.ImageOps.exif_transpose (orientations 2-8; 1 is "as stored").
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Orientations that turn the image by 90 degrees: width and height trade places.
SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})

_DATE_RE = re.compile(r"^\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})")


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text or None


def parse_date(value: object) -> str | None:
    """An EXIF date ("2023:07:14 10:22:01", also with - / . separators) as "YYYY-MM-DD", or None."""
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


def camera(make: object, model: object) -> str | None:
    """One camera name from EXIF Make and Model, without saying the maker twice."""
    mk, md = _exif_text(make), _exif_text(model)
    if mk and md:
        # "Canon" + "Canon EOS R5" -> "Canon EOS R5"; "NIKON CORPORATION" + "NIKON D750" too.
        if md.lower().startswith(mk.lower()) or md.lower().startswith(
            mk.split()[0].lower() + " "
        ):
            return md
        return f"{mk} {md}"
    return md or mk


def read_exif(im: Image.Image) -> tuple[int, str | None, str | None]:
    """(orientation, date, camera) from EXIF; malformed EXIF counts as absent.

    Each field is read on its own: Pillow parses EXIF lazily (a tag's value when it is first read,
    a sub-IFD when it is first asked for), so one broken field raises only when that field is
    read, and is ignored alone (the others are still worth having).
    """
    try:
        exif = im.getexif()
    except EXIF_ERRORS:  # the EXIF block itself is not a TIFF structure: no field can be read
        return 1, None, None
    try:
        orientation = exif.get(_TAG_ORIENTATION, 1)
        if not isinstance(orientation, int) or orientation not in range(1, 9):
            orientation = 1
    except EXIF_ERRORS:  # unreadable orientation: show the pixels as stored
        orientation = 1
    try:
        sub = exif.get_ifd(_IFD_EXIF)
    except EXIF_ERRORS:  # the Exif sub-IFD pointer leads nowhere: only IFD0's date remains
        sub = {}
    date = None
    for tag, ifd in (
        (_TAG_DATETIME_ORIGINAL, sub),
        (_TAG_DATETIME_DIGITIZED, sub),
        (_TAG_DATETIME, exif),
    ):
        try:
            date = parse_date(ifd.get(tag))
        except EXIF_ERRORS:  # this date tag is unreadable: try the next one
            date = None
        if date:
            break
    try:
        name = camera(exif.get(_TAG_MAKE), exif.get(_TAG_MODEL))
    except EXIF_ERRORS:  # Make or Model unreadable: no camera, the rest stands
        name = None
    return orientation, date, name
