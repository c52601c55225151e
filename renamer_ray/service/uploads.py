"""Streaming multipart parsing with limits: a request over a limit gets 413 while it is still
arriving, before it is stored anywhere; a file that is not an image is set aside with its reason
(415 when no file is an image, or when the form asks ``strict``).

FastAPI's ``UploadFile`` would spool the whole body to disk before our code runs, so the body is
fed chunk by chunk to python-multipart's parser and every byte is counted on the way. Upload names
are data: kept as ``original`` (cleaned of control characters), never used as a path. A file's folder
comes apart from its name, in the form's ``paths`` (one per file, in the order of ``files``), held to
the project's rules for untrusted paths (``records.trust.normal_relative``).
"""

from __future__ import annotations

import posixpath
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from typing import AsyncIterator, BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from renamer_ray.images import ImageError, NotAnImage, UnreadableHeader, sniff_format
from renamer_ray.records.manifest import PARTS_FOLDER
from renamer_ray.records.trust import UntrustedPath, normal_relative

SNIFF_BYTES = 1024 * 1024          # enough header for every supported format
TEXT_FIELDS = ("user_prompt", "template", "callback_url", "case", "max_chars", "max_words", "language", "first_index",
               "strict")
PATHS = "paths"                    # repeated: the n-th is the relative path of the n-th file
MAX_NAME_CHARS = 255
MAX_HEADER_BYTES = 2048            # one part's header (a 255-character UTF-8 file name fits easily)
SPOOL_IN_MEMORY_BYTES = 256 * 1024  # a part beyond this goes to a temporary file, not RAM
FRAMING_BYTES = 64 * 1024          # boundaries and part headers a legitimate body adds to its files
MAX_BOUNDARY = 70                  # RFC 2046, 5.1.1: 1 to 70 characters ("bchars"), the last not a space
BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]")
DECIMAL = re.compile(r"[0-9]{1,18}")  # more digits than any limit here: not a number we take
FLAG = {"true": True, "false": False}  # a JSON boolean as a form sends it (any case: Python's requests says "True")
ACCEPTED = "accepted: JPEG, PNG, WebP, TIFF, GIF, BMP, HEIC/HEIF"


class UploadError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Upload:
    original: str
    body: BinaryIO
    size: int = 0
    format: str | None = None
    skip_reason: str | None = None    # why it is not an image (the sniffer's words): set aside, never stored
    path: str | None = None           # its path relative to the chosen folder (``paths``), normal; None: none sent

    @property
    def folder(self) -> str:
        """Where its renamed copy goes under the job's output ("" for the top)."""
        return posixpath.dirname(self.path or "")


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_file_bytes: int
    max_job_bytes: int
    max_text_bytes: int


@dataclass
class _State:
    limits: Limits
    uploads: list[Upload] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    paths: list[bytes] = field(default_factory=list)
    headers: dict[str, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    current: Upload | None = None
    text: bytearray | None = None
    text_name: str = ""
    total: int = 0


def decimal(text: str | None) -> int | None:
    """``text`` as a whole number if it is one written in ASCII digits (at most 18), else None.
    (``int()`` and ``str.isdigit()`` also take other scripts' digits, ``isdigit()`` superscripts such
    as "²", which ``int()`` then refuses, and ``int()`` refuses more than 4,300 digits.)"""
    return int(text) if text is not None and DECIMAL.fullmatch(text) else None


def clean_name(name: str) -> str:
    """The upload's name as something safe to show and store as data (NFC, no control or
    bidi-override characters, at most 255 characters). It is never used as a path."""
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf"))
    return name.strip()[:MAX_NAME_CHARS] or "unnamed"


def _parser(boundary: bytes, state: _State) -> MultipartParser:
    limits = state.limits

    def on_part_begin() -> None:
        state.headers, state.current, state.text = {}, None, None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_name += data[start:end]
        if len(state.header_name) > MAX_HEADER_BYTES:
            raise UploadError(400, "malformed multipart body: a part's header is too long")

    def on_header_value(data: bytes, start: int, end: int) -> None:
        key = state.header_name.decode("latin-1").lower()
        state.headers[key] = state.headers.get(key, b"") + data[start:end]
        if len(state.headers[key]) > MAX_HEADER_BYTES:
            raise UploadError(400, "malformed multipart body: a part's header is too long")

    def on_header_end() -> None:
        state.header_name = b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(state.headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name == "files" and filename is not None:
            if len(state.uploads) >= limits.max_files:
                raise UploadError(413, f"too many files: at most {limits.max_files} per job")
            state.current = Upload(clean_name(filename.decode("utf-8", "replace")),
                                   tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES))
            state.uploads.append(state.current)
        elif name in TEXT_FIELDS or name == PATHS:
            if name == PATHS and len(state.paths) >= limits.max_files:
                # as many paths as files: more than MAX_FILES_PER_JOB paths is an upload over it (413, so
                # that a client lowers its job size, as for the files themselves)
                raise UploadError(413, f"too many files: at most {limits.max_files} per job (one {PATHS!r} "
                                       "value each)")
            state.text, state.text_name = bytearray(), name
        # any other part is ignored (its bytes still count towards the job limit)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        size = end - start
        state.total += size
        if state.total > limits.max_job_bytes:
            raise UploadError(413, f"the upload is too large: at most {limits.max_job_bytes:,} bytes per job")
        if state.current is not None:
            state.current.size += size
            if state.current.size > limits.max_file_bytes:
                raise UploadError(413, f"{state.current.original!r} is too large: at most "
                                       f"{limits.max_file_bytes:,} bytes per file")
            state.current.body.write(data[start:end])
        elif state.text is not None:
            state.text += data[start:end]
            if len(state.text) > limits.max_text_bytes:
                raise UploadError(413, f"the field {state.text_name!r} is too long")

    def on_part_end() -> None:
        if state.text is not None and state.text_name == PATHS:
            state.paths.append(bytes(state.text))
        elif state.text is not None:
            state.fields[state.text_name] = state.text.decode("utf-8", "replace")
        state.current, state.text = None, None

    return MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})


def _close(uploads: list[Upload]) -> None:
    for upload in uploads:
        upload.body.close()


async def read_uploads(content_type: str, content_length: str | None, chunks: AsyncIterator[bytes],
                       limits: Limits) -> tuple[list[Upload], dict[str, str]]:
    """Parse a multipart body within ``limits``; sniff every file's real format. Every file part is
    returned, a non-image with its ``skip_reason``; 415 when none is an image, or when the form's
    ``strict`` is true and any is not."""
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UploadError(415, "send the files as multipart/form-data (a form field named 'files')")
    # Every byte of the body counts (preamble, part headers, epilogue, empty parts), not only the
    # files': a chunked body has no Content-Length to refuse up front.
    budget, received = limits.max_job_bytes + FRAMING_BYTES + limits.max_files * MAX_HEADER_BYTES, 0
    if (declared := decimal(content_length)) is not None and declared > budget:
        raise UploadError(413, f"the upload is too large: at most {limits.max_job_bytes:,} bytes per job")
    boundary = options[b"boundary"]
    if not 1 <= len(boundary) <= MAX_BOUNDARY:  # refused before any parsing
        raise UploadError(400, f"malformed multipart body: the Content-Type boundary is {len(boundary):,} characters "
                               f"long; RFC 2046 allows 1 to {MAX_BOUNDARY}")
    if not BOUNDARY.fullmatch(boundary):
        raise UploadError(400, "malformed multipart body: the Content-Type boundary may hold only ASCII letters, "
                               "digits, spaces (not last) and '()+_,-./:=? (RFC 2046)")
    state = _State(limits)
    parser = _parser(boundary, state)
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > budget:
                raise UploadError(413, f"the upload is too large: at most {limits.max_job_bytes:,} bytes per job")
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        _close(state.uploads)
        raise
    except MultipartParseError as exc:
        _close(state.uploads)
        raise UploadError(400, f"malformed multipart body: {exc}") from None
    if not state.uploads:
        raise UploadError(400, "no files: attach one or more images in the form field 'files'")
    strict = _strict(state.fields.get("strict"), state.uploads)
    try:
        _place(state.uploads, state.paths)
    except UploadError:
        _close(state.uploads)
        raise
    for upload in state.uploads:
        _sniff(upload)
    if refused := [u for u in state.uploads if u.skip_reason is not None]:
        if strict or len(refused) == len(state.uploads):
            _close(state.uploads)
            first = refused[0]
            others = f" (and {len(refused) - 1:,} other files)" if len(refused) > 1 else ""
            raise UploadError(415, f"{'strict: ' if strict else 'no image among the files: '}{first.original!r} is "
                                   f"not a supported image ({first.skip_reason}){others}; {ACCEPTED}")
    return state.uploads, state.fields


def _place(uploads: list[Upload], paths: list[bytes]) -> None:
    """Give each upload its path from the form's ``paths`` (none sent: every file at the top; an
    empty one: that file at the top), or 422 saying which path is refused and why. One bad path
    refuses the whole upload: no browser sends one, so it is a client's mistake or an attack, and
    its file is not to land somewhere its sender did not mean."""
    if not paths:
        return
    if len(paths) != len(uploads):
        raise UploadError(422, f"send one {PATHS!r} value per file, in the order of 'files' (an empty one for a file "
                               f"at the top): {len(uploads):,} files, {len(paths):,} paths")
    for upload, raw in zip(uploads, paths):
        try:
            text = raw.decode("utf-8")
            upload.path = checked_path(text)
        except UnicodeDecodeError:
            raise UploadError(422, f"the path of {upload.original!r} is not UTF-8 text") from None
        except UntrustedPath as exc:
            raise UploadError(422, f"the path {text[:200]!r} of {upload.original!r} {exc}") from None


def checked_path(text: str) -> str | None:
    """An upload's relative path in its normal form (``records.trust.normal_relative``; "" → None),
    or :class:`UntrustedPath`: also for a folder the service keeps for itself in a job's output."""
    path = normal_relative(text) if text else None
    if path and path.split("/")[0] == PARTS_FOLDER and "/" in path:
        raise UntrustedPath(f"starts with the folder {PARTS_FOLDER!r}, where the service keeps a job's progress: "
                            "rename that folder")
    return path


def _sniff(upload: Upload) -> None:
    """Set the upload's real format, or the reason it is not an image. A damaged or huge image
    keeps no format: it is accepted, and fails alone with a reason."""
    upload.body.seek(0)
    head = upload.body.read(SNIFF_BYTES)
    try:
        try:
            upload.format = sniff_format(head)
        except UnreadableHeader:
            if upload.size <= len(head):
                raise
            # A header larger than the sniffed part (a 1 MiB ICC profile, huge EXIF): read it all
            # (at most MAX_FILE_BYTES, and only for such files).
            upload.body.seek(0)
            upload.format = sniff_format(upload.body.read())
    except NotAnImage as exc:  # includes a signature whose header Pillow cannot read
        upload.skip_reason = str(exc)
    except ImageError:
        upload.format = None
    finally:
        upload.body.seek(0)


def _strict(value: str | None, uploads: list[Upload]) -> bool:
    """The form's ``strict`` (absent or empty: false), or 422."""
    if value is None or not value.strip():
        return False
    if (flag := FLAG.get(value.strip().lower())) is None:
        _close(uploads)
        raise UploadError(422, f"strict must be true or false, not {value.strip()[:40]!r}")
    return flag
