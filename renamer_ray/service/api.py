"""The HTTP API (FastAPI). Served by Ray Serve (``ingress.py``); also runs under any ASGI server."""

from __future__ import annotations

import asyncio
import json
import posixpath
from importlib.resources import files
from typing import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from zipstream import ZIP_STORED, ZipStream

from renamer_ray.config import Settings
from renamer_ray.naming import NameTemplate, TemplateError, content_type_for, extension_for
from renamer_ray.service.jobs import JOB_ID, JobFile, JobRecord, new_job_id
from renamer_ray.service.queue import JobQueue
from renamer_ray.service.store import JobStore
from renamer_ray.service.uploads import Limits, UploadError, read_uploads

PAGE = files("renamer_ray.service") / "static" / "index.html"
EVENTS_POLL_SECONDS = 0.5
EVENTS_KEEPALIVE_SECONDS = 15


class Accepted(BaseModel):
    job_id: str
    status: str
    count: int


class FileResult(BaseModel):
    """One file of a finished job: the manifest's record, minus storage URIs, plus a download URL."""

    original: str
    name: str | None = None
    status: str
    error: str | None = None
    raw: str | None = None
    url: str | None = None


class FileProgress(BaseModel):
    original: str
    state: str                        # waiting, named, renamed, failed


class JobView(BaseModel):
    job_id: str
    status: str
    count: int
    named: int
    done: int
    failed: int
    error: str | None = None
    files: list[FileProgress]         # per-file progress, in upload order
    created_at: str
    updated_at: str
    results: list[FileResult] | None = None
    manifest_url: str | None = None
    archive_url: str | None = None


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="renamer_ray", version="0.1.0",
                  description="Strict, meaningful image file names from a vision-language model.")
    store = JobStore(settings)
    queue = JobQueue(settings) if settings.sqs_queue_url else None
    keys = settings.key_namespaces
    limits = Limits(max_files=settings.max_files_per_job, max_file_bytes=settings.max_file_bytes,
                    max_job_bytes=settings.max_job_bytes, max_text_bytes=settings.max_prompt_chars * 4 + 1024)

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    def namespace(request: Request) -> str:
        """No keys configured: one open namespace. With keys: X-API-Key picks the namespace."""
        if not keys:
            return settings.default_namespace
        key = request.headers.get("x-api-key")
        if key not in keys:
            raise HTTPException(401, "missing or unknown API key: send it in the X-API-Key header")
        return keys[key]

    async def job_for(job_id: str, ns: str) -> JobRecord:
        record = await run_in_threadpool(store.load, ns, job_id) if JOB_ID.match(job_id) else None
        if record is None:  # another namespace's job looks exactly like a missing one
            raise HTTPException(404, f"no job {job_id!r}")
        return record

    @app.get("/health", tags=["ops"])
    async def health() -> dict:
        return {"ok": True}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        checks = {}
        for name, ping in (("s3", store.ping), ("sqs", queue.ping if queue else None)):
            try:
                if ping is None:
                    raise RuntimeError("SQS_QUEUE_URL is not set")
                await run_in_threadpool(ping)
                checks[name] = "ok"
            except Exception as exc:  # any failure means not ready; say which and why
                checks[name] = f"unreachable: {exc}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ok": ok, **checks}, status_code=200 if ok else 503)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.post("/v1/jobs/rename", response_model=Accepted, tags=["jobs"],
              openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                  "type": "object", "required": ["files"], "properties": {
                      "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                      "user_prompt": {"type": "string", "maxLength": settings.max_prompt_chars},
                      "template": {"type": "string", "example": "{date}-{subject}"}}}}}}})
    async def submit(request: Request, ns: str = Depends(namespace)) -> Accepted:
        """Upload images (form field `files`, repeatable) with an optional `user_prompt` and
        `template`; answers at once with the queued job."""
        if queue is None:
            raise HTTPException(503, "the job queue is not configured (SQS_QUEUE_URL)")
        uploads, fields = await read_uploads(request.headers.get("content-type", ""),
                                             request.headers.get("content-length"), request.stream(), limits)
        try:
            prompt = (fields.get("user_prompt") or "").strip() or None
            if prompt and len(prompt) > settings.max_prompt_chars:
                raise HTTPException(422, f"user_prompt is too long: at most {settings.max_prompt_chars} characters")
            template = (fields.get("template") or "").strip() or settings.name_template
            try:
                NameTemplate.parse(template)
            except TemplateError as exc:
                raise HTTPException(422, f"template: {exc}") from None
            record = JobRecord(job_id=new_job_id(), namespace=ns, count=len(uploads), user_prompt=prompt,
                               template=template)
            for number, upload in enumerate(uploads, start=1):
                extension = extension_for(upload.format) if upload.format else "bin"
                record.files.append(JobFile(original=upload.original, key=f"{number:04d}.{extension}", size=upload.size))
                await run_in_threadpool(store.put_input, record, record.files[-1], upload.body,
                                        content_type_for(upload.format) if upload.format else "application/octet-stream")
        finally:
            for upload in uploads:
                upload.body.close()
        await run_in_threadpool(store.save, record)
        await run_in_threadpool(queue.send, ns, record.job_id)
        return Accepted(job_id=record.job_id, status=record.status, count=record.count)

    def view(record: JobRecord) -> JobView:
        out = JobView(**record.progress(), created_at=record.created_at, updated_at=record.updated_at)
        if record.has_manifest:
            results = []
            for r in store.manifest(record):
                url = store.download_url(store.output_key(record, r.name), r.name) if r.status == "ok" else None
                results.append(FileResult(original=r.original or posixpath.basename(r.source), name=r.name,
                                          status=r.status, error=r.error, raw=r.raw, url=url))
            out.results = results
            out.manifest_url = store.download_url(record.manifest_key, "manifest.jsonl")
            out.archive_url = f"/v1/jobs/{record.job_id}/archive"
        return out

    @app.get("/v1/jobs/{job_id}", response_model=JobView, response_model_exclude_none=True, tags=["jobs"])
    async def status(job_id: str, ns: str = Depends(namespace)) -> JobView:
        """Status and counts; when finished, one result per file with a download URL."""
        return await run_in_threadpool(view, await job_for(job_id, ns))

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"])
    async def events(job_id: str, request: Request, ns: str = Depends(namespace)) -> StreamingResponse:
        """Server-Sent Events: `progress` whenever the counts change, then one `done` with the full
        status (as GET /v1/jobs/{id}) and the stream ends. A finished job replays `done` at once."""
        record = await job_for(job_id, ns)

        async def stream() -> AsyncIterator[str]:
            nonlocal record
            last, quiet = None, 0.0
            while not record.finished:
                if (now := record.progress()) != last:
                    yield f"event: progress\ndata: {json.dumps(now)}\n\n"
                    last, quiet = now, 0.0
                elif quiet >= EVENTS_KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                if await request.is_disconnected():
                    return
                await asyncio.sleep(EVENTS_POLL_SECONDS)
                quiet += EVENTS_POLL_SECONDS
                record = await run_in_threadpool(store.load, ns, job_id) or record
            final = await run_in_threadpool(view, record)
            yield f"event: done\ndata: {final.model_dump_json(exclude_none=True)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/v1/jobs/{job_id}/archive", tags=["jobs"])
    async def archive(job_id: str, ns: str = Depends(namespace)) -> StreamingResponse:
        """A ZIP of every renamed file, streamed as it is read from S3 (never built in memory)."""
        record = await job_for(job_id, ns)
        if not record.finished:
            raise HTTPException(409, f"job {job_id} is still {record.status}; the archive is ready when it finishes")
        renamed = ([r for r in await run_in_threadpool(store.manifest, record) if r.status == "ok"]
                   if record.has_manifest else [])
        zs = ZipStream(compress_type=ZIP_STORED, sized=False)  # images are compressed already
        for r in renamed:
            zs.add(store.stream(store.output_key(record, r.name)), r.name)
        return StreamingResponse(iterate_in_threadpool(iter(zs)), media_type="application/zip",
                                 headers={"Content-Disposition": f'attachment; filename="{job_id}.zip"'})

    return app
