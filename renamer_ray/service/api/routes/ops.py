"""Liveness and readiness for load balancers and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from renamer_ray.service.api.deps import Services, get_driver_status, get_services

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict:
    return {"ok": True}


@router.get("/ready")
async def ready(services: Annotated[Services, Depends(get_services)],
                driver: Annotated[dict | str, Depends(get_driver_status)]) -> JSONResponse:
    """200 when S3 and SQS answer and the queue driver has polled recently; 503 says which is not."""
    checks = {}
    for name, ping in (("s3", services.store.ping), ("sqs", services.queue.ping if services.queue else None)):
        try:
            if ping is None:
                raise RuntimeError("SQS_QUEUE_URL is not set")
            await run_in_threadpool(ping)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which and why
            checks[name] = f"unreachable: {exc}"
    if isinstance(driver, str):
        checks["driver"] = driver
    else:
        age = driver["last_poll_age_s"]
        checks["driver"] = "ok" if age <= services.settings.driver_stale_seconds else f"stale: the driver last polled the queue {age:.0f} s ago"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ok": ok, **checks}, status_code=200 if ok else 503)
