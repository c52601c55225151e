"""The same pipeline over S3 prefixes (moto's server on 127.0.0.1, real boto3/pyarrow, real Ray)."""

from __future__ import annotations

import json
import posixpath
import os
import uuid

import pytest

from renamer_ray.cli import SAMPLES
from renamer_ray.config import load_settings
from renamer_ray.io.storage import FINGERPRINT_KEY, StorageConfig
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import SAMPLES_EXPECTED as EXPECTED



@pytest.fixture
def settings(s3_endpoint):
    return load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=s3_endpoint)


@pytest.fixture
def buckets(s3):
    names = f"in-{uuid.uuid4().hex[:8]}", f"out-{uuid.uuid4().hex[:8]}"
    for name in names:
        s3.create_bucket(Bucket=name)
    return names


def upload_samples(s3, bucket: str, prefix: str) -> None:
    for path in sorted(SAMPLES.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(SAMPLES).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata={"owner": "ana"})
    s3.put_object(Bucket=bucket, Key=f"{prefix}/deep/er/bad.jpg", Body=os.urandom(2048))


def keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def test_s3_prefix_to_s3_prefix(ray_local, s3, buckets, settings):
    src, dst = buckets
    upload_samples(s3, src, "photos/2024")
    summary = run(RunOptions(source=f"s3://{src}/photos", target=f"s3://{dst}/renamed"), settings)

    assert summary.skipped == 1 and summary.ok == len(EXPECTED) and summary.failed == 1
    rows = [json.loads(line) for line in
            s3.get_object(Bucket=dst, Key="renamed/manifest.jsonl")["Body"].read().decode().splitlines()]
    by_source = {r["source"].removeprefix(f"s3://{src}/photos/2024/"): r for r in rows}
    assert "not an image" in by_source["deep/er/bad.jpg"]["error"]
    for relative, label in EXPECTED.items():
        row = by_source[relative]
        assert row["name"].startswith(label) and row["target"] == f"s3://{dst}/renamed/{row['output']}"
        assert row["output"] == posixpath.join("2024", posixpath.dirname(relative), row["name"]), "folders are kept"
    assert sorted(by_source[r]["name"] for r in ("IMG_0001.JPG", "Screenshot 2024-05-01 at 10.22.33.png",
                                                 "wallpaper.png")) == [
        "yellow-circle-001.png", "yellow-circle-002.png", "yellow-circle.jpg"]

    outputs = keys(s3, dst, "renamed/")
    assert len(outputs) == len(EXPECTED) + 1, "one object per image plus the manifest, no folder markers"
    renamed_png = by_source["photo (1).jpg"]
    head = s3.head_object(Bucket=dst, Key=f"renamed/{renamed_png['output']}")
    assert head["ContentType"] == "image/png", "content type from the real format"
    assert head["Metadata"]["owner"] == "ana", "source metadata is kept"
    assert head["Metadata"][FINGERPRINT_KEY].startswith(f"{src}/photos/2024/photo (1).jpg@")
    original = s3.get_object(Bucket=src, Key="photos/2024/photo (1).jpg")["Body"].read()
    assert s3.get_object(Bucket=dst, Key=f"renamed/{renamed_png['output']}")["Body"].read() == original

    # Running again changes nothing and copies nothing twice.
    again = run(RunOptions(source=f"s3://{src}/photos", target=f"s3://{dst}/renamed"), settings)
    assert again.ok == again.kept == len(EXPECTED) and keys(s3, dst, "renamed/") == outputs


def test_never_overwrites_an_object_it_did_not_create(ray_local, s3, buckets, settings, tmp_path):
    src, dst = buckets
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes((SAMPLES / "wallpaper.png").read_bytes())  # a yellow circle
    s3.put_object(Bucket=dst, Key="out/yellow-circle.png", Body=b"someone else's file")
    summary = run(RunOptions(source=str(tmp_path / "in"), target=f"s3://{dst}/out"), settings)
    # The name is seen to be taken before anything is copied: the image takes the next free one. (An
    # object that appears between that look and the copy is not overwritten either: the copy is
    # create-only, tests/integration/test_storage.py.)
    assert summary.ok == 1 and summary.records[0].output == "yellow-circle-001.png", summary.records
    assert s3.get_object(Bucket=dst, Key="out/yellow-circle.png")["Body"].read() == b"someone else's file"
    assert s3.get_object(Bucket=dst, Key="out/yellow-circle-001.png")["Body"].read() == \
        (SAMPLES / "wallpaper.png").read_bytes()


def test_resumed_s3_run_keeps_the_names_an_interrupted_attempt_gave(ray_local, s3, buckets, settings):
    """An attempt that claimed a name and died keeps that name on re-run, whatever the model says now."""
    from renamer_ray.io.storage import open_location
    from renamer_ray.pipeline.claims import claim

    src, dst = buckets
    upload_samples(s3, src, "in")
    target = open_location(f"s3://{dst}/out", StorageConfig.of(settings))
    # What a killed attempt leaves behind: a claim (and maybe no copy yet) for one file.
    claim(target, "IMG_0001.JPG", "kept-from-before.jpg", "JPEG", "kept from before")
    summary = run(RunOptions(source=f"s3://{src}/in", target=f"s3://{dst}/out"), settings)

    assert summary.resumed == 1 and summary.ok == len(EXPECTED)
    assert "out/kept-from-before.jpg" in keys(s3, dst, "out/")
    assert not keys(s3, dst, "out/_manifest/")
    names = {r.source.removeprefix(f"s3://{src}/in/"): r.name for r in summary.records if r.status == "ok"}
    assert names.pop("IMG_0001.JPG") == "kept-from-before.jpg"
    for relative, name in names.items():  # the rest named by the model as usual
        assert name.startswith(EXPECTED[relative]), (relative, name)


def test_s3_answering_slow_down_loses_nothing(ray_local, s3, buckets, s3_endpoint):
    """Every 5th request to S3 answered 503 SlowDown (through a proxy, real HTTP): the retries in
    boto3 ("standard" mode) and pyarrow absorb it, and the result equals a run without faults."""
    from tests.support.faulty_proxy import FaultyProxy

    src, dst = buckets
    upload_samples(s3, src, "in")
    proxy = FaultyProxy(s3_endpoint, every=5)
    try:
        slow = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=proxy.url)
        summary = run(RunOptions(source=f"s3://{src}/in", target=f"s3://{dst}/slow"), slow)
    finally:
        proxy.close()
    assert proxy.refused >= 10, f"only {proxy.refused} of {proxy.requests} requests were refused"
    clean = run(RunOptions(source=f"s3://{src}/in", target=f"s3://{dst}/clean"),
                load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=s3_endpoint))
    assert summary.ok == clean.ok == len(EXPECTED) and summary.failed == clean.failed == 1
    assert [k.removeprefix("slow/") for k in keys(s3, dst, "slow/")] == \
        [k.removeprefix("clean/") for k in keys(s3, dst, "clean/")]
    manifest = s3.get_object(Bucket=dst, Key="slow/manifest.jsonl")["Body"].read().decode()
    assert manifest.replace("/slow/", "/X/") == \
        s3.get_object(Bucket=dst, Key="clean/manifest.jsonl")["Body"].read().decode().replace("/clean/", "/X/")


def test_a_burst_of_slow_down_on_one_object_is_retried_like_every_other_request(s3, buckets, s3_endpoint):
    """Four 503s in a row on one object's GET: pyarrow's client gives up at the first (it reports
    INTERNAL_FAILURE), so reads retry transient errors themselves, with backoff, up to 8 attempts."""
    from tests.support.faulty_proxy import FaultyProxy
    from renamer_ray.io.storage import open_location, read_bytes

    src, _ = buckets
    s3.put_object(Bucket=src, Key="burst/photo.jpg", Body=b"bytes of a photo")
    proxy = FaultyProxy(s3_endpoint, first_gets=4)
    try:
        data = read_bytes(open_location(f"s3://{src}/burst/photo.jpg", StorageConfig("us-east-1", proxy.url)))
    finally:
        proxy.close()
    assert data == b"bytes of a photo" and proxy.refused == 4


def test_reading_an_object_is_one_request_and_a_refused_read_says_why(s3, buckets, s3_endpoint):
    """A whole-object read is one GET, with no HEAD before it (a request per file saved); a missing
    object reads as None or FileNotFoundError; a read the store refuses for good is an OSError that
    names the object and the reason."""
    from tests.support.faulty_proxy import FaultyProxy
    from renamer_ray.io.storage import open_location, read_bytes, read_text_if_exists

    src, _ = buckets
    s3.put_object(Bucket=src, Key="one/photo.jpg", Body=b"bytes of a photo")
    proxy = FaultyProxy(s3_endpoint)
    try:
        config = StorageConfig("us-east-1", proxy.url)
        assert read_bytes(open_location(f"s3://{src}/one/photo.jpg", config)) == b"bytes of a photo"
        assert proxy.requests == 1
        assert read_text_if_exists(open_location(f"s3://{src}/one/claim.json", config)) is None
        with pytest.raises(FileNotFoundError):
            read_bytes(open_location(f"s3://{src}/one/gone.jpg", config))
        assert proxy.requests == 3
    finally:
        proxy.close()
    with pytest.raises(OSError, match="the bucket does not exist") as refused:
        read_bytes(open_location("s3://no-such-bucket-here/photo.jpg", StorageConfig("us-east-1", s3_endpoint)))
    assert "s3://no-such-bucket-here/photo.jpg" in str(refused.value)


def test_a_multipart_copy_is_create_only_like_a_single_copy(s3, buckets, monkeypatch):
    """Objects over 5 GB are copied in parts. The copy of an 11 MiB source in 5 MiB parts is
    byte-identical; a target that appears while the parts are being copied is never overwritten,
    and the abandoned upload leaves no parts behind."""
    from renamer_ray.io import storage
    from renamer_ray.io.storage import s3 as s3_backend

    src, dst = buckets
    body = os.urandom(11 * 1024 * 1024)
    s3.put_object(Bucket=src, Key="big/scan.tiff", Body=body, ContentType="image/tiff")
    monkeypatch.setattr(s3_backend, "SINGLE_COPY_LIMIT", 1024)
    monkeypatch.setattr(s3_backend, "MULTIPART_COPY_PART", 5 * 1024 * 1024)
    config = storage.StorageConfig(region="us-east-1", endpoint_url=s3.meta.endpoint_url)
    location = lambda bucket, key: storage.open_location(f"s3://{bucket}/{key}", config)  # noqa: E731

    storage.copy(location(src, "big/scan.tiff"), location(dst, "scan-copy.tiff"))
    copied = s3.get_object(Bucket=dst, Key="scan-copy.tiff")
    assert copied["Body"].read() == body and copied["ContentType"] == "image/tiff"
    assert copied["Metadata"][FINGERPRINT_KEY].startswith(f"{src}/big/scan.tiff@")

    # Someone else's object appears at the target after the look, before the upload completes.
    head = s3.head_object(Bucket=src, Key="big/scan.tiff")
    s3.put_object(Bucket=dst, Key="taken.tiff", Body=b"someone else's")
    with pytest.raises(storage.ClientError, match="PreconditionFailed"):
        storage.multipart_copy(s3, {"Bucket": src, "Key": "big/scan.tiff", "ETag": head["ETag"]},
                               len(body), dst, "taken.tiff", {})
    assert s3.get_object(Bucket=dst, Key="taken.tiff")["Body"].read() == b"someone else's"
    assert not s3.list_multipart_uploads(Bucket=dst).get("Uploads")


def test_an_outage_longer_than_the_clients_retries_is_retried_within_the_budget(s3, buckets, s3_endpoint):
    """The endpoint refuses connections for 3 s (longer than a client's quick retries): a read
    retries until it is back; with no budget left it raises the transient error at once."""
    import threading

    from tests.support.cut_proxy import CutProxy
    from renamer_ray.io.storage import is_transient, open_location, read_bytes, retrying

    src, _ = buckets
    s3.put_object(Bucket=src, Key="outage/photo.jpg", Body=b"bytes of a photo")
    proxy = CutProxy(s3_endpoint)
    location = open_location(f"s3://{src}/outage/photo.jpg", StorageConfig("us-east-1", proxy.url))
    try:
        proxy.cut()
        with pytest.raises(OSError) as refused:
            retrying(lambda: location.filesystem.open_input_stream(location.path).read(), budget=0)
        assert is_transient(refused.value)
        back = threading.Timer(3, proxy.restore)  # the outage's length: the fault, not a synchronisation
        back.start()
        assert read_bytes(location) == b"bytes of a photo"
        back.join()
    finally:
        proxy.close()
