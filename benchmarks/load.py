"""A bounded load on the local stack over HTTP (127.0.0.1 only): N clients, each submitting a
one-image job and following it to its end, again and again, for ``--seconds``; 20 clients, then 100,
three rounds each. Reports per round: jobs, submit latency p50/p95, completion (submit → final
status) p50/p95, errors and wrong names (0 expected), and the RSS of every process of the stack
before the first round and after each (growth beyond noise would be a leak). Appends the table to
docs/reliability.md (``--no-write`` to skip)::

    .venv/bin/python benchmarks/load.py                       # 2 x 3 rounds of 120 s
    .venv/bin/python benchmarks/load.py --seconds 30 --rounds 1
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def images(count: int) -> list[tuple[bytes, str]]:
    from renamer_ray.toy.shapes import draw_shape

    out = []
    for seed in range(count):
        sample = draw_shape(random.Random(50_000 + seed), min_side=200, max_side=400)
        buf = io.BytesIO()
        sample.image.save(buf, format="JPEG", quality=90)
        out.append((buf.getvalue(), sample.label))
    return out


def rss_by_kind() -> dict[str, tuple[int, int]]:
    """(processes, summed RSS) of this process and every descendant (the Ray head, its workers and
    replicas), by kind: a Ray worker by its title (``ray::IDLE``, a task's or replica's name)."""
    me = psutil.Process()
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for process in [me, *me.children(recursive=True)]:
        try:
            words = process.cmdline()
            kind = next((word for word in words if word.startswith("ray::")), process.name())
            if kind.startswith("ray::ServeReplica"):
                kind = "ray::Serve " + kind.split(":")[-1]
            out[kind][0] += 1
            out[kind][1] += process.memory_info().rss
        except psutil.Error:
            pass
    return {kind: (count, rss) for kind, (count, rss) in out.items()}


def total(rss: dict[str, tuple[int, int]]) -> int:
    return sum(size for _, size in rss.values())


def client(api: str, key: str, pool, stop: threading.Event, results: list, lock: threading.Lock) -> None:
    with httpx.Client(timeout=600, headers={"X-API-Key": key}) as http:
        while not stop.is_set():
            data, label = random.choice(pool)
            started = time.monotonic()
            try:
                answer = http.post(f"{api}/v1/jobs/rename", files=[("files", ("photo.jpg", data))])
                submitted = time.monotonic() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:100]}")
                job_id = answer.json()["job_id"]
                while (job := http.get(f"{api}/v1/jobs/{job_id}").json())["status"] not in (
                        "succeeded", "partial", "failed", "cancelled"):
                    time.sleep(0.2)  # polling the job's status, as a client would
                right = job["status"] == "succeeded" and job["results"][0]["name"].startswith(label)
                row = dict(submit=submitted, done=time.monotonic() - started, error=None, right=right)
            except Exception as exc:  # counted and reported, never hidden
                row = dict(submit=None, done=None, error=f"{type(exc).__name__}: {exc}", right=False)
            with lock:
                results.append(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("MODEL_ID", "toy-shapes")
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    from renamer_ray.config import load_settings
    from renamer_ray.service.local.ports import free_ports
    from renamer_ray.service.local.stack import LocalStack

    # Ten API keys, the clients spread over them: MAX_JOBS_IN_FLIGHT stays at its default (its check
    # reads the newest MAX_JOBS_IN_FLIGHT + 1 job records of the key at every submission).
    keys = [f"load-key-{n}" for n in range(10)]
    settings = load_settings(api_port=free_ports(1)[0], api_keys=",".join(f"{k}:load-{n}" for n, k in enumerate(keys)))
    stack = LocalStack(settings, workdir=Path(tempfile.mkdtemp()), dashboard_port=free_ports(1)[0])
    stack.start()
    pool = images(64)
    lines = ["| clients | round | jobs | submit p50 / p95 | completion p50 / p95 | errors | wrong names | stack RSS after |",
             "|---|---|---|---|---|---|---|---|"]
    try:
        before = rss_by_kind()
        after = before
        snapshots = [("before", before)]
        for clients in args.clients:
            for number in range(1, args.rounds + 1):
                results, lock, stop = [], threading.Lock(), threading.Event()
                threads = [threading.Thread(target=client, args=(stack.api, keys[n % len(keys)], pool, stop, results, lock))
                           for n in range(clients)]
                for thread in threads:
                    thread.start()
                stop.wait(args.seconds)  # the round's length: the load stops by itself
                stop.set()
                for thread in threads:
                    thread.join()
                ok = [r for r in results if r["error"] is None]
                errors = [r for r in results if r["error"] is not None]
                q = lambda key: statistics.quantiles([r[key] for r in ok], n=20) if len(ok) > 1 else [0] * 19  # noqa: E731
                after = rss_by_kind()
                snapshots.append((f"{clients}×{number}", after))
                lines.append(
                    f"| {clients} | {number} | {len(results)} | {statistics.median(r['submit'] for r in ok):.2f} / "
                    f"{q('submit')[18]:.2f} s | {statistics.median(r['done'] for r in ok):.1f} / {q('done')[18]:.1f} s | "
                    f"{len(errors)} | {sum(not r['right'] for r in ok)} | {total(after) / 2 ** 30:.2f} GiB |")
                print(lines[-1], flush=True)
                for error in errors[:3]:
                    print("  error:", error["error"], flush=True)
    finally:
        stack.stop()
    growth = ["", "Processes and RSS by kind, before the first round → after each round (MiB per process, "
              "so that more processes and bigger processes can be told apart):", "",
              "| kind | " + " | ".join(label for label, _ in snapshots) + " |", "|---|" + "---|" * len(snapshots)]
    kinds = sorted({kind for _, rss in snapshots for kind in rss}, key=lambda k: -snapshots[-1][1].get(k, (0, 0))[1])
    for kind in kinds:
        cells = []
        for _, rss in snapshots:
            count, size = rss.get(kind, (0, 0))
            cells.append(f"{count} × {size / max(count, 1) / 2 ** 20:.0f}" if count else "—")
        growth.append(f"| {kind} | " + " | ".join(cells) + " |")
    text = "\n".join(lines + growth)
    print(text)
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d")
        DOC.write_text(DOC.read_text() + f"\n## Load ({stamp}: `python benchmarks/load.py --seconds {args.seconds:g} "
                       f"--rounds {args.rounds}`, {os.cpu_count()} CPUs, toy model, all on 127.0.0.1)\n\n"
                       "Each client submits a one-image job and follows it to its end, again and again "
                       "(a closed loop: N jobs in flight).\n\n" + text + "\n")
        print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
