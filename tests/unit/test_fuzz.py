"""Hypothesis fuzzing of the parsers that read untrusted bytes: the multipart upload reader, the
format sniffer and the plan (manifest) reader. Whatever the input, the answer is a result or the
module's own clear error — never another exception (which the API would turn into a 500, or the CLI
into a traceback)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings, strategies as st

from renamer_ray.workflow.apply import PlanError, read_plan
from renamer_ray.images import ImageError, sniff_format
from renamer_ray.service.uploads import Limits, UploadError, read_uploads

LIMITS = Limits(max_files=3, max_file_bytes=4096, max_job_bytes=8192, max_text_bytes=512)
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
SIGNATURES = [b"", PNG_HEAD, b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00",
              b"BM", b"\x00\x00\x00\x18ftypheic"]


def parts(draw) -> bytes:
    """A multipart body: well-formed pieces, broken pieces and noise, in any order."""
    boundary = b"bnd"
    pieces = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["file", "text", "junk", "header", "end"]))
        if kind == "file":
            name = draw(st.text(max_size=40)).encode("utf-8", "replace")
            pieces.append(b"--bnd\r\nContent-Disposition: form-data; name=\"files\"; filename=\"" + name + b"\"\r\n\r\n"
                          + draw(st.sampled_from(SIGNATURES)) + draw(st.binary(max_size=300)) + b"\r\n")
        elif kind == "text":
            pieces.append(b"--bnd\r\nContent-Disposition: form-data; name=\"" + draw(st.sampled_from(
                [b"user_prompt", b"template", b"callback_url", b"paths", b"other"])) + b"\"\r\n\r\n"
                + draw(st.binary(max_size=600)) + b"\r\n")
        elif kind == "header":
            pieces.append(b"--bnd\r\n" + draw(st.binary(max_size=3000)) + b"\r\n\r\n")
        elif kind == "end":
            pieces.append(b"--bnd--\r\n")
        else:
            pieces.append(draw(st.binary(max_size=200)))
    return b"".join(pieces), boundary


@st.composite
def bodies(draw):
    body, boundary = parts(draw)
    cut = draw(st.integers(1, 64))
    return [body[i:i + cut] for i in range(0, len(body), cut)], boundary


async def _read(chunks, boundary):
    async def stream():
        for chunk in chunks:
            yield chunk
    return await read_uploads(f"multipart/form-data; boundary={boundary.decode()}", None, stream(), LIMITS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_the_upload_reader_answers_every_body_with_uploads_or_a_4xx(body):
    chunks, boundary = body
    try:
        uploads, fields = asyncio.run(_read(chunks, boundary))
    except UploadError as exc:
        assert 400 <= exc.status < 500 and exc.message
        return
    assert 1 <= len(uploads) <= LIMITS.max_files
    for upload in uploads:
        assert upload.size <= LIMITS.max_file_bytes and not any(ord(c) < 32 for c in upload.original)
        assert upload.path is None or ".." not in upload.path.split("/") and not upload.path.startswith("/")
        upload.body.close()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SIGNATURES), st.binary(max_size=2000))
def test_the_sniffer_names_a_supported_format_or_says_why_not(signature, rest):
    try:
        assert sniff_format(signature + rest)
    except ImageError as exc:
        assert str(exc)


lines = st.one_of(
    st.text(max_size=200),
    st.fixed_dictionaries({"source": st.text(max_size=30), "status": st.sampled_from(["ok", "error", "x"])},
                          optional={"name": st.one_of(st.none(), st.text(max_size=30)), "target": st.text(max_size=30),
                                    "error": st.text(max_size=30)}).map(lambda d: __import__("json").dumps(d)))


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=6), st.binary(max_size=20))
def test_the_plan_reader_reads_records_or_names_the_bad_line(text_lines, noise):
    data = "\n".join(text_lines).encode("utf-8") + noise
    try:
        records = read_plan(data)
    except PlanError as exc:
        assert str(exc).startswith("the manifest is")
        return
    assert all(record.status in ("ok", "error") for record in records)
