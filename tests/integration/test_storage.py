"""The storage contract: every operation of ``renamer_ray.io.storage`` behaves the same on both
backends — a local folder, and a prefix on S3 (moto's server on 127.0.0.1, real boto3 and pyarrow)."""

from __future__ import annotations

import pickle
import uuid

import pytest

from renamer_ray.io import storage
from renamer_ray.io.storage import StorageConfig, TargetExists

BACKENDS = ["local", "s3"]


@pytest.fixture(scope="module")
def config(s3_endpoint):
    return StorageConfig("us-east-1", s3_endpoint)


@pytest.fixture(scope="module")
def bucket(config):
    name = f"contract-{uuid.uuid4().hex[:8]}"
    storage.S3Storage(config).create_bucket(name)
    return name


@pytest.fixture
def folder(tmp_path, bucket, config):
    """``folder(kind)``: a fresh, empty folder on that backend."""
    def make(kind: str) -> storage.Location:
        name = uuid.uuid4().hex[:8]
        if kind == "local":
            return storage.open_location(str(tmp_path / name))
        return storage.open_location(f"s3://{bucket}/{name}", config)
    return make


@pytest.fixture(params=BACKENDS)
def root(request, folder):
    return folder(request.param)


def test_a_missing_file(root):
    missing = root.join("nothing.jpg")
    assert not storage.exists(missing)
    assert storage.read_text_if_exists(missing) is None
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(missing)


def test_write_text_replaces_the_file_whole_and_reads_back(root):
    storage.make_dirs(root)
    notes = root.join("notes.txt")
    storage.write_text(notes, "first\n")
    storage.write_text(notes, "héllo\nworld\n")
    assert storage.exists(notes)
    assert storage.read_bytes(notes) == "héllo\nworld\n".encode()
    assert storage.read_text_if_exists(notes) == "héllo\nworld\n"
    assert list(storage.read_lines(notes)) == ["héllo\n", "world\n"]
    with storage.open_output(root.join("stream.bin")) as out:
        out.write(b"one ")
        out.write(b"two")
    assert storage.read_bytes(root.join("stream.bin")) == b"one two"


def test_write_once_creates_only_once(root):
    claim = root.join("claims", "a.json")  # its folder does not exist yet
    assert storage.write_once(claim, "first") is True
    assert storage.write_once(claim, "second") is False
    assert storage.read_text_if_exists(claim) == "first"


@pytest.mark.parametrize("source_kind", BACKENDS)
def test_copy_is_create_only_and_a_copy_of_the_same_source_is_done(root, folder, source_kind):
    sources = folder(source_kind)
    storage.make_dirs(sources)
    photo, other = sources.join("photo.jpg"), sources.join("other.jpg")
    storage.write_text(photo, "the photo")
    storage.write_text(other, "another photo")
    storage.make_dirs(root)
    target = root.join("renamed.jpg")

    storage.copy(photo, target)
    assert storage.read_bytes(target) == b"the photo"
    storage.copy(photo, target)  # the same source again (a retry, a re-run): done, nothing changes
    assert storage.read_bytes(target) == b"the photo"
    with pytest.raises(TargetExists, match="not overwritten"):
        storage.copy(other, target)  # something else is there: never overwritten
    assert storage.read_bytes(target) == b"the photo"


@pytest.mark.parametrize("source_kind", BACKENDS)
def test_a_file_that_no_copy_made_is_never_overwritten(root, folder, source_kind):
    storage.make_dirs(root)
    target = root.join("taken.jpg")
    storage.write_text(target, "someone else's")
    sources = folder(source_kind)
    storage.make_dirs(sources)
    storage.write_text(sources.join("photo.jpg"), "the photo")
    with pytest.raises(TargetExists, match="not overwritten"):
        storage.copy(sources.join("photo.jpg"), target)
    assert storage.read_bytes(target) == b"someone else's"


@pytest.mark.parametrize("source_kind", BACKENDS)
def test_a_name_is_taken_by_a_file_of_that_name_with_any_extension_but_a_copy_of_the_source(root, folder, source_kind):
    sources = folder(source_kind)
    storage.make_dirs(sources)
    photo = sources.join("photo.jpg")
    storage.write_text(photo, "the photo")
    storage.make_dirs(root.join("sub"))
    storage.write_text(root.join("red-circle.png"), "someone else's")
    storage.write_text(root.join("red-circle.x.jpg"), "another name")
    storage.write_text(root.join("sub", "blue-square.tiff"), "in a subfolder")
    storage.copy(photo, root.join("green.webp"))
    assert [p.rsplit("/", 1)[-1] for p in root.storage.same_stem(root.path, "red-circle")] == ["red-circle.png"]
    assert storage.stem_taken(photo, root, "red-circle"), "another extension takes the name too"
    assert not storage.stem_taken(photo, root, "red-circle-001") and not storage.stem_taken(photo, root, "red")
    assert not storage.stem_taken(photo, root, "blue-square"), "only the folder's own files count"
    assert storage.stem_taken(photo, root.join("sub"), "blue-square")
    assert not storage.stem_taken(photo, root, "green"), "a copy of this source does not take its name"
    assert not storage.stem_taken(photo, root.join("nowhere"), "red-circle")


def test_locally_a_name_is_taken_whatever_the_case_it_is_written_in(tmp_path):
    """De-duplication ignores case; a local folder can be listed that way (S3 keys cannot)."""
    (tmp_path / "Red-Circle.JPG").write_bytes(b"someone else's")
    (tmp_path / "source.png").write_bytes(b"the photo")
    photo, folder = storage.open_location(str(tmp_path / "source.png")), storage.open_location(str(tmp_path))
    assert storage.stem_taken(photo, folder, "red-circle") and storage.stem_taken(photo, folder, "RED-CIRCLE")


def test_listing_with_sizes(root):
    storage.make_dirs(root.join("b", "d"))
    files = {"a.jpg": b"abc", "b/c.png": b"hello", "b/d/e.gif": b"", "z.txt": b"zz"}
    for relative, body in files.items():
        with storage.open_output(root.join(relative)) as out:
            out.write(body)

    listed = list(storage.list_files(root))
    assert {f.relative: f.size for f in listed} == {relative: len(body) for relative, body in files.items()}
    assert all(isinstance(f.mtime, float) for f in listed)
    assert sorted(f.relative for f in storage.list_files(root, recursive=False)) == ["a.jpg", "z.txt"]
    assert [f.relative for f in storage.list_files(root.join("b/"))] == ["c.png", "d/e.gif"]
    assert storage.subfolders(root) == ["b/"]


def test_any_file_under_and_remove_folder(root):
    parts = root.join("_manifest")
    assert not storage.any_file_under(parts)
    storage.make_dirs(parts)
    assert not storage.any_file_under(parts), "an empty folder holds no file (S3: and no marker was made)"
    assert storage.write_once(parts.join("claims", "x.json"), "{}")
    assert storage.any_file_under(parts)
    storage.write_text(root.join("kept.jpg"), "kept")

    storage.remove_folder(parts)
    assert not storage.any_file_under(parts) and not storage.exists(parts.join("claims", "x.json"))
    assert storage.read_bytes(root.join("kept.jpg")) == b"kept", "only the folder goes"


def test_a_location_travels_to_other_processes(root):
    storage.write_once(root.join("a.txt"), "travels")
    travelled = pickle.loads(pickle.dumps(root))
    assert travelled == root and storage.read_bytes(travelled.join("a.txt")) == b"travels"


def test_a_copy_of_what_was_read_asks_nothing_more_of_its_source(folder):
    """S3 → S3: the headers of the read (``read_object``) are all the copy needs of its source (no
    HeadObject), and its metadata is kept. (The copy also asks S3 to copy only the version read,
    CopySourceIfMatch, so that content replaced since it was named is never copied under that name;
    moto's server ignores that condition, so it is not checked here.)"""
    sources, targets = folder("s3"), folder("s3")
    photo = sources.join("photo.jpg")
    s3 = photo.storage.client
    s3.put_object(Bucket=photo.path.split("/")[0], Key=photo.path.split("/", 1)[1], Body=b"the photo",
                  Metadata={"taken-by": "ana"}, CacheControl="no-cache")
    data, head = storage.read_object(photo)
    assert data == b"the photo" and head
    heads: list[str] = []
    s3.meta.events.register("before-call.s3.HeadObject", lambda params, **_: heads.append(params["url_path"]))
    try:
        storage.copy(photo, targets.join("renamed.jpg"), content_type="image/jpeg", source_head=head)
        assert not [key for key in heads if key.endswith("photo.jpg")], "the source was asked again"
        copied = s3.head_object(Bucket=targets.path.split("/")[0], Key=targets.path.split("/", 1)[1] + "/renamed.jpg")
        assert copied["Metadata"]["taken-by"] == "ana" and copied["CacheControl"] == "no-cache"
    finally:
        s3.meta.events.unregister("before-call.s3.HeadObject")
