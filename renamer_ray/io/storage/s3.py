"""The S3 backend (or any S3-compatible server): pyarrow's S3 filesystem for reads and streamed
writes, boto3 for what needs S3 itself — server-side and conditional (create-only) copies, listing,
and (``s3_objects.py``) the objects the job service keeps. Both clients follow the one retry policy
of ``retry.py``."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Iterator

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pyarrow import fs as pafs

from renamer_ray.errors import one_line
from renamer_ray.io.storage import retry
from renamer_ray.io.storage.base import (ListedFile, Location, SourceChanged, Storage, StorageConfig, TargetExists,
                                         already_there)
from renamer_ray.io.storage.s3_objects import S3Objects, head_if_exists, split_path

# Objects up to this size are copied with one CopyObject; larger ones with a multipart copy of
# parts of at least MULTIPART_COPY_PART (S3: 5 GiB per CopyObject, 10,000 parts per upload).
SINGLE_COPY_LIMIT = 5 * 1024**3
MULTIPART_COPY_PART = 512 * 1024**2
# Metadata key on every object a run writes: which source (bucket/key@etag) it is a copy of.
FINGERPRINT_KEY = "renamer-source"
# What S3 answers a conditional write (If-None-Match: *) when the key exists (412), or when another
# conditional write to it is in flight (409).
_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict")


@functools.cache
def _s3_filesystem(region: str | None, endpoint_url: str | None) -> pafs.S3FileSystem:
    """One filesystem per process and endpoint: opening a Location per row stays cheap."""
    kwargs = {"retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=retry.S3_ATTEMPTS),
              "connect_timeout": retry.CONNECT_TIMEOUT_SECONDS, "request_timeout": retry.READ_TIMEOUT_SECONDS}
    if region:
        kwargs["region"] = region
    if endpoint_url:
        kwargs["endpoint_override"] = endpoint_url
        kwargs["scheme"] = "https" if endpoint_url.startswith("https") else "http"
    return pafs.S3FileSystem(**kwargs)


@functools.cache
def s3_client(region: str | None, endpoint_url: str | None):
    """A boto3 S3 client per process and endpoint."""
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=retry.boto_config())


def put_if_absent(client, bucket: str, key: str, body: bytes, **extra) -> bool:
    """A conditional PutObject (If-None-Match: *); False if the key was already taken."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", **extra)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _TAKEN:
            return False
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


@dataclass(frozen=True)
class S3Storage(S3Objects, Storage):
    """Paths are "bucket/key". Holds only its config (picklable); the clients are made once per
    process (``_s3_filesystem``, ``s3_client``). The job service's plain object requests are
    :class:`S3Objects`'."""

    config: StorageConfig = field(default_factory=StorageConfig)

    @property
    def filesystem(self) -> pafs.S3FileSystem:
        return _s3_filesystem(self.config.region, self.config.endpoint_url)

    @property
    def client(self):
        return s3_client(self.config.region, self.config.endpoint_url)

    def uri(self, path: str) -> str:
        return "s3://" + path

    @property
    def outage_scope(self) -> str:
        return f"s3 {self.config.endpoint_url or self.config.region or 'aws'}"

    def make_dirs(self, path: str) -> None:
        """Nothing: S3 has no folders (and an empty "prefix/" marker object is clutter)."""

    # Whole-object reads: one GetObject each (pyarrow's input streams send a HEAD first) -----------
    def read_bytes(self, path: str) -> bytes:
        return self.read_object(path)[0]

    def read_object(self, path: str) -> tuple[bytes, str]:
        """The bytes, and the headers of the GET as JSON (``COPIED_HEAD``): a server-side copy of
        the object made after it was read needs no HeadObject, and copies only the version read."""
        got = self._get(path, whole=True)
        if got is None:
            raise FileNotFoundError(f"{self.uri(path)} does not exist")
        data, head = got
        return data, json.dumps(head)

    def read_text_if_exists(self, path: str) -> str | None:
        data = self._get(path)
        return None if data is None else data.decode("utf-8")

    def _get(self, path: str, whole: bool = False):
        """The object's bytes (None: no such key; ``whole``: with its copied head), retried as every
        request (``retry.retrying``). What still fails is an OSError, as a pyarrow read's would be: a
        ``ConnectionError`` if transient."""
        try:
            return retry.retrying(self.get_object_if_exists if whole else self.get_if_exists, path,
                                  scope=self.outage_scope)
        except (ClientError, BotoCoreError) as exc:
            error = ConnectionError if retry.is_transient(exc) else OSError
            raise error(f"{self.uri(path)}: {retry.explain(exc) or one_line(exc)}") from exc

    # Create-only copies -------------------------------------------------------------------------
    def copy(self, source: Location, path: str, content_type: str | None = None,
             source_head: str | None = None) -> None:
        """From S3: a server-side copy (no download); from elsewhere: a conditional upload. The
        target's metadata names the source (FINGERPRINT_KEY), which is how a copy is recognised."""
        if isinstance(source.storage, S3Storage):
            self._copy_object(source, path, content_type, source_head)
        else:
            self._upload(source, path, content_type)

    def _already_there(self, source: Location, path: str, fingerprint: str) -> bool:
        existing = head_if_exists(self.client, *split_path(path))
        return already_there(self.uri(path), source.uri, existing is not None,
                             lambda: existing.get("Metadata", {}).get(FINGERPRINT_KEY) == fingerprint)

    def move(self, source: Location, path: str) -> None:
        """A create-only server-side copy, checked (size and the copy's fingerprint), then the
        source deleted: S3 has no rename."""
        self.copy(source, path)
        src, copied = self.head(source.path), self.head(path)
        if src is None or copied is None or src["ContentLength"] != copied["ContentLength"]:
            raise OSError(f"the copy of {source.uri} at {self.uri(path)} could not be verified; the source was kept")
        self.delete(source.path)

    def holds(self, source: Location, path: str) -> bool | None:
        existing = head_if_exists(self.client, *split_path(path))
        if existing is None:
            return None
        if isinstance(source.storage, S3Storage):
            bucket, key = split_path(source.path)
            fingerprint = f"{bucket}/{key}@{self.client.head_object(Bucket=bucket, Key=key)['ETag'].strip(chr(34))}"
        else:
            fingerprint = f"{source.uri}@{hashlib.sha256(source.storage.read_bytes(source.path)).hexdigest()[:32]}"
        return existing.get("Metadata", {}).get(FINGERPRINT_KEY) == fingerprint

    def _upload(self, source: Location, path: str, content_type: str | None) -> None:
        """A conditional PutObject (If-None-Match: *), so a race can never overwrite."""
        data = source.storage.read_bytes(source.path)
        fingerprint = f"{source.uri}@{hashlib.sha256(data).hexdigest()[:32]}"
        if not put_if_absent(self.client, *split_path(path), data,
                             ContentType=content_type or "application/octet-stream",
                             Metadata={FINGERPRINT_KEY: fingerprint}):
            if not self._already_there(source, path, fingerprint):  # taken, then gone again
                raise TargetExists(f"{self.uri(path)} appeared while copying; it was not overwritten")

    def _copy_object(self, source: Location, path: str, content_type: str | None, source_head: str | None) -> None:
        """Only the version of the source that was read (``source_head``, else looked at now) is
        copied (CopySourceIfMatch): a source replaced since it was named fails its copy."""
        client = self.client
        (src_bucket, src_key), (dst_bucket, dst_key) = split_path(source.path), split_path(path)
        head = json.loads(source_head) if source_head else client.head_object(Bucket=src_bucket, Key=src_key)
        fingerprint = f"{src_bucket}/{src_key}@{head['ETag'].strip(chr(34))}"
        # moto (and S3 before Oct 2025) ignore If-None-Match on CopyObject: look first, then copy conditionally.
        if self._already_there(source, path, fingerprint):
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
                client.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource=copy_source, IfNoneMatch="*",
                                   CopySourceIfMatch=head["ETag"], **extra)
            else:
                extra.pop("MetadataDirective")
                multipart_copy(client, {**copy_source, "ETag": head["ETag"]}, head["ContentLength"], dst_bucket,
                               dst_key, extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _TAKEN:
                if self._already_there(source, path, fingerprint):
                    return
                if head_if_exists(client, dst_bucket, dst_key) is None:  # not the target's condition, the source's
                    raise SourceChanged(f"{source.uri} changed after it was read and named; it was not copied "
                                        "(run again to name what it holds now)") from exc
            raise

    def same_stem(self, folder: str, stem: str) -> list[str]:
        """One LIST of the keys that start with ``stem.`` in the folder (not the whole folder)."""
        bucket, prefix = self._folder(folder)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{stem}.",
                                                                     Delimiter="/")
        return [f"{bucket}/{obj['Key']}" for page in pages for obj in page.get("Contents", [])
                if posixpath.splitext(obj["Key"][len(prefix):])[0] == stem]

    def write_once(self, path: str, data: bytes) -> bool:
        """A conditional PutObject (If-None-Match: *)."""
        return put_if_absent(self.client, *split_path(path), data)

    # Whole files and folders --------------------------------------------------------------------
    @contextlib.contextmanager
    def open_output(self, path: str):
        """A (multipart) upload, which is atomic anyway."""
        with self.filesystem.open_output_stream(path) as stream:
            yield stream

    def any_file_under(self, path: str) -> bool:
        """One request."""
        bucket, key = split_path(path)
        page = self.client.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        return bool(page.get("KeyCount"))

    def remove_folder(self, path: str) -> None:
        """Every key under the prefix (no marker is left)."""
        client = self.client
        bucket, key = split_path(path)
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
            objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if objects:
                client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})

    @staticmethod
    def _folder(path: str) -> tuple[str, str]:
        """(bucket, the key prefix of the folder ``path``): "" for a bucket, else ending in "/"."""
        bucket, key = split_path(path)
        return bucket, key if not key or key.endswith("/") else key + "/"

    def subfolders(self, path: str) -> list[str]:
        bucket, prefix = self._folder(path)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        return [p["Prefix"][len(prefix):] for page in pages for p in page.get("CommonPrefixes", [])]

    def list_files(self, path: str, recursive: bool = True) -> Iterator[ListedFile]:
        """In key order, 1,000 keys per request."""
        bucket, prefix = self._folder(path)
        args = dict(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000})
        if not recursive:
            args["Delimiter"] = "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(**args):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    yield ListedFile(obj["Key"][len(prefix):], obj["Size"], obj["LastModified"].timestamp())
