"""Previews of a service job, end to end through the queue driver on real Ray (local) and moto's S3
server: every image that decodes, whatever its format, is linked from the job's record by a URL
that serves a small JPEG with a cache header; a file that does not decode has none; the previews
are not among the job's outputs."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import httpx
from PIL import Image

from renamer_ray.images import sniff_format
from renamer_ray.images.preview import PREVIEW_CACHE_CONTROL, PREVIEW_MAX_BYTES, PREVIEW_SIDE
from renamer_ray.naming import content_type_for, extension_for
from renamer_ray.service.driver import Driver
from renamer_ray.service.jobs import JobFile, JobRecord, new_job_id
from renamer_ray.service.views import job_view
from tests.integration.test_driver import TENANT, final, make_settings, serving
from tests.support.eventually import eventually

SAMPLES = Path(__file__).parents[2] / "renamer_ray" / "data" / "samples"
IMAGES = ["IMG_0003.HEIC", "scan_0042.tiff", "wallpaper.png", "IMG_0001.JPG", "holiday/beach-day.webp"]


def test_a_service_jobs_record_links_a_preview_of_each_image_that_decodes(ray_local, s3_endpoint):
    settings = make_settings(s3_endpoint)
    driver = Driver(settings, namer=None)  # a template without {subject}: no model needed to name them
    uploads = [(Path(name).name, (SAMPLES / name).read_bytes()) for name in IMAGES]
    whole = (SAMPLES / "IMG_0002.JPG").read_bytes()
    uploads.append(("half.jpg", whole[: len(whole) // 2]))
    record = JobRecord(job_id=new_job_id(), namespace=TENANT, count=len(uploads), template="photo-{index}")
    for number, (original, data) in enumerate(uploads, start=1):
        fmt = sniff_format(data)
        file = JobFile(original=original, key=f"{number:04d}.{extension_for(fmt)}", size=len(data))
        record.files.append(file)
        driver.store.put_input(record, file, io.BytesIO(data), content_type_for(fmt))
    driver.store.save(record)
    driver.queue.send(TENANT, record.job_id)
    with serving(driver):
        done = final(driver, record)
    assert done.status == "partial", done.error

    results = {r.original: r for r in job_view(driver.store, done).results}
    assert results["half.jpg"].status == "error" and results["half.jpg"].preview is None
    for name in IMAGES:
        result = results[Path(name).name]
        assert result.status == "ok" and result.preview.startswith("http"), result
        answer = httpx.get(result.preview)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert answer.headers["cache-control"] == PREVIEW_CACHE_CONTROL
        preview = Image.open(io.BytesIO(answer.content))
        preview.load()
        assert preview.format == "JPEG" and max(preview.size) <= PREVIEW_SIDE, name
        assert len(answer.content) <= PREVIEW_MAX_BYTES

    s3, prefix = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1"), done.output_prefix + "/"

    def outputs() -> list[str] | None:  # once the claims (under _manifest/, removed last) are gone
        keys = [o["Key"].removeprefix(prefix)
                for o in s3.list_objects_v2(Bucket=driver.store.out_bucket, Prefix=prefix).get("Contents", [])]
        return None if any(key.startswith("_manifest/") for key in keys) else keys

    ok = sorted(r.name for r in results.values() if r.status == "ok")
    assert sorted(eventually(outputs, "the job's claims are removed", timeout=30)) == ok
