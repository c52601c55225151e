"""`rename --in-place` and `undo`, on local files and on the moto S3 server, including crashes at
every kind of point: the tree always holds every file, under its old or its new name, and running
the same command again finishes the job."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from renamer_ray.cli import SAMPLES, main
from renamer_ray.config import load_settings
from renamer_ray.workflow.inplace import move_as_planned, undo
from renamer_ray.io.storage import local as local_storage
from renamer_ray.records.manifest import parse_lines
from renamer_ray.pipeline.run import RunOptions, run


@pytest.fixture(scope="module")
def settings():
    return load_settings(model_id="toy-shapes", batch_size=4)


def rename_in_place(source: str, settings):
    """`rename --in-place`: the run writes the plan (the undo record), then the files move as planned."""
    return move_as_planned(run(RunOptions(source=source, target="", in_place=True), settings), settings)


def tree(root: Path) -> dict[str, str]:
    """relative path → sha256 of every file, the run's own folder left out."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".renamer-ray" not in p.parts}



def test_in_place_renames_where_the_files_are_and_undo_gives_every_name_back(ray_local, library, settings, capsys):
    original = tree(library)
    assert main(["rename", str(library), "--in-place", "--model", "toy-shapes"]) == 0
    assert "renamer-ray undo" in capsys.readouterr().out
    manifest = library / ".renamer-ray" / "manifest.jsonl"
    records = {r.relative: r for r in parse_lines(manifest.read_text())}
    renamed = tree(library)
    assert renamed["holiday/blue-square.webp"] == original["holiday/beach-day.webp"], "folders are kept"
    assert renamed["yellow-circle.jpg"] == original["IMG_0001.JPG"]
    assert sorted(renamed.values()) == sorted(original.values()), "every file is there once, bytes untouched"
    assert "notes.txt" in renamed, "other files keep their names"
    assert all(r.in_place and r.output for r in records.values() if r.status == "ok")

    again = rename_in_place(str(library), settings)
    assert again.kept == 10 and tree(library) == renamed, "a re-run renames nothing again"
    assert {r.relative: r for r in parse_lines(manifest.read_text())} == records, "the undo record is kept whole"

    summary = undo(str(manifest), settings)
    assert (summary.restored, summary.refused) == (10, [])
    assert tree(library) == original
    assert not manifest.exists() and list((library / ".renamer-ray").glob("manifest.undone-*.jsonl"))


def test_undo_leaves_files_changed_since_and_says_which(ray_local, library, settings, capsys):
    rename_in_place(str(library), settings)
    manifest = library / ".renamer-ray" / "manifest.jsonl"
    (library / "red-square.tiff").write_bytes(b"edited since")
    assert main(["undo", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "red-square.tiff: changed since it was renamed" in out and "9 given their old names back" in out
    assert (library / "red-square.tiff").read_bytes() == b"edited since" and not (library / "scan_0042.tiff").exists()
    assert (library / "IMG_0001.JPG").is_file() and manifest.exists(), "the record stays while a file is left"


def test_undo_refuses_a_copy_runs_manifest(ray_local, library, settings, tmp_path, capsys):
    run(RunOptions(source=str(library), target=str(tmp_path / "named")), settings)
    assert main(["undo", str(tmp_path / "named" / "manifest.jsonl")]) == 2
    assert "manifest of a copy run" in capsys.readouterr().err


class Crash(BaseException):
    """The process dies here (not an Exception: nothing catches it on the way out)."""


@pytest.mark.parametrize("after", [0, 3, 7])
def test_a_crash_at_any_point_loses_nothing_and_a_rerun_finishes(ray_local, library, settings, monkeypatch, after):
    """Crash after ``after`` renames, between the new name's link and the old name's removal; then
    run again. Then undo, crashing the same way, and undo again."""
    original = tree(library)
    manifest = library / ".renamer-ray" / "manifest.jsonl"
    real_unlink, calls = local_storage.os.unlink, []

    def crashing_unlink(path, *args, **kwargs):
        if not str(path).endswith(".partial") and ".renamer-ray" not in str(path):
            calls.append(path)
            if len(calls) > after:
                raise Crash(path)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(local_storage.os, "unlink", crashing_unlink)
    with pytest.raises(Crash):
        rename_in_place(str(library), settings)
    # Every file is there: under its old name, its new one, or both (one file, two names).
    assert set(original.values()) <= set(tree(library).values())
    monkeypatch.setattr(local_storage.os, "unlink", real_unlink)
    rename_in_place(str(library), settings)
    planned = {r.relative: r.output for r in parse_lines(manifest.read_text()) if r.status == "ok"}
    assert tree(library) == {planned.get(relative, relative): digest for relative, digest in original.items()}

    calls.clear()
    monkeypatch.setattr(local_storage.os, "unlink", crashing_unlink)
    with pytest.raises(Crash):
        undo(str(manifest), settings)
    assert set(original.values()) <= set(tree(library).values())
    monkeypatch.setattr(local_storage.os, "unlink", real_unlink)
    undo(str(manifest), settings)
    assert tree(library) == original


def test_in_place_and_undo_on_s3(ray_local, s3, s3_endpoint):
    settings = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=s3_endpoint)
    bucket = f"lib-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    original = {}
    for path in sorted(SAMPLES.rglob("*")):
        if path.is_file():
            key = f"photos/{path.relative_to(SAMPLES).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            original[key] = path.read_bytes()

    def objects() -> dict[str, bytes]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="photos/")
        return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                for page in pages for o in page.get("Contents", []) if "/.renamer-ray/" not in o["Key"]}

    summary = rename_in_place(f"s3://{bucket}/photos", settings)
    assert summary.ok == 10 and summary.failed == 0
    renamed = objects()
    assert renamed["photos/holiday/blue-square.webp"] == original["photos/holiday/beach-day.webp"]
    assert sorted(renamed.values()) == sorted(original.values())
    again = rename_in_place(f"s3://{bucket}/photos", settings)
    assert again.kept == 10 and objects() == renamed
    result = undo(f"s3://{bucket}/photos/.renamer-ray/manifest.jsonl", settings)
    assert (result.restored, result.refused) == (10, []) and objects() == original
