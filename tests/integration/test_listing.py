"""Listing: streamed page by page, sharded by top-level folder, filtered, identical for local and S3."""

from __future__ import annotations

import uuid

from renamer_ray.io.storage import StorageConfig, open_location
from renamer_ray.pipeline.listing import ROWS_PER_BLOCK, read_shard, shards
from renamer_ray.pipeline.rows import Wishes

KEYS = ["a.jpg", "b.txt", "z.png", "2023/x.jpg", "2024/b.jpg", "2024/a.jpg", "2024/deep/c.heic",
        "2024/thumbs/t.jpg", "notes/readme.md"]


def listed(root, include=(), exclude=()):
    blocks = [b for shard in shards(root) for b in read_shard(root, shard, include, exclude, Wishes("out"))]
    return [row for block in blocks for row in block.to_pylist()]


def make_local(tmp_path):
    for key in KEYS:
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(b"x")
    return open_location(str(tmp_path))


def make_s3(s3, endpoint, keys=KEYS):
    bucket = f"list-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for key in keys:
        s3.put_object(Bucket=bucket, Key=f"in/{key}", Body=b"x")
    s3.put_object(Bucket=bucket, Key="in-other/not-mine.jpg", Body=b"x")  # same string prefix, other folder
    return open_location(f"s3://{bucket}/in", StorageConfig("us-east-1", endpoint))


def test_local_and_s3_list_the_same(tmp_path, s3, s3_endpoint):
    local, remote = listed(make_local(tmp_path)), listed(make_s3(s3, s3_endpoint))
    strip = [{k: r[k] for k in ("relative", "index", "skipped")} for r in local]
    assert strip == [{k: r[k] for k in ("relative", "index", "skipped")} for r in remote]
    assert [r["relative"] for r in local] == [
        "a.jpg", "b.txt", "z.png", "2023/x.jpg", "2024/a.jpg", "2024/b.jpg", "2024/deep/c.heic",
        "2024/thumbs/t.jpg", "notes/readme.md"]
    skipped = [r["relative"] for r in local if r["skipped"]]
    assert skipped == ["b.txt", "notes/readme.md"]
    index = {r["relative"]: r["index"] for r in local if not r["skipped"]}
    assert index == {"a.jpg": 1, "z.png": 2, "2023/x.jpg": 1, "2024/a.jpg": 1, "2024/b.jpg": 2,
                     "2024/deep/c.heic": 1, "2024/thumbs/t.jpg": 1}, "{index} counts within each folder"
    assert all(r["source"].startswith("s3://") for r in remote)


def test_include_and_exclude_globs(tmp_path):
    root = make_local(tmp_path)
    rows = listed(root, include=("2024/*",), exclude=("*/thumbs/*",))
    assert [r["relative"] for r in rows] == ["2024/a.jpg", "2024/b.jpg", "2024/deep/c.heic"]


def test_big_prefix_streams_in_blocks(s3, s3_endpoint):
    keys = [f"batch/{i:05d}.jpg" for i in range(2 * ROWS_PER_BLOCK + 345)]
    root = make_s3(s3, s3_endpoint, keys)
    assert shards(root) == ["", "batch/"], "the driver only sees top-level folders"
    blocks = list(read_shard(root, "batch/", (), (), Wishes("out")))
    assert [b.num_rows for b in blocks] == [ROWS_PER_BLOCK, ROWS_PER_BLOCK, 345]
    assert blocks[-1].to_pylist()[-1]["index"] == len(keys)
