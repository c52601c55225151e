"""The lean model step: images decoded straight onto the patch grid, shipped as uint8, normalised
and patchified by the processor on the model's device, against today's path (decode to the pixel
budget, then the processor resizes a second time and normalises on the host)."""

from __future__ import annotations

import numpy as np
import torch

from renamer_ray.images import decode
from renamer_ray.model.namer import pixels
from renamer_ray.naming import sanitize_stem
from tests.support.independent_shapes import draw_many


def test_the_lean_path_gives_the_models_input_and_names_of_the_processor_path(toy_namer):
    """On 200 varied images (0.4–2.5 aspect, 48–1,600 px, four formats): the same patch grid, pixel
    values within a mean absolute difference of 0.02 per image on average and 0.06 for 95 % of images
    (normalised units: one grey level is about 0.015; what differs is one resample instead of two),
    and the same toy names for at least 98 % of the images."""
    namer = toy_namer
    files = draw_many(seed=2_026_112_6, count=200)
    processor = namer.processor.image_processor
    differences, today, lean = [], [], []
    for data, _, _ in files:
        old = decode(data, max_pixels=namer.max_pixels)
        new = decode(data, max_pixels=namer.max_pixels, min_pixels=namer.min_pixels)
        assert namer.on_grid(pixels(new.rgb, new.width, new.height))
        assert len(new.rgb) == new.width * new.height * 3, "uint8 RGB is what is shipped to the model"
        before = processor(images=[old.to_pil()], return_tensors="pt",
                           size={"shortest_edge": namer.min_pixels, "longest_edge": namer.max_pixels})
        after = processor(images=[pixels(new.rgb, new.width, new.height)], do_resize=False, return_tensors="pt")
        assert torch.equal(before["image_grid_thw"], after["image_grid_thw"])
        differences.append((before["pixel_values"] - after["pixel_values"]).abs().mean().item())
        today.append(old.to_pil())
        lean.append(pixels(new.rgb, new.width, new.height))
    assert np.mean(differences) <= 0.02 and np.percentile(differences, 95) <= 0.06, (
        np.mean(differences), np.percentile(differences, 95))
    same = right = 0
    for start in range(0, len(files), 16):
        for (_, _, label), a, b in zip(files[start:start + 16], namer.name(today[start:start + 16]),
                                       namer.name(lean[start:start + 16])):
            same += a.raw == b.raw
            right += sanitize_stem(b.raw or "") == label
    assert same >= 0.98 * len(files), f"{same} of {len(files)} names are the same"
    assert right >= 0.97 * len(files), f"{right} of {len(files)} right on the lean path"
