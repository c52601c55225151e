"""Several Ray nodes on one machine: a bulk run over S3 (moto's server) spreads its model over three
GPU-type worker nodes and says which node named how many images; a run that loses one of them
mid-run finishes on the two left with the manifest of the undisturbed run; the service loses the
node of one namer replica with a job in flight, and the job succeeds.

Each cluster (``ray.cluster_utils.Cluster``: a head and three workers on 127.0.0.1) is made by a
script in ``faults/`` in a process of its own, since this session already has a local Ray; the
tests read what it printed, Ray's state API as it saw it, and what the runs left in S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import boto3
import pytest

from tests.e2e.faults.harness import s3_outputs, tally
from tests.support.images import drawn_files
from tests.support.stack import own_ray_tmpdir

REPO = Path(__file__).parents[2]
COUNT = 12                        # images; the model takes 2 at a time: 6 batches over 3 nodes
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}
SCRIPT_TIMEOUT_S = 540            # a cluster's start and its runs; a child still running then is killed


def run_script(module: str, *args: str) -> dict:
    """``python -m module`` with a Ray temp dir of its own; its RESULT line. A child that outlives
    SCRIPT_TIMEOUT_S is killed with everything it started (its cluster) and the test fails."""
    env = {**os.environ, "RAY_TMPDIR": own_ray_tmpdir()}
    child = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        pytest.fail(f"{module} did not end within {SCRIPT_TIMEOUT_S} s\n{out[-3000:]}\n{err[-3000:]}")
    results = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0 and results, f"{module} exited {child.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    return json.loads(results[-1].removeprefix("RESULT "))


def manifest_rows(s3, bucket: str, prefix: str) -> list[dict]:
    """A run's manifest, each row's target relative to the run's DST (runs into two DSTs compare)."""
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/manifest.jsonl")["Body"].read().decode()
    rows = [json.loads(line) for line in body.splitlines()]
    for row in rows:
        row["target"] = row["target"].removeprefix(f"s3://{bucket}/{prefix}/")
    return rows


@pytest.fixture(scope="module")
def runs(s3_endpoint, tmp_path_factory):
    """COUNT drawn shapes under s3://BUCKET/in/, renamed by both runs on the three-node cluster."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"nodes-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    files = {f"shape_{i:02d}.{EXTENSIONS[fmt]}": (data, label)
             for i, (data, fmt, label) in enumerate(drawn_files(seed=2323, count=COUNT, max_side=300))}
    for relative, (data, _) in files.items():
        s3.put_object(Bucket=bucket, Key=f"in/{relative}", Body=data)
    result = run_script("tests.e2e.faults.three_nodes", s3_endpoint, f"s3://{bucket}/in", f"s3://{bucket}/spread",
                        f"s3://{bucket}/lossy", str(tmp_path_factory.mktemp("three-nodes")))
    return dict(result=result, s3=s3, bucket=bucket, files=files)


def test_a_run_on_three_gpu_nodes_has_one_model_per_node_and_says_which_named_what(runs):
    result, s3, bucket, files = runs["result"], runs["s3"], runs["bucket"], runs["files"]
    undisturbed, workers = result["undisturbed"], set(result["workers"])
    assert "error" not in undisturbed, undisturbed["error"]
    assert undisturbed["ok"] == COUNT and undisturbed["failed"] == 0
    # Ray's state API: one model actor on each worker node, none on the head.
    assert sorted(actor["node"] for actor in undisturbed["actors"]) == sorted(workers), undisturbed["actors"]
    # The run's summary: which node named how many, as the models themselves logged it; every node named some.
    logged = Counter()
    for batch in result["batches"]:
        if batch["run"] == "undisturbed":
            logged[batch["node"]] += batch["rows"]
    assert undisturbed["named_by_node"] == logged and set(logged) == workers, (undisturbed["named_by_node"], logged)
    assert sum(logged.values()) == COUNT
    rows = manifest_rows(s3, bucket, "spread")
    assert sorted(row["relative"] for row in rows) == sorted(files)
    for row in rows:  # the toy model names every drawn shape by its label
        assert row["status"] == "ok" and row["name"].startswith(files[row["relative"]][1]), row
    assert tally([data for data, _ in files.values()], s3_outputs(s3, bucket, "spread/")) == (0, 0)


def test_a_worker_node_lost_mid_run_the_two_left_finish_with_the_undisturbed_manifest(runs):
    """The node whose model named the run's first batch is killed with its next batch in hand, and no
    node replaces it: its model restarts on a node left, and the run's manifest is the undisturbed
    run's (the same names, the same suffixes), every file copied once."""
    result, s3, bucket, files = runs["result"], runs["s3"], runs["bucket"], runs["files"]
    lossy, workers = result["lossy"], set(result["workers"])
    assert "error" not in lossy, lossy["error"]
    assert lossy.get("removed") in workers, "no worker node was removed mid-run"
    left = workers - {lossy["removed"]}
    assert lossy["ok"] == COUNT and lossy["failed"] == 0
    after = [batch for batch in result["batches"] if batch["run"] == "lossy" and batch["at"] > lossy["fault_at"]]
    assert after and {batch["node"] for batch in after} <= left, "no batch was named after the node was lost"
    assert {actor["node"] for actor in lossy["actors"]} <= left, lossy["actors"]  # the lost one's restarted there
    assert sum(lossy["named_by_node"].values()) == COUNT and set(lossy["named_by_node"]) & left
    assert manifest_rows(s3, bucket, "lossy") == manifest_rows(s3, bucket, "spread")
    assert tally([data for data, _ in files.values()], s3_outputs(s3, bucket, "lossy/")) == (0, 0)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="lossy/_manifest/").get("Contents", []) == []


def test_the_service_loses_a_namer_replicas_node_with_a_job_in_flight_and_the_job_succeeds(s3_endpoint, tmp_path):
    """Two namer replicas on two of three worker nodes; the node of the one that named the job's first
    batch is killed with its next batch in hand. The job ends ``succeeded`` with every image named as
    drawn, and the next job is served by the replicas the cluster has left (none on the lost node)."""
    from tests.e2e.faults.namer_node_lost import JOB_IMAGES, NEXT_JOB_IMAGES

    result = run_script("tests.e2e.faults.namer_node_lost", s3_endpoint, str(tmp_path))
    workers = set(result["workers"])
    assert len(set(result["namers_before"])) == 2 and set(result["namers_before"]) <= workers, result
    assert result.get("removed") in result["namers_before"], "no namer replica's node was removed"
    assert result["in_flight"], "the job had ended before the fault"
    job = result["job"]
    assert "error" not in job, job["error"]
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", JOB_IMAGES, 0), job
    assert job["named_as_drawn"] == [True] * JOB_IMAGES
    following = result["next_job"]
    assert (following["status"], following["failed"]) == ("succeeded", 0), following
    assert following["named_as_drawn"] == [True] * NEXT_JOB_IMAGES
    assert result["namers_after"] and set(result["namers_after"]) <= workers - {result["removed"]}, result
