"""Qwen2-VL-2B alone on one device: images/s, CPU prep, GPU time, effective TFLOP/s, memory.

Needs only torch, transformers and Pillow (no torchvision, Ray, boto3, moto or pillow-heif, nothing of
the project), so it runs on a bare GPU box::

    pip install torch transformers pillow
    python benchmarks/model_alone.py --device cuda           # full-size 2B, random weights, sweep
    python benchmarks/model_alone.py --model /models/Qwen2-VL-2B-Instruct   # real weights
    python benchmarks/model_alone.py --tiny                  # tiny config on CPU (CI), < 1 min

It builds only the parts of the Qwen2-VL processor it needs, the image processor and the tokenizer
(``AutoProcessor`` also builds the video processor, which needs torchvision): the image processor's
torchvision backend where torchvision imports (the namer's, in the project's environment), else its
PIL backend; the heading says which. ``--device cuda`` where CUDA is not usable ends in one sentence
with torch's reason, before anything is loaded.

Dtypes (``--dtypes``): on a GPU with bf16, bf16 (the namer's there) then fp16 (the namer's path on
a T4, which has no bf16); on a T4, fp16; on a CPU, fp32.

What it does, per (MAX_PIXELS, batch size, dtype): draws images at several sizes (800x600 up to
1920x1080, both orientations), warms up, then times ``--repeats`` batches, each as:

- CPU prep: shrink each PIL image to the pixel budget (as the pipeline's decode stage does), build
  the namer's chat prompt, run the Qwen2-VL processor to tensors (JPEG decoding is not included);
- GPU: host-to-device copy plus ``model.generate`` (greedy, exactly ``--new-tokens`` tokens: a
  random model never says its end token, so ``min_new_tokens = max_new_tokens`` fixes the work),
  between CUDA events.

images/s is end to end (prep, then GPU, no overlap: the pipeline overlaps them on other cores, so
the GPU-only rate is 1000 / "GPU ms/img"). "eff TFLOP/s" is an analytic matmul FLOP count of the
work the images really need (vision tower over each image's real patch count; language-model
prefill over each row's real, unpadded token count WITHOUT the LM head; every decode step with the
LM head) divided by GPU time; "% peak" compares it with a large matmul of the same dtype timed on the
same device at start-up (not a datasheet number). Cost per 1,000 images uses the measured end-to-end
rate and g4dn.xlarge prices (meaningful on a T4 only; printed for any device with a note).

Full size with random weights: the architecture of Qwen2-VL-2B-Instruct written out below (no hub
download; speed does not depend on weight values), with the bundled toy checkpoint's tokenizer,
chat template and processor (read by file path; its token ids are all below the vocabulary size).
The toy tokenizer spells the prompt in ≈ 90 tokens where Qwen2's spells it in fewer: the FLOP count
uses the token counts actually run, so the effective rate stays honest.

fp16 rows run behind a copy of the namer's fp16 guard: an image whose scores stop being finite (an
overflow in the vision tower or in the language model) is generated again, alone with the other
overflowed images of its batch, with the model cast to fp32 in place, and that rerun is timed with
its batch. The "fp16 reruns vision/LM" column counts those images over a row's timed batches (the
namer's ``fp32_reruns``), split by where the overflow began: a non-finite vision embedding of the
image's own, or the language model.

``--budget-seconds`` (default 420) bounds the whole run: a row that would end past it (its time
predicted from the row before it) is not run and stays in the table as "skipped (time budget)", so
the default sweep ends within 8 minutes on an H100. ``--write`` appends the table to
docs/benchmarks.md (``--doc`` elsewhere) under a heading that records the machine (GPU, memory,
driver, CUDA, host CPU), dtypes, attention implementation, image processor backend, library
versions, date and command.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "renamer_ray" / "model" / "checkpoints" / "toy-shapes"
DOC = ROOT / "docs" / "benchmarks.md"
# --check-imports fails if any of these got imported: the project itself (its modules pull in Ray,
# pydantic and the rest) and what a bare GPU box does not have.
FORBIDDEN_MODULES = ("renamer_ray", "ray", "boto3", "botocore", "moto", "pillow_heif")

# Prices for the cost per 1,000 images (USD per instance-hour, Linux, us-east-1), as of 2026-11-26.
# On-demand: AWS EC2 on-demand pricing page (https://aws.amazon.com/ec2/pricing/on-demand/).
G4DN_XLARGE_ON_DEMAND = 0.526
# Spot changes every few minutes (https://aws.amazon.com/ec2/spot/pricing/); this is an assumed
# typical level (≈ 40 % of on-demand), not a quote checked by the session that wrote it: pass
# --spot-usd-per-hour with the day's price.
G4DN_XLARGE_SPOT = 0.21

# Qwen2-VL-2B-Instruct's architecture (its public config.json; vision numbers are also
# transformers' Qwen2VLVisionConfig defaults, except hidden_size: the 2B merges into 1536).
FULL_2B = {
    "vision": dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, patch_size=14, spatial_merge_size=2,
                   temporal_patch_size=2, in_channels=3, hidden_size=1536, hidden_act="quick_gelu"),
    "text": dict(vocab_size=151_936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                 hidden_act="silu",
                 rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]}),
}
# A few layers, small widths: the same code paths on a CPU in seconds (CI).
TINY = {
    "vision": dict(depth=2, embed_dim=64, num_heads=4, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                   temporal_patch_size=2, in_channels=3, hidden_size=64, hidden_act="quick_gelu"),
    "text": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
                 hidden_act="silu",
                 rope_parameters={"rope_type": "default", "rope_theta": 10_000.0, "mrope_section": [2, 3, 3]}),
}
# Source image sizes (width, height) cycled through each batch: larger than every budget but one,
# both orientations, so rows differ in token count as real photo batches do.
SOURCE_SIZES = [(1600, 1200), (1200, 1600), (1920, 1080), (1024, 1024), (800, 600), (1080, 1920)]
MIN_PIXELS = 56 * 56  # the processor's lower bound (Qwen2-VL's default shortest_edge)
COLUMNS = ["MAX_PIXELS", "batch", "dtype", "vis tok/img", "txt tok/img", "img/s", "CPU prep ms/img",
           "GPU ms/img", "TFLOP/img", "eff TFLOP/s", "% GEMM peak", "peak mem GiB", "fp16 reruns vision/LM",
           "$/1k img on-demand", "$/1k img spot", "note"]
SKIPPED = "skipped (time budget)"
OUT_OF_MEMORY = "out of memory"


# --------------------------------------------------------------------------- FLOP count (pure)


def image_flops(cfg: dict, patches: int, prompt_tokens: int, new_tokens: int) -> tuple[float, float, float]:
    """Matmul FLOPs (2 per multiply-add) for one image: (vision tower + merger, LM prefill, decode).

    ``patches``: the image's real patch count (t * h * w of its ``image_grid_thw``);
    ``prompt_tokens``: its real prompt length (visual tokens included, padding excluded).
    Prefill has no LM head (generate keeps the logits of the last position only); the first new
    token's head is counted with the decode steps: ``new_tokens`` heads, ``new_tokens - 1`` decode
    forwards. Causal attention counts the pairs it needs (T(T+1)/2), vision attention all pairs
    within the image. Norms, activations, rotary embeddings and biases are left out (< 1 %).
    """
    v, t = cfg["vision"], cfg["text"]
    d, m = v["embed_dim"], v["embed_dim"] * v["mlp_ratio"]
    merged_dim = d * v["spatial_merge_size"] ** 2
    p = patches
    patch_embed = 2 * p * v["in_channels"] * v["temporal_patch_size"] * v["patch_size"] ** 2 * d
    block = 2 * p * (3 * d * d + d * d + 2 * d * m) + 4 * p * p * d  # qkv, proj, MLP; QK^T and AV
    merger = 2 * (p / v["spatial_merge_size"] ** 2) * (merged_dim * merged_dim + merged_dim * v["hidden_size"])
    vision = patch_embed + v["depth"] * block + merger

    h, layers, inter, vocab = t["hidden_size"], t["num_hidden_layers"], t["intermediate_size"], t["vocab_size"]
    kv = h // t["num_attention_heads"] * t["num_key_value_heads"]
    linear = 2 * (h * h + 2 * h * kv + h * h + 3 * h * inter)  # q, k, v, o; gate, up, down
    n = prompt_tokens
    prefill = layers * (n * linear + 2 * h * n * (n + 1))  # causal: 4h FLOPs per (query, key) pair
    decode = new_tokens * 2 * h * vocab + sum(layers * (linear + 4 * h * (n + i)) for i in range(1, new_tokens))
    return vision, prefill, decode


def smart_resize_grid(width: int, height: int, max_pixels: int, min_pixels: int = MIN_PIXELS,
                      patch: int = 14, merge: int = 2) -> tuple[int, int]:
    """(grid_h, grid_w) in patches for an image the processor resizes: a copy of Qwen2-VL's
    ``smart_resize`` arithmetic (sides rounded to 28 px, area within [min_pixels, max_pixels])."""
    factor = patch * merge
    h_bar, w_bar = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar // patch, w_bar // patch


def cost_per_1k(images_per_second: float, usd_per_hour: float) -> float:
    return usd_per_hour / 3600 / images_per_second * 1000 if images_per_second > 0 else float("nan")


# --------------------------------------------------------------------------- the machine


class Unusable(Exception):
    """What stops the run, in one sentence (printed without a traceback)."""


def first_sentence(text: str) -> str:
    """An error's first sentence (of its first line), on one line, without its full stop."""
    line = next((line for line in str(text).splitlines() if line.strip()), "")
    return " ".join(line.split()).split(". ")[0].rstrip(".")


def check_device(torch, device: str) -> None:
    """Raise :class:`Unusable` with torch's own reason when ``device`` cannot hold a tensor (a CUDA
    device without a driver, without a GPU, with a CPU-only torch, or a bad index), before anything
    is loaded."""
    if device == "cpu":
        return
    if device.startswith("cuda") and torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        raise Unusable(f"--device {device} is not usable: this torch ({torch.__version__}) is built without CUDA; "
                       f"install a CUDA build of torch, or pass --device cpu")
    try:
        torch.zeros(1, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
    except Exception as exc:  # noqa: BLE001  (whatever torch raises, its words are the reason)
        reason = first_sentence(exc) or type(exc).__name__
        cuda = ""
        if device.startswith("cuda"):
            cuda = (f", built for CUDA {torch.version.cuda}" if torch.version.cuda
                    else f", built for ROCm {getattr(torch.version, 'hip', None)}")
        raise Unusable(f"--device {device} is not usable here (torch {torch.__version__}{cuda}: {reason}); "
                       f"run it where torch sees that device, or pass --device cpu") from None


DECODES = {
    "deferred": "dynamic cache, end checked one step late (no host sync per token): the namer's default",
    "sync": "dynamic cache, end checked on the host after every token (transformers' own default on CUDA)",
    "static": "static cache, decode step compiled where bf16 exists, end checked one step late: "
              "the namer's MODEL_STATIC_CACHE",
}


def set_decode(decode: str, compile_decode: bool) -> dict:
    """``generate``'s extra arguments for ``--decode``, after turning transformers' deferred stop check
    on for CUDA or back off (the namer's model/decoding.py, copied: this script imports nothing of
    the project)."""
    from transformers.generation import utils

    check = utils.DeferredStopCheck
    library = getattr(check.is_supported, "library", check.is_supported)

    def is_supported(dev, cache, cache_is_returned, is_assistant):
        if decode != "sync" and dev.type == "cuda" and not is_assistant:
            return cache is None or not cache_is_returned or cache.is_croppable
        return library(dev, cache, cache_is_returned, is_assistant)

    is_supported.library = library
    check.is_supported = staticmethod(is_supported)
    return {"cache_implementation": "static", "disable_compile": not compile_decode} if decode == "static" else {}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_driver() -> str:
    """The NVIDIA driver's version (/proc, else nvidia-smi), or "unknown"."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        words = text.split("Kernel Module", 1)[1].split()
        if words:
            return words[0]
    except (OSError, IndexError):
        pass
    import subprocess

    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.split()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def describe_machine(torch, device: str) -> str:
    """The machine a table was taken on, in words: GPU, memory, driver, CUDA; host CPU."""
    host = f"host CPU {cpu_model()} ({os.cpu_count()} logical CPUs)"
    if not device.startswith("cuda"):
        return f"CPU only, {host}, torch threads {torch.get_num_threads()}"
    props = torch.cuda.get_device_properties(device)
    return (f"{props.name} ({props.total_memory / 2 ** 30:.0f} GiB, compute capability {props.major}.{props.minor}, "
            f"{props.multi_processor_count} SMs), NVIDIA driver {nvidia_driver()}, CUDA {torch.version.cuda} "
            f"(torch's), {host}")


# --------------------------------------------------------------------------- model and inputs


def image_backend() -> str:
    """The image processor's backend: torchvision where it imports (as the namer gets it from
    ``AutoProcessor`` in the project's environment), else PIL (a bare GPU box)."""
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001  (absent, or present and broken: either way not usable)
        return "pil"
    return "torchvision"


def build_processor(path: str):
    """Qwen2-VL's processor for images only: the checkpoint's image processor, tokenizer and chat
    template, no video processor (``AutoProcessor`` builds one, and Qwen2-VL's needs torchvision).
    Its calls give what ``AutoProcessor``'s give for images (checked in tests/unit/test_model_alone.py)."""
    from transformers import AutoImageProcessor, AutoTokenizer, Qwen2VLProcessor

    class ImageOnlyProcessor(Qwen2VLProcessor):
        # ProcessorMixin takes its parts from __init__'s parameters: no video_processor here.
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    backend = image_backend()
    try:
        settings, _ = Qwen2VLProcessor.get_processor_dict(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        processor = ImageOnlyProcessor(image_processor=AutoImageProcessor.from_pretrained(path, backend=backend),
                                       tokenizer=tokenizer,
                                       chat_template=settings.get("chat_template") or tokenizer.chat_template)
    except ImportError as exc:
        raise Unusable(f"could not build Qwen2-VL's image processor and tokenizer from {path} with the "
                       f"{backend} backend ({first_sentence(exc)}): pip install torchvision, "
                       f"or a transformers that builds them without it") from None
    processor.backend = backend
    return processor


def load(args, torch):
    """(model, processor, config dict for the FLOP count) on ``args.device``, in float32 (cast later)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    if args.model:
        processor = build_processor(args.model)
        model = Qwen2VLForConditionalGeneration.from_pretrained(
            args.model, dtype=torch.float32, attn_implementation=args.attn).to(args.device).eval()
        vc, tc = model.config.vision_config, model.config.text_config
        cfg = {"vision": {k: getattr(vc, k) for k in FULL_2B["vision"]},
               "text": {k: getattr(tc, k) for k in FULL_2B["text"]}}
        return model, processor, cfg
    cfg = TINY if args.tiny else FULL_2B
    processor = build_processor(str(TOY))  # toy tokenizer + chat template + image processor
    toy = Qwen2VLConfig.from_pretrained(str(TOY))
    config = Qwen2VLConfig(
        vision_config=dict(cfg["vision"]),
        text_config=dict(cfg["text"], bos_token_id=toy.text_config.bos_token_id,
                         eos_token_id=toy.text_config.eos_token_id, pad_token_id=toy.text_config.pad_token_id),
        image_token_id=toy.image_token_id, video_token_id=toy.video_token_id,
        vision_start_token_id=toy.vision_start_token_id, vision_end_token_id=toy.vision_end_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device(args.device):  # random init on the device: seconds, not minutes, for 2.2 B
        model = Qwen2VLForConditionalGeneration._from_config(config, attn_implementation=args.attn,
                                                             dtype=torch.float32)
    return model.eval(), processor, cfg


def set_dtype(model, torch, dtype, vision_fp32: bool = False):
    """The whole model in ``dtype``, as the namer runs it (in fp16 too, behind its guard: an image
    that overflows is generated again in fp32, see :class:`FP16Guards`); ``vision_fp32`` keeps the
    tower in fp32 for the fp16 rows (a what-if, not a path of the namer's)."""
    model.to(dtype)
    if dtype == torch.float16 and vision_fp32:
        model.model.visual.float()


class FP16Guards:
    """The namer's fp16 guard on this script's model, copied (the script imports nothing from the
    project; the namer's is ``FiniteRows`` in renamer_ray/model/constraints.py and
    ``Qwen2VLNamer._name_batch``/``_in_fp32``): a logits processor, first in line, notes on the device
    which rows' scores stopped being finite (a NaN or +inf: an fp16 overflow in the language model, or
    in the vision tower, whose non-finite embedding makes that row's scores non-finite) and ends such
    a row at once; after the batch those images are generated again with every floating tensor of the
    model cast to fp32 in place, and back after. Counted as the namer counts, in images:
    ``fp32_reruns`` (the namer's attribute name), of which ``vision_reruns`` had a non-finite vision
    embedding of their own (a hook on the tower) and the rest overflowed in the language model."""

    def __init__(self, model, torch, eos_ids: list[int]):
        self.model, self.torch, self.eos_ids = model, torch, list(eos_ids)
        self.fp32_reruns = 0
        self.vision_reruns = 0
        self._loaded = {name: t.dtype for name, t in self._floating()}
        self._sizes: list[int] | None = None  # each image's rows in the tower's output, this batch
        self._vision_finite = None
        self._hook = model.model.visual.register_forward_hook(self._watch_vision)

    def _floating(self):
        return [(name, t) for name, t in [*self.model.named_parameters(), *self.model.named_buffers()]
                if t.is_floating_point()]

    def _watch_vision(self, module, args, output) -> None:
        if self._sizes is None:  # not the first pass of a guarded batch (an fp32 rerun)
            return
        merged = getattr(output, "pooler_output", None)
        if merged is None:
            merged = getattr(output, "last_hidden_state", output)
        torch, sizes = self.torch, self._sizes
        if merged.shape[0] != sum(sizes):  # not one row per merged token: which image is which is unknown
            self._vision_finite = None
            return
        self._vision_finite = torch.stack([torch.isfinite(chunk).all() for chunk in merged.split(sizes)])

    def logits_processor(self, grid_thw, merge: int, device):
        """The guard for one batch (``grid_thw``: its images' grids, on the host: no sync to split)."""
        self._sizes = [int(t * h * w) // merge for t, h, w in grid_thw.tolist()]
        self._vision_finite = None
        return _FiniteRows(self.torch, len(self._sizes), self.eos_ids, device)

    def overflowed(self, guard) -> list[int]:
        """The rows to name again in fp32, counted (the caller runs them)."""
        torch = self.torch
        rows = (~guard.finite).nonzero().flatten().tolist()
        self._sizes = None
        if rows:
            self.fp32_reruns += len(rows)
            if self._vision_finite is not None:
                self.vision_reruns += int((~self._vision_finite[torch.tensor(rows)]).sum())
        return rows

    def cast(self, to) -> None:
        """Every floating tensor to ``to``, or back to the dtype it had (None): in place, one at a time."""
        for name, t in self._floating():
            t.data = t.data.to(to or self._loaded[name])

    def counts(self) -> tuple[int, int]:
        """(images rerun because of the vision tower, images rerun because of the language model)."""
        return self.vision_reruns, self.fp32_reruns - self.vision_reruns

    def remove(self) -> None:
        self._hook.remove()


@functools.cache
def _finite_rows_class(torch):
    from transformers import LogitsProcessor

    class FiniteRows(LogitsProcessor):
        """A copy of renamer_ray.model.constraints.FiniteRows: ``finite`` is False for a row once its
        scores held a NaN or +inf while it was still writing; such a row is ended (end token)."""

        def __init__(self, rows: int, eos_token_ids: list[int], device):
            self.finite = torch.ones(rows, dtype=torch.bool, device=device)
            self.ended = torch.zeros(rows, dtype=torch.bool, device=device)
            self.eos = torch.tensor(eos_token_ids, dtype=torch.long, device=device)

        def __call__(self, input_ids, scores):
            self.ended |= torch.isin(input_ids[:, -1], self.eos)
            overflow = (scores.isnan() | scores.isposinf()).any(dim=-1)
            self.finite &= ~overflow | self.ended
            stop = torch.zeros_like(scores[:1]).index_fill_(-1, self.eos, 1.0)
            return torch.where(self.finite[:, None], scores, stop)

    return FiniteRows


def _FiniteRows(torch, rows: int, eos_token_ids: list[int], device):
    return _finite_rows_class(torch)(rows, eos_token_ids, device)


def draw(width: int, height: int, rng: random.Random):
    """A photo-like stand-in: a gradient, shapes and noise (content does not change the work)."""
    from PIL import Image, ImageDraw

    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    pen = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = [x0, y0, x0 + rng.randrange(20, max(21, width // 2)), y0 + rng.randrange(20, max(21, height // 2))]
        (pen.ellipse if rng.random() < 0.5 else pen.rectangle)(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(img, noise, 0.15)


def chat_messages() -> list[dict]:
    """The namer's default messages (renamer_ray.naming.prompts.chat_messages(None)); a faithful copy so
    that this script imports nothing from the project."""
    system = ("You are an image filename generator. Return ONLY a safe filename in kebab-case. "
              "ASCII only, <=10 words, <=60 characters. No punctuation except '-'.")
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "image"},
                                     {"type": "text", "text": "Name this image after its primary subject."}]},
    ]


def prepare(processor, images, max_pixels: int):
    """CPU prep, as the pipeline does it: shrink to the budget, prompt, processor → tensors."""
    from PIL import Image

    shrunk = []
    for img in images:
        w, h = img.size
        if w * h > max_pixels:
            s = math.sqrt(max_pixels / (w * h))
            img = img.resize((max(28, int(w * s)), max(28, int(h * s))), Image.BICUBIC)
        shrunk.append(img)
    text = processor.apply_chat_template(chat_messages(), add_generation_prompt=True, tokenize=False)
    return processor(text=[text] * len(shrunk), images=shrunk, return_tensors="pt", padding=True,
                     padding_side="left", size={"shortest_edge": MIN_PIXELS, "longest_edge": max_pixels})


# --------------------------------------------------------------------------- measuring


class Clock:
    """Wall time of a device region: CUDA events on a GPU, perf_counter elsewhere."""

    def __init__(self, torch, device: str):
        self.torch, self.cuda = torch, device.startswith("cuda")

    def __enter__(self):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.start, self.end = (self.torch.cuda.Event(enable_timing=True) for _ in range(2))
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.t0


def gemm_peak_tflops(torch, device: str, dtype, n: int) -> float:
    """Measured matmul peak: best of a few timed n x n x n matmuls (TF32 off: fp32 is fp32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best, reps = float("inf"), 10 if device.startswith("cuda") else 3
    for _ in range(3):
        with Clock(torch, device) as c:
            for _ in range(reps):
                a @ b
        best = min(best, c.seconds / reps)
    return 2 * n ** 3 / best / 1e12


def run_config(model, processor, cfg, torch, args, dtype_name: str, max_pixels: int, batch: int,
               pool: list, peak: float, guards: FP16Guards | None = None) -> dict:
    """One row of the table. ``guards``: the fp16 rows' (:class:`FP16Guards`: rows that overflow are
    generated again in fp32, timed; their counts over the timed batches go in the "fp16 reruns
    vision/LM" cell)."""
    row_started = time.perf_counter()
    rng = random.Random(max_pixels * 1000 + batch)
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = processor.tokenizer.pad_token_id
    gen = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False, num_beams=1,
               pad_token_id=pad, **args.decode_args)
    from transformers import LogitsProcessorList
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    prep_s, gpu_s, flops, vis_tokens, txt_tokens = [], [], 0.0, 0, 0
    counted = (0, 0)
    for it in range(args.warmup + args.repeats):
        if guards is not None and it == args.warmup:
            counted = guards.counts()  # count the timed batches only
        images = [pool[rng.randrange(len(pool))] for _ in range(batch)]
        t0 = time.perf_counter()
        inputs = prepare(processor, images, max_pixels)
        prep = time.perf_counter() - t0
        guard = [] if guards is None else [guards.logits_processor(
            inputs["image_grid_thw"], cfg["vision"]["spatial_merge_size"] ** 2, args.device)]
        with torch.inference_mode(), Clock(torch, args.device) as clock:
            on_device = inputs.to(args.device)
            out = model.generate(**on_device, **gen, logits_processor=LogitsProcessorList(guard))
        overflowed = guards.overflowed(guard[0]) if guards is not None else []
        seconds = clock.seconds
        if overflowed:  # as the namer does: those images again, alone, with the model in fp32
            t0 = time.perf_counter()
            again = prepare(processor, [images[n] for n in overflowed], max_pixels)
            prep += time.perf_counter() - t0
            with torch.inference_mode(), Clock(torch, args.device) as clock:
                guards.cast(torch.float32)
                try:
                    model.generate(**again.to(args.device), **gen)
                finally:
                    guards.cast(None)
            seconds += clock.seconds
        else:  # a random model never says its end token: exactly new_tokens each (an overflowed row ends early)
            assert out.shape[1] - inputs["input_ids"].shape[1] == args.new_tokens, out.shape
        if it < args.warmup:
            continue
        prep_s.append(prep)
        gpu_s.append(seconds)
        merge = cfg["vision"]["spatial_merge_size"] ** 2
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        for grid, length in zip(inputs["image_grid_thw"].tolist(), lengths):
            patches = grid[0] * grid[1] * grid[2]
            flops += sum(image_flops(cfg, patches, int(length), args.new_tokens))
            vis_tokens += patches // merge
            txt_tokens += int(length) - patches // merge
    n = batch * args.repeats
    prep_total, gpu_total = sum(prep_s), sum(gpu_s)
    rate = n / (prep_total + gpu_total)
    eff = flops / gpu_total / 1e12
    mem = torch.cuda.max_memory_allocated() / 2 ** 30 if args.device.startswith("cuda") else float("nan")
    reruns = "–"
    if guards is not None:
        now = guards.counts()
        reruns = f"{now[0] - counted[0]}/{now[1] - counted[1]}"
    return {
        "MAX_PIXELS": max_pixels, "batch": batch, "dtype": dtype_name,
        "vis tok/img": vis_tokens / n, "txt tok/img": txt_tokens / n, "img/s": rate,
        "CPU prep ms/img": 1000 * prep_total / n, "GPU ms/img": 1000 * gpu_total / n,
        "TFLOP/img": flops / n / 1e12, "eff TFLOP/s": eff, "% GEMM peak": 100 * eff / peak,
        "peak mem GiB": mem, "fp16 reruns vision/LM": reruns,
        "$/1k img on-demand": cost_per_1k(rate, args.on_demand_usd_per_hour),
        "$/1k img spot": cost_per_1k(rate, args.spot_usd_per_hour), "note": "",
        "_spread": (max(gpu_s) - min(gpu_s)) / statistics.median(gpu_s) if gpu_s else 0.0,
        "_seconds": time.perf_counter() - row_started, "_images": batch * (args.warmup + args.repeats),
    }


def eos_ids(model, processor) -> list[int]:
    """The end tokens generation stops at (the generation config's, else the tokenizer's)."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = processor.tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos)


def not_run(max_pixels: int, batch: int, dtype_name: str, why: str) -> dict:
    """A row of the table that was not measured, and why (the budget, memory)."""
    return {"MAX_PIXELS": max_pixels, "batch": batch, "dtype": dtype_name, "note": why}


def predicted_seconds(last: dict | None, max_pixels: int, batch: int, images_per_batch: int,
                      peak_ratio: float = 1.0) -> float:
    """A row's time, from the last measured row: its seconds per image, scaled up by the pixel
    budget's ratio (when larger) and by ``peak_ratio`` (the last row's dtype's GEMM peak over this
    row's: fp32 after bf16 is slower)."""
    if last is None:
        return 0.0
    per_image = last["_seconds"] / last["_images"]
    return per_image * max(1.0, max_pixels / last["MAX_PIXELS"]) * max(1.0, peak_ratio) * batch * images_per_batch


def fmt(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # nan
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(rows: list[dict]) -> str:
    """Every row, measured or not (a row not run keeps its place, its note says why)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * (len(COLUMNS) - 1) + "---|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "–")) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def parse_list(text: str, kind=int) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except Unusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny config on CPU, fp32, 2 sizes x 2 batches (CI)")
    parser.add_argument("--model", help="a local Qwen2-VL checkpoint folder: real weights and processor")
    parser.add_argument("--max-pixels", default=None, help="comma-separated (default 200704,401408,786432)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 8,16,32,48)")
    parser.add_argument("--dtypes", default=None,
                        help="comma-separated of bf16,fp16,fp32 (default on a GPU with bf16: bf16,fp16, the second "
                             "being the namer's T4 path with its rerun counts; without bf16 (T4): fp16; CPU: fp32)")
    parser.add_argument("--vision-fp32", action="store_true",
                        help="fp16 rows: keep the vision tower in fp32 (a what-if: the namer runs it in fp16 and "
                             "names an image that overflows again with the whole model in fp32)")
    parser.add_argument("--attn", default="sdpa", help="attention implementation: sdpa, eager, flash_attention_2")
    parser.add_argument("--device", default=None, help="default cuda if available, else cpu")
    parser.add_argument("--new-tokens", type=int, default=12, help="tokens generated per image (names are short)")
    parser.add_argument("--decode", choices=sorted(DECODES), default="deferred",
                        help="; ".join(f"{k}: {v}" for k, v in DECODES.items()))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-seconds", type=float, default=420,
                        help="the whole run's time budget: a row predicted to end past it is not run and is listed "
                             "as 'skipped (time budget)' (default 420: the default sweep ends within 8 minutes "
                             "on an H100)")
    parser.add_argument("--on-demand-usd-per-hour", type=float, default=G4DN_XLARGE_ON_DEMAND)
    parser.add_argument("--spot-usd-per-hour", type=float, default=G4DN_XLARGE_SPOT)
    parser.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md (or --doc)")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"the file --write appends to (default {DOC})")
    parser.add_argument("--check-imports", action="store_true",
                        help="fail if any of " + ", ".join(FORBIDDEN_MODULES) + " got imported (CI)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import torch
    import transformers

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_device(torch, args.device)  # one sentence with torch's reason, before anything is loaded
    cuda = args.device.startswith("cuda")
    args.decode_args = set_decode(args.decode, cuda and torch.cuda.is_bf16_supported(including_emulation=False))
    if args.tiny:
        if not cuda:
            torch.set_num_threads(1)  # steadier on a shared CI machine than threads that wait on each other
        args.max_pixels = args.max_pixels or "12544,50176"
        args.batches = args.batches or "2,4"
        args.dtypes = args.dtypes or "fp32"
    sizes = parse_list(args.max_pixels or "200704,401408,786432")
    batches = parse_list(args.batches or "8,16,32,48")
    if args.dtypes:
        dtype_names = parse_list(args.dtypes, str)
    elif not cuda:
        dtype_names = ["fp32"]
    elif torch.cuda.is_bf16_supported(including_emulation=False):
        dtype_names = ["bf16", "fp16"]
    else:
        dtype_names = ["fp16"]
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    unknown = [name for name in dtype_names if name not in dtypes]
    if unknown:
        raise Unusable(f"--dtypes takes bf16, fp16 and fp32, not {', '.join(unknown)}")

    device_name = torch.cuda.get_device_name(args.device) if cuda else f"CPU ({platform.machine()}, torch threads {torch.get_num_threads()})"
    machine = describe_machine(torch, args.device)
    model, processor, cfg = load(args, torch)
    attn = model.config._attn_implementation
    params = sum(p.numel() for p in model.parameters())
    size = f"{params / 1e9:.3f} B" if params >= 1e8 else f"{params / 1e6:.2f} M"
    print(f"machine: {machine}; model {'tiny random' if args.tiny else args.model or 'Qwen2-VL-2B random weights'} "
          f"({size} parameters); attention {attn}; image processor backend {processor.backend}; torch "
          f"{torch.__version__}, transformers {transformers.__version__}; {args.new_tokens} new tokens per image; "
          f"loaded in {time.perf_counter() - started:.1f} s", flush=True)

    rng = random.Random(7)
    # --tiny: two small sources, still above both of its budgets (drawing 2-MP images dominated it).
    pool = [draw(w, h, rng) for w, h in ([(448, 336), (336, 448)] if args.tiny else SOURCE_SIZES)]
    rows, peaks, last = [], {}, None
    per_row = args.warmup + args.repeats
    for name in dtype_names:
        dtype = dtypes[name]
        peaks[name] = gemm_peak_tflops(torch, args.device, dtype, 8192 if cuda else 512)
        print(f"measured {name} GEMM peak: {peaks[name]:.3g} TFLOP/s", flush=True)
        set_dtype(model, torch, dtype, args.vision_fp32)
        guards = FP16Guards(model, torch, eos_ids(model, processor)) if dtype == torch.float16 else None
        try:
            for max_pixels in sizes:
                for batch in batches:
                    spent = time.perf_counter() - started
                    ratio = peaks[last["dtype"]] / peaks[name] if last else 1.0
                    if last and spent + predicted_seconds(last, max_pixels, batch, per_row, ratio) > args.budget_seconds:
                        rows.append(not_run(max_pixels, batch, name, SKIPPED))
                        print(f"  MAX_PIXELS {max_pixels:,} batch {batch} {name}: {SKIPPED}, {spent:.0f} s of "
                              f"{args.budget_seconds:.0f} spent", flush=True)
                        continue
                    try:
                        row = run_config(model, processor, cfg, torch, args, name, max_pixels, batch, pool,
                                         peaks[name], guards)
                    except torch.cuda.OutOfMemoryError:
                        rows.append(not_run(max_pixels, batch, name, OUT_OF_MEMORY))
                        print(f"  MAX_PIXELS {max_pixels:,} batch {batch} {name}: {OUT_OF_MEMORY}", flush=True)
                        torch.cuda.empty_cache()
                        continue
                    rows.append(row)
                    last = row
                    print(f"  MAX_PIXELS {max_pixels:,} batch {batch} {name}: {row['img/s']:.2f} img/s, "
                          f"GPU {row['GPU ms/img']:.1f} ms/img, {row['eff TFLOP/s']:.3g} TFLOP/s "
                          f"({row['% GEMM peak']:.2g} % of peak), repeat spread {100 * row['_spread']:.0f} %"
                          + (f", fp16 reruns vision/LM {row['fp16 reruns vision/LM']}" if guards else ""),
                          flush=True)
        finally:
            if guards is not None:
                guards.remove()

    total = time.perf_counter() - started
    command = "python benchmarks/model_alone.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(
        sys.argv[1:] if argv is None else argv))
    skipped = [r for r in rows if r["note"] == SKIPPED]
    header = (f"machine: {machine}; dtypes: {', '.join(dtype_names)} (measured GEMM peaks: "
              + ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in peaks.items())
              + ("; fp16 rows with the vision tower in fp32" if args.vision_fp32 and "fp16" in dtype_names else "")
              + f"); attention: {attn}; image processor backend: {processor.backend}; torch {torch.__version__}, "
              f"transformers {transformers.__version__}, Python {platform.python_version()}; model: "
              f"{'tiny random config' if args.tiny else args.model or 'Qwen2-VL-2B architecture, random weights'}; "
              f"{args.new_tokens} new tokens per image, warm-up {args.warmup}, {args.repeats} timed batches per row; "
              f"decode: {args.decode} ({DECODES[args.decode]}); "
              f"whole run {total:.0f} s of a {args.budget_seconds:.0f} s budget")
    cost_note = (f"cost per 1,000 images: measured end-to-end img/s at g4dn.xlarge ${args.on_demand_usd_per_hour}/h "
                 f"on-demand and ${args.spot_usd_per_hour}/h spot (us-east-1, see the script's constants)"
                 + ("" if "T4" in device_name else f"; meaningful on a T4 (g4dn) only, this is {device_name}"))
    notes = [cost_note]
    if any(r["dtype"] == "fp16" for r in rows):
        notes.append("fp16 reruns vision/LM: over each row's timed batches, the images whose fp16 scores stopped "
                     "being finite and were generated again with the model in fp32 (timed with their batch; the "
                     "namer's fp32_reruns), overflowed in their own vision embedding / in the language model")
    if skipped:
        notes.append(f"{len(skipped)} of {len(rows)} rows {SKIPPED}: "
                     + ", ".join(f"{r['MAX_PIXELS']:,} px batch {r['batch']} {r['dtype']}" for r in skipped)
                     + f" (--budget-seconds {args.budget_seconds:.0f})")
    print()
    print(header)
    print()
    print(table(rows))
    print()
    for line in notes:
        print(f"- {line}")
    if args.write:
        stamp = time.strftime("%Y-%m-%d")
        block = (f"\n### {stamp}: `{command}`\n\n- {header}\n"
                 + "".join(f"- {n}\n" for n in notes) + "\n" + table(rows) + "\n")
        args.doc.write_text((args.doc.read_text() if args.doc.exists() else "# Benchmarks\n") + block)
        print(f"appended to {args.doc}")
    if args.check_imports:
        found = [m for m in FORBIDDEN_MODULES if m in sys.modules]
        if found:
            print(f"imported forbidden modules: {found}", file=sys.stderr)
            return 3
        print("imports ok: none of " + ", ".join(FORBIDDEN_MODULES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
