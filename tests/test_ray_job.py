"""`ray job submit -- renamer-ray rename s3://… s3://…` against a running Ray head (`ray start --head`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from renamer_ray.cli import SAMPLES

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports (all held open together while choosing, so none is handed out twice)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A separate Ray head, as an operator starts one; stopped (all its processes) at the end."""
    dashboard, gcs, client, agent, agent_grpc, metrics, runtime_env = free_ports(7)
    log = tmp_path_factory.mktemp("ray-head") / "ray-start.log"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus=2", f"--port={gcs}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
         f"--ray-client-server-port={client}", "--disable-usage-stats",
         # Its own agent ports: another Ray on this machine (the suite's local one) holds the defaults.
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    # Ready when a trivial job is accepted: the dashboard answers before its job agent does
    # ("No available agent to submit job"); each attempt blocks on the CLI's own connection retries.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if subprocess.run([str(BIN / "ray"), "job", "submit", "--no-wait", "--address", address, "--",
                           "python", "-c", "pass"], env=env, capture_output=True, timeout=60).returncode == 0:
            break
        if head.poll() is not None:
            pytest.fail("ray start --head exited:\n" + log.read_text()[-3000:])
    else:
        pytest.fail("the Ray dashboard's job API never answered")
    yield address, env
    os.killpg(head.pid, signal.SIGINT)
    head.wait(timeout=60)


def test_rename_as_a_ray_job(ray_head, s3, s3_endpoint):
    address, env = ray_head
    src, dst = f"job-in-{uuid.uuid4().hex[:6]}", f"job-out-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=src)
    s3.create_bucket(Bucket=dst)
    for path in sorted(SAMPLES.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=src, Key=f"camera/{path.relative_to(SAMPLES).as_posix()}", Body=path.read_bytes())
    runtime_env = {"env_vars": {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                                "AWS_SECRET_ACCESS_KEY": "testing", "MODEL_ID": "toy-shapes"}}
    result = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(REPO),
         "--runtime-env-json", json.dumps(runtime_env), "--",
         "renamer-ray", "rename", f"s3://{src}/camera", f"s3://{dst}/renamed"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout.lower()
    assert "10 renamed, 0 failed, 1 non-image files skipped" in result.stdout
    manifest = s3.get_object(Bucket=dst, Key="renamed/manifest.jsonl")["Body"].read().decode()
    assert len(manifest.splitlines()) == 10
    listed = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                            capture_output=True, text=True, timeout=60)
    assert "renamer-ray rename" in listed.stdout, "the job is visible to the dashboard's job API"
