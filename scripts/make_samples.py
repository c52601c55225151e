"""Regenerate the bundled sample folder (renamer_ray/data/samples) deterministically.

Coloured-shape images in the formats phones and cameras produce, with camera-style names, a file
whose extension lies about its format, EXIF dates, two images that will want the same name, and
one non-image file that the run skips. ``expected.json`` beside the script maps each file to the
name the toy checkpoint should give it.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import pillow_heif
from PIL import Image

from renamer_ray.toy.shapes import draw_shape

pillow_heif.register_heif_opener()

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "renamer_ray" / "data" / "samples"
EXPECTED = ROOT / "tests" / "data" / "samples-expected.json"

# (file name, format to save as)
FILES = [
    ("IMG_0001.JPG", "JPEG"), ("IMG_0002.JPG", "JPEG"), ("IMG_0003.HEIC", "HEIF"),
    ("DSC04411.jpeg", "JPEG"), ("Screenshot 2024-05-01 at 10.22.33.png", "PNG"),
    ("photo (1).jpg", "PNG"), ("holiday/beach-day.webp", "WEBP"), ("holiday/IMG_0107.heic", "HEIF"),
    ("scan_0042.tiff", "TIFF"), ("wallpaper.png", "PNG"),
]


def exif_for(index: int) -> bytes | None:
    if index % 3:
        return None
    exif = Image.Exif()
    exif[271], exif[272] = "Canon", "Canon EOS R5"
    exif.get_ifd(0x8769)[36867] = f"2024:0{index % 9 + 1}:1{index % 10} 10:22:01"
    return exif.tobytes()


def main() -> None:
    rng = random.Random(2024)
    if OUT.exists():
        shutil.rmtree(OUT)
    expected = {}
    first = None
    for index, (name, fmt) in enumerate(FILES):
        sample = draw_shape(rng, min_side=200, max_side=640)
        if name == "wallpaper.png":  # same subject as the first file: shows de-duplication
            while sample.label != first:
                sample = draw_shape(rng, min_side=200, max_side=640)
        first = first or sample.label
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        kwargs = {"exif": exif_for(index)} if exif_for(index) and fmt in ("JPEG", "HEIF", "PNG", "WEBP") else {}
        sample.image.save(buf, format=fmt, **({"quality": 85} if fmt in ("JPEG", "WEBP", "HEIF") else {}), **kwargs)
        path.write_bytes(buf.getvalue())
        expected[name] = sample.label
    (OUT / "notes.txt").write_text("Not an image: the run counts it as skipped.\n")
    EXPECTED.parent.mkdir(parents=True, exist_ok=True)
    EXPECTED.write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {len(FILES)} images to {OUT}")


if __name__ == "__main__":
    main()
