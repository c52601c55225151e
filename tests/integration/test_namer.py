"""The namer on the shipped toy checkpoint: real Qwen2-VL classes, real generation, batched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from renamer_ray.images import decode
from renamer_ray.model.checkpoint import TOY_MODEL, resolve_checkpoint
from renamer_ray.model.device import choose_dtype
from renamer_ray.model.namer import ImageContext
from tests.support.images import drawn_files, name_files
from tests.support.eventually import eventually


def test_toy_checkpoint_ships_inside_the_package():
    path = Path(resolve_checkpoint(TOY_MODEL))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    assert sum(f.stat().st_size for f in path.iterdir()) < 8 * 1024 * 1024, "a few MB at most"
    assert resolve_checkpoint("Qwen/Qwen2-VL-2B-Instruct") == "Qwen/Qwen2-VL-2B-Instruct"


def test_dtype_policy():
    assert choose_dtype("cpu") == torch.float32
    assert choose_dtype("cpu", "bfloat16") == torch.bfloat16
    assert choose_dtype("cuda", "float16") == torch.float16


def test_names_freshly_drawn_images_in_every_format(toy_namer):
    """≥ 98 % correct on new images of any size and format, through decode + batched naming."""
    files = drawn_files(seed=20261125, count=96)
    correct, wrong = name_files(toy_namer, files, max_pixels=786_432, batch=12)
    assert correct / len(files) >= 0.98, wrong


def test_batch_keeps_every_name_with_its_own_image(toy_namer):
    """Different sizes in one batch, left padding, and a failing image in the middle."""
    files = drawn_files(seed=77, count=7, max_side=900)
    images = [decode(data, max_pixels=786_432).to_pil() for data, _, _ in files]
    labels = [label for _, _, label in files]
    sizes = {im.size for im in images}
    assert len(sizes) > 3, "the batch must mix sizes"
    alone = [toy_namer.name([im])[0].raw for im in images]
    broken = Image.new("RGB", (4000, 4), "white")  # aspect ratio 1000: Qwen2-VL's processor rejects it
    batch = images[:3] + [broken] + images[3:]
    answers = toy_namer.name(batch)
    assert answers[3].error and answers[3].raw is None
    got = [a.raw for a in answers[:3] + answers[4:]]
    assert got == alone, "a name in a batch must equal the name of the same image alone"
    assert sum(g == label for g, label in zip(got, labels)) >= len(labels) - 1


def test_prompt_and_metadata_reach_the_model(toy_namer):
    files = drawn_files(seed=5, count=2)
    images = [decode(d, max_pixels=786_432).to_pil() for d, _, _ in files]
    contexts = [ImageContext(date="2024-07-14", camera="Canon EOS R5"), ImageContext()]
    answers = toy_namer.name(images, contexts, user_prompt="include date and primary subject")
    assert [a.raw for a in answers] == [label for _, _, label in files]


def test_a_model_that_wants_to_stop_right_after_a_hyphen_cannot(toy_namer):
    """The toy pushed to write a hyphen wherever it may and to end right after it: the constraint
    keeps the end token away from a hyphen, so every name ends with a word, within any limit."""
    from renamer_ray.naming import NamingStyle, is_valid_stem

    images = [decode(d, max_pixels=786_432).to_pil() for d, _, _ in drawn_files(seed=6, count=3)]
    hyphen = toy_namer.processor.tokenizer.convert_tokens_to_ids("-")

    def hyphen_then_stop(module, args, out):
        out = out.clone()
        out[..., hyphen] += 1e4
        out[..., toy_namer.eos_ids] += 1e3
        return out

    hook = toy_namer.model.lm_head.register_forward_hook(hyphen_then_stop)
    try:
        answers = [*toy_namer.name(images), *toy_namer.name(images, style=NamingStyle.parse(max_chars=8)),
                   *toy_namer.name(images, style=NamingStyle.parse(max_words=2))]
    finally:
        hook.remove()
    assert all(a.raw and "-" in a.raw and is_valid_stem(a.raw) for a in answers), [a.raw for a in answers]


def test_empty_batch(toy_namer):
    assert toy_namer.name([]) == []


def test_a_fatal_device_error_ends_the_model_process_so_ray_replaces_it(ray_local):
    """A CUDA error (injected) must not become a per-image error on every later image: the namer
    raises DeviceLost and the process holding the model leaves, so Ray restarts it; ordinary errors
    still fail only their image."""
    import ray

    from renamer_ray.model.device import DeviceLost
    from renamer_ray.model.namer import Qwen2VLNamer
    from renamer_ray.pipeline.infer import name_rows

    @ray.remote(num_cpus=0, max_restarts=1, max_task_retries=0)
    class Holder:
        def __init__(self):
            import os

            self.pid = os.getpid()
            self.namer = Qwen2VLNamer("toy-shapes")

        def name(self, rows, error: str | None):
            if error:
                def broken(*args):
                    raise RuntimeError(error)
                self.namer._generate = broken
            return self.pid, name_rows(self.namer, rows)

    data, _, label = drawn_files(seed=950, count=1, max_side=200)[0]
    image = decode(data, max_pixels=6272)
    row = dict(width=image.width, height=image.height, rgb=image.rgb, date=None, camera=None, prompt=None)
    holder = Holder.remote()
    pid, answers = ray.get(holder.name.remote([row, row], "shape mismatch"))  # an ordinary error: per image
    assert [a["raw"] for a in answers] == [None, None] and "shape mismatch" in answers[0]["error"]
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(holder.name.remote([row], "CUDA error: an illegal memory access was encountered"))
    # Ray restarts it with a fresh model; calls are refused while it restarts.
    restarted, answers = eventually(lambda: ray.get(holder.name.remote([row], None)), "Ray restarts the actor",
                                    timeout=120, every=0.2, retry_on=(ray.exceptions.ActorUnavailableError,))
    assert restarted != pid and answers[0]["raw"].startswith(label)

    namer = Qwen2VLNamer("toy-shapes")
    namer._generate = lambda *args: (_ for _ in ()).throw(RuntimeError("CUDA error: device-side assert triggered"))
    with pytest.raises(DeviceLost):
        namer.name([Image.frombytes("RGB", (image.width, image.height), image.rgb)])
