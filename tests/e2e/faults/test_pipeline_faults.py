"""Faults in a bulk run (``pipeline.run.run``): real Ray, moto's S3 server over HTTP, the toy model.

Every case runs the same small drawn corpus (``corpus``: six shapes, and the names an undisturbed
run gives them) with one fault injected, checks what a user relies on — every file renamed exactly
once with the undisturbed name, or a clean failure with a reason after a bounded number of attempts
(a child that hangs is killed and fails its case) — and adds a row to the fault table. Cases that
need a Ray of their own (a two-node cluster, a hook in every worker) run ``node_loss.py`` /
``sabotaged_run.py`` in a child process: this session already has a local Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from renamer_ray.config import load_settings
from renamer_ray.pipeline.decode import DECODE_TASK_RETRIES
from renamer_ray.pipeline.infer import MODEL_RESTARTS
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import drawn_files
from tests.e2e.faults.harness import add_row, s3_outputs, tally

HERE = Path(__file__).parent
REPO = HERE.parent.parent
COUNT = 6
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
SCRIPT_TIMEOUT_S = 300            # a child that runs longer is killed and the case fails (a hang)


@dataclass
class Corpus:
    endpoint: str
    bucket: str
    files: dict[str, tuple[bytes, str]]   # relative path → (bytes, drawn label)
    names: dict[str, str]                 # relative path → the name an undisturbed run gives it
    seconds: float                        # how long the undisturbed run took

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    @property
    def inputs(self) -> list[bytes]:
        return [data for data, _ in self.files.values()]


def upload(s3, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{relative}", Body=data)


def manifest(s3, corpus: Corpus, target: str, source: str = "in") -> dict[str, dict]:
    """A run's manifest rows by source path relative to ``source``."""
    body = s3.get_object(Bucket=corpus.bucket, Key=f"{target}/manifest.jsonl")["Body"].read().decode()
    rows = [json.loads(line) for line in body.splitlines()]
    return {row["source"].removeprefix(corpus.uri(source) + "/"): row for row in rows}


def names_of(rows: dict[str, dict]) -> dict[str, str | None]:
    return {relative: row.get("name") for relative, row in rows.items()}


def keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def run_child(script: str, *args: str) -> dict:
    """Run a scenario script under this interpreter; its RESULT line. A child that outlives
    SCRIPT_TIMEOUT_S is killed with everything it started (its own Ray) and the case fails."""
    child = subprocess.Popen([sys.executable, str(HERE / script), *args], cwd=REPO, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        pytest.fail(f"{script} did not end within {SCRIPT_TIMEOUT_S} s (a hang)\n{out[-3000:]}\n{err[-3000:]}")
    results = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0 and results, f"{script} exited {child.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    return json.loads(results[-1].removeprefix("RESULT "))


def fault_log(workdir: str) -> list[tuple[int, float]]:
    """Each firing of the planted fault, in order: the process it fired in and when (sabotaged_run.py
    logs "pid time" per firing)."""
    log = Path(workdir) / "fault.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(pid), float(at)) for pid, at in (line.split() for line in lines)]


@pytest.fixture(scope="module")
def corpus(ray_local, s3_endpoint) -> Corpus:
    """COUNT drawn shapes under s3://BUCKET/in/, and the names an undisturbed run gives them."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    files = {f"shape_{i:02d}.{EXTENSIONS[fmt]}": (data, label)
             for i, (data, fmt, label) in enumerate(drawn_files(seed=4242, count=COUNT, max_side=300))}
    upload(s3, bucket, "in", {relative: data for relative, (data, _) in files.items()})
    settings = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=s3_endpoint)
    started = time.monotonic()
    summary = run(RunOptions(source=f"s3://{bucket}/in", target=f"s3://{bucket}/reference"), settings)
    seconds = time.monotonic() - started
    reference = Corpus(s3_endpoint, bucket, files, {}, seconds)
    reference.names = names_of(manifest(s3, reference, "reference"))
    assert summary.ok == COUNT and summary.failed == 0 and set(reference.names) == set(files)
    for relative, (_, label) in files.items():  # the toy model names every drawn shape by its label
        assert reference.names[relative].startswith(label), (relative, reference.names[relative])
    assert tally(reference.inputs, s3_outputs(s3, bucket, "reference/")) == (0, 0)
    return reference


def test_s3_answering_503_twice_to_every_read_changes_nothing(corpus, s3):
    """Every GET (objects and listings) answered 503 SlowDown twice before it is served: the run
    equals the undisturbed run — the same names, every file copied once, nothing else written."""
    from tests.support.faulty_proxy import FaultyProxy

    proxy = FaultyProxy(corpus.endpoint, first_gets=2)
    try:
        started = time.monotonic()
        summary = run(RunOptions(source=corpus.uri("in"), target=corpus.uri("twice")),
                      load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=proxy.url))
        seconds = time.monotonic() - started
    finally:
        proxy.close()
    lost, duplicated = tally(corpus.inputs, s3_outputs(s3, corpus.bucket, "twice/"))
    add_row(f"S3 answers 503 twice to every GET ({COUNT} files)", runs=1, lost=lost, duplicated=duplicated,
            recover_s=seconds, outcome=f"as undisturbed ({proxy.refused} requests refused; the undisturbed "
                                       f"run took {corpus.seconds:.1f} s)")
    assert proxy.refused >= 2 * COUNT, f"only {proxy.refused} of {proxy.requests} requests were refused"
    assert summary.ok == COUNT and summary.failed == 0
    assert names_of(manifest(s3, corpus, "twice")) == corpus.names
    assert (lost, duplicated) == (0, 0)
    assert keys(s3, corpus.bucket, "twice/_manifest/") == []


def test_s3_answering_503_to_every_read_fails_each_file_with_a_reason_then_a_rerun_finishes(corpus, s3, tmp_path):
    """Every GET of a source object answered 503 for as long as the fault lasts (listings pass): the
    run ends without retrying each file for a whole storage retry budget (once a worker's reads have
    failed for one budget, its later reads are not tried), with every file failed "running again may
    succeed" and nothing written but its manifest. Run again once S3 has healed, it renames every
    file exactly once, with the undisturbed names.

    The failing run is a child process whose workers' storage retry budget is cut from 60 s to
    sabotaged_run.SHORT_STORAGE_BUDGET_S (and the client's attempts per call from 8 to 2), so the
    case takes seconds. With the real ones this failing run took 272 s on a 2-CPU machine: the first
    file each worker process reads costs two client calls of ≈ 45 s of the client's own backoff."""
    from tests.support.faulty_proxy import FaultyProxy
    from tests.e2e.faults.sabotaged_run import SHORT_STORAGE_BUDGET_S

    proxy = FaultyProxy(corpus.endpoint, refuse_gets=f"/{corpus.bucket}/in/")
    try:
        failed = run_child("sabotaged_run.py", "storage-down", proxy.url, corpus.uri("in"), corpus.uri("forever"),
                           str(tmp_path))
        refused, written = proxy.refused, s3_outputs(s3, corpus.bucket, "forever/")
        failed_rows = manifest(s3, corpus, "forever")
        proxy.refuse_gets = None  # S3 healed
        again = run(RunOptions(source=corpus.uri("in"), target=corpus.uri("forever")),
                    load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=proxy.url))
        finished = time.time()
    finally:
        proxy.close()
    failed_s = failed["finished_at"] - failed["started_at"]
    lost, duplicated = tally(corpus.inputs, s3_outputs(s3, corpus.bucket, "forever/"))
    add_row(f"S3 answers 503 to every source GET ({COUNT} files), then heals", runs=2, lost=lost,
            duplicated=duplicated, recover_s=finished - failed["started_at"],
            outcome=f"run 1 ends in {failed_s:.1f} s (retry budget {SHORT_STORAGE_BUDGET_S:g} s), every file failed "
                    f"'running again may succeed', nothing written; run 2 after healing: as undisturbed")

    assert "error" not in failed, failed
    assert failed["ok"] == 0 and failed["failed"] == COUNT and sorted(failed_rows) == sorted(corpus.files)
    for row in failed_rows.values():  # the manifest's way of saying that a later run may succeed
        assert row["status"] == "error" and "running again may succeed" in row["error"], row
    assert refused >= COUNT
    assert written == [], "the failed run wrote files besides its manifest"
    # Not one budget per file: once a worker's reads had failed for a whole budget, its later reads
    # failed without a request to the store (test_storage_outage.py).
    not_tried = [relative for relative, row in failed_rows.items() if "so this was not tried" in row["error"]]
    assert not_tried, "every file's read spent the storage retry budget again"

    assert again.ok == COUNT and again.failed == 0
    rows = manifest(s3, corpus, "forever")
    assert names_of(rows) == corpus.names
    assert (lost, duplicated) == (0, 0)
    assert keys(s3, corpus.bucket, "forever/_manifest/") == []


def test_a_worker_node_lost_mid_run_costs_nothing(corpus, s3, tmp_path):
    """The node that hosts the model actor is killed after the model's first batch, with the next
    batch in hand (a spot interruption); a fresh node with the same resource joins. The run
    finishes there: every file renamed once, with the undisturbed names."""
    result = run_child("node_loss.py", corpus.endpoint, corpus.uri("in"), corpus.uri("node-loss"), str(tmp_path))
    lost, duplicated = tally(corpus.inputs, s3_outputs(s3, corpus.bucket, "node-loss/"))
    recover_s = result["finished_at"] - result["fault_at"] if "fault_at" in result and "finished_at" in result \
        else None
    outcome = result.get("error", "as undisturbed")[:120]
    add_row(f"the model's worker node killed mid-run, a new node joins ({COUNT} files)", runs=1, lost=lost,
            duplicated=duplicated, recover_s=recover_s,
            outcome=f"{result.get('ok')} renamed, {result.get('failed')} failed: {outcome}")

    assert "error" not in result, result["error"]
    assert result["model_was_on_the_removed_node"] and result["batches_before"] == 1
    hosts = {batch["node"] for batch in result["batches"]}
    assert result["removed_node"] in hosts and len(hosts) == 2, "the model never ran on the new node"
    assert result["ok"] == COUNT and result["failed"] == 0
    assert names_of(manifest(s3, corpus, "node-loss")) == corpus.names
    assert (lost, duplicated) == (0, 0)
    assert keys(s3, corpus.bucket, "node-loss/_manifest/") == []


def test_a_decode_task_that_exits_cleanly_never_hangs_the_run(corpus, s3, tmp_path):
    """Reading one file (``exit-here.png``) ends the decode task's process with sys.exit(0), on every
    attempt (ray#62746: a worker that exits with status 0 mid-task). The run must not hang: either
    it finishes with that file failed (a reason in the manifest) and every other file renamed as
    undisturbed, or it fails as a whole, with a clear error, after at most 1 + DECODE_TASK_RETRIES
    attempts. (Today: the latter; Ray Data's default retried the task for ever.)"""
    from tests.e2e.faults.sabotaged_run import POISON_NAME

    poisoned = {relative: data for relative, (data, _) in corpus.files.items()}
    poisoned[POISON_NAME] = drawn_files(seed=4243, count=2)[1][0]  # a PNG; it is never decoded
    upload(s3, corpus.bucket, "poisoned", poisoned)
    result = run_child("sabotaged_run.py", "exit-in-decode", corpus.endpoint, corpus.uri("poisoned"),
                       corpus.uri("exit"), str(tmp_path))
    exits = [at for _, at in fault_log(str(tmp_path))]
    since_fault = result["finished_at"] - exits[0] if exits else float("nan")
    outputs = s3_outputs(s3, corpus.bucket, "exit/")
    lost, duplicated = tally(corpus.inputs, outputs)
    if "error" in result:
        outcome = f"clean failure {since_fault:.1f} s after the first exit, {len(exits)} exits: {result['error_type']}"
        add_row("a decode task exits cleanly (sys.exit(0)) on one file, every time", runs=1, lost=lost,
                duplicated=duplicated, recover_s=None, outcome=outcome)
        assert result["error_type"] == "ProcessLost" and "decode" in result["error"], result
        assert len(exits) == 1 + DECODE_TASK_RETRIES, f"{len(exits)} attempts"
        assert outputs == [] and keys(s3, corpus.bucket, "exit/manifest.jsonl") == []
    else:
        outcome = f"{POISON_NAME} failed alone, the rest as undisturbed"
        add_row("a decode task exits cleanly (sys.exit(0)) on one file, every time", runs=1, lost=lost,
                duplicated=duplicated, recover_s=since_fault, outcome=outcome)
        rows = manifest(s3, corpus, "exit", source="poisoned")
        assert rows.pop(POISON_NAME)["status"] == "error"
        assert names_of(rows) == corpus.names and (lost, duplicated) == (0, 0)
    # Not retried for ever: the run ended after its last attempt, and attempts were bounded.
    assert 1 <= len(exits) <= 1 + DECODE_TASK_RETRIES, f"{len(exits)} attempts"
    assert result["finished_at"] > exits[-1]


def test_a_model_that_dies_on_every_batch_ends_the_run_after_its_restart_budget(corpus, s3, tmp_path):
    """Every model call hits a fatal device error: the namer raises DeviceLost and its process
    leaves (os._exit), so Ray restarts it; it dies again on the same batch. After 1 + MODEL_RESTARTS
    processes the run fails with a clear reason, and nothing is written.
    (Ray Data's default, infinite restarts and retries, reloaded the model for ever.)"""
    result = run_child("sabotaged_run.py", "device-lost", corpus.endpoint, corpus.uri("in"), corpus.uri("device"),
                       str(tmp_path))
    deaths = fault_log(str(tmp_path))
    lost, duplicated = tally(corpus.inputs, s3_outputs(s3, corpus.bucket, "device/"))
    took = result["finished_at"] - deaths[0][1] if deaths else float("nan")
    add_row("the model's process dies on every batch (DeviceLost → os._exit)", runs=1, lost=lost,
            duplicated=duplicated, recover_s=None,
            outcome=f"clean failure {took:.1f} s after the first death: {len(deaths)} model processes "
                    f"(restart budget {MODEL_RESTARTS}), {result.get('error_type', 'no error')}")
    assert result.get("error_type") == "ProcessLost", result
    assert "model" in result["error"] and "restart budget" in result["error"]
    # Each restart was a fresh model process that died in turn, and the run ended after the last.
    assert len(deaths) == 1 + MODEL_RESTARTS, f"the model died {len(deaths)} times"
    assert len({pid for pid, _ in deaths}) == len(deaths), f"deaths in processes {[pid for pid, _ in deaths]}"
    assert result["finished_at"] > deaths[-1][1]
    assert s3_outputs(s3, corpus.bucket, "device/") == []
    assert keys(s3, corpus.bucket, "device/manifest.jsonl") == []
