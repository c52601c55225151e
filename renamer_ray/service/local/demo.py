"""`renamer-ray demo`: bring the local stack up, send the bundled samples through the HTTP API,
wait for the job, print old → new, stop the stack."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from renamer_ray.config import Settings
from renamer_ray.naming import IMAGE_EXTENSIONS
from renamer_ray.service.event_stream import read_job_events
from renamer_ray.service.jobs import FINISHED
from renamer_ray.service.local.stack import LocalStack


def submit(api: str, paths: list[Path], *, prompt: str | None = None, api_key: str | None = None) -> dict:
    headers = {"X-API-Key": api_key} if api_key else {}
    files = [("files", (p.name, p.read_bytes())) for p in paths]
    response = httpx.post(f"{api}/v1/jobs/rename", files=files, data={"user_prompt": prompt} if prompt else {},
                          headers=headers, timeout=120)
    if response.status_code != 200:
        raise RuntimeError(f"the API refused the job ({response.status_code}): {response.text}")
    return response.json()


def wait(api: str, job_id: str, *, api_key: str | None = None, timeout: float = 600, show=None) -> dict:
    """Follow the job's Server-Sent Events until its final state (following again after a
    ``reconnect`` event); returns that state. A caller that already follows as many streams as the
    API allows one key (429) asks for the job's state every second instead."""
    headers = {"X-API-Key": api_key} if api_key else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with httpx.stream("GET", f"{api}/v1/jobs/{job_id}/events", headers=headers, timeout=timeout) as events:
            if events.status_code == 429:
                return poll(api, job_id, headers=headers, deadline=deadline, show=show)
            events.raise_for_status()
            ended = read_job_events(events, show)
            if ended.final is not None:
                return ended.final
            if not ended.reconnect:
                raise RuntimeError(f"the event stream of {job_id} ended without a final state")
    raise TimeoutError(f"job {job_id} did not finish in {timeout:.0f} s")


def poll(api: str, job_id: str, *, headers: dict, deadline: float, show=None) -> dict:
    """``GET /v1/jobs/{id}`` every second until the job has its final state."""
    while time.monotonic() < deadline:
        job = httpx.get(f"{api}/v1/jobs/{job_id}", headers=headers, timeout=30).raise_for_status().json()
        if job["status"] in FINISHED:
            return job
        if show:
            show(job)
        time.sleep(1)  # the job's state is asked again after a second: polling, not synchronising
    raise TimeoutError(f"job {job_id} did not finish")


def print_table(job: dict) -> None:
    rows = job.get("results") or []
    width = max([len(r["original"]) for r in rows] + [8])
    for r in rows:
        print(f"  {r['original']:<{width}}  ->  {r['name'] if r['status'] == 'ok' else 'FAILED: ' + r['error']}")
    print(f"\njob {job['job_id']} {job['status']}: {job['done'] - job['failed']} renamed, {job['failed']} failed")


def demo(settings: Settings, samples: Path, *, workdir: Path, dashboard_port: int) -> int:
    paths = sorted(p for p in samples.rglob("*")
                   if p.is_file() and p.suffix.lstrip(".").lower() in IMAGE_EXTENSIONS)
    stack = LocalStack(settings, workdir=workdir, dashboard_port=dashboard_port)
    started = time.monotonic()
    try:
        print("starting the local stack (embedded S3/SQS, Ray head, Serve, driver) …", flush=True)
        stack.start()
        print(f"up in {time.monotonic() - started:.0f}s; Ray dashboard {stack.head.dashboard}", flush=True)
        accepted = submit(stack.api, paths)
        print(f"submitted {accepted['count']} files as {accepted['job_id']} through {stack.api}/v1/jobs/rename",
              flush=True)
        submitted = time.monotonic()
        job = wait(stack.api, accepted["job_id"], show=lambda p: print(
            f"  {p['status']}: named {p['named']}/{p['count']}, done {p['done']}", flush=True))
        print(f"finished in {time.monotonic() - submitted:.1f}s after submission\n")
        print_table(job)
        print("\nThe demo stack stops now. `renamer-ray up` keeps it running: web page, API, dashboard.")
        return 0 if job["status"] == "succeeded" else 1
    finally:
        stack.stop()
