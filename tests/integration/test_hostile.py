"""The hostile-input corpus (tests/hostile.py: 22 kinds, 29 files) through the folder pipeline and
the upload check: each file gets a name, or fails alone with a sentence, or is set aside at upload
(skipped among images, refused alone); the ordinary photo beside them is named exactly as when it is
alone."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from renamer_ray.config import load_settings
from renamer_ray.naming import sanitize_stem
from renamer_ray.pipeline.run import RunOptions, run
from tests.e2e.faults.harness import add_row, tally
from tests.support.hostile import corpus

SETTINGS = dict(model_id="toy-shapes", batch_size=4)


@pytest.fixture(scope="module")
def items():
    return corpus()


def test_every_hostile_file_fails_alone_or_is_named_and_harms_nothing_else(ray_local, tmp_path, items):
    src, alone = tmp_path / "src", tmp_path / "alone"
    src.mkdir()
    alone.mkdir()
    files = {}
    for number, item in enumerate(i for i in items if not i.api_only):
        path = src / f"{number:02d}-{item.name}"
        path.write_bytes(item.data)
        files[path.name] = item
    control = next(name for name, item in files.items() if item.kind.startswith("control"))
    (alone / control).write_bytes(files[control].data)
    settings = load_settings(**SETTINGS)
    summary = run(RunOptions(source=str(src), target=str(tmp_path / "out")), settings)
    reference = run(RunOptions(source=str(alone), target=str(tmp_path / "out-alone")), settings)

    by_name = {r.source.rsplit("/", 1)[1]: r for r in summary.records}
    for name, item in files.items():
        if item.name.endswith(".svg"):  # not an image by extension: skipped and counted
            assert name not in by_name
            continue
        record = by_name[name]
        if item.expect == "name":
            assert record.status == "ok", (item.kind, record.error)
            stem = record.name.rsplit(".", 1)[0]
            assert sanitize_stem(stem) == stem.split("-0")[0] or stem == sanitize_stem(stem), (item.kind, record.name)
        else:
            assert record.status == "error" and len(record.error) > 15, (item.kind, record)
    assert summary.skipped == 1
    assert by_name[control].name == reference.records[0].name  # the neighbours changed nothing
    namable = [item.data for item in files.values() if item.expect == "name"]
    outputs = [path.read_bytes() for path in (tmp_path / "out").iterdir() if path.is_file() and path.suffix != ".jsonl"]
    lost, duplicated = tally(namable, outputs)
    add_row(f"poison images: the hostile corpus in one run ({len(files)} files, {summary.failed} of them unreadable)",
            runs=1, lost=lost, duplicated=duplicated, recover_s=None,
            outcome=f"{summary.ok} renamed, {summary.failed} failed alone with a reason, 1 skipped; the control as alone")
    assert (lost, duplicated) == (0, 0)


def test_the_api_sets_aside_at_upload_only_what_is_not_an_image(s3_endpoint, items):
    """Alone, a file that is not an image is refused (415); among images it is skipped and listed in
    the job with the sniffer's words, and the images go on; ``strict`` refuses the mixed upload."""
    import uuid

    from renamer_ray.images import NotAnImage, sniff_format
    from renamer_ray.service.api import create_app
    from renamer_ray.service.local.aws import provision

    def sniffed(data: bytes) -> str:
        with pytest.raises(NotAnImage) as refused:
            sniff_format(data)
        return str(refused.value)

    tag = uuid.uuid4().hex[:6]
    settings = provision(load_settings(aws_endpoint_url=s3_endpoint, s3_in_bucket=f"hi-in-{tag}",
                                       s3_out_bucket=f"hi-out-{tag}", max_jobs_in_flight=1000),
                         queue_name=f"hi-jobs-{tag}")
    with TestClient(create_app(settings)) as client:
        for item in items:
            answer = client.post("/v1/jobs/rename", files=[("files", (item.name, item.data))])
            if item.upload_refused:
                assert answer.status_code == 415 and answer.json()["detail"], (item.kind, answer.text)
            else:
                assert answer.status_code == 200, (item.kind, answer.text)
                job = client.get(f"/v1/jobs/{answer.json()['job_id']}").json()
                original = job["files"][0]["original"]
                assert "\x00" not in original and "\u202e" not in original and "\x1b" not in original
                assert len(original) <= 255
        everything = [("files", (item.name, item.data)) for item in items]
        mixed = client.post("/v1/jobs/rename", files=everything)
        assert mixed.status_code == 200, mixed.text
        job = client.get(f"/v1/jobs/{mixed.json()['job_id']}").json()
        refused = [item for item in items if item.upload_refused]
        assert job["skipped"] == mixed.json()["skipped"] == [
            {"original": item.name, "reason": sniffed(item.data)} for item in refused]
        assert job["count"] == len(job["files"]) == len(items) - len(refused)
        strict = client.post("/v1/jobs/rename", files=everything, data={"strict": "true"})
        assert strict.status_code == 415 and refused[0].name in strict.json()["detail"], strict.text
