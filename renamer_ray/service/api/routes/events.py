"""Following a job: Server-Sent Events while it runs, and a ZIP of its renamed files."""

from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from zipstream import ZIP_STORED, ZipStream

from renamer_ray.service.api.deps import EventStreamSlot, JobDep, SettingsDep, StoreDep
from renamer_ray.service.views import Problem, job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
EVENTS_POLL_SECONDS = 0.25
EVENTS_MAX_SECONDS = 600          # a stream holds a replica slot: clients reconnect after this
SILENCE_HEADER = "X-Event-Silence-Seconds"

ONE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "enum": ["progress", "reconnect", "done"]},
    "data": {"type": "string", "description": "JSON: the job's counts and files; `done`: as GET /v1/jobs/{id}"}}}
EVENTS_RESPONSES = {
    200: {"content": {"text/event-stream": {"schema": ONE_EVENT}}, "headers": {SILENCE_HEADER: {
        "description": "EVENT_SILENCE_SECONDS: a stream silent this long was dropped; follow the job again",
        "schema": {"type": "number"}}}},
    429: {"model": Problem, "description": "MAX_EVENT_STREAMS_PER_KEY streams of this API key are open already; "
                                           "see Retry-After"},
}


@router.get("/{job_id}/events", responses=EVENTS_RESPONSES)
async def events(record: JobDep, request: Request, store: StoreDep, settings: SettingsDep,
                 _: EventStreamSlot) -> StreamingResponse:
    """Server-Sent Events: `progress` whenever the counts change, then one `done` with the full
    status (as GET /v1/jobs/{id}) and the stream ends. A finished job replays `done` at once. A
    stream lasts at most EVENTS_MAX_SECONDS: then a `reconnect` event ends it, and the client
    follows again. Between events a keep-alive comment comes after a third of EVENT_SILENCE_SECONDS
    (the X-Event-Silence-Seconds header): a stream silent for that long was dropped on the way,
    and the client follows again. One API key holds at most MAX_EVENT_STREAMS_PER_KEY open streams
    per API replica; one more is 429 with Retry-After."""
    keepalive_seconds = settings.event_silence_seconds / 3

    async def stream() -> AsyncIterator[str]:
        current, last, quiet, lived = record, None, 0.0, 0.0
        while not current.finished:
            if lived >= EVENTS_MAX_SECONDS:
                yield f"event: reconnect\ndata: {json.dumps(current.progress())}\n\n"
                return
            if (now := current.progress()) != last:
                yield f"event: progress\ndata: {json.dumps(now)}\n\n"
                last, quiet = now, 0.0
            elif quiet >= keepalive_seconds:
                yield ": keep-alive\n\n"
                quiet = 0.0
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENTS_POLL_SECONDS)
            quiet += EVENTS_POLL_SECONDS
            lived += EVENTS_POLL_SECONDS
            current = await run_in_threadpool(store.load, current.namespace, current.job_id) or current
        final = await run_in_threadpool(job_view, store, current)
        yield f"event: done\ndata: {final.model_dump_json(exclude_none=True)}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                      SILENCE_HEADER: f"{settings.event_silence_seconds:g}"})


@router.get("/{job_id}/archive", responses={200: {"content": {"application/zip": {"schema": {"type": "string",
                                                                                     "format": "binary"}}}}})
async def archive(record: JobDep, store: StoreDep) -> StreamingResponse:
    """A ZIP of every renamed file in its folder (`results[].output`), streamed as it is read from S3
    (never built in memory)."""
    if not record.finished:
        raise HTTPException(409, f"job {record.job_id} is still {record.status}; the archive is ready when it finishes")
    renamed = ([r for r in await run_in_threadpool(store.manifest, record) if r.status == "ok"]
               if record.has_manifest else [])
    zs = ZipStream(compress_type=ZIP_STORED, sized=False)  # images are compressed already
    for r in renamed:
        zs.add(store.stream(store.output_key(record, r.output or r.name)), r.output or r.name)
    return StreamingResponse(iterate_in_threadpool(iter(zs)), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{record.job_id}.zip"'})
