"""Send the hostile-input corpus (tests/support/hostile.py) through all three ways in: the CLI on a folder,
the pipeline S3 → S3, and the HTTP API of the local stack (each file in a job of its own beside an
ordinary photo). Prints, per kind, what each way answered, and the peak memory of the stack's
processes, and each file's own decode peak (this process's peak RSS, reset before each decode,
minus its RSS before it: what one decode task holds); appends the table to docs/reliability.md (``--no-write`` to skip)::

    .venv/bin/python scripts/hostile_corpus.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a script: the corpus lives in the test tree (tests/support)
DOC = ROOT / "docs" / "reliability.md"


class PeakMemory:
    """Samples the summed RSS of this process and its children every 0.2 s."""

    def __init__(self) -> None:
        self.peak, self.stop = 0, threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.2):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)


def decode_peaks(items, settings) -> dict[str, float]:
    """MiB each file's decode adds to this process's peak RSS (Linux: writing 5 to clear_refs resets
    the peak; malloc_trim returns the last decode's memory first), with the pipeline's limits."""
    import ctypes
    import gc

    from renamer_ray.images import ImageError, decode

    libc = ctypes.CDLL("libc.so.6")

    def status(field: str) -> int:
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    peaks = {}
    for item in items:
        gc.collect()
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = status("VmRSS")
        try:
            decode(item.data, max_pixels=settings.max_pixels, max_decode_pixels=settings.max_decode_pixels)
        except ImageError:
            pass
        peaks[item.kind] = max(0, status("VmHWM") - before) / 2**20
    return peaks


def largest_allowed():
    """Images at the decode limit (not hostile, only large): what one decode may hold at most."""
    import io
    from types import SimpleNamespace

    from PIL import Image

    def encoded(size, fmt, **options) -> bytes:
        out = io.BytesIO()
        Image.effect_noise(size, 64).convert("RGB").save(out, fmt, **options)
        return out.getvalue()

    return [SimpleNamespace(kind="PNG of 39.9 MP (just under MAX_DECODE_PIXELS, decoded at full size)",
                            data=encoded((7_300, 5_460), "PNG", compress_level=1)),
            SimpleNamespace(kind="JPEG of 48 MP (over the limit: JPEG decodes at reduced size)",
                            data=encoded((8_000, 6_000), "JPEG", quality=80))]


def outcome(record) -> str:
    return f"name `{record.name}`" if record.status == "ok" else f"error: {record.error[:70]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MODEL_ID", "toy-shapes")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    from tests.support.hostile import corpus

    from renamer_ray.config import load_settings
    from renamer_ray.pipeline.run import NamerRef, RunOptions, run
    from renamer_ray.service.demo import wait
    from renamer_ray.service.stack import LocalStack, free_ports

    items = corpus()
    peaks = decode_peaks(items, load_settings())
    bounds = decode_peaks(largest_allowed(), load_settings())
    memory = PeakMemory()
    work = Path(tempfile.mkdtemp())
    settings = load_settings(api_port=free_ports(1)[0], max_jobs_in_flight=1000)
    stack = LocalStack(settings, workdir=work / "stack", dashboard_port=free_ports(1)[0])
    stack.start()
    rows: dict[str, dict[str, str]] = {item.kind: {} for item in items}
    started = time.monotonic()
    try:
        # 1. the CLI on a folder (names no file system holds are API-only)
        src = work / "src"
        src.mkdir()
        on_disk = {}
        for number, item in enumerate(items):
            if not item.api_only:
                name = f"{number:02d}-{item.name}"
                (src / name).write_bytes(item.data)
                on_disk[name] = item
        cli = subprocess.run([str(Path(sys.executable).with_name("renamer-ray")), "rename", str(src), str(work / "out"),
                              "--model", "toy-shapes", "--namer-service"], capture_output=True, text=True, timeout=900,
                             env={**os.environ, "RAY_ADDRESS": stack.head.address})
        manifest = (work / "out" / "manifest.jsonl").read_text() if (work / "out" / "manifest.jsonl").exists() else ""
        from renamer_ray.manifest import parse_lines

        by_source = {r.source.rsplit("/", 1)[1]: r for r in parse_lines(manifest)}
        for name, item in on_disk.items():
            rows[item.kind]["CLI"] = outcome(by_source[name]) if name in by_source else "skipped (not an image extension)"
        rows.setdefault("_", {})["cli exit"] = str(cli.returncode)

        # 2. the pipeline S3 → S3 (same files as objects)
        s3 = boto3.client("s3", endpoint_url=stack.settings.aws_endpoint_url, region_name=stack.settings.aws_region)
        s3.create_bucket(Bucket="hostile")
        for name in on_disk:
            s3.put_object(Bucket="hostile", Key=f"in/{name}", Body=(src / name).read_bytes())
        summary = run(RunOptions(source="s3://hostile/in", target="s3://hostile/out", namer=NamerRef()), stack.settings)
        records = {r.source.rsplit("/", 1)[1]: r for r in summary.records}
        for name, item in on_disk.items():
            rows[item.kind]["S3"] = outcome(records[name]) if name in records else "skipped (not an image extension)"

        # 3. the HTTP API: each kind in a job of its own, beside an ordinary photo
        control = next(item for item in items if item.kind.startswith("control"))
        for item in items:
            answer = httpx.post(f"{stack.api}/v1/jobs/rename", timeout=120, files=[
                ("files", (item.name, item.data)), ("files", ("control.jpg", control.data))])
            if answer.status_code != 200:
                rows[item.kind]["API"] = f"{answer.status_code}: {answer.json()['detail'][:70]}"
                continue
            job = wait(stack.api, answer.json()["job_id"], timeout=300)
            first, neighbour = job["results"]
            harmed = "" if neighbour["status"] == "ok" else " — THE NEIGHBOUR FAILED"
            rows[item.kind]["API"] = (f"name `{first['name']}`" if first["status"] == "ok"
                                      else f"error: {first['error'][:70]}") + harmed
    finally:
        stack.stop()
        memory.stop.set()
    seconds = time.monotonic() - started
    lines = ["| kind | decode peak | CLI (folder) | S3 → S3 | HTTP API (job of its own + an ordinary photo) |",
             "|---|---|---|---|---|"]
    for item in items:
        answer = rows[item.kind]
        lines.append(f"| {item.kind} | {peaks[item.kind]:.0f} MiB | {answer.get('CLI', 'API only')} | "
                     f"{answer.get('S3', 'API only')} | {answer.get('API', '')} |".replace("\n", " "))
    lines += ["", "| at the limit | decode peak |", "|---|---|"]
    lines += [f"| {kind} | {peak:.0f} MiB |" for kind, peak in bounds.items()]
    lines.append("")
    kinds = len({item.kind.rsplit(" ", 1)[0] if item.kind.startswith("EXIF") else item.kind for item in items})
    lines.append(f"{len(items)} files of {kinds} kinds (EXIF orientations 1–8 are one) in {seconds:.0f} s; "
                 f"CLI exit status {rows['_']['cli exit']} (1: some files failed, as they should); peak memory of "
                 f"the whole local stack (Ray head, workers, namer, S3/SQS server, this script): "
                 f"{memory.peak / 2 ** 30:.2f} GiB; the largest single decode: {max(peaks.values()):.0f} MiB in the corpus, "
                 f"{max(bounds.values()):.0f} MiB at the limit "
                 f"(MAX_DECODE_PIXELS {load_settings().max_decode_pixels:,}); machine: {os.cpu_count()} CPUs.")
    print("\n".join(lines))
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d")
        DOC.write_text(DOC.read_text() + f"\n## Hostile-input corpus through every way in ({stamp}: "
                       f"`python scripts/hostile_corpus.py`)\n\n" + "\n".join(lines) + "\n")
        print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
