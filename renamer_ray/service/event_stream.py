"""Reading a job's Server-Sent Events (``GET /v1/jobs/{id}/events``) as a client, with httpx-sse.

The one reader of the stream that ``api/routes/events.py`` writes, for the `submit` client and the
demo: `progress` events while the job runs, then `done` with its final view, or `reconnect` when the
stream's lifetime is over and the client should follow again. Keep-alive comments are skipped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import httpx
from httpx_sse import EventSource


@dataclass(frozen=True)
class StreamEnd:
    """How one event stream ended."""

    final: dict | None = None     # the job's final view (the `done` event)
    heard: bool = False           # at least one event came (a stream that ends with none failed)
    reconnect: bool = False       # the stream's lifetime was over: follow again


def read_job_events(response: httpx.Response, show: Callable[[dict], None] | None = None,
                    stop: threading.Event | None = None) -> StreamEnd:
    """Read an open event stream (answered 200) until its `done` or `reconnect` event, its end, or
    ``stop``; ``show`` gets the data of each `progress` event. A body that is not an event stream
    raises ``httpx_sse.SSEError`` (an ``httpx.TransportError``)."""
    heard = False
    for event in EventSource(response).iter_sse():
        heard, data = True, event.json()
        if event.event == "done":
            return StreamEnd(final=data, heard=True)
        if event.event == "reconnect":
            return StreamEnd(heard=True, reconnect=True)
        if show is not None:
            show(data)
        if stop is not None and stop.is_set():
            break
    return StreamEnd(heard=heard)
