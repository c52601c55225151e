"""A run killed part-way and run again ends exactly as an uninterrupted run: same files, same names,
same manifest, nothing copied twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from renamer_ray.config import load_settings
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import drawn_files
from tests.support.eventually import eventually

SCRIPT = Path(sys.executable).with_name("renamer-ray")


def finished_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != "manifest.jsonl"} if folder.exists() else {}


def test_killed_run_resumes_to_the_same_result(ray_local, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, (data, fmt, _) in enumerate(drawn_files(seed=99, count=40, max_side=400)):
        (src / f"img_{i:03d}.{fmt.lower().replace('heif', 'heic')}").write_bytes(data)
    settings = load_settings(model_id="toy-shapes", batch_size=2)

    reference = tmp_path / "reference"
    run(RunOptions(source=str(src), target=str(reference)), settings)

    crashed = tmp_path / "crashed"
    driver = subprocess.Popen([str(SCRIPT), "rename", str(src), str(crashed), "--model", "toy-shapes",
                               "--batch-size", "2"], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eventually(lambda: finished_files(crashed) or driver.poll() is not None, "the first output is written",
               timeout=300, every=0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait(timeout=60)
    before = {name: os.stat(crashed / name).st_ino for name in finished_files(crashed)}
    claims = crashed / "_manifest" / "claims"
    claimed = len(list(claims.iterdir())) if claims.exists() else 0
    print(f"killed with {len(before)} of 40 outputs written, {claimed} names claimed")
    assert not (crashed / "manifest.jsonl").exists() or driver.returncode == 0
    assert claimed >= len(before) > 0

    summary = run(RunOptions(source=str(src), target=str(crashed)), settings)

    # Every name the killed attempt gave was kept as it was, without asking the model again (its
    # orphaned Ray workers may have claimed a few more before they noticed their raylet was gone).
    assert summary.resumed >= claimed
    assert not (crashed / "_manifest").exists()

    assert finished_files(crashed) == finished_files(reference)
    manifest = (crashed / "manifest.jsonl").read_text().replace(str(crashed), "DST")
    assert manifest == (reference / "manifest.jsonl").read_text().replace(str(reference), "DST")
    for name, inode in before.items():
        assert os.stat(crashed / name).st_ino == inode, f"{name} was copied again"


def test_a_dry_run_keeps_the_claims_of_an_interrupted_run(ray_local, tmp_path):
    """An interrupted run left a claim; a dry run into the same DST plans with it and leaves it, so
    the next real run still resumes with that name."""
    from renamer_ray.io.storage import open_location
    from renamer_ray.pipeline.claims import claim, read_claim

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i, (data, fmt, _) in enumerate(drawn_files(seed=98, count=3, max_side=300)):
        (src / f"img_{i}.{fmt.lower().replace('heif', 'heic')}").write_bytes(data)
    first = sorted(p.name for p in src.iterdir())[0]
    fmt = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}[first.rsplit(".", 1)[1]]
    dst.mkdir()
    target = open_location(str(dst))
    assert claim(target, first, "given-before." + first.rsplit(".", 1)[1], fmt, "given-before") != ""

    settings = load_settings(model_id="toy-shapes", batch_size=2)
    run(RunOptions(source=str(src), target=str(dst), dry_run=True), settings)
    assert read_claim(target, first) is not None, "the dry run removed the interrupted run's claim"
    summary = run(RunOptions(source=str(src), target=str(dst)), settings)
    assert summary.resumed == 1
    assert {r.source.rsplit("/", 1)[1]: r.name for r in summary.records}[first].startswith("given-before")
