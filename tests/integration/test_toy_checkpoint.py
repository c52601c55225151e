"""The shipped toy checkpoint generalises: shapes from a generator written apart from the training one."""

from __future__ import annotations

from collections import Counter

from tests.support.images import name_files
from tests.support.independent_shapes import draw_many


def test_names_independently_drawn_shapes(toy_namer):
    """≥ 97 % right on 200 images (aspect 0.4–2.5, ±15°, 35–80 % of the short side, blur, noise /
    gradient / dark backgrounds, 48–1,600 px, JPEG/PNG/WebP/HEIC), decoded from their file bytes at
    the checkpoint's pixel budget as the pipeline does, then named in batches."""
    files = draw_many(seed=20_260_401, count=200)
    assert set(fmt for _, fmt, _ in files) == {"JPEG", "PNG", "WEBP", "HEIC"}
    right, wrong = name_files(toy_namer, files, max_pixels=toy_namer.max_pixels, batch=16)
    assert right / len(files) >= 0.97, (f"{right}/{len(files)} right", Counter(wrong).most_common())
