"""Jobs in S3: uploads, the job record, manifests, presigned downloads (through the S3 adapter)."""

from __future__ import annotations

import hashlib
import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import BinaryIO, Iterator

from renamer_ray.config import Settings
from renamer_ray.io.storage import S3Storage, StorageConfig
from renamer_ray.records.manifest import FileRecord, parse_lines
from renamer_ray.service.jobs import (JOB_ID, JobFile, JobRecord, in_flight_prefix, index_prefix, now,
                                      record_key)

IDEMPOTENCY_WINDOW = timedelta(hours=24)


class JobStore:
    def __init__(self, settings: Settings):
        self.storage = S3Storage(StorageConfig.of(settings))
        self.in_bucket, self.out_bucket = settings.s3_in_bucket, settings.s3_out_bucket
        self.expires = settings.url_expires_seconds

    def _out(self, key: str) -> str:
        """The storage path of a key in the output bucket."""
        return f"{self.out_bucket}/{key}"

    # The record -------------------------------------------------------------------------------
    def save(self, record: JobRecord) -> JobRecord:
        record.updated_at = now()
        if record.finished and record.finished_at is None:
            record.finished_at = record.updated_at
        self.storage.put(self._out(record.record_key), record.model_dump_json().encode(), "application/json")
        if record.finished:
            self.storage.delete(self._out(record.in_flight_key))
        return record

    def load(self, namespace: str, job_id: str) -> JobRecord | None:
        body = self._get_if_exists(record_key(namespace, job_id))
        return JobRecord.model_validate_json(body) if body is not None else None

    def load_many(self, namespace: str, ids: list[str]) -> list[JobRecord | None]:
        """The records of ``ids``, read in parallel; None for a missing record or a key that is no job id."""
        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(lambda job_id: self.load(namespace, job_id) if JOB_ID.match(job_id) else None, ids))

    def _get_if_exists(self, key: str) -> bytes | None:
        return self.storage.get_if_exists(self._out(key))

    def exists(self, key: str) -> bool:
        return self.storage.head(self._out(key)) is not None

    # Listing, newest first ----------------------------------------------------------------------
    def add_to_index(self, record: JobRecord) -> None:
        """List the new job, and count it in flight until it is finished (``save`` removes that)."""
        self.storage.put(self._out(record.in_flight_key), b"")
        self.add_to_listing(record)

    def add_to_listing(self, record: JobRecord) -> None:
        """List the job (``GET /v1/jobs``) without counting it in flight."""
        self.storage.put(self._out(record.index_key), b"")

    def list_jobs(self, namespace: str, limit: int, cursor: str | None = None) -> tuple[list[JobRecord], str | None]:
        """Up to ``limit`` of the namespace's jobs, newest first, and the cursor of the next page."""
        names, truncated = self.storage.list_page(self._out(index_prefix(namespace)), limit, after=cursor)
        ids = [name.rsplit("-", 1)[-1] for name in names]
        records = self.load_many(namespace, ids)
        more = truncated and names
        return [r for r in records if r is not None], (names[-1] if more else None)

    def jobs_in_flight(self, namespace: str, limit: int) -> int:
        """Unfinished jobs, up to ``limit``: one LIST of the in-flight markers. Only at the limit are
        the marked records read, and markers a crash left behind (of finished jobs) removed."""
        prefix = in_flight_prefix(namespace)
        ids, _ = self.storage.list_page(self._out(prefix), limit)
        if len(ids) < limit:
            return len(ids)
        records = self.load_many(namespace, ids)
        stale = [job_id for job_id, record in zip(ids, records) if record is None or record.finished]
        for job_id in stale:
            self.storage.delete(self._out(prefix + job_id))
        return len(ids) - len(stale)

    # Cancellation -------------------------------------------------------------------------------
    def request_cancel(self, record: JobRecord) -> None:
        self.storage.write_once(self._out(record.cancel_key), now().encode())

    def cancel_requested(self, record: JobRecord) -> bool:
        return self.exists(record.cancel_key)

    # Idempotency keys ---------------------------------------------------------------------------
    @staticmethod
    def _idempotency_key(namespace: str, key: str) -> str:
        return f"{namespace}/jobs/_idempotency/{hashlib.sha256(key.encode('utf-8')).hexdigest()}.json"

    def idempotent_job(self, namespace: str, key: str) -> str | None:
        """The job id a request with this Idempotency-Key made in the last 24 h, if any."""
        body = self._get_if_exists(self._idempotency_key(namespace, key))
        if body is None:
            return None
        entry = json.loads(body)
        if datetime.now(timezone.utc) - datetime.fromisoformat(entry["created_at"]) > IDEMPOTENCY_WINDOW:
            return None
        return entry["job_id"]

    def claim_idempotency(self, namespace: str, key: str, job_id: str) -> str:
        """Bind the key to ``job_id`` unless a live binding exists; returns the job id that holds."""
        object_key = self._idempotency_key(namespace, key)
        body = json.dumps({"job_id": job_id, "created_at": now()}).encode()
        if self.storage.write_once(self._out(object_key), body):
            return job_id
        held = self.idempotent_job(namespace, key)
        if held is not None:
            return held
        self.storage.put(self._out(object_key), body)  # an expired binding
        return job_id

    # Files ------------------------------------------------------------------------------------
    def put_input(self, record: JobRecord, file: JobFile, body: BinaryIO, content_type: str) -> None:
        self.storage.upload(body, f"{self.in_bucket}/{record.input_prefix}/{file.key}", content_type)

    def input_uri(self, record: JobRecord) -> str:
        return f"s3://{self.in_bucket}/{record.input_prefix}"

    def output_uri(self, record: JobRecord) -> str:
        return f"s3://{self.out_bucket}/{record.output_prefix}"

    def write_manifest(self, record: JobRecord, records: list[FileRecord]) -> None:
        body = "".join(r.to_json() + "\n" for r in records).encode("utf-8")
        self.storage.put(self._out(record.manifest_key), body, "application/x-ndjson")

    def manifest(self, record: JobRecord) -> list[FileRecord]:
        body = self.storage.get(self._out(record.manifest_key))
        return list(parse_lines(body.decode("utf-8")))

    def output_key(self, record: JobRecord, name: str) -> str:
        return f"{record.output_prefix}/{name}"

    # Previews: beside the outputs, not among them (the ZIP and the names' de-duplication see outputs only)
    def preview_key(self, record: JobRecord, file_key: str) -> str:
        """Where the decode stage writes the preview of the upload stored as ``file_key``."""
        return f"{record.prefix}/previews/{posixpath.splitext(file_key)[0]}.jpg"

    def preview_uri(self, record: JobRecord, file_key: str) -> str:
        return f"s3://{self.out_bucket}/{self.preview_key(record, file_key)}"

    def previews(self, record: JobRecord) -> set[str]:
        """The keys of the job's previews that were made (one LIST request per 1,000)."""
        prefix, keys, after = f"{record.prefix}/previews/", set(), None
        while True:
            names, more = self.storage.list_page(self._out(prefix), 1000, after=after)
            keys.update(prefix + name for name in names)
            if not (more and names):
                return keys
            after = names[-1]

    def download_url(self, key: str, filename: str) -> str:
        """A presigned GET (http(s), never s3://) that saves under ``filename``."""
        return self.storage.download_url(self._out(key), filename, self.expires)

    def stream(self, key: str, chunk: int = 1024 * 1024) -> Iterator[bytes]:
        yield from self.storage.stream(self._out(key), chunk)

    def ping(self) -> None:
        for bucket in (self.in_bucket, self.out_bucket):
            self.storage.check_bucket(bucket)

