"""Qwen2-VL-2B alone on one device: images/s, CPU prep, GPU time, effective TFLOP/s, memory.

Needs only torch, transformers and Pillow (no Ray, boto3, moto or pillow-heif), so it runs on a bare
GPU box::

    pip install torch transformers pillow
    python benchmarks/model_alone.py                         # full-size 2B, random weights, sweep
    python benchmarks/model_alone.py --model /models/Qwen2-VL-2B-Instruct   # real weights
    python benchmarks/model_alone.py --tiny                  # tiny config on CPU (CI), < 1 min

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

``--write`` appends the table to docs/benchmarks.md under a heading that records the device, dtypes,
attention implementation, library versions, date and command.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "renamer_ray" / "model" / "checkpoints" / "toy-shapes"
DOC = ROOT / "docs" / "benchmarks.md"
FORBIDDEN_MODULES = ("ray", "boto3", "botocore", "moto", "pillow_heif")

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
           "GPU ms/img", "TFLOP/img", "eff TFLOP/s", "% GEMM peak", "peak mem GiB",
           "$/1k img on-demand", "$/1k img spot"]


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


# --------------------------------------------------------------------------- model and inputs


def load(args, torch):
    """(model, processor, config dict for the FLOP count) on ``args.device``, in float32 (cast later)."""
    from transformers import AutoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    if args.model:
        processor = AutoProcessor.from_pretrained(args.model)
        model = Qwen2VLForConditionalGeneration.from_pretrained(
            args.model, dtype=torch.float32, attn_implementation=args.attn).to(args.device).eval()
        vc, tc = model.config.vision_config, model.config.text_config
        cfg = {"vision": {k: getattr(vc, k) for k in FULL_2B["vision"]},
               "text": {k: getattr(tc, k) for k in FULL_2B["text"]}}
        return model, processor, cfg
    cfg = TINY if args.tiny else FULL_2B
    processor = AutoProcessor.from_pretrained(str(TOY))  # toy tokenizer + chat template + image processor
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
    """The whole model in ``dtype``, as the namer runs it (in fp16 too: its vision tower runs in fp16
    and only a batch that overflows runs it again in fp32); ``vision_fp32`` keeps the tower in fp32,
    the namer's fallback path, for the fp16 rows."""
    model.to(dtype)
    if dtype == torch.float16 and vision_fp32:
        model.model.visual.float()


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
    """The namer's default messages (renamer_ray.prompts.chat_messages(None)); a faithful copy so
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
               pool: list, peak: float) -> dict:
    """One row of the table."""
    rng = random.Random(max_pixels * 1000 + batch)
    pad = model.generation_config.pad_token_id
    if pad is None:
        pad = processor.tokenizer.pad_token_id
    gen = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False, num_beams=1,
               pad_token_id=pad)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    prep_s, gpu_s, flops, vis_tokens, txt_tokens = [], [], 0.0, 0, 0
    for it in range(args.warmup + args.repeats):
        images = [pool[rng.randrange(len(pool))] for _ in range(batch)]
        t0 = time.perf_counter()
        inputs = prepare(processor, images, max_pixels)
        prep = time.perf_counter() - t0
        with torch.inference_mode(), Clock(torch, args.device) as clock:
            on_device = inputs.to(args.device)
            out = model.generate(**on_device, **gen)
        assert out.shape[1] - inputs["input_ids"].shape[1] == args.new_tokens, out.shape
        if it < args.warmup:
            continue
        prep_s.append(prep)
        gpu_s.append(clock.seconds)
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
    return {
        "MAX_PIXELS": max_pixels, "batch": batch, "dtype": dtype_name,
        "vis tok/img": vis_tokens / n, "txt tok/img": txt_tokens / n, "img/s": rate,
        "CPU prep ms/img": 1000 * prep_total / n, "GPU ms/img": 1000 * gpu_total / n,
        "TFLOP/img": flops / n / 1e12, "eff TFLOP/s": eff, "% GEMM peak": 100 * eff / peak,
        "peak mem GiB": mem,
        "$/1k img on-demand": cost_per_1k(rate, args.on_demand_usd_per_hour),
        "$/1k img spot": cost_per_1k(rate, args.spot_usd_per_hour),
        "_spread": (max(gpu_s) - min(gpu_s)) / statistics.median(gpu_s) if gpu_s else 0.0,
    }


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
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def parse_list(text: str, kind=int) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny config on CPU, fp32, 2 sizes x 2 batches (CI)")
    parser.add_argument("--model", help="a local Qwen2-VL checkpoint folder: real weights and processor")
    parser.add_argument("--max-pixels", default=None, help="comma-separated (default 200704,401408,786432)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 8,16,32,48)")
    parser.add_argument("--dtypes", default=None,
                        help="comma-separated of bf16,fp16,fp32 (default bf16, or fp16 without bf16 (T4); fp32 on CPU)")
    parser.add_argument("--vision-fp32", action="store_true",
                        help="fp16 rows: keep the vision tower in fp32 (the namer's fallback when fp16 overflows)")
    parser.add_argument("--attn", default="sdpa", help="attention implementation: sdpa, eager, flash_attention_2")
    parser.add_argument("--device", default=None, help="default cuda if available, else cpu")
    parser.add_argument("--new-tokens", type=int, default=12, help="tokens generated per image (names are short)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-seconds", type=float, default=420,
                        help="skip the remaining configs once this much time is spent (default 420: the whole "
                             "default sweep must fit 8 minutes on an H100)")
    parser.add_argument("--on-demand-usd-per-hour", type=float, default=G4DN_XLARGE_ON_DEMAND)
    parser.add_argument("--spot-usd-per-hour", type=float, default=G4DN_XLARGE_SPOT)
    parser.add_argument("--write", action="store_true", help="append the table to docs/benchmarks.md")
    parser.add_argument("--check-imports", action="store_true",
                        help="fail if ray, boto3, moto or pillow_heif got imported (CI)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import torch
    import transformers

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = args.device.startswith("cuda")
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
    else:
        dtype_names = ["bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"]
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

    device_name = torch.cuda.get_device_name(args.device) if cuda else f"CPU ({platform.machine()}, torch threads {torch.get_num_threads()})"
    model, processor, cfg = load(args, torch)
    attn = model.config._attn_implementation
    params = sum(p.numel() for p in model.parameters())
    size = f"{params / 1e9:.3f} B" if params >= 1e8 else f"{params / 1e6:.2f} M"
    print(f"device {device_name}; model {'tiny random' if args.tiny else args.model or 'Qwen2-VL-2B random weights'} "
          f"({size} parameters); attention {attn}; torch {torch.__version__}, transformers "
          f"{transformers.__version__}; {args.new_tokens} new tokens per image; loaded in "
          f"{time.perf_counter() - started:.1f} s", flush=True)

    rng = random.Random(7)
    # --tiny: two small sources, still above both of its budgets (drawing 2-MP images dominated it).
    pool = [draw(w, h, rng) for w, h in ([(448, 336), (336, 448)] if args.tiny else SOURCE_SIZES)]
    rows, notes, peaks = [], [], {}
    for name in dtype_names:
        dtype = dtypes[name]
        peaks[name] = gemm_peak_tflops(torch, args.device, dtype, 8192 if cuda else 512)
        print(f"measured {name} GEMM peak: {peaks[name]:.3g} TFLOP/s", flush=True)
        set_dtype(model, torch, dtype, args.vision_fp32)
        for max_pixels in sizes:
            for batch in batches:
                spent = time.perf_counter() - started
                if rows and spent > args.budget_seconds:
                    notes.append(f"skipped MAX_PIXELS {max_pixels:,} batch {batch} {name}: "
                                 f"budget of {args.budget_seconds:.0f} s spent")
                    continue
                try:
                    row = run_config(model, processor, cfg, torch, args, name, max_pixels, batch, pool, peaks[name])
                except torch.cuda.OutOfMemoryError:
                    notes.append(f"MAX_PIXELS {max_pixels:,} batch {batch} {name}: out of memory")
                    torch.cuda.empty_cache()
                    continue
                rows.append(row)
                print(f"  MAX_PIXELS {max_pixels:,} batch {batch} {name}: {row['img/s']:.2f} img/s, "
                      f"GPU {row['GPU ms/img']:.1f} ms/img, {row['eff TFLOP/s']:.3g} TFLOP/s "
                      f"({row['% GEMM peak']:.2g} % of peak), repeat spread {100 * row['_spread']:.0f} %",
                      flush=True)

    total = time.perf_counter() - started
    command = "python benchmarks/model_alone.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(
        sys.argv[1:] if argv is None else argv))
    header = (f"device: {device_name}; dtypes: {', '.join(dtype_names)} (measured GEMM peaks: "
              + ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in peaks.items())
              + ("; fp16 rows with the vision tower in fp32" if args.vision_fp32 and "fp16" in dtype_names else "")
              + f"); attention: {attn}; torch {torch.__version__}, transformers {transformers.__version__}, "
              f"Python {platform.python_version()}; model: "
              f"{'tiny random config' if args.tiny else args.model or 'Qwen2-VL-2B architecture, random weights'}; "
              f"{args.new_tokens} new tokens per image, warm-up {args.warmup}, {args.repeats} timed batches per row; "
              f"whole run {total:.0f} s")
    cost_note = (f"cost per 1,000 images: measured end-to-end img/s at g4dn.xlarge ${args.on_demand_usd_per_hour}/h "
                 f"on-demand and ${args.spot_usd_per_hour}/h spot (us-east-1, see the script's constants)"
                 + ("" if "T4" in device_name else f"; meaningful on a T4 (g4dn) only, this is {device_name}"))
    print()
    print(header)
    print()
    print(table(rows))
    print()
    for line in [cost_note, *notes]:
        print(f"- {line}")
    if args.write:
        stamp = time.strftime("%Y-%m-%d")
        block = (f"\n### {stamp}: `{command}`\n\n- {header}\n- {cost_note}\n"
                 + "".join(f"- {n}\n" for n in notes) + "\n" + table(rows) + "\n")
        DOC.write_text((DOC.read_text() if DOC.exists() else "# Benchmarks\n") + block)
        print(f"appended to {DOC}")
    if args.check_imports:
        found = [m for m in FORBIDDEN_MODULES if m in sys.modules]
        if found:
            print(f"imported forbidden modules: {found}", file=sys.stderr)
            return 3
        print("imports ok: none of " + ", ".join(FORBIDDEN_MODULES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
