"""Ray's own autoscaler, 0 → N → 0: on a cluster whose GPU worker nodes start at zero (Ray's
``fake_multinode`` provider with the node types of cluster/aws.yaml, a short idle timeout), a bulk
run's model actors make the autoscaler start GPU nodes, the run names every image there, and the idle
nodes are removed after it. The node counts are Ray's state API's, polled over time by
faults/autoscaled_run.py in a process of its own (this session has a local Ray)."""

from __future__ import annotations

import uuid

import boto3

from tests.e2e.faults.harness import s3_outputs, tally
from tests.e2e.test_multinode import EXTENSIONS, manifest_rows, run_script
from tests.support.images import drawn_files

COUNT = 8                         # images: the toy model takes 2 at a time


def test_a_bulk_run_starts_gpu_nodes_from_zero_and_they_are_removed_when_idle(s3_endpoint, tmp_path):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"scale-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    files = {f"shape_{i:02d}.{EXTENSIONS[fmt]}": (data, label)
             for i, (data, fmt, label) in enumerate(drawn_files(seed=2324, count=COUNT, max_side=300))}
    for relative, (data, _) in files.items():
        s3.put_object(Bucket=bucket, Key=f"in/{relative}", Body=data)

    result = run_script("tests.e2e.faults.autoscaled_run", s3_endpoint, f"s3://{bucket}/in",
                        f"s3://{bucket}/out", str(tmp_path))
    assert "error" not in result, result
    run, timeline = result["run"], result["timeline"]
    assert "error" not in run, run["error"]
    # 0 → N → 0, as Ray's state API counted the GPU-type nodes over time.
    assert result["before"] == [], "a GPU node was up before the run asked for one"
    assert max(len(entry["nodes"]) for entry in timeline if entry["phase"] == "run") >= 1, timeline
    assert (timeline[-1]["phase"], timeline[-1]["nodes"]) == ("idle", []), timeline
    # The model ran only on the nodes the autoscaler started, and named every image there.
    assert result["actors"] and {actor["node"] for actor in result["actors"]} <= set(result["gpu_nodes_seen"])
    assert set(run["named_by_node"]) <= set(result["gpu_nodes_seen"]), run["named_by_node"]
    assert (run["ok"], run["failed"]) == (COUNT, 0), run
    rows = manifest_rows(s3, bucket, "out")
    assert sorted(row["relative"] for row in rows) == sorted(files)
    for row in rows:  # the toy model names every drawn shape by its label
        assert row["status"] == "ok" and row["name"].startswith(files[row["relative"]][1]), row
    assert tally([data for data, _ in files.values()], s3_outputs(s3, bucket, "out/")) == (0, 0)


def test_the_namer_scales_from_zero_for_the_first_job_and_back_with_its_node(s3_endpoint, tmp_path):
    """cluster/serve.yaml's namer (min and initial replicas 0) on GPU-type nodes from 0: the first job
    starts a replica, and for it a node; the job succeeds; then the replica goes and so does the node."""
    from tests.e2e.faults.autoscaled_service import JOB_IMAGES

    result = run_script("tests.e2e.faults.autoscaled_service", s3_endpoint, str(tmp_path))
    assert "error" not in result, result
    timeline, job = result["timeline"], result["job"]
    assert (result["before"]["gpu_nodes"], result["before"]["namers"]) == (0, 0), timeline
    assert "error" not in job, job["error"]
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", JOB_IMAGES, 0), job
    assert job["named_as_drawn"] == [True] * JOB_IMAGES
    during = [entry for entry in timeline if entry["phase"] in ("job", "job over")]
    assert any(entry["namers"] >= 1 and entry["gpu_nodes"] >= 1 for entry in during), timeline
    assert (timeline[-1]["phase"], timeline[-1]["gpu_nodes"], timeline[-1]["namers"]) == ("idle", 0, 0), timeline
