"""benchmarks/model_alone.py run as CI runs it: the --tiny run (without torchvision, as on a bare GPU
box) and its imports, its time budget, an unusable device, each decode mode, and the fp16 guards'
counts. Each runs the benchmark (some in a child process); its pure counts are in tests/unit."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import torch

from tests.support.model_alone import ROOT, load_model_alone

# Runs the script as `python benchmarks/model_alone.py ARGS` would, with torchvision unimportable as
# where it is not installed (a None in sys.modules: `import torchvision` raises ImportError and
# importlib.util.find_spec, which transformers asks, answers None).
WITHOUT_TORCHVISION = """
import runpy, sys
sys.modules["torchvision"] = None
sys.argv = ["benchmarks/model_alone.py", *sys.argv[1:]]
runpy.run_path("benchmarks/model_alone.py", run_name="__main__")
"""


def _bare_env(**extra) -> dict:
    # A clean environment, run from the repo root as documented, as on a bare GPU box: nothing of
    # the project on PYTHONPATH, no Ray/S3 settings.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2", **extra)
    return env


def _table(out: str) -> tuple[list[str], list[dict]]:
    """(columns, rows as {column: cell}) of the first table in ``out``."""
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("| MAX_PIXELS"))
    columns = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        rows.append(dict(zip(columns, (c.strip() for c in line.strip().strip("|").split("|")))))
    return columns, rows


def test_tiny_run_prints_the_whole_table_without_torchvision_or_project_imports(tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCHVISION, "--tiny", "--check-imports",
                           "--budget-seconds", "1000"],
                          cwd=ROOT, env=_bare_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "imports ok: none of renamer_ray, ray, boto3" in out
    assert "image processor backend: pil" in out  # torchvision's backend was not there to take
    header = next(line for line in out.splitlines() if line.startswith("| MAX_PIXELS"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    for column in ("MAX_PIXELS", "batch", "dtype", "vis tok/img", "img/s", "CPU prep ms/img", "GPU ms/img",
                   "eff TFLOP/s", "% GEMM peak", "peak mem GiB", "$/1k img on-demand", "$/1k img spot"):
        assert column in columns
    assert "fp16 reruns vision/LM" in columns and "note" in columns
    _, rows = _table(out)
    assert len(rows) == 4  # 2 sizes x 2 batch sizes x fp32
    configs = {(r["MAX_PIXELS"], r["batch"], r["dtype"]) for r in rows}
    assert configs == {(p, b, "fp32") for p in ("12,544", "50,176") for b in ("2", "4")}
    for cells in rows:
        assert float(cells["img/s"]) > 0 and float(cells["eff TFLOP/s"]) > 0 and cells["note"] == ""
        assert cells["fp16 reruns vision/LM"] == "–"  # fp32 rows have no fp16 guard
    # Every figure carries what it was taken with.
    for words in ("machine: CPU only, host CPU", "attention: sdpa", "torch ", "transformers ", "measured GEMM peaks"):
        assert words in out


def test_an_unusable_device_ends_in_one_sentence_with_torchs_reason():
    # No GPU visible (here there is none; on a GPU box CUDA_VISIBLE_DEVICES hides it): torch's reason
    # in one line, no traceback, before anything is loaded.
    done = subprocess.run([sys.executable, "benchmarks/model_alone.py", "--device", "cuda", "--tiny"],
                          cwd=ROOT, env=_bare_env(CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: --device cuda is not usable here (torch "), lines[0]
    assert lines[0].endswith("run it where torch sees that device, or pass --device cpu")
    assert lines[0].count(". ") == 0  # one sentence


def test_rows_past_the_time_budget_stay_in_both_tables_as_skipped(tmp_path, capsys):
    """A budget the first row already spends: every later row is listed, marked skipped, in the
    printed table and in the one --write appends (with the machine named), never dropped."""
    m = load_model_alone()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    assert m.main(["--tiny", "--budget-seconds", "0.001", "--write", "--doc", str(doc)]) == 0
    out = capsys.readouterr().out
    printed_columns, printed = _table(out)
    written_columns, written = _table(doc.read_text())
    assert printed_columns == written_columns == m.COLUMNS
    assert printed == written
    assert [(r["MAX_PIXELS"], r["batch"]) for r in written] == [
        ("12,544", "2"), ("12,544", "4"), ("50,176", "2"), ("50,176", "4")]
    assert written[0]["note"] == "" and float(written[0]["img/s"]) > 0  # the first row always runs
    for row in written[1:]:
        assert row["note"] == "skipped (time budget)" and row["img/s"] == "–", row
    text = doc.read_text()
    assert "- 3 of 4 rows skipped (time budget): 12,544 px batch 4 fp32, 50,176 px batch 2 fp32, " in text
    assert "machine: CPU only, host CPU" in text and "of a 0 s budget" in text


def test_each_decode_mode_runs_and_the_heading_names_it(capsys):
    """``--decode``: the namer's deferred end check (the default), transformers' per-token host sync,
    and the static cache; each generates the same tokens per image, and the heading says which ran."""
    from transformers.generation import utils

    m = load_model_alone()
    library = utils.DeferredStopCheck.is_supported
    try:
        for decode in ("sync", "static", "deferred"):
            assert m.main(["--tiny", "--decode", decode, "--max-pixels", "12544", "--batches", "2"]) == 0
            out = capsys.readouterr().out
            assert f"decode: {decode} ({m.DECODES[decode]})" in out
            assert utils.DeferredStopCheck.is_supported(torch.device("cuda"), None, False, False) == (decode != "sync")
    finally:
        utils.DeferredStopCheck.is_supported = library


def test_fp16_rows_rerun_overflowed_images_in_fp32_and_count_them_as_the_namer_does():
    """The fp16 guard (a copy of the namer's): an image whose fp16 scores stop being finite is
    generated again with the model in fp32 and counted (the namer's ``fp32_reruns``), split by
    where the overflow began (its vision embedding, or the language model); the counts cover the
    timed batches, not the warm-up; the model is back in fp16 after each rerun."""
    import argparse

    m = load_model_alone()
    args = argparse.Namespace(model=None, tiny=True, device="cpu", attn="sdpa", new_tokens=3, warmup=1, repeats=2,
                              on_demand_usd_per_hour=0.526, spot_usd_per_hour=0.21, decode_args={})
    model, processor, cfg = m.load(args, torch)
    pool = [m.draw(448, 336, random.Random(3))]
    m.set_dtype(model, torch, torch.float16)
    guards = m.FP16Guards(model, torch, m.eos_ids(model, processor))
    generated = []
    generate = model.generate
    model.generate = lambda **kwargs: generated.append((len(kwargs["input_ids"]), model.dtype)) or generate(**kwargs)

    def row():
        generated.clear()
        return m.run_config(model, processor, cfg, torch, args, "fp16", 12_544, 2, pool, 1.0, guards)

    assert row()["fp16 reruns vision/LM"] == "0/0" and generated == [(2, torch.float16)] * 3
    weight = model.model.visual.patch_embed.proj.weight
    with torch.no_grad():  # activations beyond fp16's 65,504 in the vision tower
        weight.mul_(1e5)
    # 2 images in each of 2 timed batches (the warm-up's reruns are not counted), each batch again in fp32
    assert row()["fp16 reruns vision/LM"] == "4/0"
    assert generated == [(2, torch.float16), (2, torch.float32)] * 3
    assert guards.fp32_reruns == 6 and weight.dtype == torch.float16, "back to fp16 after each rerun"
    with torch.no_grad():  # the tower as it was; an overflow in the language model's last norm instead
        weight.div_(1e5)
        model.model.language_model.norm.weight.fill_(6e4)  # |normalised value| > 1.1 somewhere: inf
    assert row()["fp16 reruns vision/LM"] == "0/4"
    assert all(t.dtype == torch.float16 for t in model.parameters())
    guards.remove()
    assert not model.model.visual._forward_hooks
