"""benchmarks/model_alone.py's pure parts: its FLOP count against torch's, the resize grid, and the
image-only processor; the benchmark's runs are in tests/integration/test_model_alone.py."""

from __future__ import annotations

import argparse
import random

import pytest
import torch

from tests.support.model_alone import load_model_alone


def test_the_image_only_processor_gives_what_autoprocessor_gives():
    """The processor built without a video processor (no torchvision needed) turns images and the
    prompt into the same tensors as AutoProcessor (here, where torchvision is installed)."""
    from transformers import AutoProcessor

    m = load_model_alone()
    mine, theirs = m.build_processor(str(m.TOY)), AutoProcessor.from_pretrained(str(m.TOY))
    assert mine.backend == "torchvision" and not hasattr(mine, "video_processor")
    images = [m.draw(800, 600, random.Random(1)), m.draw(500, 900, random.Random(2))]
    a, b = m.prepare(mine, images, 50_176), m.prepare(theirs, images, 50_176)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].shape == b[key].shape and bool((a[key] == b[key]).all()), key


def test_flop_count_matches_torch_flop_counter():
    """The analytic count equals torch's own count of the tiny model's matmuls, for the vision
    tower and for a prefill that keeps the last position's logits (attention counted in full by
    torch's eager path, causal-halved in the script: converted here)."""
    from torch.utils.flop_counter import FlopCounterMode

    m = load_model_alone()
    model, processor, cfg = m.load(argparse.Namespace(model=None, tiny=True, device="cpu", attn="eager"), torch)
    inputs = m.prepare(processor, [m.draw(800, 600, random.Random(1))], 50_176)
    t, h, w = inputs["image_grid_thw"][0].tolist()
    n = int(inputs["attention_mask"].sum())
    vision, prefill, first_head = m.image_flops(cfg, t * h * w, n, 1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
    assert counter.get_total_flops() == vision
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**inputs, logits_to_keep=1)
    hidden, layers = cfg["text"]["hidden_size"], cfg["text"]["num_hidden_layers"]
    full_attention = layers * (4 * hidden * n * n - 2 * hidden * n * (n + 1))
    assert counter.get_total_flops() == vision + prefill + full_attention + first_head


def test_full_size_count_and_resize_grid():
    m = load_model_alone()
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for width, height in m.SOURCE_SIZES + [(4032, 3024), (300, 5000)]:
        for max_pixels in (200_704, 401_408, 786_432):
            rh, rw = smart_resize(height, width, 28, m.MIN_PIXELS, max_pixels)
            assert m.smart_resize_grid(width, height, max_pixels) == (rh // 14, rw // 14)
    # 1,024 visual tokens (a 64 x 64 patch grid) + 60 text tokens, 12 new tokens.
    vision, prefill, decode = m.image_flops(m.FULL_2B, 64 * 64, 1024 + 60, 12)
    assert 7e12 < vision < 9e12 and 2.5e12 < prefill < 3.5e12
    # No LM head over the prompt: the head costs 2 * 1536 * 151,936 FLOPs per generated token only.
    assert decode > 12 * 2 * 1536 * 151_936
    assert m.cost_per_1k(1.0, 0.526) == pytest.approx(0.526 / 3.6)
