"""The model in fp16 (GPUs without bf16, e.g. T4), guarded: an image whose fp16 vision tower or
language model overflows is named again in fp32, alone, and counted. Run here on the CPU, which
computes fp16 too."""

from __future__ import annotations

import io

import torch
from PIL import Image

from renamer_ray.model.namer import Qwen2VLNamer
from tests.support.images import drawn_files


def images(seed: int) -> tuple[list[Image.Image], list[str]]:
    drawn = drawn_files(seed=seed, count=6, max_side=300)
    return [Image.open(io.BytesIO(data)).convert("RGB") for data, _, _ in drawn], [label for _, _, label in drawn]


def test_fp16_vision_names_as_before_and_an_overflow_reruns_those_images_in_fp32():
    namer = Qwen2VLNamer("toy-shapes", dtype="float16", device="cpu")
    visual = namer.model.model.visual
    assert visual.patch_embed.proj.weight.dtype == torch.float16, "the tower runs in fp16, not fp32"
    pictures, labels = images(seed=1401)
    assert [answer.raw for answer in namer.name(pictures)] == labels
    assert namer.fp32_reruns == 0

    with torch.no_grad():  # force an overflow: activations beyond fp16's 65,504
        visual.patch_embed.proj.weight.mul_(1e5)
    answers = namer.name(pictures)
    assert namer.fp32_reruns == len(pictures), "every image overflowed, every image ran again in fp32"
    assert all(answer.error is None and answer.raw for answer in answers), answers
    assert visual.patch_embed.proj.weight.dtype == torch.float16, "back to fp16 after the rerun"


def test_an_image_whose_fp16_vision_tower_overflows_is_named_again_alone(monkeypatch):
    """Only that image runs again in fp32, not its batch; the others keep their fp16 names."""
    namer = Qwen2VLNamer("toy-shapes", dtype="float16", device="cpu")
    pictures = [picture.resize((84, 84)) for picture in images(seed=1402)[0][:4]]  # one size: rows in order
    tokens = namer.visual_tokens(pictures[0])
    expected = [answer.raw for answer in namer.name(pictures)]
    calls = []
    generate = namer.model.generate
    monkeypatch.setattr(namer.model, "generate", lambda **kwargs: calls.append(
        (len(kwargs["input_ids"]), namer.model.dtype)) or generate(**kwargs))

    def third_image_overflows(module, args, out):  # the merger's rows of the third image, in fp16 only
        if out.dtype == torch.float16:
            out = out.clone()
            out[2 * tokens:3 * tokens] = float("inf")
            return out

    hook = namer.model.model.visual.merger.register_forward_hook(third_image_overflows)
    try:
        answers = namer.name(pictures)
    finally:
        hook.remove()
    assert calls == [(4, torch.float16), (1, torch.float32)], "the batch in fp16, then the third image alone in fp32"
    assert [answer.raw for answer in answers] == expected and namer.fp32_reruns == 1
