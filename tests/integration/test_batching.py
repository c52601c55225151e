"""One model call per batch whatever its rows' prompts and styles (rows of several jobs share a
batch), and sub-batches of similar visual-token counts."""

from __future__ import annotations

import io

import torch
from PIL import Image

from renamer_ray.model.namer import ImageContext
from renamer_ray.naming import NamingStyle
from tests.support.images import drawn_files


def test_rows_with_different_prompts_and_styles_share_one_call_and_answer_as_alone(toy_namer, monkeypatch):
    drawn = drawn_files(seed=1501, count=8, max_side=400)
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data, _, _ in drawn]
    prompts = [None, "the shape and its colour", None, "colour first"] * 2
    styles = [None, NamingStyle.parse(max_words=1), NamingStyle.parse(language="French"),
              NamingStyle.parse(max_chars=8)] * 2
    alone = [toy_namer.name([image], [ImageContext()], prompt, style=style)[0]
             for image, prompt, style in zip(images, prompts, styles)]
    calls = []
    generate = toy_namer.model.generate
    monkeypatch.setattr(toy_namer.model, "generate", lambda **kwargs: calls.append(1) or generate(**kwargs))
    together = toy_namer.name(images, [ImageContext()] * 8, prompts, style=styles)
    assert len(calls) == 1, "one model call for the whole batch"
    assert [a.raw for a in together] == [a.raw for a in alone]
    assert all(len(a.raw.split("-")) == 1 for a, s in zip(together, styles) if s and s.max_words == 1)
    assert all(len(a.raw) <= 8 for a, s in zip(together, styles) if s and s.max_chars == 8)


def test_images_of_very_different_sizes_are_named_in_sub_batches(toy_namer, monkeypatch):
    monkeypatch.setattr(toy_namer, "max_pixels", 786_432)  # the service's default bounds, not the toy's
    small, large = torch.zeros(3, 56, 56, dtype=torch.uint8), torch.zeros(3, 1008, 756, dtype=torch.uint8)
    medium = torch.zeros(3, 700, 700, dtype=torch.uint8)
    assert toy_namer.visual_tokens(small) == 4 and toy_namer.visual_tokens(large) == 36 * 27
    assert toy_namer.sub_batches([small, large, medium, small, large]) == [[1, 4, 2], [0, 3]]
