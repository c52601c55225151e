"""The namer: a Qwen2-VL checkpoint that turns a batch of images into raw names (no Ray here).

Loads any Qwen2-VL checkpoint (a hub id such as ``Qwen/Qwen2-VL-2B-Instruct``, a local path, or
``toy-shapes`` for the bundled test checkpoint) with the real transformers classes, and runs
batched, greedy, left-padded generation under :class:`KebabNameConstraint`.

With a ``language`` (``NamingStyle.language``) generation is not constrained: the model must write
that language's own letters, and Qwen2's byte-level BPE splits most non-Latin letters over several
tokens none of which decodes to a letter alone, so a per-token character check cannot say "any
letter"; nor can a character budget be kept before transliteration (``東京`` becomes ``dongjing``).
The answer's first line goes to the rules, which transliterate it and fit it to the limits;
``max_new_tokens`` bounds the generation.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, LogitsProcessorList, Qwen2VLForConditionalGeneration
from transformers.utils.generic import is_flash_attention_requested
from transformers.vision_utils import get_vision_cu_seqlens

from renamer_ray.naming import prompts
from renamer_ray.model import vision
from renamer_ray.model.answers import ImageContext, Naming, first_line, generated_tokens, per_image
from renamer_ray.model.checkpoint import resolve_checkpoint
from renamer_ray.model.constraints import FiniteRows, KebabNameConstraint, TokenTable
from renamer_ray.model.decoding import cache_options, defer_stop_checks
from renamer_ray.model.device import (DeviceLost, choose_device, choose_dtype, is_fatal_device_error,
                                      is_turing_or_older)
from renamer_ray.model.fp32_rerun import Fp32Rerun
from renamer_ray.model.memory import batch_memory
from renamer_ray.naming.rules import MAX_CHARS, MAX_WORDS
from renamer_ray.naming.style import NamingStyle

log = logging.getLogger(__name__)


def pixels(rgb: bytes, width: int, height: int) -> torch.Tensor:
    """RGB888 bytes (a decoded row) as the uint8 (3, height, width) tensor the processor takes."""
    return torch.frombuffer(bytearray(rgb), dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)


def _host_seqlens(visual) -> None:
    """Give the vision tower its images' sequence lengths as a host tensor, computed once per batch.
    Outside flash attention transformers' ``VisionAttention`` splits each block's attention per
    image with ``(cu_seqlens[1:] - cu_seqlens[:-1]).tolist()``: from a device tensor that is a host
    sync in every block (32 for Qwen2-VL-2B). The tower accepts ``cu_seqlens`` precomputed
    (``transformers.vision_utils``); flash attention wants them on the device, and is left as is."""
    if is_flash_attention_requested(visual.config):
        return
    forward = visual.forward

    def forward_with_host_seqlens(hidden_states, grid_thw, **kwargs):
        kwargs.setdefault("cu_seqlens", get_vision_cu_seqlens(grid_thw.cpu()))
        return forward(hidden_states, grid_thw=grid_thw, **kwargs)

    visual.forward = forward_with_host_seqlens


class Qwen2VLNamer(Fp32Rerun):
    """One loaded model; :meth:`name` maps N images to N answers, in input order.

    Calls from several threads overlap: a call's host work (templating, the processor, decoding the
    answers) runs while another call's batch is on the model (one at a time, ``_device``), so an
    actor that takes two batches at once keeps the GPU busy between them.

    In fp16 a row whose scores stop being finite is named again with the model in fp32
    (:mod:`renamer_ray.model.fp32_rerun`).

    On a GPU a model batch holds at most ``max_batch`` images: estimated at load time from the free
    memory (:mod:`renamer_ray.model.memory`), halved for the namer's life after a batch runs out of
    memory (that batch is then named in halves). Decoding checks for its end without a host sync per
    token (:mod:`renamer_ray.model.decoding`).
    """

    def __init__(self, model_id: str, *, max_pixels: int = 786_432, max_new_tokens: int = 60,
                 device: str = "auto", dtype: str = "auto", max_chars: int = MAX_CHARS,
                 max_words: int = MAX_WORDS, static_cache: bool = False):
        """``static_cache``: decode with a static KV cache, compiled on a GPU with bf16
        (:func:`~renamer_ray.model.decoding.cache_options`; opt-in, unmeasured on GPUs)."""
        path = resolve_checkpoint(model_id)
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device, dtype)
        self.pin_memory = self.device.startswith("cuda")  # host images go to the GPU through pinned memory
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        _host_seqlens(self.model.model.visual)
        # The dtype each floating tensor was loaded in, by name: what an fp32 rerun restores.
        self._loaded_dtypes = {name: t.dtype for name, t in self._floating_tensors()}
        self.fp32_reruns = 0  # images whose fp16 scores overflowed and that were named again in fp32
        self._host = threading.Lock()    # the processor and tokenizer: one call at a time
        self._device = threading.RLock()  # the model: one batch at a time (an fp32 rerun holds it throughout)
        # The bounds the decode stage used too (model.vision); a checkpoint's own pixel budget is an
        # upper bound (the toy was trained on small images). The loaded processor's size is the one
        # read here, so hub ids get their own numbers.
        self.min_pixels, self.max_pixels = vision.bounds(dict(self.processor.image_processor.size), max_pixels)
        self.max_new_tokens = max_new_tokens
        self.static_cache = static_cache
        # transformers compiles a static cache's decode step on GPUs with bf16 only (untried on Turing).
        self.compile_decode = self.device.startswith("cuda") and not is_turing_or_older(self.device)
        self.max_batch = self._batch_that_fits()  # None: no cap (the CPU)
        if self.device.startswith("cuda"):
            defer_stop_checks()
        self.max_chars, self.max_words = max_chars, max_words
        tokenizer = self.processor.tokenizer
        self.table = TokenTable(tokenizer, self.model.config.text_config.vocab_size).to(self.device)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos)
        self.pad_id = self.model.generation_config.pad_token_id or tokenizer.pad_token_id
        log.info("loaded %s on %s (%s), max_pixels=%d, model batches of at most %s images", model_id, self.device,
                 self.dtype, self.max_pixels, self.max_batch or "any number of")

    def _batch_that_fits(self) -> int | None:
        """On a GPU, the images one model batch may hold, from the memory free beside the weights."""
        if not self.device.startswith("cuda"):
            return None
        free, _ = torch.cuda.mem_get_info(self.device)
        estimate = batch_memory(self.model.config, self.max_pixels, self.max_new_tokens, self.dtype.itemsize)
        return estimate.images_that_fit(free)

    def name(self, images: Sequence[Image.Image | torch.Tensor], contexts: Sequence[ImageContext] | None = None,
             user_prompt: str | None | Sequence[str | None] = None,
             style: NamingStyle | None | Sequence[NamingStyle | None] = None) -> list[Naming]:
        """Names for ``images`` in the same order. A failing image fails alone, never its batch; a
        fatal device error raises :class:`DeviceLost` instead of failing every image after it.
        ``user_prompt`` and ``style``: one for every image, or one per image (images of several jobs
        share a call). A style's limits bound the answer and its language is asked for (default:
        this namer's ``max_chars``/``max_words``, English); its case is the rules' business.
        ``images``: PIL images, or uint8 (3, H, W) tensors (:func:`pixels`). A batch already on the
        patch grid (the decode stage put it there) takes the lean path: no resize, and the
        processor normalises and patchifies on the model's device (see :meth:`_pixel_inputs`).
        Images of very different sizes are named in sub-batches of similar visual-token counts, of at
        most ``max_batch`` images each."""
        contexts, prompts, styles = per_image(len(images), contexts, user_prompt, style)
        answers: list[Naming | None] = [None] * len(images)
        for group in self.model_batches(images):
            for n, answer in zip(group, self._name_group([images[n] for n in group], [contexts[n] for n in group],
                                                          [prompts[n] for n in group], [styles[n] for n in group])):
                answers[n] = answer
        return answers

    def grid(self, image: Image.Image | torch.Tensor) -> tuple[tuple[int, int], tuple[int, int]]:
        """((height, width), the (height, width) the processor would resize it to)."""
        height, width = image.shape[-2:] if isinstance(image, torch.Tensor) else (image.height, image.width)
        return (height, width), vision.grid_size(height, width, self.min_pixels, self.max_pixels)

    def visual_tokens(self, image: Image.Image | torch.Tensor) -> int:
        _, (grid_h, grid_w) = self.grid(image)
        return (grid_h // vision.UNIT) * (grid_w // vision.UNIT)

    def sub_batches(self, images: Sequence[Image.Image | torch.Tensor]) -> list[list[int]]:
        """Image positions, largest first, cut wherever an image has under half the visual tokens of
        its sub-batch's first: a small image never pads out to a large one's prompt length."""
        tokens = [self.visual_tokens(image) for image in images]
        groups: list[list[int]] = []
        for n in sorted(range(len(images)), key=lambda n: -tokens[n]):
            if groups and 2 * tokens[n] >= tokens[groups[-1][0]]:
                groups[-1].append(n)
            else:
                groups.append([n])
        return groups

    def model_batches(self, images: Sequence[Image.Image | torch.Tensor]) -> list[list[int]]:
        """:meth:`sub_batches` cut into pieces of at most ``max_batch`` images."""
        cap = self.max_batch or len(images) or 1
        return [group[start:start + cap] for group in self.sub_batches(images) for start in range(0, len(group), cap)]

    def _name_group(self, images, contexts, prompts, styles) -> list[Naming]:
        """One model batch. If it runs out of memory: ``max_batch`` is halved and the batch named in
        halves; if it fails otherwise: its images one at a time (one bad image fails alone). Either
        retry waits until the failed batch's memory is freed (beside its leftovers, the retry could
        run out of memory for them)."""
        if not images:
            return []
        try:
            return self._name_batch(images, contexts, prompts, styles)
        except DeviceLost:
            raise
        except (torch.cuda.OutOfMemoryError, RuntimeError, ValueError) as exc:
            if is_fatal_device_error(exc):
                raise DeviceLost(str(exc)) from exc  # not this image's fault: no image may fail for it
            error = str(exc)  # only the words: the exception's traceback holds the batch's tensors
            out_of_memory = isinstance(exc, torch.cuda.OutOfMemoryError)
        if len(images) == 1:
            return [Naming(error=f"the model could not process this image: {error}")]
        self._release_memory()
        if out_of_memory:
            size = (len(images) + 1) // 2
            self.max_batch = min(self.max_batch or size, size)
            log.warning("batch of %d ran out of memory; model batches of at most %d images from now on",
                        len(images), self.max_batch)
        else:
            size = 1
            log.warning("batch of %d failed (%s); retrying one image at a time", len(images), error)
        answers: list[Naming] = []
        for start in range(0, len(images), size):
            piece = slice(start, start + size)
            answers += self._name_group(images[piece], contexts[piece], prompts[piece], styles[piece])
        return answers

    def _name_batch(self, images, contexts, prompts, styles) -> list[Naming]:
        """Names for one model batch; the rows whose fp16 scores overflowed are named again in fp32."""
        answers, overflowed = self._generate(images, contexts, prompts, styles)
        if overflowed:
            self.fp32_reruns += len(overflowed)
            log.warning("fp16 overflowed for %d of %d images; naming them again in fp32", len(overflowed), len(images))
            with self._in_fp32():
                again, _ = self._generate(*[[seq[n] for n in overflowed]
                                            for seq in (images, contexts, prompts, styles)])
            for n, answer in zip(overflowed, again):
                answers[n] = answer
        return answers

    def on_grid(self, image: Image.Image | torch.Tensor) -> bool:
        """Whether the processor would leave this image's size as it is."""
        size, grid = self.grid(image)
        return grid == size

    def _pixel_inputs(self, images: Sequence[Image.Image | torch.Tensor]) -> dict:
        """The processor's image arguments. On the grid: uint8 tensors (2.4 MB per 786k-px image, not
        17 MB of fp32) on the model's device, normalised and patchified there (:meth:`_to_device`).
        Otherwise: PIL images, resized by the processor within the model's bounds."""
        if all(self.on_grid(image) for image in images):
            tensors = [image if isinstance(image, torch.Tensor)
                       else torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1) for image in images]
            return dict(images=[self._to_device(tensor) for tensor in tensors], do_resize=False, device=self.device)
        pil = [Image.fromarray(image.permute(1, 2, 0).numpy()) if isinstance(image, torch.Tensor) else image
               for image in images]
        return dict(images=pil, size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels})

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A uint8 image on the model's device, copied asynchronously from pinned memory on a GPU.
        Given the host tensor, the processor would first make it contiguous: an unpinned host copy
        (a decoded row is a channels-last view), then a blocking copy to the device."""
        if self.pin_memory:
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _model_inputs(self, images, contexts, user_prompts, styles):
        """(the model's inputs on its device, its constraints, the rows' languages): the host work
        before a batch goes to the model."""
        limits = [(s.max_chars, s.max_words) if s else (self.max_chars, self.max_words) for s in styles]
        languages = [s.language if s else None for s in styles]
        texts = [
            self.processor.apply_chat_template(
                prompts.chat_messages(prompt, date=c.date, camera=c.camera, language=language,
                                      max_chars=max_chars, max_words=max_words),
                add_generation_prompt=True, tokenize=False)
            for c, prompt, language, (max_chars, max_words) in zip(contexts, user_prompts, languages, limits)
        ]
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, padding_side="left",
                                **self._pixel_inputs(images)).to(self.device)
        # Kebab-case characters bound every case's rendering from above (camel and pascal drop the
        # separators), so the constraint's limits hold for the rendered name too.
        free = [language is not None for language in languages]
        constraints = [] if all(free) else [KebabNameConstraint(
            self.table, self.eos_ids, inputs["input_ids"].shape[1], max_chars=[c for c, _ in limits],
            max_words=[w for _, w in limits], free=free)]
        return inputs, constraints, languages

    @torch.inference_mode()
    def _generate(self, images: Sequence[Image.Image | torch.Tensor], contexts: Sequence[ImageContext],
                  user_prompts: Sequence[str | None],
                  styles: Sequence[NamingStyle | None]) -> tuple[list[Naming], list[int]]:
        """(the answers with their token counts, the positions of the rows whose fp16 scores
        overflowed: their answers are junk)."""
        with self._host:
            inputs, constraints, languages = self._model_inputs(images, contexts, user_prompts, styles)
        with self._device:  # the weights' dtype holds still here (an fp32 rerun holds this lock)
            # fp32 (an fp32 rerun too) needs no guard, nor bf16, which has fp32's range.
            guard = FiniteRows(len(images), self.eos_ids, self.device) if self.model.dtype == torch.float16 else None
            output = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                logits_processor=LogitsProcessorList([guard, *constraints] if guard else constraints),
                pad_token_id=self.pad_id, eos_token_id=self.eos_ids,
                **cache_options(self.static_cache, inputs["input_ids"].shape[1], self.max_new_tokens,
                                compile_decode=self.compile_decode),
            )
        overflowed = (~guard.finite).nonzero().flatten().tolist() if guard else []
        generated = output[:, inputs["input_ids"].shape[1]:].tolist()
        read = inputs["attention_mask"].sum(dim=1).tolist()  # each row's prompt, its left padding left out
        with self._host:
            texts = self.processor.batch_decode(generated, skip_special_tokens=True)
        # Unconstrained (a language): the name is the first line, not whatever the model added after it.
        return [Naming(raw=first_line(text) if language else text, prompt_tokens=prompt,
                       completion_tokens=generated_tokens(tokens, self.eos_ids))
                for text, language, prompt, tokens in zip(texts, languages, read, generated)], overflowed
