"""The namer's GPU path, checked on the CPU with small hooks standing in for the GPU: the device
check, the OOM retry, the pinned copy, the vision tower's host syncs, and host work overlapping
the model."""

from __future__ import annotations

import io
import threading
import weakref

import pytest
import torch
from PIL import Image
from torch.overrides import TorchFunctionMode

from renamer_ray.model.device import DeviceUnavailable, choose_device, cuda_problem
from renamer_ray.model.namer import Qwen2VLNamer, pixels
from renamer_ray.images import decode
from tests.support.images import drawn_files


def pictures(seed: int, count: int, max_side: int = 300) -> list[Image.Image]:
    return [Image.open(io.BytesIO(data)).convert("RGB") for data, _, _ in drawn_files(seed=seed, count=count,
                                                                                     max_side=max_side)]


# --------------------------------------------------------------------------- the device check


def test_cuda_asked_for_but_unusable_fails_at_once_with_torchs_reason():
    reason = cuda_problem()
    assert reason and "NVIDIA driver" in reason, "this machine has no GPU: torch says why"
    with pytest.raises(DeviceUnavailable) as failed:
        choose_device("cuda")
    assert reason in str(failed.value) and "MODEL_DEVICE=cpu" in str(failed.value)
    assert choose_device("auto") == "cpu" and choose_device("cpu") == "cpu", "no GPU meant: the CPU, quietly"


def test_auto_in_an_actor_that_ray_gave_a_gpu_fails_instead_of_naming_on_the_cpu(ray_local, monkeypatch):
    import ray

    @ray.remote(num_cpus=0)
    class Actor:
        def choose(self, device: str, gpus: list[str]) -> str:
            given = ray.get_gpu_ids
            ray.get_gpu_ids = lambda: gpus  # what Ray answers where it gave GPUs (this machine has none)
            try:
                return choose_device(device)
            except DeviceUnavailable as exc:
                return f"refused: {exc}"
            finally:
                ray.get_gpu_ids = given

    actor = Actor.remote()
    try:
        refused = ray.get(actor.choose.remote("auto", ["0"]))
        assert refused.startswith("refused: Ray gave this process GPU 0") and cuda_problem() in refused
        assert ray.get(actor.choose.remote("cpu", ["0"])) == "cpu", "MODEL_DEVICE=cpu stays the way to the CPU"
        assert ray.get(actor.choose.remote("auto", [])) == "cpu", "an actor without a GPU names on the CPU"
    finally:
        ray.kill(actor)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: ["0"])
    assert choose_device("auto") == "cpu", "a driver is no actor: Ray's GPU ids are not its own"


# --------------------------------------------------------------------------- the OOM retry


def test_a_batch_that_ran_out_of_memory_is_freed_before_its_images_are_retried(toy_namer, monkeypatch):
    monkeypatch.setattr(toy_namer, "max_batch", None)  # the OOM lowers it: the shared namer gets it back
    images = pictures(seed=2101, count=3)
    expected = [answer.raw for answer in toy_namer.name(images)]
    generate, release = toy_namer._generate, toy_namer._release_memory
    leftovers: list[weakref.ref] = []
    freed_at: dict[str, bool] = {}

    def runs_out_of_memory_once(*args):
        if not leftovers:
            batch_tensors = torch.ones(1024)  # what a batch holds on the device when it runs out of memory
            leftovers.append(weakref.ref(batch_tensors))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        freed_at.setdefault("retry", leftovers[0]() is None)
        return generate(*args)

    def spied_release():
        freed_at.setdefault("release", leftovers[0]() is None)
        release()

    monkeypatch.setattr(toy_namer, "_generate", runs_out_of_memory_once)
    monkeypatch.setattr(toy_namer, "_release_memory", spied_release)
    assert [answer.raw for answer in toy_namer.name(images)] == expected, "retried in halves"
    assert freed_at == {"release": True, "retry": True}, (
        "the failed batch's tensors are gone, and the cache emptied, before the first image is retried")


def test_out_of_memory_halves_the_model_batch_for_the_namers_life(toy_namer, monkeypatch):
    monkeypatch.setattr(toy_namer, "max_batch", None)
    images = pictures(seed=2107, count=5, max_side=260)
    assert len(toy_namer.sub_batches(images)) == 1, "one batch of five, as far as sizes go"
    expected = [answer.raw for answer in toy_namer.name(images)]
    generate = toy_namer._generate
    batches: list[int] = []

    def card_holds_two(images, *rest):  # what a card with room for two images does
        batches.append(len(images))
        if len(images) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (injected)")
        return generate(images, *rest)

    monkeypatch.setattr(toy_namer, "_generate", card_holds_two)
    assert [answer.raw for answer in toy_namer.name(images)] == expected, "every image named, none failed"
    assert batches == [5, 3, 2, 1, 2], "halved until it fits: 5, then 3, then 2"
    assert toy_namer.max_batch == 2
    batches.clear()
    assert [answer.raw for answer in toy_namer.name(images)] == expected
    assert batches == [2, 2, 1], "later calls start at the size that fitted"


def test_model_batches_hold_at_most_max_batch_images_and_name_as_one_batch_does(toy_namer, monkeypatch):
    images = pictures(seed=2108, count=7, max_side=260)
    monkeypatch.setattr(toy_namer, "max_batch", None)
    expected = [answer.raw for answer in toy_namer.name(images)]
    monkeypatch.setattr(toy_namer, "max_batch", 3)
    assert all(len(piece) <= 3 for piece in toy_namer.model_batches(images))
    assert sorted(n for piece in toy_namer.model_batches(images) for n in piece) == list(range(7))
    assert [answer.raw for answer in toy_namer.name(images)] == expected


# --------------------------------------------------------------------------- the pinned copy


class FakePinning(TorchFunctionMode):
    """Stands in for pinned memory (which needs a GPU) and notes what happens to 3-D uint8 images:
    each call of pin_memory, to and contiguous, in order."""

    def __init__(self):
        super().__init__()
        self.events: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        image = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if image is not None and image.dtype == torch.uint8 and image.ndim == 3:
            if func is torch.Tensor.pin_memory:
                self.events.append("pin")
                return image.clone()
            if func is torch.Tensor.to:
                self.events.append("to non-blocking" if kwargs.get("non_blocking") else "to")
            elif func is torch.Tensor.contiguous:
                self.events.append("contiguous")
        return func(*args, **kwargs)


def test_pinned_images_go_to_the_device_before_the_processor_copies_them(toy_namer, monkeypatch):
    files = drawn_files(seed=2102, count=3, max_side=300)
    decoded = [decode(data, max_pixels=toy_namer.max_pixels, min_pixels=toy_namer.min_pixels) for data, _, _ in files]
    images = [pixels(d.rgb, d.width, d.height) for d in decoded]
    assert all(toy_namer.on_grid(image) for image in images), "the lean path"
    processor = toy_namer.processor.image_processor
    host = processor(images=images, do_resize=False, return_tensors="pt")
    names = [answer.raw for answer in toy_namer.name(images)]

    monkeypatch.setattr(toy_namer, "pin_memory", True)  # what a GPU namer does
    with FakePinning() as seen:
        staged = toy_namer._pixel_inputs(images)
        lean = processor(**staged, return_tensors="pt")
    staging = 2 * len(images)
    assert seen.events[:staging] == ["pin", "to non-blocking"] * len(images), (
        "each image pinned, then copied to the device asynchronously before the processor takes it", seen.events)
    assert "pin" not in seen.events[staging:], "the processor makes no host copy of its own"
    assert torch.equal(lean["pixel_values"], host["pixel_values"])
    assert torch.equal(lean["image_grid_thw"], host["image_grid_thw"])
    with FakePinning():
        assert [answer.raw for answer in toy_namer.name(images)] == names


# --------------------------------------------------------------------------- the vision tower's host syncs


class OnDevice(torch.Tensor):
    """Stands for a tensor on a GPU: counts the calls that make the host wait for it (.tolist,
    .item, .cpu); what .cpu returns is an ordinary host tensor."""

    syncs = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.tolist, torch.Tensor.item, torch.Tensor.cpu):
            cls.syncs += 1
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **(kwargs or {}))
                return out.as_subclass(torch.Tensor) if isinstance(out, torch.Tensor) else out
        return super().__torch_function__(func, types, args, kwargs)


def test_the_vision_tower_waits_for_its_sequence_lengths_once_per_batch_not_once_per_block(toy_namer):
    visual = toy_namer.model.model.visual
    inputs = toy_namer.processor.image_processor(images=pictures(seed=2103, count=3), return_tensors="pt")
    grid = inputs["image_grid_thw"]
    with torch.inference_mode():
        reference = type(visual).forward(visual, inputs["pixel_values"], grid_thw=grid)  # transformers' own
        OnDevice.syncs = 0
        out = visual(inputs["pixel_values"], grid_thw=grid.as_subclass(OnDevice))
    assert len(visual.blocks) == 4
    assert OnDevice.syncs <= 2, f"{OnDevice.syncs} host syncs: the grid once, its positions once, not 3 per block"
    assert torch.equal(out.pooler_output, reference.pooler_output)


# --------------------------------------------------------------------------- host work beside the model


def test_a_second_call_prepares_its_batch_while_the_first_is_on_the_model(toy_namer, monkeypatch):
    first, second = pictures(seed=2104, count=4), pictures(seed=2105, count=4)
    expected = [[answer.raw for answer in toy_namer.name(batch)] for batch in (first, second)]
    prepare, generate = toy_namer._model_inputs, toy_namer.model.generate
    prepared = threading.Semaphore(0)
    first_on_model = threading.Event()
    on_model, overlaps, waited = [0], [], []

    def counted_prepare(*args):
        out = prepare(*args)
        prepared.release()
        return out

    def first_batch_waits_for_the_second_to_be_prepared(**kwargs):
        on_model[0] += 1
        overlaps.append(on_model[0])
        try:
            if len(overlaps) == 1:
                prepared.acquire(timeout=60)  # its own preparation
                first_on_model.set()
                waited.append(prepared.acquire(timeout=60))  # the second call's, made meanwhile
            return generate(**kwargs)
        finally:
            on_model[0] -= 1

    monkeypatch.setattr(toy_namer, "_model_inputs", counted_prepare)
    monkeypatch.setattr(toy_namer.model, "generate", first_batch_waits_for_the_second_to_be_prepared)
    results: list = [None, None]

    def call(n, batch):
        results[n] = [answer.raw for answer in toy_namer.name(batch)]

    threads = [threading.Thread(target=call, args=(n, batch)) for n, batch in enumerate((first, second))]
    threads[0].start()
    assert first_on_model.wait(timeout=60)  # the second call starts once the first is on the model
    threads[1].start()
    for thread in threads:
        thread.join(timeout=120)
    assert waited == [True], "the second batch was prepared while the first was on the model"
    assert max(overlaps) == 1, "one batch on the model at a time"
    assert results == expected, "each call gets its own names, in order"


# --------------------------------------------------------------------------- the static cache


def test_a_static_cache_gives_the_names_of_the_dynamic_one(monkeypatch):
    images = pictures(seed=2106, count=8, max_side=400)
    dynamic = Qwen2VLNamer("toy-shapes")
    static = Qwen2VLNamer("toy-shapes", static_cache=True)
    caches = []
    generate = static.model.generate
    monkeypatch.setattr(static.model, "generate", lambda **kwargs: caches.append(
        (kwargs.get("cache_implementation"), kwargs.get("max_cache_len"))) or generate(**kwargs))
    assert [a.raw for a in static.name(images)] == [a.raw for a in dynamic.name(images)]
    assert caches and all(cache == "static" and length % 256 == 0 for cache, length in caches), caches


# --------------------------------------------------------------------------- the deferred stop check


class HostEvent:
    """torch.Event for the CPU, whose backend has none: CPU work is done when it is queued."""

    def __init__(self, *args, **kwargs):
        pass

    def record(self, *args):
        pass

    def synchronize(self):
        pass


def test_decoding_checks_for_its_end_one_step_late_and_gives_the_same_names(toy_namer, monkeypatch):
    from transformers.generation import utils

    from renamer_ray.model.decoding import defer_stop_checks, deferring

    images = pictures(seed=2109, count=6, max_side=400)
    expected = [answer.raw for answer in toy_namer.name(images)]
    library = utils.DeferredStopCheck.is_supported
    while hasattr(library, "library"):  # transformers' own, under whatever a benchmark in this process put on it
        library = library.library
    assert not library(torch.device("cuda"), None, False, False), "transformers defers on mps only"
    monkeypatch.setattr(utils.DeferredStopCheck, "is_supported", library)
    assert defer_stop_checks() and defer_stop_checks(), "installed once, however often asked"
    assert utils.DeferredStopCheck.is_supported(torch.device("cuda"), None, False, False)
    assert not utils.DeferredStopCheck.is_supported(torch.device("cuda"), None, False, True), "never for an assistant"

    # The same on the CPU, which is where a test can run it: each step's flag is read one step late.
    monkeypatch.setattr(utils.DeferredStopCheck, "is_supported", staticmethod(deferring(library, ("cpu",))))
    monkeypatch.setattr(torch, "Event", HostEvent)
    deferred, undone = [], []
    init, undo = utils.DeferredStopCheck.__init__, utils._undo_generation_steps
    monkeypatch.setattr(utils.DeferredStopCheck, "__init__", lambda self, *a, **k: deferred.append(1) or init(self, *a, **k))
    monkeypatch.setattr(utils, "_undo_generation_steps", lambda steps, *a: undone.append(steps) or undo(steps, *a))
    assert [answer.raw for answer in toy_namer.name(images)] == expected
    assert deferred and undone, "transformers' deferred check ran, and undid its extra step"
