"""Jobs: submit (with Idempotency-Key and callback_url), list, status, cancel."""

from __future__ import annotations

import posixpath
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from renamer_ray.naming import CASES, NamingStyle, NameTemplate, StyleError, TemplateError, content_type_for, extension_for
from renamer_ray.records.trust import MAX_RELATIVE_BYTES
from renamer_ray.service.api.deps import (JobDep, NamespaceDep, QueueDep, Services, SettingsDep, StoreDep,
                                         get_services)
from renamer_ray.service.jobs import JobFile, JobRecord, SkippedFile, Trigger, new_job_id
from renamer_ray.service.uploads import decimal, read_uploads
from renamer_ray.service.views import Accepted, JobList, JobView, Problem, job_summary, job_view
from renamer_ray.service.webhooks import CallbackRefused, check_url, secret_for


class SharedPathRoute(APIRoute):
    """A route of this router whose 405 names in ``Allow`` the methods of all its routes of the same
    path: Starlette's names only the first route's (``GET`` for ``/v1/jobs/{job_id}``, whose DELETE
    is another route)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allowed = {method for route in router.routes if route.path_format == self.path_format
                       for method in route.methods}
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=SharedPathRoute)
CURSOR = r"^[0-9]{14}-jr_[0-9a-f]{16}$"
MAX_IDEMPOTENCY_KEY = 255
MAX_FIRST_INDEX = 1_000_000_000
RETRY_AFTER_SECONDS = 5

SUBMIT_ERRORS = {status: {"model": Problem, "description": description} for status, description in {
    400: "a malformed multipart body, or no file part named `files`",
    413: "over MAX_FILES_PER_JOB, MAX_FILE_BYTES or MAX_JOB_BYTES: refused while the body arrives",
    415: "not multipart/form-data; or no file is a supported image (JPEG, PNG, WebP, TIFF, GIF, BMP, "
         "HEIC/HEIF); or `strict` is true and a file is not one. Otherwise files that are not images are "
         "skipped and listed in `skipped`",
    422: "an invalid field (`user_prompt`, `template`, `case`, `max_chars`, `max_words`, `language`, "
         "`first_index`, `callback_url`, `strict`) or Idempotency-Key; `paths` not one per file, or a path that is "
         "absolute, has a `..` segment, a backslash, a control character or is over 512 bytes",
}.items()}
LIST_ERRORS = {422: {"model": Problem, "description": "`limit` outside 1-100, or a `cursor` that is not a "
                                                      "`next_cursor` this API gave"}}

FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"},
                  "description": "the images (repeat the field); files that are not images are skipped and "
                                 "listed in the job's `skipped` with the reason, unless `strict`"},
        "paths": {"type": "array", "items": {"type": "string", "maxLength": MAX_RELATIVE_BYTES,
                                             "example": "Phone export/2024/IMG_001.HEIC"},
                  "description": "each file's path relative to the folder it was chosen from (repeat the field, "
                                 "one per file in the order of `files`; empty for a file at the top; browsers give "
                                 "it as `webkitRelativePath`): the renamed file goes into the same folder of the "
                                 "job's output and ZIP (`results[].output`). Absent: every file at the top. "
                                 "Normalised (`a//b/./c` becomes `a/b/c`); a path that is absolute or has a `..` "
                                 "segment is refused (422). The file's own name is `files`' filename"},
        "strict": {"type": "boolean", "default": False,
                   "description": "true: refuse the whole upload (415) if any file is not an image"},
        "user_prompt": {"type": "string"},
        "template": {"type": "string", "example": "{date}-{subject}"},
        "case": {"type": "string", "enum": list(CASES), "description": "how names are written (default NAME_CASE)"},
        "max_chars": {"type": "integer", "minimum": 1, "maximum": 120, "description": "default NAME_MAX_CHARS"},
        "max_words": {"type": "integer", "minimum": 1, "maximum": 20, "description": "default NAME_MAX_WORDS"},
        "language": {"type": "string", "maxLength": 40, "example": "French",
                     "description": "names in this language, transliterated to ASCII (default NAME_LANGUAGE)"},
        "callback_url": {"type": "string", "format": "uri",
                         "description": "https URL POSTed the final job view, signed (Standard Webhooks: "
                                        "webhook-id, webhook-timestamp, webhook-signature)"},
        "first_index": {"type": "integer", "minimum": 1, "maximum": MAX_FIRST_INDEX, "default": 1,
                        "description": "{index} of the first file, the others following in upload order: a "
                                       "folder sent as several jobs keeps counting"}}}}}}}


def _style(fields: dict[str, str], settings) -> NamingStyle:
    """The naming style from the form; an empty or absent field takes its NAME_* setting."""
    wished = {name: value.strip() for name in ("case", "max_chars", "max_words", "language")
              if (value := fields.get(name)) is not None and value.strip()}
    try:
        return settings.naming_style.merged(**wished)
    except StyleError as exc:
        raise HTTPException(422, str(exc)) from None


def _check_fields(fields: dict[str, str], settings, ns: str | None = None) -> tuple[str | None, str, str | None]:
    """(prompt, template, callback_url) from the form, or 422 saying what is wrong. Blocks (the
    callback's host is resolved): run it in a thread."""
    prompt = (fields.get("user_prompt") or "").strip() or None
    if prompt and len(prompt) > settings.max_prompt_chars:
        raise HTTPException(422, f"user_prompt is too long: at most {settings.max_prompt_chars} characters")
    template = (fields.get("template") or "").strip() or settings.name_template
    try:
        NameTemplate.parse(template)
    except TemplateError as exc:
        raise HTTPException(422, f"template: {exc}") from None
    callback = (fields.get("callback_url") or "").strip() or None
    if callback:
        if not secret_for(settings, ns):
            raise HTTPException(422, "callback_url: callbacks are not configured on this deployment "
                                     "(WEBHOOK_SECRET or WEBHOOK_SECRETS)")
        try:
            check_url(callback, allow_private=settings.callback_allow_private,
                      allow_http=settings.callback_allow_http)
        except CallbackRefused as exc:
            raise HTTPException(422, str(exc)) from None
        except ValueError as exc:  # urllib's own words for a malformed URL ("Invalid IPv6 URL", a bad port)
            raise HTTPException(422, f"callback_url is not a valid URL: {exc}") from None
    return prompt, template, callback


def _first_index(fields: dict[str, str]) -> int:
    value = (fields.get("first_index") or "").strip() or "1"
    number = decimal(value)  # ASCII digits only: "²" and other scripts' digits are not numbers here
    if number is None or not 1 <= number <= MAX_FIRST_INDEX:
        raise HTTPException(422, f"first_index must be a whole number from 1 to {MAX_FIRST_INDEX:,} in ASCII digits, "
                                 f"not {value[:40]!r}")
    return number


def _idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY or not value.isprintable():
        raise HTTPException(422, f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters")
    return value


def _accepted(record: JobRecord) -> Accepted:
    return Accepted(job_id=record.job_id, status=record.status, count=record.count, skipped=record.skipped)


def _replay(response: Response, record: JobRecord) -> Accepted:
    response.headers["Idempotent-Replayed"] = "true"
    return _accepted(record)


async def _replay_queued(response: Response, record: JobRecord, store, queue) -> Accepted:
    """A repeat of a request that made ``record``. The first request may have died (its replica
    killed) after saving the job but before queuing and listing it, the last steps: then the job is
    still queued and unlisted, and would wait for ever, so it is queued and listed now (a second
    message is harmless: the driver runs a job once, however often its message arrives). Or it died
    after queuing, before listing: the job may have run already, and is listed now."""
    if record.status == "queued" and not await run_in_threadpool(store.exists, record.in_flight_key):
        await run_in_threadpool(queue.send, record.namespace, record.job_id)
        await run_in_threadpool(store.add_to_index, record)
    elif not await run_in_threadpool(store.exists, record.index_key):
        await run_in_threadpool(store.add_to_listing, record)
    return _replay(response, record)


@router.post("/rename", response_model=Accepted, response_model_exclude_none=True, openapi_extra=FORM,
             responses=SUBMIT_ERRORS)
async def submit(request: Request, response: Response, ns: NamespaceDep, settings: SettingsDep, store: StoreDep,
                 queue: QueueDep, services: Annotated[Services, Depends(get_services)],
                 idempotency_key: Annotated[str | None, Header()] = None) -> Accepted:
    """Upload images (form field `files`, repeatable; for a folder, each file's relative path in
    `paths`: the renamed files keep their folders) with an optional `user_prompt`, `template`,
    naming style (`case`, `max_chars`, `max_words`, `language`), `first_index` (the first file's
    `{index}`) and `callback_url`; answers at once with the queued job. Files that are not images
    are skipped and listed with their reason in `skipped` (`strict=true`: 415 instead). With an
    `Idempotency-Key` header, a repeat of the request by the same caller within 24 h returns the first
    job instead of making another (the repeat is checked like any request, not compared with the first)."""
    key = _idempotency_key(idempotency_key)
    first = None
    if key and (first_id := await run_in_threadpool(store.idempotent_job, ns, key)):
        first = await run_in_threadpool(store.load, ns, first_id)
    if first is None and (await run_in_threadpool(store.jobs_in_flight, ns, settings.max_jobs_in_flight)
                          >= settings.max_jobs_in_flight):
        raise HTTPException(429, f"too many jobs in flight: at most {settings.max_jobs_in_flight} unfinished jobs "
                                 "per API key; retry when some have finished",
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    uploads, fields = await read_uploads(request.headers.get("content-type", ""),
                                         request.headers.get("content-length"), request.stream(), services.limits)
    try:
        prompt, template, callback = await run_in_threadpool(_check_fields, fields, settings, ns)
        style, first_index = _style(fields, settings), _first_index(fields)
        if first is not None:
            return await _replay_queued(response, first, store, queue)
        images = [upload for upload in uploads if upload.skip_reason is None]
        record = JobRecord(job_id=new_job_id(), namespace=ns, count=len(images), user_prompt=prompt,
                           template=template, style=style, callback_url=callback, first_index=first_index,
                           skipped=[SkippedFile(original=upload.original, path=upload.path, reason=upload.skip_reason)
                                    for upload in uploads if upload.skip_reason is not None])
        for number, upload in enumerate(images, start=1):
            extension = extension_for(upload.format) if upload.format else "bin"
            stored_as = posixpath.join(upload.folder, f"{number:04d}.{extension}")  # outputs land in its folder
            record.files.append(JobFile(original=upload.original, key=stored_as, size=upload.size, path=upload.path))
            await run_in_threadpool(store.put_input, record, record.files[-1], upload.body,
                                    content_type_for(upload.format) if upload.format else "application/octet-stream")
    finally:
        for upload in uploads:
            upload.body.close()
    await run_in_threadpool(store.save, record)
    if key and (holder := await run_in_threadpool(store.claim_idempotency, ns, key, record.job_id)) != record.job_id:
        # A concurrent request with the same key won: this copy is dropped before it is queued or
        # listed (its record stays, unreferenced: the service's role may not delete job records).
        if (winner := await run_in_threadpool(store.load, ns, holder)) is not None:
            return await _replay_queued(response, winner, store, queue)
    # Queued, then listed: a job that is listed (its in-flight marker written) is always queued, which
    # is what a repeated request checks (_replay_queued).
    await run_in_threadpool(queue.send, ns, record.job_id)
    await run_in_threadpool(store.add_to_index, record)
    return _accepted(record)


@router.get("", response_model=JobList, response_model_exclude_none=True, responses=LIST_ERRORS)
async def list_jobs(ns: NamespaceDep, store: StoreDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    cursor: Annotated[str | None, Query(
                        pattern=CURSOR, description="the `next_cursor` of the previous page (14 digits, "
                                                    "'-', a job id); absent for the first page")] = None) -> JobList:
    """The caller's jobs, newest first; follow `next_cursor` for older ones."""
    records, next_cursor = await run_in_threadpool(store.list_jobs, ns, limit, cursor)
    return JobList(jobs=[job_summary(r) for r in records], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobView, response_model_exclude_none=True)
async def status(record: JobDep, store: StoreDep) -> JobView:
    """Status and counts; when finished, one result per file with a download URL."""
    return await run_in_threadpool(job_view, store, record)


@router.delete("/{job_id}", response_model=JobView, response_model_exclude_none=True, status_code=202)
async def cancel(record: JobDep, store: StoreDep) -> JobView:
    """Cancel: a queued job never runs (status `cancelled` at once); a running job stops at its
    next batch (status `cancelled` within seconds; files renamed before stay in the manifest)."""
    if record.finished:
        raise HTTPException(409, f"job {record.job_id} has already finished ({record.status})")
    await run_in_threadpool(store.request_cancel, record)
    if record.status == "queued":  # a running job is the driver's to stop
        record.handle_transition(Trigger.CANCELLED)
        await run_in_threadpool(store.save, record)
    return await run_in_threadpool(job_view, store, record)
