"""An upload's relative path (the form's `paths`, one per file): hostile paths refused with a
sentence, the rest in one normal form; the multipart reader gives each file its path, or refuses
the whole upload (422) when one is bad or they do not line up with the files."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, settings, strategies as st

from renamer_ray.records.trust import MAX_RELATIVE_BYTES, UntrustedPath, normal_relative
from renamer_ray.service.uploads import Limits, UploadError, checked_path, read_uploads
from tests.support.images import drawn_files

LIMITS = Limits(max_files=4, max_file_bytes=200_000, max_job_bytes=800_000, max_text_bytes=4096)


@pytest.mark.parametrize("path, normal", [
    ("Phone export/2024/IMG_001.HEIC", "Phone export/2024/IMG_001.HEIC"),
    ("a//b/./c.jpg", "a/b/c.jpg"),
    ("./top.png", "top.png"),
    ("top.png", "top.png"),
    ("...x/..y/z..jpg", "...x/..y/z..jpg"),               # dots inside names are names
    ("e\u0301t\u00e9/x.jpg", "\u00e9t\u00e9/x.jpg"),        # NFC: the same folder however it was typed
    ("年/👨\u200d👩\u200d👧 trip/x.jpg", "年/👨\u200d👩\u200d👧 trip/x.jpg"),  # emoji joiners are not controls
])
def test_a_relative_path_is_kept_in_its_normal_form(path, normal):
    assert normal_relative(path) == normal
    assert normal_relative(normal) == normal


@pytest.mark.parametrize("path, why", [
    ("../x.jpg", "'..' segment"),
    ("a/../../etc/x.jpg", "'..' segment"),
    ("a/b/..", "'..' segment"),
    ("/etc/passwd", "absolute path"),
    ("//server/share/x.jpg", "absolute path"),
    ("C:/Users/x.jpg", "drive letter"),
    ("c:x.jpg", "drive letter"),
    ("a\\..\\..\\x.jpg", "backslash"),
    ("..\\x.jpg", "backslash"),
    ("a\x00/x.jpg", "NUL"),
    ("a\nb/x.jpg", "control character"),
    ("a\x7f/x.jpg", "control character"),
    ("a\u2028b/x.jpg", "line break"),
    ("gpj.\u202eexe/x.jpg", "control character"),        # a right-to-left override disguises the path
    ("a/b/", "names a folder"),
    ("a/.", "'.' or '..' segment"),
    ("x/" * 300 + "y.jpg", f"at most {MAX_RELATIVE_BYTES}"),
    ("é" * 257 + "/x.jpg", "bytes in UTF-8"),             # 514 bytes in 262 characters
])
def test_a_hostile_path_is_refused_with_the_reason(path, why):
    with pytest.raises(UntrustedPath, match=why.replace(".", r"\.")):
        normal_relative(path)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", "é", ".", "..", "/", "\\", ":", "C", " ", "\x00", "\u202e", "\n"]),
                max_size=30).map("".join))
def test_any_path_is_refused_or_stays_under_its_folder(path):
    try:
        normal = normal_relative(path)
    except UntrustedPath as exc:
        assert str(exc)
        return
    parts = normal.split("/")
    assert all(part not in ("", ".", "..") for part in parts)
    assert not normal.startswith("/") and "\\" not in normal and "\x00" not in normal
    assert normal_relative(normal) == normal


def test_the_services_own_folder_is_refused_but_a_file_of_that_name_is_not():
    with pytest.raises(UntrustedPath, match="_manifest"):
        checked_path("_manifest/x.jpg")
    assert checked_path("_manifest") == "_manifest"
    assert checked_path("a/_manifest/x.jpg") == "a/_manifest/x.jpg"
    assert checked_path("") is None


@pytest.fixture(scope="module")
def png() -> bytes:
    return drawn_files(seed=905, count=1, max_side=120)[0][0]


def read(files: list[tuple[str, bytes]], paths: list | None = None):
    """``read_uploads`` of the multipart body httpx makes of ``files`` and ``paths``, as a client sends it."""
    request = httpx.Request("POST", "http://api/v1/jobs/rename", files=[("files", file) for file in files],
                            data={"paths": paths} if paths is not None else {})
    body = request.read()

    async def chunks():
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    return asyncio.run(read_uploads(request.headers["content-type"], str(len(body)), chunks(), LIMITS))


def test_each_file_gets_its_path_and_its_folder(png):
    uploads, _ = read([("IMG_001.png", png), ("notes.txt", b"milk"), ("top.png", png)],
                      ["Phone export/2024//IMG_001.png", "Phone export/notes.txt", ""])
    assert [(u.original, u.path, u.folder) for u in uploads] == [
        ("IMG_001.png", "Phone export/2024/IMG_001.png", "Phone export/2024"),
        ("notes.txt", "Phone export/notes.txt", "Phone export"),
        ("top.png", None, "")]
    assert uploads[1].skip_reason  # a non-image keeps its path: the page finds it by that


def test_without_paths_every_file_is_at_the_top(png):
    uploads, _ = read([("a.png", png), ("b.png", png)])
    assert [(u.path, u.folder) for u in uploads] == [(None, ""), (None, "")]


def test_the_name_stays_data_and_the_folder_comes_from_paths_alone(png):
    uploads, _ = read([("../../x.png", png)], ["holiday/x.png"])
    assert (uploads[0].original, uploads[0].folder) == ("../../x.png", "holiday")


@pytest.mark.parametrize("paths, said", [
    (["../escape/a.png"], "'../escape/a.png' of 'a.png' has a '.' or '..' segment"),
    (["/abs/a.png"], "absolute path"),
    (["_manifest/a.png"], "where the service keeps a job's progress"),
    (["a/a.png", "b/b.png"], "one 'paths' value per file"),
    ([b"\xff\xfe/a.png"], "not UTF-8"),
])
def test_a_bad_path_refuses_the_whole_upload_with_a_sentence(png, paths, said):
    with pytest.raises(UploadError) as refused:
        read([("a.png", png)], paths)
    assert refused.value.status == 422 and said in refused.value.message, refused.value.message


def test_more_paths_than_any_job_holds_are_refused_while_they_arrive(png):
    """Over MAX_FILES_PER_JOB paths is an upload over the limit: 413, as for the files themselves, so
    that a client (``submit``) lowers its job size instead of failing."""
    with pytest.raises(UploadError) as refused:
        read([("a.png", png)], ["a.png"] * (LIMITS.max_files + 1))
    assert refused.value.status == 413 and "too many files" in refused.value.message
