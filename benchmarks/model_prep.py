"""CPU work inside the model actor per image, and bytes sent to the device, today's path vs the lean one.

Today's path (before issue 14): the decode stage resized to the pixel budget; inside the actor each
row became a PIL image and Qwen2-VL's processor resized it again onto the 28-px grid, normalised it
on the host and handed over fp32 ``pixel_values`` (with the temporal-patch duplication). The lean
path: the decode stage lands on the grid (``vision.plan_on_grid``), the actor wraps the row's bytes
as a uint8 tensor (``namer.pixels``) and the processor normalises and patchifies on the model's
device (``device=``), with nothing to resize. Run::

    .venv/bin/python benchmarks/model_prep.py [--pixels 786432] [--images 24] [--write]

On a machine without a GPU the "device" work runs on the CPU too and is shown apart from the host
work; on a GPU only the host column stays in the actor's Python thread.
"""

from __future__ import annotations

import argparse
import io
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor

from renamer_ray.images import decode
from renamer_ray.model.checkpoint import resolve_checkpoint
from renamer_ray.model.namer import pixels

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def photo(rng: np.random.Generator, width: int, height: int) -> bytes:
    """A JPEG with smooth gradients and some texture (what a photo costs to decode and resample)."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 127 // (width + height))], axis=-1)
    noise = rng.integers(0, 40, size=(height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=786_432, help="MAX_PIXELS (default: the service's)")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (an actor's CPU share)")
    parser.add_argument("--write", action="store_true", help="append the figures to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    processor = AutoProcessor.from_pretrained(resolve_checkpoint("toy-shapes")).image_processor
    low, high = 56 * 56, args.pixels
    rng = np.random.default_rng(0)
    files = [photo(rng, int(rng.integers(1600, 4000)), int(rng.integers(1200, 3000))) for _ in range(args.images)]
    old = [decode(data, max_pixels=high) for data in files]
    new = [decode(data, max_pixels=high, min_pixels=low) for data in files]

    started = time.perf_counter()
    today = [processor(images=[Image.frombytes("RGB", (d.width, d.height), d.rgb)], return_tensors="pt",
                       size={"shortest_edge": low, "longest_edge": high}) for d in old]
    today_ms = (time.perf_counter() - started) * 1000 / len(old)
    started = time.perf_counter()
    tensors = [pixels(d.rgb, d.width, d.height) for d in new]
    host_ms = (time.perf_counter() - started) * 1000 / len(new)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        tensors = [t.pin_memory() for t in tensors]
        processor(images=[tensors[0]], do_resize=False, device=device, return_tensors="pt")  # warm-up
        torch.cuda.synchronize()
    started = time.perf_counter()
    lean = [processor(images=[t], do_resize=False, device=device, return_tensors="pt") for t in tensors]
    if device == "cuda":
        torch.cuda.synchronize()
    device_ms = (time.perf_counter() - started) * 1000 / len(new)
    today_mb = np.mean([o["pixel_values"].numel() * o["pixel_values"].element_size() for o in today]) / 1e6
    lean_mb = np.mean([t.numel() * t.element_size() for t in tensors]) / 1e6
    assert all(torch.equal(a["image_grid_thw"], b["image_grid_thw"].cpu()) for a, b in zip(today, lean))

    rows = [
        "| path | CPU in the actor, ms/image | sent to the device, MB/image |",
        "|---|---|---|",
        f"| today: PIL → processor (resize, normalise on the host, fp32) | {today_ms:.1f} | {today_mb:.1f} |",
        f"| lean: bytes → uint8 tensor; processor on the device | {host_ms:.2f} (+ {device_ms:.1f} on the device: "
        f"{torch.cuda.get_device_name() if device == 'cuda' else 'here the CPU'}) | {lean_mb:.2f} |",
    ]
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU only"
    heading = (f"### Model step preparation, {args.pixels:,} px, {args.images} photos, {args.threads} torch "
               f"thread(s) — {platform.processor() or platform.machine()}, {where}, {date.today()}")
    text = "\n".join([heading, "", *rows, "",
                      f"`python benchmarks/model_prep.py --pixels {args.pixels} --images {args.images}`", ""])
    print(text)
    if args.write:
        with DOC.open("a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
