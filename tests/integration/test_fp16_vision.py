"""The vision tower in fp16 (GPUs without bf16, e.g. T4), guarded: a batch whose fp16 embedding is
not finite runs again in fp32, and is counted. Run here on the CPU, which computes fp16 too."""

from __future__ import annotations

import io

import torch
from PIL import Image

from renamer_ray.model.namer import Qwen2VLNamer
from tests.support.images import drawn_files


def images(seed: int) -> tuple[list[Image.Image], list[str]]:
    drawn = drawn_files(seed=seed, count=6, max_side=300)
    return [Image.open(io.BytesIO(data)).convert("RGB") for data, _, _ in drawn], [label for _, _, label in drawn]


def test_fp16_vision_names_as_before_and_an_overflow_reruns_that_batch_in_fp32():
    namer = Qwen2VLNamer("toy-shapes", dtype="float16", device="cpu")
    visual = namer.model.model.visual
    assert visual.patch_embed.proj.weight.dtype == torch.float16, "the tower runs in fp16, not fp32"
    pictures, labels = images(seed=1401)
    assert [answer.raw for answer in namer.name(pictures)] == labels
    assert namer.vision_fp32_reruns == 0

    with torch.no_grad():  # force an overflow: activations beyond fp16's 65,504
        visual.patch_embed.proj.weight.mul_(1e5)
    answers = namer.name(pictures)
    assert namer.vision_fp32_reruns == 1, "one rerun for the batch"
    assert all(answer.error is None and answer.raw for answer in answers), answers
    assert visual.patch_embed.proj.weight.dtype == torch.float16, "back to fp16 after the rerun"
