"""The job engine's targets, measured through the whole local stack over HTTP.

Starts `renamer-ray up`'s stack in this process (embedded S3/SQS, Ray head, the Serve application:
ingress, warm namer, driver) with 10 API keys, then:
(1) ``--singles`` one-image jobs, one after another: POST → ``succeeded`` p50 / p95 (model warm);
(2) a ``--big``-image job, then 2 s later a one-image job: when each finished;
(3) ``--queued`` jobs of ``--queued-size`` images (enough to hold every MAX_RUNNING slot), then 2 s
    later a one-image job: the small job's latency, and the large jobs' total (first sent → last
    finished), where the small job's time went, ``--rounds`` times. Compare with ``SMALL_JOB_FILES=0``
    (no slot kept for small jobs) for the cost to the large ones;
(4) ``--tenants`` × ``--per-tenant`` one-image jobs submitted at once (one thread per tenant): all
    correct, and each tenant's last finish against every other's;
(5) namer replica starts (one log file per replica start) and pipeline runs, per 100 jobs.
``--parts`` picks among (1)–(4). Prints the figures and appends them to docs/benchmarks.md
(``--no-write`` to skip)::

    .venv/bin/python benchmarks/service_latency.py            # defaults: 20 singles, 300 big, 4 x 100 queued, 10 x 10
    .venv/bin/python benchmarks/service_latency.py --parts queued --rounds 3 --no-write
    SMALL_JOB_FILES=0 .venv/bin/python benchmarks/service_latency.py --parts queued --rounds 3 --no-write
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import platform
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
FINISHED = ("succeeded", "partial", "failed", "cancelled")


def image(seed: int, side: tuple[int, int] = (800, 1600)) -> tuple[bytes, str]:
    """A drawn shape as JPEG, and its correct label."""
    from renamer_ray.toy.shapes import draw_shape

    sample = draw_shape(random.Random(seed), min_side=side[0], max_side=side[1])
    buf = io.BytesIO()
    sample.image.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), sample.label


def draw(seeds: list[int]) -> list[tuple[bytes, str]]:
    """A job's images: small ones for a many-image job, one large one for a one-image job."""
    return [image(seed, (300, 600) if len(seeds) > 1 else (800, 1600)) for seed in seeds]


def submit(api: str, key: str, seeds: list[int], drawn: list[tuple[bytes, str]] | None = None
           ) -> tuple[str, list[str], float]:
    """Send a job (``drawn``: its images, drawn beforehand); its id, correct labels and when it was sent."""
    drawn = drawn or draw(seeds)
    started = time.monotonic()
    accepted = httpx.post(f"{api}/v1/jobs/rename", headers={"X-API-Key": key}, timeout=300,
                          files=[("files", (f"{seed}.jpg", data)) for seed, (data, _) in zip(seeds, drawn)])
    accepted.raise_for_status()
    return accepted.json()["job_id"], [label for _, label in drawn], started


def follow(api: str, key: str, job_id: str) -> dict:
    """The job's events until its final state; adds ``seen_at`` (monotonic: when this client saw it)."""
    with httpx.stream("GET", f"{api}/v1/jobs/{job_id}/events", headers={"X-API-Key": key}, timeout=900) as events:
        for line in events.iter_lines():
            if line.startswith("data: "):
                state = json.loads(line[6:])
                if state["status"] in FINISHED:
                    state["seen_at"], state["seen_wall"] = time.monotonic(), time.time()
                    return state
    raise RuntimeError(f"no final state for {job_id}")


def correct(job: dict, labels: list[str]) -> bool:
    return job["status"] == "succeeded" and all(
        r["name"].startswith(label) for r, label in zip(job["results"], labels))


def one_job(api: str, key: str, seed: int) -> float:
    return timed_job(api, key, seed)[0]


def timed_job(api: str, key: str, seed: int) -> tuple[float, str]:
    """A one-image job: seconds from sending it to seeing it succeed, and where they went (the
    upload's answer, the wait for a run, the run with its records, the events stream's notice)."""
    sent = time.time()
    job_id, labels, started = submit(api, key, [seed])
    job = follow(api, key, job_id)
    assert correct(job, labels), job
    created, began, ended = (datetime.fromisoformat(job[k]).timestamp()
                             for k in ("created_at", "started_at", "finished_at"))
    return job["seen_at"] - started, (
        f"recorded {created - sent:.2f} s after sending, waited for a run {began - created:.2f} s, ran "
        f"{ended - began:.2f} s, seen {job['seen_wall'] - ended:.2f} s later")


def big_and_small(api: str, big_key: str, small_key: str, big_jobs: list[list[int]]
                  ) -> tuple[float, str, float, int, float]:
    """Send the big jobs, then 2 s after the first was sent (or once all are sent) a one-image job: the
    small job's latency and where it went, when it was sent after the first big one, how many big
    ones it finished before, and the big ones' total (first sent → last finished)."""
    payloads = [draw(seeds) for seeds in big_jobs]  # drawn before the clock starts
    with ThreadPoolExecutor(max_workers=len(big_jobs)) as pool:
        first_sent = time.monotonic()
        sent, followed = [], []
        for seeds, drawn in zip(big_jobs, payloads):
            sent.append(submit(api, big_key, seeds, drawn))
            followed.append(pool.submit(follow, api, big_key, sent[-1][0]))
        # The scenario: the small job is sent 2 s after the big ones (not a synchronisation).
        time.sleep(max(0.0, first_sent + 2 - time.monotonic()))
        small_sent = time.monotonic() - first_sent
        small_s, parts = timed_job(api, small_key, 99)
        small_done = time.monotonic()
        big = [future.result() for future in followed]
    for job, (_, labels, _) in zip(big, sent):  # the toy model misnames about one drawn shape in 400
        wrong = [(r["original"], r["name"], label) for r, label in zip(job["results"], labels)
                 if not (r["name"] or "").startswith(label)]
        assert job["status"] == "succeeded" and len(wrong) <= len(labels) // 50, (job["status"], wrong)
    return (small_s, parts, small_sent, sum(small_done < job["seen_at"] for job in big),
            max(job["seen_at"] for job in big) - first_sent)


def burst(api: str, keys: list[str], per_tenant: int) -> list[float]:
    """Each tenant's last finish after its ``per_tenant`` one-image jobs were all sent at once."""
    burst_start = time.monotonic()

    def tenant_jobs(n: int) -> list[float]:
        ids = [submit(api, keys[n], [20_000 + 100 * n + i]) for i in range(per_tenant)]
        out = []
        for job_id, labels, _ in ids:
            job = follow(api, keys[n], job_id)
            assert correct(job, labels), job
            out.append(job["seen_at"] - burst_start)
        return out

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return [max(times) for times in pool.map(tenant_jobs, range(len(keys)))]


PARTS = ("singles", "big", "queued", "tenants")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--big", type=int, default=300)
    parser.add_argument("--queued", type=int, default=4, help="large jobs sent before the small one in (3)")
    parser.add_argument("--queued-size", type=int, default=100, help="images per large job in (3)")
    parser.add_argument("--rounds", type=int, default=1, help="times (3) is run (new images each time)")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--per-tenant", type=int, default=10)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= set(PARTS):
        parser.error(f"--parts takes {', '.join(PARTS)}")
    os.environ.setdefault("MODEL_ID", "toy-shapes")
    os.environ["RAY_TMPDIR"] = tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    from renamer_ray.config import load_settings
    from renamer_ray.service.local.ports import free_ports
    from renamer_ray.service.local.stack import LocalStack

    keys = [f"bench-key-{n}" for n in range(args.tenants)]
    settings = load_settings(api_port=int(os.environ.get("API_PORT") or free_ports(1)[0]),
                             api_keys=",".join(f"{k}:tenant-{n}" for n, k in enumerate(keys)),
                             max_files_per_job=max(args.big, args.queued_size, 100), sqs_wait_seconds=20)
    stack = LocalStack(settings, workdir=Path(tempfile.mkdtemp()), dashboard_port=free_ports(1)[0])
    t0 = time.monotonic()
    stack.start()
    up_s = time.monotonic() - t0
    api = stack.api
    lines, jobs_total = [], 1
    try:
        one_job(api, keys[0], 0)  # the first job's tasks start Ray's worker processes: not counted
        if "singles" in parts:
            singles = [one_job(api, keys[0], seed) for seed in range(1, args.singles + 1)]
            q = statistics.quantiles(singles, n=20)
            lines.append(f"- (1) {args.singles} one-image jobs, one at a time, model warm: POST → succeeded "
                         f"p50 {statistics.median(singles):.2f} s, p95 {q[18]:.2f} s "
                         f"(min {min(singles):.2f}, max {max(singles):.2f})")
            jobs_total += args.singles
        if "big" in parts:
            small_s, _, _, before, big_s = big_and_small(api, keys[1], keys[2], [list(range(10_000, 10_000 + args.big))])
            lines.append(f"- (2) a {args.big}-image job, and a one-image job sent 2 s later: the small one finished "
                         f"{small_s:.1f} s after its submission, {'before' if before else 'AFTER'} the big one "
                         f"(which took {big_s:.1f} s)")
            jobs_total += 2
        if "queued" in parts:
            size, rounds = args.queued_size, []
            for n in range(args.rounds):  # new images each round: nothing of an earlier round is reused
                first = 30_000 + 10_000 * n
                rounds.append(big_and_small(api, keys[3 % args.tenants], keys[3 % args.tenants], [
                    list(range(first + size * k, first + size * (k + 1))) for k in range(args.queued)]))
            for small_s, parts_s, small_sent, before, big_s in rounds:
                lines.append(f"- (3) {args.queued} jobs of {size} images, and a one-image job sent {small_sent:.1f} s "
                             f"after the first of them (same API key): the small one finished {small_s:.1f} s after "
                             f"its submission ({parts_s}), before {before} of the {args.queued} large ones; the large "
                             f"ones' total {big_s:.1f} s (first sent → last finished)")
            if len(rounds) > 1:
                lines.append(f"- (3) median of {len(rounds)} rounds: the small job "
                             f"{statistics.median(r[0] for r in rounds):.1f} s, the large ones' total "
                             f"{statistics.median(r[4] for r in rounds):.1f} s")
            jobs_total += (args.queued + 1) * args.rounds
        if "tenants" in parts:
            last = burst(api, keys, args.per_tenant)
            lines.append(f"- (4) {args.tenants} API keys × {args.per_tenant} one-image jobs submitted at once: all "
                         f"correct; each tenant's last job finished after {min(last):.1f}–{max(last):.1f} s "
                         f"(slowest / fastest tenant {max(last) / min(last):.2f}×)")
            jobs_total += args.tenants * args.per_tenant
        driver = httpx.get(f"{api}/ready").json()
        from ray import serve

        runs = serve.get_deployment_handle("driver", app_name="renamer").status.remote().result()["runs_started"]
    finally:
        stack.stop()
    # One log file per replica start; the namer writes one "namer replica started" line in it.
    logs = {os.path.realpath(log)  # session_latest links to the session: count each file once
            for log in glob.glob(f"{tmp}/**/session_*/logs/serve/replica_renamer_namer_*.log", recursive=True)}
    replica_starts = sum(Path(log).read_text(errors="replace").count("namer replica started") for log in logs)
    lines = [
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model `{settings.model_id}`; "
        f"BATCH_SIZE {settings.batch_size}, MAX_RUNNING {settings.max_running}, SMALL_JOB_FILES "
        f"{settings.small_job_files}; stack up in {up_s:.1f} s; /ready at the end: {driver}",
        *lines,
        f"- (5) {jobs_total} jobs in all: {replica_starts} namer replica start(s) "
        f"({100 * replica_starts / jobs_total:.1f} per 100 jobs), {runs} pipeline runs",
    ]
    print("\n".join(lines))
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d")
        command = (f"--parts {args.parts} --singles {args.singles} --big {args.big} --queued {args.queued} "
                   f"--queued-size {args.queued_size} --rounds {args.rounds} --tenants {args.tenants} --per-tenant {args.per_tenant}")
        DOC.write_text(DOC.read_text() + f"\n### {stamp}: `python benchmarks/service_latency.py {command}`\n\n"
                       + "\n".join(lines) + "\n")
        print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
