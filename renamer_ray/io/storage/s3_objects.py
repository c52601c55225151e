"""Plain object requests on S3 for the job service (records, uploads, presigned downloads, buckets):
overwriting puts, gets, listing by key. The create-only copies the pipeline makes are ``s3.py``'s."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from botocore.exceptions import ClientError

MISSING = ("404", "NoSuchKey", "NotFound")   # what S3 answers for a key (or bucket) that does not exist
# What a server-side copy keeps of its source's headers (and checks: the ETag), as HeadObject or
# GetObject answer them.
COPIED_HEAD = ("ETag", "ContentLength", "ContentType", "Metadata", "CacheControl", "ContentDisposition",
               "ContentLanguage")


def split_path(path: str) -> tuple[str, str]:
    """"bucket/key" → (bucket, key)."""
    bucket, _, key = path.partition("/")
    return bucket, key


def head_if_exists(client, bucket: str, key: str) -> dict | None:
    """HeadObject's answer, or None when the key does not exist."""
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING:
            return None
        raise


class S3Objects:
    """The job service's requests, made with ``self.client`` (the boto3 client of the S3 storage this
    is a part of); paths are "bucket/key"."""

    def put(self, path: str, body: bytes, content_type: str | None = None, cache_control: str | None = None) -> None:
        """An overwriting PutObject; ``content_type`` and ``cache_control`` are the headers S3 serves it with."""
        extra = {"ContentType": content_type} if content_type else {}
        if cache_control:
            extra["CacheControl"] = cache_control
        bucket, key = split_path(path)
        self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def upload(self, stream: BinaryIO, path: str, content_type: str) -> None:
        """A managed (multipart when large) upload of a stream."""
        bucket, key = split_path(path)
        self.client.upload_fileobj(stream, bucket, key, ExtraArgs={"ContentType": content_type})

    def delete(self, path: str) -> None:
        bucket, key = split_path(path)
        self.client.delete_object(Bucket=bucket, Key=key)

    def head(self, path: str) -> dict | None:
        return head_if_exists(self.client, *split_path(path))

    def get(self, path: str) -> bytes:
        return self.get_object(path)[0]

    def get_object(self, path: str) -> tuple[bytes, dict]:
        """The object's bytes, and the headers of its answer that a copy of it carries over
        (``COPIED_HEAD``: what a HeadObject would have said)."""
        bucket, key = split_path(path)
        answer = self.client.get_object(Bucket=bucket, Key=key)
        return answer["Body"].read(), {name: answer[name] for name in COPIED_HEAD if name in answer}

    def get_if_exists(self, path: str) -> bytes | None:
        got = self.get_object_if_exists(path)
        return None if got is None else got[0]

    def get_object_if_exists(self, path: str) -> tuple[bytes, dict] | None:
        try:
            return self.get_object(path)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise

    def stream(self, path: str, chunk: int = 1024 * 1024) -> Iterator[bytes]:
        bucket, key = split_path(path)
        yield from self.client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(chunk)

    def list_page(self, path: str, limit: int, after: str | None = None) -> tuple[list[str], bool]:
        """Up to ``limit`` keys that start with ``path``'s key (a plain prefix, not a folder), in key
        order after the one named ``after``; each relative to that prefix. And whether more follow."""
        bucket, prefix = split_path(path)
        extra = {"StartAfter": prefix + after} if after else {}
        page = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=limit, **extra)
        return [item["Key"][len(prefix):] for item in page.get("Contents", [])], bool(page.get("IsTruncated"))

    def download_url(self, path: str, filename: str, expires: int) -> str:
        """A presigned GET (http(s), never s3://) that saves under ``filename``."""
        bucket, key = split_path(path)
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=expires,
            Params={"Bucket": bucket, "Key": key, "ResponseContentDisposition": f'attachment; filename="{filename}"'})

    def check_bucket(self, bucket: str) -> None:
        """Raises unless the bucket exists and is reachable."""
        self.client.head_bucket(Bucket=bucket)

    def create_bucket(self, bucket: str) -> None:
        """Idempotent: a bucket of ours that exists already is fine."""
        client = self.client
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
