"""Files addressed by URI through pyarrow filesystems: local paths and ``s3://bucket/prefix``.

The same pipeline reads and writes either; S3 endpoint and region come from the standard AWS
variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``) passed in as arguments, never read here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import hashlib
import os
import posixpath
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pyarrow import fs as pafs

# Objects up to this size are copied with one CopyObject; larger ones with a multipart copy of
# parts of at least MULTIPART_COPY_PART (S3: 5 GiB per CopyObject, 10,000 parts per upload).
SINGLE_COPY_LIMIT = 5 * 1024**3
MULTIPART_COPY_PART = 512 * 1024**2
# Metadata key on every object a run writes: which source (bucket/key@etag) it is a copy of.
FINGERPRINT_KEY = "renamer-source"


@dataclass(frozen=True)
class StorageConfig:
    """How to reach S3 or an S3-compatible server (from AWS_REGION / AWS_ENDPOINT_URL): picklable,
    handed to every stage that opens locations."""

    region: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class Location:
    """A folder or file: its filesystem and the path inside it (picklable, goes to Ray workers)."""

    filesystem: pafs.FileSystem
    path: str
    uri: str
    region: str | None = None         # S3 only: how to reach the bucket with boto3
    endpoint_url: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def bucket_and_key(self) -> tuple[str, str]:
        bucket, _, key = self.path.partition("/")
        return bucket, key

    def join(self, *parts: str) -> "Location":
        path = posixpath.join(self.path, *parts)
        uri = self.uri.rstrip("/") + "/" + "/".join(parts)
        return Location(self.filesystem, path, uri, self.region, self.endpoint_url)


@dataclass(frozen=True)
class ListedFile:
    """One file under a folder: its path relative to the folder, size and modification time."""

    relative: str
    size: int
    mtime: float | None


def open_location(uri: str, config: StorageConfig | None = None, *, region: str | None = None,
                  endpoint_url: str | None = None) -> Location:
    """A :class:`Location` for a local path or an ``s3://`` URI."""
    if config is not None:
        region, endpoint_url = config.region, config.endpoint_url
    if uri.startswith("s3://"):
        bucket_and_key = uri[len("s3://"):].strip("/")
        return Location(_s3_filesystem(region, endpoint_url), bucket_and_key, "s3://" + bucket_and_key, region, endpoint_url)
    if "://" in uri:
        raise ValueError(f"unsupported location {uri!r}: use a local path or s3://bucket/prefix")
    path = str(Path(uri).expanduser().resolve())
    return Location(pafs.LocalFileSystem(), path, path)


# One retry policy for every S3 client: boto3's "standard" mode with 8 attempts, and the same number
# for pyarrow's reads and writes (its default, 3, turned a short burst of SlowDown into a failed file).
S3_ATTEMPTS = 8


@functools.cache
def _s3_filesystem(region: str | None, endpoint_url: str | None) -> pafs.S3FileSystem:
    """One filesystem per process and endpoint: opening a Location per row stays cheap."""
    kwargs = {"region": region, "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS)}
    if not region:
        del kwargs["region"]
    if endpoint_url:
        kwargs["endpoint_override"] = endpoint_url
        kwargs["scheme"] = "https" if endpoint_url.startswith("https") else "http"
    return pafs.S3FileSystem(**kwargs)


# Errors of pyarrow's S3 client that a later attempt may not see (the same list Ray Data retries:
# DataContext.retried_io_errors). A 503 on GetObject surfaces as INTERNAL_FAILURE ("Failed to flush
# response stream"), which pyarrow's own retry strategy does not retry.
TRANSIENT_S3_ERRORS = ("AWS Error INTERNAL_FAILURE", "AWS Error NETWORK_CONNECTION", "AWS Error SLOW_DOWN",
                       "AWS Error SERVICE_UNAVAILABLE", "HTTP status 503")


# A storage outage (an endpoint restarting, a network partition, a long burst of throttling) can
# outlast the clients' own retries (8 attempts: seconds). The stages retry transient errors on top,
# with backoff, until this budget is spent; only then does a file fail ("running again may succeed").
STORAGE_RETRY_SECONDS = 60.0
_TRANSIENT_CODES = ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
                    "ThrottlingException", "RequestTimeTooSkewed")


def is_transient(exc: BaseException) -> bool:
    """An S3 error that a later attempt may not see: no connection, a timeout, a 5xx, throttling."""
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        return meta.get("HTTPStatusCode", 0) >= 500 or error.get("Code") in _TRANSIENT_CODES
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return isinstance(exc, ConnectionError) or any(words in str(exc) for words in TRANSIENT_S3_ERRORS)
    return False


# A store that is down, not blinking. Per process: when the current stretch of transient failures
# began (the start of the first failed call) and when the last one ended. Once a stretch has lasted
# longer than a call's budget, calls fail at once (StorageUnavailable) for PROBE_SECONDS after each
# failure, and then one call tries again. So a run over a store that never answers fails its files
# in about one budget per process, not one budget per file: a decode task reads its 8 files one
# after the other, and each read is itself up to S3_ATTEMPTS requests with the client's backoff
# (≈ 50 s against a store that answers 503). A pause of OUTAGE_GAP_SECONDS without a failure, or any
# success, ends the stretch.
_failing_since: float | None = None
_last_failure = 0.0
_last_error = ""
PROBE_SECONDS = 5.0
OUTAGE_GAP_SECONDS = 30.0


class StorageUnavailable(ConnectionError):
    """Not tried: this process has seen only transient storage errors for longer than the budget."""


def _store_down(now: float, budget: float) -> bool:
    return (_failing_since is not None and now - _last_failure < OUTAGE_GAP_SECONDS
            and now - _failing_since > budget)


def retrying(call, *args, budget: float | None = None, **kwargs):
    """``call(*args, **kwargs)``, retried on transient storage errors with backoff until
    ``budget`` seconds (STORAGE_RETRY_SECONDS) have passed; other errors are raised at once. While
    the store is down (above) it is tried at most once per PROBE_SECONDS in this process."""
    global _failing_since, _last_failure, _last_error
    budget = STORAGE_RETRY_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        started = time.monotonic()
        if _store_down(started, budget) and started - _last_failure < PROBE_SECONDS:
            raise StorageUnavailable(f"storage has answered only errors for {started - _failing_since:.0f} s, "
                                     f"so this was not tried (the last: {_last_error})")
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if _failing_since is None or now - _last_failure >= OUTAGE_GAP_SECONDS:
                _failing_since = started
            text = str(exc).strip()
            _last_failure, _last_error = now, (text.splitlines()[0][:200] if text else type(exc).__name__)
            if now + delay > deadline or _store_down(now, budget):
                raise
        else:
            _failing_since = None
            return result
        time.sleep(delay)  # backoff between attempts
        delay = min(delay * 2, 5.0)


def read_bytes(location: Location) -> bytes:
    """The file's bytes; transient S3 errors are retried (``retrying``), as every other S3 request is."""
    def read() -> bytes:
        with location.filesystem.open_input_stream(location.path) as stream:
            return stream.read()
    return retrying(read)


def read_lines(location: Location) -> Iterator[str]:
    """A text file's lines (with their newlines), streamed."""
    with location.filesystem.open_input_stream(location.path) as stream:
        yield from io.TextIOWrapper(stream, encoding="utf-8")


def exists(location: Location) -> bool:
    return location.filesystem.get_file_info(location.path).type != pafs.FileType.NotFound


def make_dirs(location: Location) -> None:
    """Create a local folder; S3 has no folders (and an empty "prefix/" marker object is clutter)."""
    if not location.is_s3:
        location.filesystem.create_dir(location.path, recursive=True)


class TargetExists(Exception):
    """The target already holds something that is not a copy of this source."""


def copy(source: Location, target: Location, *, content_type: str | None = None) -> None:
    """Copy a file without ever overwriting a different one (:class:`TargetExists`).

    S3 → S3 is a server-side copy (no download); a target that is already a copy of the same source
    version counts as done. Elsewhere, a byte-identical target counts as done.
    """
    if source.is_s3 and target.is_s3:
        _s3_copy(source, target, content_type)
        return
    if target.is_s3:
        _s3_upload(source, target, content_type)
        return
    if _compare_local(source, target):
        return
    if not _create_local(target.path, lambda temporary: pafs.copy_files(
            source.path, temporary, source_filesystem=source.filesystem, destination_filesystem=target.filesystem)):
        if not _compare_local(source, target):  # raced with another writer, which made it first
            raise TargetExists(f"{target.uri} appeared while copying; it was not overwritten")


def _compare_local(source: Location, target: Location) -> bool:
    """True when the local target is already a copy of the source; TargetExists when something else
    is there — a symbolic link included, dangling or not: it is never followed nor replaced."""
    if os.path.islink(target.path):
        raise TargetExists(f"{target.uri} is a symbolic link; it was not followed or replaced")
    if not os.path.lexists(target.path):
        return False
    if os.path.isfile(target.path) and read_bytes(target) == read_bytes(source):
        return True
    raise TargetExists(f"{target.uri} already exists with other content; it was not overwritten")


def _create_local(path: str, fill) -> bool:
    """Create ``path`` only if it does not exist; False if it does. ``fill(temporary)`` writes a
    temporary file beside it, which is then hard-linked into place: the link is atomic and fails if
    the name exists, so a crash never leaves a half-written file under a final name."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
    fill(temporary)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


# What S3 answers a conditional write (If-None-Match: *) when the key exists (412), or when another
# conditional write to it is in flight (409).
_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict")


def put_if_absent(client, bucket: str, key: str, body: bytes, **extra) -> bool:
    """A conditional PutObject (If-None-Match: *); False if the key was already taken."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _TAKEN:
            return False
        raise


@functools.cache
def s3_client(region: str | None, endpoint_url: str | None):
    """A boto3 S3 client per process; "standard" retries also retry SlowDown (legacy mode does not)."""
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url,
                        config=Config(retries={"mode": "standard", "max_attempts": S3_ATTEMPTS}))


def head_if_exists(client, bucket: str, key: str) -> dict | None:
    """HeadObject's answer, or None when the key does not exist."""
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _s3_upload(source: Location, target: Location, content_type: str | None) -> None:
    """Local → S3: a conditional PutObject (If-None-Match: *), so a race can never overwrite."""
    client = s3_client(target.region, target.endpoint_url)
    bucket, key = target.bucket_and_key
    data = read_bytes(source)
    fingerprint = f"{source.uri}@{hashlib.sha256(data).hexdigest()[:32]}"
    if not put_if_absent(client, bucket, key, data, ContentType=content_type or "application/octet-stream",
                          Metadata={FINGERPRINT_KEY: fingerprint}):
        existing = head_if_exists(client, bucket, key) or {}
        if existing.get("Metadata", {}).get(FINGERPRINT_KEY) != fingerprint:
            raise TargetExists(f"{target.uri} already exists with other content; it was not overwritten")


def _s3_copy(source: Location, target: Location, content_type: str | None) -> None:
    client = s3_client(target.region, target.endpoint_url)
    (src_bucket, src_key), (dst_bucket, dst_key) = source.bucket_and_key, target.bucket_and_key
    head = client.head_object(Bucket=src_bucket, Key=src_key)
    fingerprint = f"{src_bucket}/{src_key}@{head['ETag'].strip(chr(34))}"

    def already_done() -> bool:
        existing = head_if_exists(client, dst_bucket, dst_key)
        if existing is None:
            return False
        if existing.get("Metadata", {}).get(FINGERPRINT_KEY) == fingerprint:
            return True
        raise TargetExists(f"{target.uri} already exists and is not a copy of {source.uri}; it was not overwritten")

    # moto (and S3 before Oct 2025) ignore If-None-Match on CopyObject: look first, then copy conditionally.
    if already_done():
        return
    extra = {
        "MetadataDirective": "REPLACE",
        "Metadata": {**head.get("Metadata", {}), FINGERPRINT_KEY: fingerprint},
        "ContentType": content_type or head.get("ContentType", "application/octet-stream"),
        **{k: head[k] for k in ("CacheControl", "ContentDisposition", "ContentLanguage") if head.get(k)},
    }
    copy_source = {"Bucket": src_bucket, "Key": src_key}
    try:
        if head["ContentLength"] <= SINGLE_COPY_LIMIT:
            client.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource=copy_source, IfNoneMatch="*", **extra)
        else:
            extra.pop("MetadataDirective")
            multipart_copy(client, {**copy_source, "ETag": head["ETag"]}, head["ContentLength"], dst_bucket,
                           dst_key, extra)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _TAKEN:
            if already_done():
                return
        raise


def multipart_copy(client, source: dict, size: int, bucket: str, key: str, extra: dict) -> None:
    """Server-side copy in parts (UploadPartCopy), create-only like a single copy: the upload
    completes with If-None-Match, so a target that appeared meanwhile is never overwritten, and
    every part is copied only from the source version that was looked at (its ETag). Any failure
    aborts the upload, leaving no parts behind."""
    part_size = max(MULTIPART_COPY_PART, -(-size // 10_000))
    copy_source = {"Bucket": source["Bucket"], "Key": source["Key"]}
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    try:
        parts = []
        for number, start in enumerate(range(0, size, part_size), start=1):
            copied = client.upload_part_copy(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, CopySource=copy_source,
                CopySourceRange=f"bytes={start}-{min(start + part_size, size) - 1}",
                CopySourceIfMatch=source["ETag"])
            parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts}, IfNoneMatch="*")
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def remove_folder(location: Location) -> None:
    """Delete a folder of our own (local tree, or every key under an S3 prefix; no marker left)."""
    if not location.is_s3:
        shutil.rmtree(location.path, ignore_errors=True)
        return
    client = s3_client(location.region, location.endpoint_url)
    bucket, key = location.bucket_and_key
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
        objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def write_once(location: Location, text: str) -> bool:
    """Create a small file only if it does not exist yet (S3: If-None-Match; local: an atomic
    link). True if this call created it."""
    data = text.encode("utf-8")
    if location.is_s3:
        bucket, key = location.bucket_and_key
        return put_if_absent(s3_client(location.region, location.endpoint_url), bucket, key, data)
    os.makedirs(os.path.dirname(location.path), exist_ok=True)
    return _create_local(location.path, lambda temporary: Path(temporary).write_bytes(data))


def read_text_if_exists(location: Location) -> str | None:
    try:
        with location.filesystem.open_input_stream(location.path) as stream:
            return stream.read().decode("utf-8")
    except FileNotFoundError:
        return None


def any_file_under(location: Location) -> bool:
    """Whether a folder (or S3 prefix) holds at least one file (one request on S3)."""
    if location.is_s3:
        bucket, key = location.bucket_and_key
        page = s3_client(location.region, location.endpoint_url).list_objects_v2(
            Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        return bool(page.get("KeyCount"))
    return os.path.isdir(location.path) and any(files for _, _, files in os.walk(location.path))


def write_text(location: Location, text: str) -> None:
    with open_output(location) as stream:
        stream.write(text.encode("utf-8"))


@contextlib.contextmanager
def open_output(location: Location):
    """A stream that writes ``location`` whole. Locally through a temporary file renamed into place:
    a symbolic link planted at the name is replaced, never written through, and readers never see
    half a file. On S3 a (multipart) upload, which is atomic anyway."""
    if location.is_s3:
        with location.filesystem.open_output_stream(location.path) as stream:
            yield stream
        return
    folder, name = os.path.split(location.path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.partial")
    try:
        with location.filesystem.open_output_stream(temporary) as stream:
            yield stream
        os.replace(temporary, location.path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
