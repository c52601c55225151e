"""Re-runs into a DST that has a manifest: names already given are kept, only new and changed files
are named, and nothing already in DST is ever renamed, duplicated or overwritten."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from renamer_ray.cli import main
from renamer_ray.config import load_settings
from renamer_ray.io import storage
from renamer_ray.records.manifest import parse_lines
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.output import said


@pytest.fixture(scope="module")
def settings():
    return load_settings(model_id="toy-shapes", batch_size=4)


def records(path: Path) -> dict[str, dict]:
    return {r.relative: r.model_dump(exclude_none=True) for r in parse_lines(path.read_text())}


def outputs(dst: Path) -> set[str]:
    return {p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file() and p.name != "manifest.jsonl"}



def test_a_rerun_names_only_new_and_changed_files(ray_local, library, settings, tmp_path):
    dst = tmp_path / "named"
    first = run(RunOptions(source=str(library), target=str(dst)), settings)
    before = records(dst / "manifest.jsonl")
    assert first.ok == 10 and first.kept == 0
    assert before["IMG_0001.JPG"]["output"] == "yellow-circle.jpg"
    assert before["wallpaper.png"]["output"] == "yellow-circle-002.png"

    # A month later: a new photo that sorts first and gets the same name; one photo edited; one deleted.
    (library / "0-new.png").write_bytes((library / "wallpaper.png").read_bytes())
    (library / "photo (1).jpg").write_bytes((library / "IMG_0001.JPG").read_bytes())
    (library / "scan_0042.tiff").unlink()
    # Unchanged by size and modification time: not read again (these bytes would not even decode).
    untouched = library / "IMG_0002.JPG"
    stat = untouched.stat()
    untouched.write_bytes(os.urandom(stat.st_size))
    os.utime(untouched, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    again = run(RunOptions(source=str(library), target=str(dst)), settings)
    after = records(dst / "manifest.jsonl")
    assert again.kept == 8 and again.ok == 10 and again.failed == 0
    for relative in ("IMG_0001.JPG", "IMG_0002.JPG", "Screenshot 2024-05-01 at 10.22.33.png", "wallpaper.png",
                     "holiday/IMG_0107.heic", "holiday/beach-day.webp"):
        assert after[relative]["output"] == before[relative]["output"], relative
    # The new file gets the next free suffix instead of shifting everyone's; the edited one is named
    # afresh, and its earlier copy stays (its name too: nothing in DST is overwritten).
    assert after["0-new.png"]["output"] == "yellow-circle-003.png"
    assert after["photo (1).jpg"]["output"] == "yellow-circle-004.jpg"
    assert (dst / "blue-square-001.png").is_file()
    # The deleted photo's record and copy are kept.
    assert after["scan_0042.tiff"] == before["scan_0042.tiff"] and (dst / "red-square.tiff").is_file()
    assert outputs(dst) == {r["output"] for r in before.values() if r["status"] == "ok"} | {
        "yellow-circle-003.png", "yellow-circle-004.jpg"}
    assert (dst / "yellow-circle-003.png").read_bytes() == (library / "0-new.png").read_bytes()

    third = run(RunOptions(source=str(library), target=str(dst)), settings)
    assert third.kept == 10 and records(dst / "manifest.jsonl") == after, "a re-run of the same files changes nothing"


def test_redo_names_everything_afresh_into_a_new_dst(ray_local, library, settings, tmp_path, capsys):
    dst = tmp_path / "named"
    run(RunOptions(source=str(library), target=str(dst), template="{original}"), settings)
    assert main(["rename", str(library), str(dst), "--redo"]) == 2
    assert "--redo names everything afresh into a new DST" in capsys.readouterr().err
    redone = run(RunOptions(source=str(library), target=str(tmp_path / "fresh"), redo=True), settings)
    assert redone.kept == 0 and records(tmp_path / "fresh" / "manifest.jsonl")["IMG_0001.JPG"]["output"] == \
        "yellow-circle.jpg"


def test_the_manifest_can_live_anywhere_and_still_makes_reruns_incremental(ray_local, library, settings, tmp_path):
    dst, manifest = tmp_path / "named", tmp_path / "records" / "library.jsonl"
    manifest.parent.mkdir()
    run(RunOptions(source=str(library), target=str(dst), manifest=str(manifest)), settings)
    assert manifest.is_file() and not (dst / "manifest.jsonl").exists()
    again = run(RunOptions(source=str(library), target=str(dst), manifest=str(manifest)), settings)
    assert again.kept == 10 and again.ok == 10


def test_a_damaged_manifest_in_dst_is_one_line_before_anything_starts(library, tmp_path, capsys):
    dst = tmp_path / "named"
    dst.mkdir()
    (dst / "manifest.jsonl").write_text('{"source": "a.jpg", "status": "ok"}\n{half a line\n')
    assert main(["rename", str(library), str(dst), "--model", "toy-shapes"]) == 2
    err = said(capsys.readouterr().err)
    assert len(err) == 1 and "is not a manifest this program can read: line 2 is not JSON" in err[0]
    assert sorted(p.name for p in dst.iterdir()) == ["manifest.jsonl"], "nothing else was created"


@pytest.mark.parametrize("where", ["local", "s3-flat"])
def test_a_name_held_in_dst_in_another_format_is_not_given_again(ray_local, library, s3, s3_endpoint, tmp_path, where):
    """Names are unique without their extension. A re-run after a source is gone: its output
    (blue-triangle.jpg) stays in DST, and a new photo of the same subject in another format is
    named around it (blue-triangle-001.png), not blue-triangle.png beside it. Also on S3 into one
    flat prefix."""
    from PIL import Image

    settings = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=s3_endpoint)
    if where == "local":
        dst, flat = str(tmp_path / "named"), False
    else:
        bucket = f"named-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        dst, flat = f"s3://{bucket}/photos", True
    first = run(RunOptions(source=str(library), target=dst, flat=flat), settings)
    assert first.ok == 10
    Image.open(library / "IMG_0002.JPG").save(library / "new.png")  # the same blue triangle, as a PNG
    (library / "IMG_0002.JPG").unlink()
    again = run(RunOptions(source=str(library), target=dst, flat=flat), settings)
    assert again.ok == 10 and again.failed == 0
    config = storage.StorageConfig.of(settings)
    manifest = storage.read_text_if_exists(storage.open_location(f"{dst}/manifest.jsonl", config))
    outputs = {r.relative: r.output for r in parse_lines(manifest) if r.status == "ok"}
    assert outputs["IMG_0002.JPG"] == "blue-triangle.jpg", "the gone source's record and output are kept"
    assert outputs["new.png"] == "blue-triangle-001.png"
