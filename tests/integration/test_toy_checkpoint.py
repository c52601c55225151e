"""The shipped toy checkpoint generalises: shapes from a generator written apart from the training one."""

from __future__ import annotations

from collections import Counter

from renamer_ray.images import decode
from renamer_ray.model.namer import ImageContext
from renamer_ray.naming import sanitize_stem
from tests.support.independent_shapes import draw_many


def test_names_independently_drawn_shapes(toy_namer):
    """≥ 97 % right on 200 images (aspect 0.4–2.5, ±15°, 35–80 % of the short side, blur, noise /
    gradient / dark backgrounds, 48–1,600 px, JPEG/PNG/WebP/HEIC), decoded from their file bytes at
    the checkpoint's pixel budget as the pipeline does, then named in batches."""
    files = draw_many(seed=20_260_401, count=200)
    assert set(fmt for _, fmt, _ in files) == {"JPEG", "PNG", "WEBP", "HEIC"}
    right, wrong = 0, []
    for start in range(0, len(files), 16):
        chunk = files[start:start + 16]
        decoded = [decode(data, max_pixels=toy_namer.max_pixels) for data, _, _ in chunk]
        answers = toy_namer.name([d.to_pil() for d in decoded],
                                 [ImageContext(d.meta.date, d.meta.camera) for d in decoded])
        for (_, fmt, label), answer in zip(chunk, answers):
            name = sanitize_stem(answer.raw or "")
            right += name == label
            if name != label:
                wrong.append((fmt, label, answer.raw or answer.error))
    assert right / len(files) >= 0.97, (f"{right}/{len(files)} right", Counter(wrong).most_common())
