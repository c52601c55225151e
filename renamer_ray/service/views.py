"""What the API returns about jobs (and what callbacks carry): declared once, they drive OpenAPI."""

from __future__ import annotations

import posixpath

from pydantic import BaseModel

from renamer_ray.service.jobs import JobRecord, SkippedFile
from renamer_ray.service.store import JobStore


class Problem(BaseModel):
    """Every error answer: a sentence saying what is wrong (FastAPI's own request validation gives
    a list of problems instead, one per field)."""

    detail: str | list[dict]


ERRORS = {status: {"model": Problem, "description": description} for status, description in {
    400: "a malformed request (no files, a broken multipart body)",
    401: "a missing or unknown API key",
    404: "no such job for this API key",
    409: "the job is in the wrong state for this (still running, or already finished)",
    413: "over a size limit (MAX_FILES_PER_JOB, MAX_FILE_BYTES, MAX_JOB_BYTES)",
    415: "not multipart/form-data, or a file that is not a supported image",
    422: "an invalid field or parameter",
    429: "MAX_JOBS_IN_FLIGHT unfinished jobs already; see Retry-After",
    503: "the job queue is not configured",
}.items()}


class Accepted(BaseModel):
    job_id: str
    status: str
    count: int                        # the images; files that are not images are in ``skipped``
    skipped: list[SkippedFile] = []


class FileResult(BaseModel):
    """One file of a finished job: the manifest's record, minus storage URIs, plus a download URL and
    a preview any browser can draw."""

    original: str
    name: str | None = None
    output: str | None = None         # where it is in the job's output and ZIP: its upload's folder (`paths`), name
    status: str
    error: str | None = None
    raw: str | None = None
    url: str | None = None
    preview: str | None = None        # presigned URL of a small JPEG of it, any format; absent if none was made


class FileProgress(BaseModel):
    original: str
    path: str | None = None           # its path relative to the chosen folder, as the upload's `paths` gave it
    state: str                        # waiting, named, renamed, failed, cancelled


class JobView(BaseModel):
    job_id: str
    status: str
    count: int
    named: int
    done: int
    failed: int
    cancelled: int = 0
    error: str | None = None
    files: list[FileProgress]         # per-file progress, in upload order
    skipped: list[SkippedFile] = []   # uploads that are not images, with why: never stored nor named
    created_at: str
    updated_at: str
    started_at: str | None = None     # the latest attempt's start; absent while queued
    finished_at: str | None = None
    results: list[FileResult] | None = None
    manifest_url: str | None = None
    archive_url: str | None = None


class JobSummary(BaseModel):
    """One line of ``GET /v1/jobs``."""

    job_id: str
    status: str
    count: int
    done: int
    failed: int
    created_at: str
    updated_at: str


class JobList(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None = None    # pass as ?cursor= for the next page; absent on the last page


def job_view(store: JobStore, record: JobRecord) -> JobView:
    """Status and per-file progress; when finished, one result per file with a download URL and, where
    the decode stage made one, a preview URL."""
    out = JobView(**record.progress(), created_at=record.created_at, updated_at=record.updated_at,
                  started_at=record.started_at, finished_at=record.finished_at)
    if record.has_manifest:
        results, uploads, previews = [], store.input_uri(record) + "/", store.previews(record)
        for r in store.manifest(record):
            url = (store.download_url(store.output_key(record, r.output or r.name), r.name)
                   if r.status == "ok" else None)
            preview_key = store.preview_key(record, r.source.removeprefix(uploads))
            preview = store.download_url(preview_key, "preview.jpg") if preview_key in previews else None
            results.append(FileResult(original=r.original or posixpath.basename(r.source), name=r.name,
                                      output=r.output, status=r.status, error=r.error, raw=r.raw, url=url, preview=preview))
        out.results = results
        out.manifest_url = store.download_url(record.manifest_key, "manifest.jsonl")
        out.archive_url = f"/v1/jobs/{record.job_id}/archive"
    return out


def job_summary(record: JobRecord) -> JobSummary:
    return JobSummary(job_id=record.job_id, status=record.status, count=record.count, done=record.done,
                      failed=record.failed, created_at=record.created_at, updated_at=record.updated_at)
