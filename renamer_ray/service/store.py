"""Jobs in S3: uploads, the job record, manifests, presigned downloads (boto3 over HTTP)."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from botocore.exceptions import ClientError

from renamer_ray.config import Settings
from renamer_ray.io.storage import s3_client
from renamer_ray.manifest import FileRecord, parse_lines
from renamer_ray.service.jobs import JobFile, JobRecord, now, record_key


class JobStore:
    def __init__(self, settings: Settings):
        self.s3 = s3_client(settings.aws_region, settings.aws_endpoint_url)
        self.in_bucket, self.out_bucket = settings.s3_in_bucket, settings.s3_out_bucket
        self.expires = settings.url_expires_seconds

    # The record -------------------------------------------------------------------------------
    def save(self, record: JobRecord) -> JobRecord:
        record.updated_at = now()
        self.s3.put_object(Bucket=self.out_bucket, Key=record.record_key, Body=record.model_dump_json().encode(),
                           ContentType="application/json")
        return record

    def load(self, namespace: str, job_id: str) -> JobRecord | None:
        try:
            body = self.s3.get_object(Bucket=self.out_bucket, Key=record_key(namespace, job_id))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return JobRecord.model_validate_json(body)

    # Files ------------------------------------------------------------------------------------
    def put_input(self, record: JobRecord, file: JobFile, body: BinaryIO, content_type: str) -> None:
        self.s3.upload_fileobj(body, self.in_bucket, f"{record.input_prefix}/{file.key}",
                               ExtraArgs={"ContentType": content_type})

    def input_uri(self, record: JobRecord) -> str:
        return f"s3://{self.in_bucket}/{record.input_prefix}"

    def output_uri(self, record: JobRecord) -> str:
        return f"s3://{self.out_bucket}/{record.output_prefix}"

    def write_manifest(self, record: JobRecord, records: list[FileRecord]) -> None:
        body = "".join(r.to_json() + "\n" for r in records).encode("utf-8")
        self.s3.put_object(Bucket=self.out_bucket, Key=record.manifest_key, Body=body,
                           ContentType="application/x-ndjson")

    def manifest(self, record: JobRecord) -> list[FileRecord]:
        body = self.s3.get_object(Bucket=self.out_bucket, Key=record.manifest_key)["Body"].read()
        return list(parse_lines(body.decode("utf-8")))

    def output_key(self, record: JobRecord, name: str) -> str:
        return f"{record.output_prefix}/{name}"

    def download_url(self, key: str, filename: str) -> str:
        """A presigned GET (http(s), never s3://) that saves under ``filename``."""
        return self.s3.generate_presigned_url(
            "get_object", ExpiresIn=self.expires,
            Params={"Bucket": self.out_bucket, "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"'})

    def stream(self, key: str, chunk: int = 1024 * 1024) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=self.out_bucket, Key=key)["Body"]
        yield from body.iter_chunks(chunk)

    def ping(self) -> None:
        for bucket in (self.in_bucket, self.out_bucket):
            self.s3.head_bucket(Bucket=bucket)

