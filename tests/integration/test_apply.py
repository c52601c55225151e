"""`renamer-ray apply` on S3: it tells each source's format from its first bytes, not by downloading
the file (a plan over large scans must not read them all), and still refuses a wrong extension."""

from __future__ import annotations

import io
import json
import os
import uuid

import pytest
from PIL import Image

from renamer_ray.workflow.apply import HEAD_BYTES, PlanError, apply_plan
from renamer_ray.config import load_settings
from tests.support.faulty_proxy import FaultyProxy

BIG = 24 * 1024 * 1024


def png_scan() -> bytes:
    """A PNG with 24 MiB of ancillary data after its header (as a scan with a big embedded profile)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 70, 220)).save(buf, format="PNG")
    return buf.getvalue() + os.urandom(BIG)


@pytest.fixture
def plan(s3, tmp_path):
    bucket = f"apply-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/scan.png", Body=png_scan())
    record = {"source": f"s3://{bucket}/in/scan.png", "target": None, "name": "blue-scan.png", "status": "ok",
              "raw": "blue scan"}
    path = tmp_path / "plan.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return bucket, path, record


def test_apply_reads_only_the_head_of_each_source(s3, s3_endpoint, plan):
    bucket, path, _ = plan
    proxy = FaultyProxy(s3_endpoint)
    try:
        summary = apply_plan(str(path), f"s3://{bucket}/out", load_settings(aws_endpoint_url=proxy.url))
    finally:
        proxy.close()
    assert summary.ok == 1 and summary.failed == 0
    assert s3.head_object(Bucket=bucket, Key="out/blue-scan.png")["ContentLength"] == len(png_scan())
    assert proxy.bytes_served < 4 * HEAD_BYTES < BIG, f"{proxy.bytes_served:,} bytes read for one plan"


def test_apply_still_checks_the_real_format_from_the_head(s3, s3_endpoint, plan, tmp_path):
    bucket, _, record = plan
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({**record, "name": "blue-scan.jpg"}) + "\n")
    with pytest.raises(PlanError, match="real format"):
        apply_plan(str(wrong), f"s3://{bucket}/out", load_settings(aws_endpoint_url=s3_endpoint))
