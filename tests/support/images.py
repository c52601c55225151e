"""Freshly drawn shape images (the toy checkpoint's world), encoded in the formats users upload."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pillow_heif
from PIL import Image

from renamer_ray.toy.shapes import draw_shape

pillow_heif.register_heif_opener()

FORMATS = ["JPEG", "PNG", "WEBP", "HEIF"]


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP", "HEIF") else {}))
    return buf.getvalue()


def drawn_files(seed: int, count: int, *, max_side: int = 1200) -> list[tuple[bytes, str, str]]:
    """(bytes, format, correct label) for freshly drawn shape images in rotating formats."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        sample = draw_shape(rng, min_side=64, max_side=max_side)
        fmt = FORMATS[i % len(FORMATS)]
        out.append((encode(sample.image, fmt), fmt, sample.label))
    return out


# The bundled sample folder's files and the names the toy checkpoint gives them.
SAMPLES_EXPECTED: dict = json.loads((Path(__file__).parents[1] / "data" / "samples-expected.json").read_text())


def name_files(namer, files: list[tuple[bytes, str, str]], *, max_pixels: int, batch: int) -> tuple[int, list]:
    """Decode each (bytes, format, label) file as the pipeline does and name them ``batch`` at a time:
    (how many got their label, [(format, label, answer) for each that did not])."""
    from renamer_ray.images import decode
    from renamer_ray.model.namer import ImageContext
    from renamer_ray.naming import sanitize_stem

    right, wrong = 0, []
    for start in range(0, len(files), batch):
        chunk = files[start:start + batch]
        decoded = [decode(data, max_pixels=max_pixels) for data, _, _ in chunk]
        answers = namer.name([d.to_pil() for d in decoded], [ImageContext(d.meta.date, d.meta.camera) for d in decoded])
        for (_, fmt, label), answer in zip(chunk, answers):
            if sanitize_stem(answer.raw or "") == label:
                right += 1
            else:
                wrong.append((fmt, label, answer.raw or answer.error))
    return right, wrong
