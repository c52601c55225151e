"""The fp16 guard of the language model and the fp32 rerun's cast, on the toy checkpoint in fp16
(the CPU computes fp16 too): non-finite scores are caught per row on the device and that image is
named again in fp32; the cast to fp32 and back is undone on every path, and where it cannot be,
the process is to be replaced (DeviceLost)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from torch.overrides import TorchFunctionMode

from renamer_ray.model.device import DeviceLost
from renamer_ray.model.namer import Qwen2VLNamer
from tests.support.images import drawn_files


def pictures(seed: int, count: int = 4) -> list[Image.Image]:
    """Images of one size: one sub-batch, whose rows are the images in order."""
    return [Image.open(io.BytesIO(data)).convert("RGB").resize((84, 84))
            for data, _, _ in drawn_files(seed=seed, count=count, max_side=300)]


def overflowing_logits(namer: Qwen2VLNamer, rows):
    """A hook giving the language model's fp16 scores of ``rows`` a NaN (fp32 is left alone)."""
    def hook(module, args, out):
        if out.dtype == torch.float16:
            out = out.clone()
            out[rows, ..., 5] = float("nan")
            return out
    return namer.model.lm_head.register_forward_hook(hook)


class OutOfMemoryAfter(TorchFunctionMode):
    """CUDA's out-of-memory error at the ``calls``-th Tensor.to: a cast that fails halfway."""

    def __init__(self, calls: int):
        super().__init__()
        self.calls = calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.to:
            self.calls -= 1
            if self.calls < 0:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (injected)")
        return func(*args, **(kwargs or {}))


def failing_cast(namer: Qwen2VLNamer, monkeypatch, which: int) -> None:
    """The ``which``-th cast of the model (0: to fp32, 1: back) runs out of memory halfway."""
    cast, casts = namer._cast, []
    halfway = len(namer._floating_tensors()) // 2

    def cast_once_failing(to):
        casts.append(to)
        if len(casts) - 1 == which:
            with OutOfMemoryAfter(halfway):
                return cast(to)
        return cast(to)

    monkeypatch.setattr(namer, "_cast", cast_once_failing)


def dtypes(namer: Qwen2VLNamer) -> dict:
    return {name: t.dtype for name, t in namer._floating_tensors()}


def test_an_image_whose_fp16_scores_overflow_is_named_again_in_fp32_alone(monkeypatch):
    namer = Qwen2VLNamer("toy-shapes", dtype="float16", device="cpu")
    images = pictures(seed=1601)
    expected = [answer.raw for answer in namer.name(images)]
    calls = []
    generate = namer.model.generate
    monkeypatch.setattr(namer.model, "generate", lambda **kwargs: calls.append(
        (len(kwargs["input_ids"]), namer.model.dtype)) or generate(**kwargs))
    hook = overflowing_logits(namer, [1])
    try:
        answers = namer.name(images)
    finally:
        hook.remove()
    assert [answer.raw for answer in answers] == expected, "no junk name from NaN scores"
    assert calls == [(4, torch.float16), (1, torch.float32)], "only the second image ran again, in fp32"
    assert namer.fp32_reruns == 1


def test_an_out_of_memory_while_casting_to_fp32_leaves_the_model_as_it_was(monkeypatch):
    namer = Qwen2VLNamer("toy-shapes", dtype="float16", device="cpu")
    images = pictures(seed=1602, count=3)
    expected = [answer.raw for answer in namer.name(images)]
    loaded = dtypes(namer)
    failing_cast(namer, monkeypatch, which=0)
    hook = overflowing_logits(namer, slice(None))
    try:
        answers = namer.name(images)  # the batch's rerun fails, then each image alone succeeds
    finally:
        hook.remove()
    assert dtypes(namer) == loaded, "every tensor back in the dtype it was loaded in"
    assert [answer.raw for answer in answers] == expected
    assert [answer.raw for answer in namer.name(images)] == expected, "later batches are named as before"


def test_a_model_that_cannot_be_put_back_in_fp16_is_lost(monkeypatch):
    namer = Qwen2VLNamer("toy-shapes", dtype="float16", device="cpu")
    failing_cast(namer, monkeypatch, which=1)
    hook = overflowing_logits(namer, slice(None))
    try:
        with pytest.raises(DeviceLost, match="could not be put back in torch.float16"):
            namer.name(pictures(seed=1603, count=2))
    finally:
        hook.remove()
