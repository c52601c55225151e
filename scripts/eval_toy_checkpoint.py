"""How well the `toy-shapes` checkpoint names shapes it was not trained on.

Draws N images with the independent generator (``tests/support/independent_shapes.py``, written
apart from the training one), encodes them as JPEG / PNG / WebP / HEIC files, and names them
in-process the way the pipeline does: ``decode(bytes, max_pixels=<the checkpoint's pixel budget>)``
(the pipeline's ``pixel_budget``, which the namer applies too: ``namer.max_pixels``, 6,272 for the toy)
→ ``Qwen2VLNamer.name`` → ``sanitize_stem``. Prints accuracy overall, per format, per label, per
background and per size, and the confusions. Run::

    .venv/bin/python scripts/eval_toy_checkpoint.py              # 300 images, seed 7
    .venv/bin/python scripts/eval_toy_checkpoint.py --n 600 --seed 11 --show-wrong
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the generator lives in the test tree (tests/support)
    sys.path.insert(0, str(ROOT))

import random  # noqa: E402

from renamer_ray.images import decode  # noqa: E402
from renamer_ray.model.checkpoint import TOY_MODEL  # noqa: E402
from renamer_ray.model.namer import ImageContext, Qwen2VLNamer  # noqa: E402
from renamer_ray.naming import sanitize_stem  # noqa: E402
from tests.support.independent_shapes import draw_with_facts  # noqa: E402

MAX_PIXELS = 786_432  # the service's default MAX_PIXELS; the checkpoint's own budget caps it


def size_bucket(w: int, h: int) -> str:
    side = max(w, h)
    return "48-99" if side < 100 else "100-299" if side < 300 else "300-799" if side < 800 else "800-1600"


def evaluate(namer: Qwen2VLNamer, n: int, seed: int, *, decode_pixels: int, batch: int = 12):
    """[(format, label, name, facts)] for ``n`` independent images named through decode + namer."""
    rng = random.Random(seed)
    files = [draw_with_facts(rng) for _ in range(n)]
    results = []
    for start in range(0, n, batch):
        chunk = files[start:start + batch]
        decoded = [decode(data, max_pixels=decode_pixels) for data, _, _, _ in chunk]
        answers = namer.name([d.to_pil() for d in decoded], [ImageContext(d.meta.date, d.meta.camera) for d in decoded])
        for (_, fmt, label, facts), answer in zip(chunk, answers):
            results.append((fmt, label, sanitize_stem(answer.raw or "") if answer.error is None else "ERROR", facts))
    return results


def report(results, show_wrong: bool = False) -> float:
    def line(title: str, groups: dict) -> None:
        print(title)
        for key in sorted(groups):
            hits, total = groups[key]
            print(f"  {key:<18} {hits / total:6.1%}  ({hits}/{total})")

    def grouped(key) -> dict:
        out: dict = defaultdict(lambda: [0, 0])
        for r in results:
            out[key(r)][0] += r[1] == r[2]
            out[key(r)][1] += 1
        return out

    right = sum(label == name for _, label, name, _ in results)
    overall = right / len(results)
    print(f"overall: {overall:.1%} ({right}/{len(results)})")
    line("per format:", grouped(lambda r: r[0]))
    line("per label:", grouped(lambda r: r[1]))
    line("per background:", grouped(lambda r: r[3]["background"]))
    line("per long side (px):", grouped(lambda r: size_bucket(*r[3]["size"])))
    line("per shape fill:", grouped(lambda r: "35-50 %" if r[3]["fill"] < 0.5 else "50-65 %" if r[3]["fill"] < 0.65
                                    else "65-80 %"))
    confusions = Counter((label, name) for _, label, name, _ in results if label != name)
    if confusions:
        print("confusions (truth → answer):")
        for (label, name), count in confusions.most_common():
            print(f"  {label:<16} → {name:<16} {count}")
    if show_wrong:
        for fmt, label, name, facts in results:
            if label != name:
                print(f"  wrong: {fmt:<5} {label:<16} → {name:<16} {facts}")
    return overall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default=TOY_MODEL, help="toy-shapes or a checkpoint path")
    parser.add_argument("--decode-pixels", type=int, default=None,
                        help="decode budget (default: the pipeline's, the checkpoint's own pixel budget; "
                             "786432 is the in-process tests' path, where the processor does the resizing)")
    parser.add_argument("--show-wrong", action="store_true")
    args = parser.parse_args()

    namer = Qwen2VLNamer(args.model, max_pixels=MAX_PIXELS, max_new_tokens=60)
    budget = args.decode_pixels or namer.max_pixels
    started = time.time()
    results = evaluate(namer, args.n, args.seed, decode_pixels=budget)
    print(f"{args.model}: {args.n} independent images (seed {args.seed}), decode budget {budget:,} px, "
          f"{time.time() - started:.0f}s")
    report(results, args.show_wrong)


if __name__ == "__main__":
    main()
