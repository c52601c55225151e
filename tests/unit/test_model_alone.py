"""benchmarks/model_alone.py: the --tiny run CI does, its imports, and its FLOP count."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "model_alone.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("model_alone", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_prints_the_whole_table_without_project_imports(tmp_path):
    # A clean environment, run from the repo root as documented, as on a bare GPU box: nothing of
    # the project on PYTHONPATH, no Ray/S3 settings.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "benchmarks/model_alone.py", "--tiny", "--check-imports",
                           "--budget-seconds", "1000"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "imports ok" in out
    header = next(line for line in out.splitlines() if line.startswith("| MAX_PIXELS"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for column in ("MAX_PIXELS", "batch", "dtype", "vis tok/img", "img/s", "CPU prep ms/img", "GPU ms/img",
                   "eff TFLOP/s", "% GEMM peak", "peak mem GiB", "$/1k img on-demand", "$/1k img spot"):
        assert column in columns
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| MAX_PIXELS")]
    assert len(rows) == 4  # 2 sizes x 2 batch sizes x fp32
    configs = {tuple(c.strip() for c in row.strip("|").split("|")[:3]) for row in rows}
    assert configs == {(p, b, "fp32") for p in ("12,544", "50,176") for b in ("2", "4")}
    for row in rows:
        cells = dict(zip(columns, (c.strip() for c in row.strip("|").split("|"))))
        assert float(cells["img/s"]) > 0 and float(cells["eff TFLOP/s"]) > 0
    # Every figure carries what it was taken with.
    for words in ("device: CPU", "attention: sdpa", "torch ", "transformers ", "measured GEMM peaks"):
        assert words in out


def test_flop_count_matches_torch_flop_counter():
    """The analytic count equals torch's own count of the tiny model's matmuls, for the vision
    tower and for a prefill that keeps the last position's logits (attention counted in full by
    torch's eager path, causal-halved in the script: converted here)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    m = _load_module()
    import argparse

    model, processor, cfg = m.load(argparse.Namespace(model=None, tiny=True, device="cpu", attn="eager"), torch)
    inputs = m.prepare(processor, [m.draw(800, 600, random.Random(1))], 50_176)
    t, h, w = inputs["image_grid_thw"][0].tolist()
    n = int(inputs["attention_mask"].sum())
    vision, prefill, first_head = m.image_flops(cfg, t * h * w, n, 1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"])
    assert counter.get_total_flops() == vision
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**inputs, logits_to_keep=1)
    hidden, layers = cfg["text"]["hidden_size"], cfg["text"]["num_hidden_layers"]
    full_attention = layers * (4 * hidden * n * n - 2 * hidden * n * (n + 1))
    assert counter.get_total_flops() == vision + prefill + full_attention + first_head


def test_full_size_count_and_resize_grid():
    m = _load_module()
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for width, height in m.SOURCE_SIZES + [(4032, 3024), (300, 5000)]:
        for max_pixels in (200_704, 401_408, 786_432):
            rh, rw = smart_resize(height, width, 28, m.MIN_PIXELS, max_pixels)
            assert m.smart_resize_grid(width, height, max_pixels) == (rh // 14, rw // 14)
    # 1,024 visual tokens (a 64 x 64 patch grid) + 60 text tokens, 12 new tokens.
    vision, prefill, decode = m.image_flops(m.FULL_2B, 64 * 64, 1024 + 60, 12)
    assert 7e12 < vision < 9e12 and 2.5e12 < prefill < 3.5e12
    # No LM head over the prompt: the head costs 2 * 1536 * 151,936 FLOPs per generated token only.
    assert decode > 12 * 2 * 1536 * 151_936
    assert m.cost_per_1k(1.0, 0.526) == pytest.approx(0.526 / 3.6)
