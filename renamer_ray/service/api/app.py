"""Build the FastAPI app: the services it needs go on ``app.state``; routes reach them through the
dependencies in ``deps.py`` (which tests replace with ``app.dependency_overrides``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse

from starlette.exceptions import HTTPException

from renamer_ray.config import Settings
from renamer_ray.io.queue import JobQueue
from renamer_ray.service.api.deps import AskNamer, DriverStatus, Services
from renamer_ray.service.api.guards import RefuseCrossSiteWrites, TrustedHostMiddleware
from renamer_ray.service.api.limits import KeyedLimiter
from renamer_ray.service.api.openai_shapes import ChatRefused
from renamer_ray.service.api.routes import chat, events, jobs, models, ops, page
from renamer_ray.service.store import JobStore
from renamer_ray.service.uploads import Limits, UploadError
from renamer_ray.service.views import ERRORS

CHAT_RETRY_AFTER_SECONDS = 2        # a chat completion takes a second or two
EVENT_STREAM_RETRY_AFTER_SECONDS = 10  # a stream lasts until its job ends (at most EVENTS_MAX_SECONDS)


def create_app(settings: Settings, *, driver_status: DriverStatus | None = None,
               ask_namer: AskNamer | None = None) -> FastAPI:
    """``driver_status``: an async callable returning the queue driver's status (``/ready`` needs it);
    ``ask_namer``: an async callable naming one image with the warm namer (``/v1/chat/completions``)."""
    app = FastAPI(title="renamer_ray", version="0.2.0", responses=ERRORS,
                  description="Strict, meaningful image file names from a vision-language model.")
    app.state.services = Services(
        settings=settings, store=JobStore(settings),
        queue=JobQueue(settings.sqs_queue_url, region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        if settings.sqs_queue_url else None, keys=settings.key_namespaces,
        limits=Limits(max_files=settings.max_files_per_job, max_file_bytes=settings.max_file_bytes,
                      max_job_bytes=settings.max_job_bytes, max_text_bytes=settings.max_prompt_chars * 4 + 4096),
        chats=KeyedLimiter(settings.max_chat_concurrency_per_key, what="chat completions",
                           setting="MAX_CHAT_CONCURRENCY_PER_KEY", retry_after=CHAT_RETRY_AFTER_SECONDS),
        event_streams=KeyedLimiter(settings.max_event_streams_per_key, what="open event streams",
                                   setting="MAX_EVENT_STREAMS_PER_KEY", retry_after=EVENT_STREAM_RETRY_AFTER_SECONDS),
        driver_status=driver_status, ask_namer=ask_namer)

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(ChatRefused)  # raised by the chat route's dependencies (key, slot): OpenAI's shape
    async def chat_refused(_: Request, exc: ChatRefused) -> JSONResponse:
        return exc.response()

    @app.exception_handler(HTTPException)  # a path no route matched under /v1/models/: OpenAI's 404
    async def not_routed(request: Request, exc: HTTPException):
        if exc.status_code == 404 and (refused := models.unrouted(request.url.path, settings.model_id)):
            return refused.response()
        return await http_exception_handler(request, exc)

    for router in (ops.router, page.router, jobs.router, events.router, chat.router, models.router):
        app.include_router(router)
    app.add_middleware(RefuseCrossSiteWrites)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)  # outermost: runs first
    return app
