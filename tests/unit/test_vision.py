"""Tests for renamer_ray.model.vision: Qwen2-VL's image contract as arithmetic, and that the decode
stage and the namer read the same pixel bounds from a checkpoint."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from renamer_ray.images import decode
from renamer_ray.model.checkpoint import TOY_MODEL
from renamer_ray.model.vision import (
    DEFAULT_MIN_PIXELS,
    MAX_ASPECT_RATIO,
    MERGE_SIZE,
    MIN_SIDE,
    PATCH_SIZE,
    UNIT,
    bounds,
    canvas,
    checkpoint_size,
    pixel_bounds,
    grid_size,
    pixel_budget,
    plan,
    plan_on_grid,
)

MAX_PIXELS = 786_432  # the service's default MAX_PIXELS


def test_the_patch_geometry_of_qwen2_vl():
    assert (PATCH_SIZE, MERGE_SIZE) == (14, 2)
    assert UNIT == MIN_SIDE == 28  # one merged 2 x 2 patch: the smallest side the processor takes
    assert MAX_ASPECT_RATIO == 200
    assert DEFAULT_MIN_PIXELS == 56 * 56


@pytest.mark.parametrize(
    ("long_side", "short_side", "padded"),
    [
        (5, 5, (28, 28)),            # both sides up to MIN_SIDE
        (100, 80, (100, 80)),        # already fine: unchanged
        (4000, 10, (4000, 28)),      # 400:1 -> the short side to 28 is enough (4000 / 200 = 20)
        (20_000, 2, (20_000, 100)),  # 10000:1 -> the short side to long / 200
        (20_001, 2, (20_001, 101)),  # ... rounded up, never above 200:1
    ],
)
def test_canvas_pads_to_the_minimum_side_and_the_maximum_ratio(long_side, short_side, padded):
    assert canvas(long_side, short_side) == padded
    lc, sc = padded
    assert min(lc, sc) >= MIN_SIDE and lc / sc <= MAX_ASPECT_RATIO


@pytest.mark.parametrize(
    ("size", "max_pixels", "expected"),
    [
        ((100, 80), 10_000_000, (100, 80, 100, 80)),   # fits: never upscaled, nothing padded
        ((5, 5), 10_000_000, (5, 5, 28, 28)),          # tiny: padded, not scaled up
        ((3, 1000), 10_000_000, (3, 1000, 28, 1000)),  # tall strip: padded sideways
        ((1000, 1000), 784, (28, 28, 28, 28)),         # the smallest budget: one 28 x 28 unit
        ((4000, 3000), 6272, (91, 68, 91, 68)),        # the toy's budget: 91 x 68.25 rounds to 68
        ((3000, 4000), 6272, (68, 91, 68, 91)),        # the same, upright
    ],
)
def test_plan_scales_then_pads_onto_the_budget(size, max_pixels, expected):
    assert plan(*size, max_pixels) == expected


@pytest.mark.parametrize("max_pixels", [784, 6272, 100_000])
@pytest.mark.parametrize("size", [(4000, 3000), (2001, 999), (50_000, 7), (29, 10_000), (640, 640)])
def test_plan_picks_the_largest_content_that_fits(size, max_pixels):
    cw, ch, kw, kh = plan(*size, max_pixels)
    assert kw * kh <= max_pixels
    long0, short0 = max(size), min(size)
    long_c = max(cw, ch)
    if long_c < long0:  # scaled down: one pixel more on the long side would not fit any more
        short = max(1, min(long_c + 1, round((long_c + 1) * short0 / long0)))
        lc, sc = canvas(long_c + 1, short)
        assert lc * sc > max_pixels


def test_bounds_read_a_processors_size_setting():
    assert bounds(None, MAX_PIXELS) == (DEFAULT_MIN_PIXELS, MAX_PIXELS)
    assert bounds({}, MAX_PIXELS) == (DEFAULT_MIN_PIXELS, MAX_PIXELS)
    assert bounds({"shortest_edge": 3136, "longest_edge": 6272}, MAX_PIXELS) == (3136, 6272)  # the toy caps it
    assert bounds({"shortest_edge": 3136, "longest_edge": 12_845_056}, MAX_PIXELS) == (3136, MAX_PIXELS)
    assert bounds({"longest_edge": 6272}, 5000) == (DEFAULT_MIN_PIXELS, 5000)  # MAX_PIXELS caps it too


def test_the_toy_checkpoints_budget():
    assert checkpoint_size(TOY_MODEL) == {"shortest_edge": 3136, "longest_edge": 6272}
    assert pixel_budget(TOY_MODEL, MAX_PIXELS) == 6_272
    assert pixel_bounds(TOY_MODEL, MAX_PIXELS) == (3136, 6272)


def test_hub_ids_and_folders_without_a_processor_config_keep_max_pixels(tmp_path):
    assert checkpoint_size("Qwen/Qwen2-VL-2B-Instruct") == {}  # not looked up: no network at run time
    assert pixel_budget("Qwen/Qwen2-VL-2B-Instruct", MAX_PIXELS) == MAX_PIXELS
    assert pixel_budget(str(tmp_path), MAX_PIXELS) == MAX_PIXELS


def test_a_local_checkpoints_processor_config_is_read(tmp_path):
    config = {"image_processor": {"size": {"shortest_edge": 1024, "longest_edge": 50_176}}}
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    assert pixel_bounds(str(tmp_path), MAX_PIXELS) == (1024, 50_176)
    assert pixel_budget(str(tmp_path), 40_000) == 40_000


@pytest.fixture(scope="module")
def toy_namer_bounds():
    """The bounds the namer itself computes for the toy (the checkpoint is a few MB; CPU)."""
    from renamer_ray.model.namer import Qwen2VLNamer

    namer = Qwen2VLNamer(TOY_MODEL, max_pixels=MAX_PIXELS, device="cpu")
    return namer, (namer.min_pixels, namer.max_pixels)


def test_the_namer_and_the_decode_stage_use_the_same_numbers(toy_namer_bounds):
    namer, namer_bounds = toy_namer_bounds
    assert namer_bounds == pixel_bounds(TOY_MODEL, MAX_PIXELS) == (3136, 6272)
    # What decode ships at that budget is what the processor takes as it is: a 400:1 strip, which
    # the processor refuses raw (aspect ratio > 200), is padded into the contract by decode.
    buf = io.BytesIO()
    Image.new("RGB", (4000, 10), (220, 30, 30)).save(buf, format="PNG")
    decoded = decode(buf.getvalue(), max_pixels=pixel_budget(TOY_MODEL, MAX_PIXELS))
    assert decoded.width * decoded.height <= 6272
    size = {"shortest_edge": namer.min_pixels, "longest_edge": namer.max_pixels}
    grid = namer.processor.image_processor(images=[decoded.to_pil()], return_tensors="pt", size=size)["image_grid_thw"]
    t, h, w = grid[0].tolist()
    assert t == 1 and h * w * PATCH_SIZE**2 <= namer.max_pixels
    with pytest.raises(ValueError, match="aspect ratio"):
        namer.processor.image_processor(images=[Image.open(buf)], return_tensors="pt", size=size)


@settings(max_examples=300, deadline=None)
@given(st.integers(28, 4000), st.integers(28, 4000), st.sampled_from([3136, 56 * 56 * 4]),
       st.sampled_from([6272, 200_704, 401_408, 786_432]))
def test_grid_size_is_qwen2_vls_smart_resize(height: int, width: int, min_pixels: int, max_pixels: int) -> None:
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        return
    assert grid_size(height, width, min_pixels, max_pixels) == smart_resize(height, width, 28, min_pixels, max_pixels)


@example(38, 38, 6272)  # smart_resize overshoots: 38 x 38 → 84 x 84, above 6,272 px, which it would shrink
@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6000), st.integers(1, 6000), st.sampled_from([6272, 200_704, 786_432]))
def test_decoding_onto_the_grid_needs_no_second_resize(width: int, height: int, max_pixels: int) -> None:
    """The canvas is what the processor would resize plan's canvas to (and then leave as it is: a
    size on the grid it would not resize again), within bounds, and the content fits in it."""
    cw, ch, kw, kh = plan_on_grid(width, height, 3136, max_pixels)
    _, _, pw, ph = plan(width, height, max_pixels)
    assert (kh, kw) == grid_size(kh, kw, 3136, max_pixels)
    once = grid_size(ph, pw, 3136, max_pixels)
    assert (kh, kw) == once or once != grid_size(*once, 3136, max_pixels), "only smart_resize's overshoot is settled"
    assert kw % 28 == 0 and kh % 28 == 0 and kw * kh <= max(max_pixels, 3136 * 4)
    assert 1 <= cw <= kw and 1 <= ch <= kh
