"""The service's HTTP API as `submit` uses it (httpx): retries, the key, the job's events and its archive."""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx

from renamer_ray.cli.client.options import KEY_VARIABLE, SubmitError
from renamer_ray.cli.client.sources import Source
from renamer_ray.service.event_stream import read_job_events

ATTEMPTS = 6                       # tries per request for connection errors, timeouts, 502/503/504
BACKOFF_SECONDS = (0.25, 8.0)      # first pause, longest pause (doubling, with jitter)
BUSY_SECONDS = 900                 # how long a 429 (too many jobs in flight) is waited out
RETRY_STATUSES = (502, 503, 504)
EVENTS_TIMEOUT = httpx.Timeout(30.0, read=90.0)  # the service sends a keep-alive every 15 s


def detail(response: httpx.Response) -> str:
    """The service's sentence in a refusal, in one line."""
    try:
        said = response.json().get("detail", response.text)
    except ValueError:
        said = response.text
    if isinstance(said, list):  # FastAPI's request validation: one problem per field
        said = "; ".join(str(problem.get("msg", problem)) for problem in said)
    return " ".join(str(said).split())[:300] or response.reason_phrase


def _pause(attempt: int, retry_after: str | None = None) -> float:
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), 60.0)
    first, longest = BACKOFF_SECONDS
    return min(longest, first * 2 ** attempt) * random.uniform(0.8, 1.2)


def _no_answer(exc: Exception) -> str:
    """A transport error in one line."""
    return f"{type(exc).__name__}: {exc or 'no answer'}"


class Api:
    """The service's HTTP API, with the retries above; every refusal a user must act on (a bad key,
    an unreachable service) is a :class:`SubmitError`."""

    def __init__(self, url: str, key: str | None, *, note: Callable[[str], None] = print):
        self.url = url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+", self.url):
            raise SubmitError(f"--api must be the service's http:// or https:// address, not {url!r}")
        self.http = httpx.Client(base_url=self.url, headers={"X-API-Key": key} if key else {},
                                 timeout=httpx.Timeout(30.0, read=660.0))
        self.transient = (httpx.TransportError,)  # connect, read and write errors, timeouts, protocol errors
        self.note = note
        self._busy_noted = False

    def close(self) -> None:
        self.http.close()

    def _refused_key(self, response: httpx.Response) -> SubmitError:
        return SubmitError(f"the service at {self.url} refused the API key ({response.status_code}: "
                           f"{detail(response)}); pass the right one with --key or {KEY_VARIABLE}")

    def request(self, method: str, path: str, *, what: str, attempts: int = ATTEMPTS,
                files: Callable[[], contextlib.AbstractContextManager] | None = None, **kwargs) -> httpx.Response:
        """One request, retried while the service is unreachable or busy; any other answer is returned
        (401/403 raise). ``files``: a context manager factory giving the multipart files, opened
        afresh for each attempt."""
        started, attempt = time.monotonic(), 0
        while True:
            retry_after = None
            try:
                with files() if files else contextlib.nullcontext() as parts:
                    response = self.http.request(method, path, **({"files": parts} if files else {}), **kwargs)
            except self.transient as exc:
                if attempt + 1 >= attempts:
                    raise SubmitError(f"cannot reach the service at {self.url} ({what}: {_no_answer(exc)}; "
                                      f"tried {attempts} times)") from None
            else:
                if response.status_code in (401, 403):
                    raise self._refused_key(response)
                if response.status_code == 429 and time.monotonic() - started < BUSY_SECONDS:
                    retry_after = response.headers.get("retry-after")
                    if not self._busy_noted:
                        self.note(f"the service is busy ({detail(response)}); waiting as it asks")
                        self._busy_noted = True
                elif response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                    retry_after = response.headers.get("retry-after")
                else:
                    return response
            time.sleep(_pause(min(attempt, 10), retry_after))
            attempt += 1

    def check(self) -> None:
        """Before anything is uploaded: the service answers (a few quick tries: a wrong address is
        said in a second), and takes the key."""
        response = self.request("GET", "/v1/jobs", params={"limit": 1}, what="GET /v1/jobs", attempts=3)
        if response.status_code != 200:
            raise SubmitError(f"no renamer-ray API at {self.url}: GET /v1/jobs answered {response.status_code} "
                              f"({detail(response)})")

    def submit(self, files: list[Source], fields: dict[str, str], key: str) -> httpx.Response:
        @contextlib.contextmanager
        def opened() -> Iterator[list]:
            with contextlib.ExitStack() as stack:
                yield [("files", (s.name, stack.enter_context(open(s.path, "rb")), "application/octet-stream"))
                       for s in files]

        # Each file's path under DIR: the service puts its renamed copy in the same folder of the job's output.
        return self.request("POST", "/v1/jobs/rename", what="POST /v1/jobs/rename", files=opened,
                            data={**fields, "paths": [s.relative for s in files]}, headers={"Idempotency-Key": key})

    def follow(self, job_id: str, show: Callable[[dict], None], stop: threading.Event) -> dict:
        """The job's final view, from its Server-Sent Events (following again after a ``reconnect``
        event or a dropped stream); ``show`` gets each progress event."""
        failures = 0
        while not stop.is_set():
            heard = False
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=EVENTS_TIMEOUT) as events:
                    if events.status_code in (401, 403):
                        events.read()
                        raise self._refused_key(events)
                    if events.status_code != 200 and events.status_code not in (429, *RETRY_STATUSES):
                        events.read()
                        raise SubmitError(f"cannot follow job {job_id}: {events.status_code} ({detail(events)})")
                    if events.status_code == 200:
                        ended = read_job_events(events, show, stop)
                        if ended.final is not None:
                            return ended.final
                        heard = ended.heard
            except self.transient as exc:
                if failures + 1 >= ATTEMPTS:
                    raise SubmitError(f"lost the service at {self.url} while following job {job_id} "
                                      f"({_no_answer(exc)}); the job goes on there: run the same command again "
                                      "to follow it") from None
            if heard:
                failures = 0
            else:
                failures += 1
                if failures >= ATTEMPTS:
                    raise SubmitError(f"the events of job {job_id} keep ending without its final state")
                time.sleep(_pause(failures))
        raise SubmitError("stopped")

    def download(self, job_id: str, target: Path) -> None:
        """The job's ZIP of renamed files, into ``target`` (a download cut off starts again)."""
        for attempt in range(ATTEMPTS):
            try:
                with self.http.stream("GET", f"/v1/jobs/{job_id}/archive") as response:
                    if response.status_code != 200:
                        response.read()
                        if response.status_code in (401, 403):
                            raise self._refused_key(response)
                        if response.status_code not in (429, *RETRY_STATUSES):
                            raise SubmitError(f"cannot download the files of job {job_id}: {response.status_code} "
                                              f"({detail(response)})")
                    else:
                        with open(target, "wb") as stream:
                            for chunk in response.iter_bytes(1 << 20):
                                stream.write(chunk)
                        return
            except self.transient as exc:
                if attempt + 1 >= ATTEMPTS:
                    raise SubmitError(f"cannot download the files of job {job_id} from {self.url} "
                                      f"({_no_answer(exc)})") from None
            time.sleep(_pause(attempt))
        raise SubmitError(f"cannot download the files of job {job_id}: the service stayed busy")
