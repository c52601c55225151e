"""What grows with the object count: seconds, memory and S3 requests per stage at 10⁴, 10⁵, 10⁶ objects.

No model runs: every file gets one fixed answer ("photo"), the worst case for de-duplication (one
group per output folder, every name but one suffixed). Each measurement runs in a fresh Python
process; its setup (files, objects, rows) is not timed. Memory: the peak resident set sampled every
20 ms, as growth over the process's own before the stage, and for Ray the largest process below it
(a worker: its RSS counts the object-store pages it touched). S3 is moto's server in a process of
its own on 127.0.0.1; the requests it logs during a measurement are counted.

- listing: ``listing.read_shard`` over one folder of N files (one read task's work): local empty
  ``.jpg`` files in sub-folders of 1,000; S3 keys under one prefix (1,000 per request).
- names: ``assign_unique``, the pure core, over one output folder of N files with one name.
- reduce: ``Dedupe.rows`` over that group (one reduce task: rows in, final names and targets out).
- shuffle: the Dedupe stage in Ray Data (sort shuffle and reduce tasks) over N rows, in folders
  of 1,000 (one group each), then all in one folder (one group: one reduce task holds it).
- claims: ``claims.claim`` per file on 16 threads, 1,000 at a time, as ``ClaimNames`` does.
- manifest: ``Results`` over N result rows in random order (sorted parts of ``PART_ROWS``), then
  the k-way merge into manifest.jsonl, timed apart.

Usage::

    .venv/bin/python benchmarks/scale.py                  # 10⁴ 10⁵ 10⁶ (S3, Ray, claims: up to --*-max)
    .venv/bin/python benchmarks/scale.py --sizes 10000 --stages names manifest --no-write
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

DOC = Path(__file__).resolve().parents[1] / "docs" / "scale.md"
BEGIN, END = "<!-- benchmarks/scale.py: begin -->", "<!-- benchmarks/scale.py: end -->"
ON_S3 = ("listing", "claims", "manifest")   # the stages that talk to storage
PER_FOLDER = 1000
ANSWER = "photo"


class Peak:
    """Peak RSS of this process (as growth over its RSS at the start) and, with ``below``, of the
    largest process below it (Ray's), sampled every 20 ms on a thread; also the time and the S3
    requests moto logged in between."""

    def __init__(self, *, below: bool = False):
        self.watch_below = below

    def __enter__(self) -> "Peak":
        self.log = Path(os.environ["SCALE_MOTO_LOG"]) if os.environ.get("SCALE_MOTO_LOG") else None
        self.log_from = self.log.stat().st_size if self.log else 0
        self.me, self.stop = psutil.Process(), threading.Event()
        self.base = self.me.memory_info().rss
        self.own = self.below = 0
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.started = time.perf_counter()
        return self

    def _sample(self) -> None:
        children: list[psutil.Process] = []
        for tick in itertools.count():
            self.own = max(self.own, self.me.memory_info().rss - self.base)
            if self.watch_below and tick % 25 == 0:  # the process tree: every 0.5 s (a scan of /proc)
                children = self.me.children(recursive=True)
            for child in children:
                try:
                    self.below = max(self.below, child.memory_info().rss)
                except psutil.Error:  # ended meanwhile
                    pass
            if self.stop.wait(0.02):
                return

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
        self.requests = requests_in(self.log, self.log_from) if self.log else None
        self.stop.set()
        self.thread.join()

    def result(self, stage: str, **extra) -> dict:
        return {"stage": stage, "seconds": self.seconds, "own_mb": self.own / 2**20,
                "below_mb": self.below / 2**20 or None, "requests": self.requests, **extra}


def relative(i: int, one_folder: bool = False) -> str:
    return f"photos/img-{i:07d}.jpg" if one_folder else f"d{i // PER_FOLDER:04d}/img-{i:07d}.jpg"


def stemmed_rows(n: int, target_root: str, *, one_folder: bool) -> list[dict]:
    """``columns.STEMMED`` rows of files all given the fixed answer."""
    from renamer_ray.pipeline.columns import STEMMED
    from renamer_ray.pipeline.rows import Wishes, listed_row

    wishes, rows = Wishes(target_root=target_root), []
    for i in range(n):
        path = relative(i, one_folder)
        row = dict.fromkeys(STEMMED.names)
        row.update(listed_row(f"/src/{path}", path, wishes, size=1000, mtime=1.7e9, index=i % PER_FOLDER + 1),
                   format="JPEG", raw=ANSWER, stem=ANSWER, key=f"{target_root}\n{path.rsplit('/', 1)[0]}\n{ANSWER}")
        rows.append(row)
    return rows


def result_rows(order: list[int], source_root: str, target_root: str):
    """``columns.RESULT`` rows of files number ``order``, made as they are consumed."""
    from renamer_ray.pipeline.columns import RESULT

    for i in order:
        path, name = relative(i), f"{ANSWER}-{i % PER_FOLDER + 1:03d}.jpg"
        output = f"{path.rsplit('/', 1)[0]}/{name}"
        yield {**dict.fromkeys(RESULT.names), "source": f"{source_root}/{path}", "relative": path,
               "target_root": target_root, "size": 1000, "mtime": 1.7e9, "kept": False, "format": "JPEG",
               "target": f"{target_root}/{output}", "name": name, "output": output, "status": "ok", "raw": ANSWER}


@dataclass(frozen=True)
class Place:
    """Where a measurement's files go: a local scratch folder, or a fresh bucket on moto's S3."""

    root: str                        # the folder or s3://bucket
    config: object                   # the StorageConfig to reach it
    scratch: Path
    s3: object = None                # a boto3 client (S3 only), to set up objects
    bucket: str | None = None


def measure_listing(n: int, place: Place) -> list[dict]:
    from renamer_ray.io.storage import open_location
    from renamer_ray.pipeline.listing import read_shard
    from renamer_ray.pipeline.rows import Wishes

    if place.s3:
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda i: place.s3.put_object(Bucket=place.bucket, Key=f"in/img-{i:07d}.jpg", Body=b""),
                          range(n)))
    else:
        for i in range(n):
            path = place.scratch / "in" / relative(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    location, wishes = open_location(place.root, place.config), Wishes(target_root=f"{place.root}/out")
    with Peak() as peak:
        listed = sum(block.num_rows for block in read_shard(location, "in/", (), (), wishes))
    assert listed == n, listed
    return [peak.result("listing")]


def measure_names(n: int, place: Place) -> list[dict]:
    from renamer_ray.naming import assign_unique

    entries = [(f"/src/{relative(i, True)}", ANSWER) for i in range(n)]
    with Peak() as peak:
        names = assign_unique(entries)
    assert len(set(names.values())) == n
    return [peak.result("names")]


def measure_reduce(n: int, place: Place) -> list[dict]:
    from renamer_ray.pipeline.dedupe import Dedupe

    rows = stemmed_rows(n, "/dst", one_folder=True)
    with Peak() as peak:
        out = Dedupe(place.config).rows(rows)
    assert sum(row["status"] == "ok" for row in out) == n
    return [peak.result("reduce")]


def measure_shuffle(n: int, place: Place) -> list[dict]:
    import pyarrow as pa
    import ray

    from renamer_ray.pipeline.columns import STEMMED
    from renamer_ray.pipeline.dedupe import Dedupe
    from renamer_ray.pipeline.run import ensure_ray

    ensure_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    measured = []
    for one_folder in (False, True):
        rows = stemmed_rows(n, "/dst", one_folder=one_folder)
        blocks = [pa.Table.from_pylist(rows[i:i + PER_FOLDER], schema=STEMMED) for i in range(0, n, PER_FOLDER)]
        del rows
        listed = ray.data.from_arrow(blocks).materialize()  # in the object store before the clock starts
        del blocks
        with Peak(below=True) as peak:
            named = Dedupe(place.config).apply(listed)
            done = sum(batch.num_rows for batch in named.iter_batches(batch_format="pyarrow", batch_size=None))
        assert done == n, done
        measured.append(peak.result(f"shuffle ({'one folder' if one_folder else f'folders of {PER_FOLDER:,}'})"))
    return measured


def measure_claims(n: int, place: Place) -> list[dict]:
    from renamer_ray.io.storage import open_location, remove_folder
    from renamer_ray.pipeline.claims import CLAIMS_FOLDER, claim

    target = open_location(f"{place.root}/out", place.config)
    with Peak() as peak, ThreadPoolExecutor(16) as pool:
        for start in range(0, n, 1000):
            list(pool.map(lambda i: claim(target, relative(i), f"{ANSWER}-{i:07d}.jpg", "JPEG", ANSWER),
                          range(start, min(n, start + 1000))))
    with Peak() as removal:  # as the run's end does (``Results.clean_up``)
        remove_folder(target.join(CLAIMS_FOLDER))
    return [peak.result("claims"), removal.result("claims: removed at the end")]


def measure_manifest(n: int, place: Place) -> list[dict]:
    from renamer_ray.io.storage import open_location, size_of
    from renamer_ray.pipeline.results import Results

    target = open_location(f"{place.root}/out", place.config)
    order = random.Random(7).sample(range(n), n)  # the pipeline's rows come out in any order
    results, rows = Results(target), result_rows(order, f"{place.root}/in", target.uri)
    with Peak() as parts:
        for row in rows:
            results.add(row)
    manifest = target.join("manifest.jsonl")
    with Peak() as merge:  # (and the last, partial part)
        results.write_manifest(manifest, None, f"{place.root}/in")
    return [parts.result("manifest: records into sorted parts"),
            merge.result(f"manifest: k-way merge of {len(results.parts)} parts into manifest.jsonl "
                         f"({size_of(manifest) / n:.0f} bytes per record)")]


MEASURE = {"listing": measure_listing, "names": measure_names, "reduce": measure_reduce,
           "shuffle": measure_shuffle, "claims": measure_claims, "manifest": measure_manifest}


def measure(stage: str, storage: str, n: int, endpoint: str | None, scratch: Path) -> list[dict]:
    """One stage at one size, in this process (the ``--one`` mode), with local files under ``scratch``."""
    from renamer_ray.io.storage import StorageConfig

    config = StorageConfig(region="us-east-1", endpoint_url=endpoint)
    if storage != "s3":
        return MEASURE[stage](n, Place(str(scratch), config, scratch))
    import boto3

    bucket = f"scale-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    return MEASURE[stage](n, Place(f"s3://{bucket}", config, scratch, s3, bucket))


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    """moto's server in a process of its own (its memory and CPU are in no measurement)."""
    from renamer_ray.service.local.ports import free_ports

    port = free_ports(1)[0]
    with log.open("w") as requests_log:  # the server writes one line per request into its own copy
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=requests_log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return server, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto's server did not start")


def requests_in(log: Path, since: int) -> int:
    """Requests moto logged since byte ``since`` of its log (one werkzeug line each, some in colour)."""
    with log.open("rb") as stream:
        stream.seek(since)
        return len(re.findall(rb'"(?:\x1b\[[0-9;]*m)*(?:GET|PUT|POST|HEAD|DELETE) ', stream.read()))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import pyarrow
    import ray

    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; Python "
            f"{platform.python_version()}, Ray {ray.__version__}, pyarrow {pyarrow.__version__}; load average "
            f"{os.getloadavg()[0]:.1f} at the start")


def table(results: list[dict]) -> list[str]:
    lines = ["| stage | storage | objects | seconds | µs per object | S3 requests | memory growth (MB) "
             "| largest Ray process (MB) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['storage']} | {r['n']:,} | {r['error']} | | | | |")
            continue
        below = f"{r['below_mb']:.0f}" if r.get("below_mb") else "—"
        requests = "—" if r.get("requests") is None else f"{r['requests']:,}"
        lines.append(f"| {r['stage']} | {r['storage']} "
                     f"| {r['n']:,} | {r['seconds']:.2f} | {r['seconds'] / r['n'] * 1e6:.1f} "
                     f"| {requests} | {r['own_mb']:.0f} | {below} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--stages", nargs="+", choices=list(MEASURE), default=list(MEASURE))
    parser.add_argument("--s3-max", type=int, default=10_000, help="largest size measured on S3 too")
    parser.add_argument("--ray-max", type=int, default=100_000, help="largest size of the Ray shuffle")
    parser.add_argument("--claims-max", type=int, default=100_000,
                        help="largest size of the claims (a constant cost per file: one small file each)")
    parser.add_argument("--budget", type=int, default=900, help="seconds one measurement may take")
    parser.add_argument("--no-write", action="store_true", help=f"print only; leave {DOC.name} alone")
    parser.add_argument("--one", nargs=5, metavar=("STAGE", "STORAGE", "N", "ENDPOINT", "SCRATCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        stage, storage, n, endpoint, scratch = args.one
        print(json.dumps(measure(stage, storage, int(n), endpoint if endpoint != "-" else None, Path(scratch))))
        return

    plan = [(stage, storage, n) for n in sorted(args.sizes) for stage in args.stages
            for storage in ("local", "s3") if (storage == "local" or (stage in ON_S3 and n <= args.s3_max))
            and (stage != "shuffle" or n <= args.ray_max) and (stage != "claims" or n <= args.claims_max)]
    header = machine()
    log = Path(tempfile.mkdtemp(prefix="scale-moto-")) / "moto.log"
    server, endpoint = start_moto(log) if any(storage == "s3" for _, storage, _ in plan) else (None, "-")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "scale", "AWS_SECRET_ACCESS_KEY": "scale",
           "AWS_EC2_METADATA_DISABLED": "true"}
    results: list[dict] = []
    try:
        for stage, storage, n in plan:
            shown = {"s3": "S3 (moto)", "local": "local" if stage in ON_S3 else "— (memory)"}[storage]
            scratch = tempfile.mkdtemp(prefix="scale-")  # the measurement's local files, removed here
            command = [sys.executable, __file__, "--one", stage, storage, str(n), endpoint, scratch]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.budget,
                                      env={**env, "SCALE_MOTO_LOG": str(log) if storage == "s3" else ""})
            except subprocess.TimeoutExpired:
                results.append({"stage": stage, "storage": shown, "n": n, "error": f"over {args.budget} s"})
            else:
                if done.returncode:
                    sys.exit(f"{stage} {storage} {n}: failed\n{done.stderr[-3000:]}")
                results += [{**r, "storage": shown, "n": n} for r in json.loads(done.stdout.strip().splitlines()[-1])]
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            print("\n".join(table(results)[-1:]), flush=True)
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(log.parent, ignore_errors=True)
    block = [f"Taken on: {header}; `python benchmarks/scale.py {' '.join(sys.argv[1:])}`, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "", *table(results)]
    print("\n".join(block))
    if not args.no_write:
        text = DOC.read_text() if DOC.exists() else f"# Scale\n\n{BEGIN}\n{END}\n"
        before, rest = text.split(BEGIN, 1)
        DOC.write_text(before + BEGIN + "\n" + "\n".join(block) + "\n" + END + rest.split(END, 1)[1])
        print(f"written to {DOC}")


if __name__ == "__main__":
    main()
