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
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, LogitsProcessorList, Qwen2VLForConditionalGeneration

from renamer_ray import prompts
from renamer_ray.model import vision
from renamer_ray.model.answers import ImageContext, Naming, first_line, per_image  # noqa: F401  (re-exported)
from renamer_ray.model.checkpoint import resolve_checkpoint
from renamer_ray.model.constraints import KebabNameConstraint, TokenTable
from renamer_ray.naming.rules import MAX_CHARS, MAX_WORDS
from renamer_ray.naming.style import NamingStyle

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def choose_device(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_dtype(device: str, requested: str = "auto") -> torch.dtype:
    """bf16 where the GPU supports it, fp16 on older GPUs (T4: Turing has no bf16), fp32 on CPU."""
    if requested != "auto":
        return _DTYPES[requested]
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


class DeviceLost(RuntimeError):
    """The accelerator is in a state no later call can recover from (a CUDA error): the process
    holding the model must end so that Ray replaces it (ray#59522)."""


# Words of errors after which a CUDA context is unusable for the rest of the process's life.
_FATAL_DEVICE_ERRORS = ("CUDA error", "device-side assert", "CUBLAS_STATUS_", "CUDNN_STATUS_", "illegal memory access")


def is_fatal_device_error(exc: BaseException) -> bool:
    return isinstance(exc, RuntimeError) and not isinstance(exc, torch.cuda.OutOfMemoryError) and any(
        words in str(exc) for words in _FATAL_DEVICE_ERRORS)


def pixels(rgb: bytes, width: int, height: int) -> torch.Tensor:
    """RGB888 bytes (a decoded row) as the uint8 (3, height, width) tensor the processor takes."""
    return torch.frombuffer(bytearray(rgb), dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)


def _guard_fp16_vision(namer: "Qwen2VLNamer") -> None:
    """Run the vision tower in fp16 (T4 and other GPUs without bf16: about 3x fp32), and when a batch
    gives a non-finite embedding run that batch's tower again in fp32 (counted in
    ``vision_fp32_reruns``). The overflow reported against fp16 (transformers#33294) was in the language
    model's eager attention, which SDPA avoids; this guard covers any image that still overflows."""
    visual = namer.model.model.visual
    fp16_forward = visual.forward
    dtypes = {name: t.dtype for name, t in [*visual.named_parameters(), *visual.named_buffers()]}

    def cast(to: torch.dtype | None) -> None:
        for name, t in [*visual.named_parameters(), *visual.named_buffers()]:
            t.data = t.data.to(to or dtypes[name]) if t.is_floating_point() else t.data

    def forward(pixel_values, *args, **kwargs):
        out = fp16_forward(pixel_values, *args, **kwargs)
        if all(torch.isfinite(t).all() for t in (out.last_hidden_state, out.pooler_output) if t is not None):
            return out
        namer.vision_fp32_reruns += 1
        log.warning("the vision tower overflowed in fp16 for a batch of %d patches; running it again in fp32",
                    pixel_values.shape[0])
        cast(torch.float32)
        try:
            return fp16_forward(pixel_values.float(), *args, **kwargs)
        finally:
            cast(None)

    visual.forward = forward


class Qwen2VLNamer:
    """One loaded model; :meth:`name` maps N images to N answers, in input order."""

    def __init__(self, model_id: str, *, max_pixels: int = 786_432, max_new_tokens: int = 60,
                 device: str = "auto", dtype: str = "auto", max_chars: int = MAX_CHARS,
                 max_words: int = MAX_WORDS):
        path = resolve_checkpoint(model_id)
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device, dtype)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = Qwen2VLForConditionalGeneration.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.vision_fp32_reruns = 0  # batches whose fp16 vision tower overflowed and ran again in fp32
        if self.dtype == torch.float16:
            _guard_fp16_vision(self)
        # The bounds the decode stage used too (model.vision); a checkpoint's own pixel budget is an
        # upper bound (the toy was trained on small images). The loaded processor's size is the one
        # read here, so hub ids get their own numbers.
        self.min_pixels, self.max_pixels = vision.bounds(dict(self.processor.image_processor.size), max_pixels)
        self.max_new_tokens = max_new_tokens
        self.max_chars, self.max_words = max_chars, max_words
        tokenizer = self.processor.tokenizer
        self.table = TokenTable(tokenizer, self.model.config.text_config.vocab_size).to(self.device)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos)
        self.pad_id = self.model.generation_config.pad_token_id or tokenizer.pad_token_id
        log.info("loaded %s on %s (%s), max_pixels=%d", model_id, self.device, self.dtype, self.max_pixels)

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
        Images of very different sizes are named in sub-batches of similar visual-token counts."""
        contexts, prompts, styles = per_image(len(images), contexts, user_prompt, style)
        answers: list[Naming | None] = [None] * len(images)
        for group in self.sub_batches(images):
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

    def _name_group(self, images, contexts, prompts, styles) -> list[Naming]:
        if not images:
            return []
        try:
            return [Naming(raw=text) for text in self._generate(images, contexts, prompts, styles)]
        except (torch.cuda.OutOfMemoryError, RuntimeError, ValueError) as exc:
            if is_fatal_device_error(exc):
                raise DeviceLost(str(exc)) from exc  # not this image's fault: no image may fail for it
            if len(images) == 1:
                return [Naming(error=f"the model could not process this image: {exc}")]
            log.warning("batch of %d failed (%s); retrying one image at a time", len(images), exc)
            return [self._name_group([img], [ctx], [p], [s])[0]
                    for img, ctx, p, s in zip(images, contexts, prompts, styles)]

    def on_grid(self, image: Image.Image | torch.Tensor) -> bool:
        """Whether the processor would leave this image's size as it is."""
        size, grid = self.grid(image)
        return grid == size

    def _pixel_inputs(self, images: Sequence[Image.Image | torch.Tensor]) -> dict:
        """The processor's image arguments. On the grid: uint8 tensors (2.4 MB per 786k-px image, not
        17 MB of fp32), pinned for an asynchronous copy, normalised and patchified on the device.
        Otherwise: PIL images, resized by the processor within the model's bounds."""
        if all(self.on_grid(image) for image in images):
            tensors = [image if isinstance(image, torch.Tensor)
                       else torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1) for image in images]
            if self.device.startswith("cuda"):
                tensors = [tensor.pin_memory() for tensor in tensors]
            return dict(images=tensors, do_resize=False, device=self.device)
        pil = [Image.fromarray(image.permute(1, 2, 0).numpy()) if isinstance(image, torch.Tensor) else image
               for image in images]
        return dict(images=pil, size={"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels})

    @torch.inference_mode()
    def _generate(self, images: Sequence[Image.Image | torch.Tensor], contexts: Sequence[ImageContext],
                  user_prompts: Sequence[str | None], styles: Sequence[NamingStyle | None]) -> list[str]:
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
        prompt_length = inputs["input_ids"].shape[1]
        # Kebab-case characters bound every case's rendering from above (camel and pascal drop the
        # separators), so the constraint's limits hold for the rendered name too.
        free = [language is not None for language in languages]
        constraints = [] if all(free) else [KebabNameConstraint(
            self.table, self.eos_ids, prompt_length, max_chars=[c for c, _ in limits], max_words=[w for _, w in limits],
            free=free)]
        output = self.model.generate(
            **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
            logits_processor=LogitsProcessorList(constraints), pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
        )
        answers = self.processor.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        # Unconstrained (a language): the name is the first line, not whatever the model added after it.
        return [first_line(text) if language else text for text, language in zip(answers, languages)]
