"""Earlier state is data, not orders: a manifest or a claim planted in SRC, DST or an S3 prefix by
someone who can write there never makes a run or `undo` move, copy or name a file outside the tree
the run works on. Each planted record is ignored with one warning line (re-runs), or refused and
listed (undo); a sibling folder, another prefix and another bucket are byte-for-byte the same after."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import pytest

from renamer_ray.cli import SAMPLES, main
from renamer_ray.config import load_settings
from renamer_ray.workflow.inplace import move_as_planned, undo
from renamer_ray.io.storage import FINGERPRINT_KEY
from renamer_ray.records.manifest import parse_lines
from renamer_ray.pipeline.run import RunOptions, run
from renamer_ray.records.trust import name_problem, outside
from tests.support.hostile import checksum_listing, planted_record, s3_checksum_listing, write_jsonl


@pytest.fixture(scope="module")
def settings():
    return load_settings(model_id="toy-shapes", batch_size=4)


@pytest.fixture
def home(tmp_path) -> Path:
    """``home/share/photos`` (the bundled samples: SRC) beside ``home/outside`` (a key and a photo no
    run over SRC may touch): ``../../x`` from SRC lands in ``home``."""
    home = tmp_path / "home"
    shutil.copytree(SAMPLES, home / "share" / "photos")
    (home / "outside").mkdir()
    (home / "outside" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    (home / "outside" / "photo.jpg").write_bytes((SAMPLES / "IMG_0001.JPG").read_bytes())
    return home


def ignored(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "ignored the record of" in r.getMessage()]


def stat_fields(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime": stat.st_mtime}


# The rules themselves (pure) ---------------------------------------------------------------------

@pytest.mark.parametrize("uri, root, refused", [
    ("/h/photos/a.jpg", "/h/photos", None),
    ("/h/photos/trip/a.jpg", "/h/photos/", None),
    ("/h/photos-b/a.jpg", "/h/photos", "is not under"),
    ("/h/outside/id_rsa", "/h/photos", "is not under"),
    ("/h/photos/../outside/id_rsa", "/h/photos", "'..' segment"),
    ("photos/a.jpg", "/h/photos", "not an absolute path"),
    ("s3://b/photos/a.jpg", "/h/photos", "not a local path"),
    ("s3://b/photos/a.jpg", "s3://b/photos", None),
    ("s3://b/a.jpg", "s3://b", None),
    ("s3://other/photos/a.jpg", "s3://b/photos", "another bucket"),
    ("s3://b/private/a.jpg", "s3://b/photos", "is not under"),
    ("s3://b/photos-b/a.jpg", "s3://b/photos", "is not under"),
    ("s3://b/photos/../private/a.jpg", "s3://b/photos", "'..' segment"),
    ("/h/photos/a.jpg", "s3://b/photos", "is not on S3"),
])
def test_containment_by_the_letters(uri, root, refused):
    why = outside(uri, root)
    assert why is None if refused is None else refused in why


@pytest.mark.parametrize("name, fmt, refused", [
    ("yellow-circle-001.jpg", "JPEG", None),
    ("Red Circle 002.png", "PNG", None),
    ("redCircle.webp", "WEBP", None),
    ("../../x.jpg", "JPEG", "breaks the naming rules"),
    ("sub/x.jpg", "JPEG", "breaks the naming rules"),
    (".bashrc.jpg", "JPEG", "breaks the naming rules"),
    ("x.jpeg", "JPEG", None),
    ("x.sh", None, "image extension"),
    ("x.jpg", "EVIL", "not one this program writes"),
    ("", "JPEG", "no name"),
])
def test_a_pinned_name_must_be_one_the_rules_give(name, fmt, refused):
    why = name_problem(name, fmt)
    assert why is None if refused is None else refused in why


# Re-runs: a planted earlier manifest ------------------------------------------------------------

def test_a_manifest_planted_in_src_moves_nothing_from_outside(ray_local, home, caplog, capsys):
    """The report's attack, through the CLI: records whose source is outside SRC, a name with `../..`
    and a folder in SRC that is a link out are ignored, each with one warning line; the photos are
    renamed as usual, and undo gives them back."""
    src, out = home / "share" / "photos", home / "outside"
    os.symlink(out, src / "link")  # a folder in SRC that leads out
    manifest = src / ".renamer-ray" / "manifest.jsonl"
    planted = {
        str(out / "id_rsa"): planted_record(str(out / "id_rsa"), str(src / "stolen.txt"), format=None),
        # A name the rules could give: only the source being outside SRC stops this one.
        str(out / "photo.jpg"): planted_record(str(out / "photo.jpg"), str(src / "stolen.jpg"), **stat_fields(
            out / "photo.jpg")),
        # Inside SRC by its letters; the link leads out.
        str(src / "link" / "photo.jpg"): planted_record(str(src / "link" / "photo.jpg"), str(src / "borrowed.jpg")),
        # A real photo of SRC, unchanged since, pinned to a name that climbs out of SRC.
        str(src / "IMG_0002.JPG"): planted_record(str(src / "IMG_0002.JPG"), f"{src}/../../pwned.jpg",
                                                  relative="IMG_0002.JPG", output="../../pwned.jpg",
                                                  name="../../pwned.jpg", **stat_fields(src / "IMG_0002.JPG")),
    }
    write_jsonl(manifest, planted.values())
    original, before = checksum_listing(src, skip=src / ".renamer-ray"), checksum_listing(home, skip=src)

    with caplog.at_level(logging.WARNING):
        code = main(["rename", str(src), "--in-place", "--model", "toy-shapes"])

    assert checksum_listing(home, skip=src) == before, "nothing outside SRC changed"
    assert code == 0
    assert not {"stolen.txt", "stolen.jpg", "borrowed.jpg", "pwned.jpg"} & {p.name for p in home.rglob("*")}
    warnings = ignored(caplog)
    assert len(warnings) == len(planted), warnings
    for source in planted:
        assert sum(repr(source) in line for line in warnings) == 1, (source, warnings)
    assert any("is not under" in line for line in warnings if repr(str(out / "photo.jpg")) in line)
    assert any("symbolic link" in line for line in warnings if "link" in line)
    records = [r for r in parse_lines(manifest.read_text()) if r.status == "ok"]
    assert len(records) == 10 and all(r.source.startswith(f"{src}/") and r.target.startswith(f"{src}/")
                                      and r.root == str(src) for r in records), "no planted record is kept"
    assert {r.relative: r.output for r in records}["IMG_0002.JPG"] == "blue-triangle.jpg", "named as usual"
    assert main(["undo", str(manifest)]) == 0
    assert checksum_listing(src, skip=src / ".renamer-ray") == original and checksum_listing(home, skip=src) == before


def test_a_manifest_planted_in_dst_makes_a_copy_run_write_nothing_outside_dst(ray_local, home, settings, caplog):
    """A copy re-run keeps only records whose source is under SRC and target under DST: a pinned
    `../../pwned.jpg` would otherwise be copied out of DST."""
    src, dst, out = home / "share" / "photos", home / "share" / "named", home / "outside"
    write_jsonl(dst / "manifest.jsonl", [
        planted_record(str(src / "IMG_0002.JPG"), f"{dst}/../../pwned.jpg", relative="IMG_0002.JPG",
                       output="../../pwned.jpg", name="../../pwned.jpg", in_place=None,
                       **stat_fields(src / "IMG_0002.JPG")),
        planted_record(str(out / "photo.jpg"), str(dst / "stolen.jpg"), in_place=None),      # source outside SRC
        planted_record(str(src / "IMG_0003.HEIC"), str(out / "dropped.jpg"), in_place=None),  # target outside DST
    ])
    before = checksum_listing(home, skip=dst)

    with caplog.at_level(logging.WARNING):
        summary = run(RunOptions(source=str(src), target=str(dst)), settings)

    assert checksum_listing(home, skip=dst) == before, "nothing was written outside DST"
    assert summary.ok == 10 and summary.kept == 0 and len(ignored(caplog)) == 3
    records = list(parse_lines((dst / "manifest.jsonl").read_text()))
    assert len(records) == 10 and all(r.source.startswith(f"{src}/") for r in records)
    assert all(r.target.startswith(f"{dst}/") and ".." not in r.target for r in records if r.status == "ok")


def test_a_claim_planted_in_dst_names_nothing_outside_it(ray_local, home, settings):
    """Claims are read back on a resumed run: one this program would not have written fails its file
    with the reason, and the next run names that file as usual."""
    src, dst = home / "share" / "photos", home / "share" / "named"
    claim = dst / "_manifest" / "claims" / (hashlib.sha256(b"IMG_0002.JPG").hexdigest()[:40] + ".json")
    claim.parent.mkdir(parents=True)
    claim.write_text(json.dumps({"relative": "IMG_0002.JPG", "name": "../../pwned.jpg", "format": "JPEG", "raw": "x"}))
    before = checksum_listing(home, skip=dst)

    summary = run(RunOptions(source=str(src), target=str(dst)), settings)

    assert checksum_listing(home, skip=dst) == before, "nothing was written outside DST"
    failed = {r.relative: r for r in parse_lines((dst / "manifest.jsonl").read_text())}["IMG_0002.JPG"]
    assert failed.status == "error" and "was refused" in failed.error and "../../pwned.jpg" in failed.error
    assert summary.ok == 9 and summary.failed == 1 and not (dst / "_manifest").exists()
    again = run(RunOptions(source=str(src), target=str(dst)), settings)
    assert again.ok == 10 and again.failed == 0 and (dst / "blue-triangle.jpg").is_file()
    assert checksum_listing(home, skip=dst) == before


def test_on_s3_a_planted_manifest_moves_nothing_from_another_bucket_or_prefix(ray_local, s3, s3_endpoint, caplog):
    settings = load_settings(model_id="toy-shapes", batch_size=4, aws_endpoint_url=s3_endpoint)
    bucket, other = f"lib-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=other)
    for path in sorted(SAMPLES.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"photos/{path.relative_to(SAMPLES).as_posix()}", Body=path.read_bytes())
    photo = (SAMPLES / "IMG_0001.JPG").read_bytes()
    for where, key in ((other, "secret.jpg"), (bucket, "private/key.jpg"), (bucket, "photos-b/x.jpg")):
        s3.put_object(Bucket=where, Key=key, Body=photo)
    root = f"s3://{bucket}/photos"
    planted = [planted_record(f"s3://{other}/secret.jpg", f"{root}/stolen.jpg", size=len(photo)),
               planted_record(f"s3://{bucket}/private/key.jpg", f"{root}/stolen-key.jpg", size=len(photo)),
               planted_record(f"s3://{bucket}/photos-b/x.jpg", f"{root}/stolen-b.jpg", size=len(photo)),
               planted_record(f"{root}/../private/key.jpg", f"{root}/stolen-dots.jpg", size=len(photo))]
    s3.put_object(Bucket=bucket, Key="photos/.renamer-ray/manifest.jsonl",
                  Body="".join(json.dumps(r) + "\n" for r in sorted(planted, key=lambda r: r["source"])))
    before = (s3_checksum_listing(s3, other), s3_checksum_listing(s3, bucket, "private/"),
              s3_checksum_listing(s3, bucket, "photos-b/"))

    with caplog.at_level(logging.WARNING):
        summary = move_as_planned(run(RunOptions(source=root, target="", in_place=True), settings), settings)

    assert (s3_checksum_listing(s3, other), s3_checksum_listing(s3, bucket, "private/"),
            s3_checksum_listing(s3, bucket, "photos-b/")) == before
    assert summary.ok == 10 and not [k for k in s3_checksum_listing(s3, bucket, "photos/") if "stolen" in k]
    warnings = ignored(caplog)
    assert len(warnings) == 4 and all(sum(repr(r["source"]) in w for w in warnings) == 1 for r in planted)
    assert any("another bucket" in w for w in warnings)


# undo: a hand-made manifest ---------------------------------------------------------------------

def test_undo_refuses_records_it_cannot_check_or_that_point_outside_the_tree(home, capsys):
    """The report's second attack (a record with no size and no mtime moved `elsewhere/data.db`),
    and the same with a record that has them: each refused and listed, exit 1, nothing moved for it;
    a genuine record of the same manifest is undone."""
    src, out = home / "share" / "photos", home / "outside"
    (home / "elsewhere").mkdir()
    data = home / "elsewhere" / "data.db"
    data.write_bytes(b"SQLite format 3\x00 the owner's data")
    os.symlink(home / "elsewhere", src / "link")
    (src / "IMG_0001.JPG").rename(src / "yellow-circle.jpg")  # renamed by a real run
    manifest = src / ".renamer-ray" / "manifest.jsonl"
    genuine = planted_record(str(src / "IMG_0001.JPG"), str(src / "yellow-circle.jpg"),
                             **stat_fields(src / "yellow-circle.jpg"))
    refused = [
        planted_record(str(src / "data.db"), str(data), format=None),                      # no size, no mtime; outside
        planted_record(str(src / "data-2.db"), str(data), **stat_fields(data)),            # checkable, but outside
        planted_record(str(src / "data-3.db"), str(src / "link" / "data.db"), **stat_fields(data)),  # a link out
        planted_record(str(out / "copied.jpg"), str(src / "IMG_0002.JPG"),                 # would move a photo out
                       **stat_fields(src / "IMG_0002.JPG")),
        planted_record(str(src / "restored.jpg"), str(src / "IMG_0003.HEIC")),             # inside, but no size/mtime
    ]
    write_jsonl(manifest, [genuine, *refused])
    before, photos = checksum_listing(home, skip=src), checksum_listing(src, skip=src / ".renamer-ray")

    code = main(["undo", str(manifest)])

    printed = capsys.readouterr().out
    assert checksum_listing(home, skip=src) == before, "nothing outside SRC changed"
    assert code == 1
    assert (src / "IMG_0001.JPG").is_file() and not (src / "yellow-circle.jpg").exists(), "the genuine one is undone"
    del photos["yellow-circle.jpg"]
    assert {k: v for k, v in checksum_listing(src, skip=src / ".renamer-ray").items() if k != "IMG_0001.JPG"} == photos
    for record in refused:
        assert f"LEFT AS IT IS: {record['source']}: refused, nothing moved" in printed, printed
    assert "the record has no size and no modification time" in printed and "symbolic link" in printed
    assert f"within {src}" in printed and "1 given their old names back" in printed
    assert manifest.exists(), "the record stays while a file is left"


def test_undo_of_a_manifest_kept_elsewhere_keeps_to_the_root_it_records(home, tmp_path, capsys):
    src = home / "share" / "photos"
    (src / "IMG_0001.JPG").rename(src / "yellow-circle.jpg")
    data = home / "outside" / "id_rsa"
    manifest = tmp_path / "records" / "photos.jsonl"
    genuine = planted_record(str(src / "IMG_0001.JPG"), str(src / "yellow-circle.jpg"),
                             **stat_fields(src / "yellow-circle.jpg"))
    stray = planted_record(str(src / "id_rsa.jpg"), str(data), **stat_fields(data))
    before = checksum_listing(home)

    write_jsonl(manifest, [genuine, stray])  # no root: which tree is meant cannot be told
    code = main(["undo", str(manifest)])
    assert checksum_listing(home) == before
    assert code == 2 and "does not say which folder its run renamed" in capsys.readouterr().err
    write_jsonl(manifest, [{**genuine, "root": str(src)}, {**stray, "root": str(home)}])
    assert main(["undo", str(manifest)]) == 2
    assert "names 2 different folders" in capsys.readouterr().err
    assert checksum_listing(home) == before, "a manifest refused whole moves nothing"

    write_jsonl(manifest, [{**genuine, "root": str(src)}, {**stray, "root": str(src)}])
    assert main(["undo", str(manifest)]) == 1
    printed = capsys.readouterr().out
    assert f"{stray['source']}: refused, nothing moved: its new name {str(data)!r} is not under {src}" in printed
    assert data.read_text().startswith("-----BEGIN") and (src / "IMG_0001.JPG").is_file()


def test_on_s3_undo_refuses_a_record_in_another_bucket_or_without_a_size(s3, s3_endpoint):
    settings = load_settings(aws_endpoint_url=s3_endpoint)
    bucket, other = f"lib-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=other)
    root, body = f"s3://{bucket}/photos", b"the owner's object"
    # Objects that look like copies an in-place run made (their metadata names the original).
    s3.put_object(Bucket=other, Key="secret.jpg", Body=body,
                  Metadata={FINGERPRINT_KEY: f"{bucket}/photos/secret.jpg@0"})
    s3.put_object(Bucket=bucket, Key="photos/red-circle.jpg", Body=body,
                  Metadata={FINGERPRINT_KEY: f"{bucket}/photos/IMG_0009.JPG@0"})
    records = [planted_record(f"{root}/secret.jpg", f"s3://{other}/secret.jpg", size=len(body), mtime=1.0),
               planted_record(f"{root}/IMG_0009.JPG", f"{root}/red-circle.jpg")]  # no size
    s3.put_object(Bucket=bucket, Key="photos/.renamer-ray/manifest.jsonl",
                  Body="".join(json.dumps(r) + "\n" for r in records))
    before = s3_checksum_listing(s3, other), s3_checksum_listing(s3, bucket, "photos/red")

    summary = undo(f"{root}/.renamer-ray/manifest.jsonl", settings)

    assert (s3_checksum_listing(s3, other), s3_checksum_listing(s3, bucket, "photos/red")) == before
    assert summary.restored == 0 and len(summary.refused) == 2 and summary.root == root
    assert "another bucket" in summary.refused[1] and "no size" in summary.refused[0]


def test_in_place_records_its_root_and_undo_of_a_manifest_kept_elsewhere_uses_it(ray_local, library, settings,
                                                                                tmp_path):
    manifest = tmp_path / "records" / "library.jsonl"
    original = checksum_listing(library)
    move_as_planned(run(RunOptions(source=str(library), target="", in_place=True, manifest=str(manifest)), settings),
                    settings)
    records = [r for r in parse_lines(manifest.read_text()) if r.status == "ok"]
    assert len(records) == 10 and {r.root for r in records} == {str(library)}
    summary = undo(str(manifest), settings)
    assert (summary.restored, summary.refused, summary.root) == (10, [], str(library))
    assert checksum_listing(library) == original
