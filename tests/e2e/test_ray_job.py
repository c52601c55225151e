"""`ray job submit -- renamer-ray rename s3://… s3://…` against a running Ray head (`ray start --head`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from renamer_ray.cli import SAMPLES
from renamer_ray.service.local.ports import free_ports
from renamer_ray.service.local.ray_head import RayHead
from tests.support.stack import own_ray_tmpdir

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A separate Ray head, as an operator starts one (`ray start --head`); stopped at the end."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled",
           "RAY_TMPDIR": own_ray_tmpdir()}
    head = RayHead(num_cpus=2, env=env, log_path=tmp_path_factory.mktemp("ray-head") / "ray-start.log",
                   dashboard_port=free_ports(1)[0])
    head.start()
    yield head.dashboard, env
    head.stop()


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
