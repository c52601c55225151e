"""Latency of small jobs through the whole local stack, and what batching waiting jobs buys.

Starts `renamer-ray up`'s stack in this process (embedded S3/SQS, Ray head, Serve, driver job),
then over HTTP:
(1) ``--singles`` one-image jobs, one after another: submit → accepted, → running (driver took it),
    → finished, read from the job's events;
(2) a burst of ``--burst`` one-image jobs submitted at once: how many pipeline runs they needed and
    the time until the last one finished.
Prints the figures and appends them to docs/benchmarks.md (``--no-write`` to skip)::

    .venv/bin/python benchmarks/service_latency.py --singles 3 --burst 16
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def image(seed: int) -> bytes:
    from renamer_ray.model.toy_shapes import draw_shape

    buf = io.BytesIO()
    draw_shape(random.Random(seed), min_side=800, max_side=1600).image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def run_job(api: str, seed: int) -> dict:
    """Submit one image, follow its events; timings in seconds from the moment of submission."""
    started = time.monotonic()
    accepted = httpx.post(f"{api}/v1/jobs/rename", files=[("files", (f"{seed}.jpg", image(seed)))], timeout=60)
    accepted.raise_for_status()
    out = {"accepted": time.monotonic() - started, "running": None}
    with httpx.stream("GET", f"{api}/v1/jobs/{accepted.json()['job_id']}/events", timeout=600) as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                state = json.loads(line[6:])
                if state["status"] != "queued" and out["running"] is None:
                    out["running"] = time.monotonic() - started
                if state["status"] in ("succeeded", "partial", "failed"):
                    out["finished"] = time.monotonic() - started
                    out["status"] = state["status"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=3)
    parser.add_argument("--burst", type=int, default=16)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MODEL_ID", "toy-shapes")
    from renamer_ray.config import load_settings
    from renamer_ray.service.stack import LocalStack, free_ports

    settings = load_settings(api_port=int(os.environ.get("API_PORT") or free_ports(1)[0]))
    stack = LocalStack(settings, workdir=Path(tempfile.mkdtemp()), dashboard_port=free_ports(1)[0])
    t0 = time.monotonic()
    stack.start()
    up_s = time.monotonic() - t0
    try:
        singles = [run_job(stack.api, seed) for seed in range(args.singles)]
        burst_start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.burst) as pool:
            burst = list(pool.map(lambda s: run_job(stack.api, 1000 + s), range(args.burst)))
        burst_s = time.monotonic() - burst_start
    finally:
        stack.stop()
    print(burst)
    assert all(j["status"] == "succeeded" for j in singles + burst)
    med = lambda key, jobs: statistics.median(j[key] for j in jobs)  # noqa: E731
    lines = [
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model `{settings.model_id}`; "
        f"stack up in {up_s:.1f} s",
        f"- {args.singles} one-image jobs, one at a time (median): accepted {med('accepted', singles) * 1000:.0f} ms, "
        f"running after {med('running', singles):.1f} s, finished after {med('finished', singles):.1f} s",
        f"- burst of {args.burst} one-image jobs submitted together: last finished after {burst_s:.1f} s "
        f"(median job {med('finished', burst):.1f} s), i.e. {burst_s / args.burst:.2f} s per job "
        f"against {med('finished', singles):.1f} s for a job alone",
    ]
    print("\n".join(lines))
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d")
        DOC.write_text(DOC.read_text() + f"\n### {stamp}: `python benchmarks/service_latency.py "
                       f"--singles {args.singles} --burst {args.burst}`\n\n" + "\n".join(lines) + "\n")
        print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
