"""Dependencies the routes declare: settings, the job store and queue, the caller's namespace, the
job a path names, the driver's status. Built once per app (``app.state.services``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, AsyncIterator, Awaitable, Callable

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from renamer_ray.config import Settings
from renamer_ray.io.queue import JobQueue
from renamer_ray.service.api.limits import KeyedLimiter
from renamer_ray.service.jobs import JOB_ID, JobRecord
from renamer_ray.service.store import JobStore
from renamer_ray.service.uploads import Limits

DriverStatus = Callable[[], Awaitable[dict]]
# One image for the namer: {"image": its bytes, "prompt", "style"} → {"raw", "error", "prompt_tokens",
# "completion_tokens"} (and "unusable": True when the namer could not decode it). The namer decodes (service/namer.py): never the API's process.
AskNamer = Callable[[dict], Awaitable[dict]]


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: JobStore
    queue: JobQueue | None
    keys: dict[str, str]              # API key → namespace
    limits: Limits
    chats: KeyedLimiter               # chat completions running, per namespace (MAX_CHAT_CONCURRENCY_PER_KEY)
    event_streams: KeyedLimiter       # open event streams, per namespace (MAX_EVENT_STREAMS_PER_KEY)
    driver_status: DriverStatus | None
    ask_namer: AskNamer | None = None  # the warm namer, for /v1/chat/completions


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_settings(services: Annotated[Services, Depends(get_services)]) -> Settings:
    return services.settings


def get_store(services: Annotated[Services, Depends(get_services)]) -> JobStore:
    return services.store


def get_queue(services: Annotated[Services, Depends(get_services)]) -> JobQueue:
    if services.queue is None:
        raise HTTPException(503, "the job queue is not configured (SQS_QUEUE_URL)")
    return services.queue


# The keys of API_KEYS, as OpenAPI security schemes (so clients and Swagger's "Authorize" know them):
# in X-API-Key for every route, or as a Bearer token where OpenAI clients call (chat, models).
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from API_KEYS")
BEARER = HTTPBearer(auto_error=False, description="a key from API_KEYS, as OpenAI clients send it")
ApiKeyDep = Annotated[str | None, Security(API_KEY)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def caller_namespace(services: Services, *keys: str | None) -> str | None:
    """The one key check of every route: the namespace of the first of ``keys`` that API_KEYS knows;
    with no keys configured, the one open namespace (DEFAULT_NAMESPACE); None when none is known."""
    if not services.keys:
        return services.settings.default_namespace
    return next((services.keys[key] for key in keys if key and key in services.keys), None)


def get_namespace(services: Annotated[Services, Depends(get_services)], x_api_key: ApiKeyDep) -> str:
    """The caller's namespace, picked by X-API-Key (401 for a missing or unknown key)."""
    if (namespace := caller_namespace(services, x_api_key)) is None:
        raise HTTPException(401, "missing or unknown API key: send it in the X-API-Key header")
    return namespace


async def get_driver_status(services: Annotated[Services, Depends(get_services)]) -> dict | str:
    """The queue driver's own account of itself (``Driver.status``), or why it cannot be had."""
    if services.driver_status is None:
        return "no queue driver is connected to this API"
    try:
        return await services.driver_status()
    except Exception as exc:  # a dead, restarting or unreachable driver: say so, never raise
        return f"not answering: {type(exc).__name__}: {exc}"[:300]


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
NamespaceDep = Annotated[str, Depends(get_namespace)]


async def get_job(job_id: str, ns: NamespaceDep, store: StoreDep) -> JobRecord:
    """The caller's job named in the path; another namespace's job looks exactly like a missing one."""
    record = await run_in_threadpool(store.load, ns, job_id) if JOB_ID.match(job_id) else None
    if record is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return record


JobDep = Annotated[JobRecord, Depends(get_job)]


async def event_stream_slot(services: Annotated[Services, Depends(get_services)], ns: NamespaceDep
                            ) -> AsyncIterator[None]:
    """One of the caller's MAX_EVENT_STREAMS_PER_KEY event-stream slots, held until the stream's
    response has ended (``scope="request"``), or 429 with Retry-After when all are open."""
    with services.event_streams.slot(ns):
        yield


EventStreamSlot = Annotated[None, Depends(event_stream_slot, scope="request")]
