"""Reading a job's Server-Sent Events (service/event_stream.py, the one reader of `submit` and the
demo): progress shown, the final view returned, `reconnect` told apart from a stream that just ends."""

from __future__ import annotations

import threading

import httpx
import pytest
from httpx_sse import SSEError

from renamer_ray.service.event_stream import StreamEnd, read_job_events


def opened(body: str, content_type: str = "text/event-stream") -> httpx.Response:
    """The response of GET /v1/jobs/{id}/events, answering ``body`` as the service writes it."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=body,
                                                                   headers={"content-type": content_type}))
    with httpx.Client(transport=transport, base_url="http://service") as client:
        return client.get("/v1/jobs/jr_1/events")


def test_progress_is_shown_and_done_gives_the_final_view_keep_alives_skipped():
    shown: list[dict] = []
    body = ('event: progress\ndata: {"done": 0}\n\n: keep-alive\n\n'
            'event: progress\ndata: {"done": 1}\n\nevent: done\ndata: {"status": "succeeded"}\n\n')
    assert read_job_events(opened(body), shown.append) == StreamEnd(final={"status": "succeeded"}, heard=True)
    assert shown == [{"done": 0}, {"done": 1}]


def test_reconnect_ends_the_stream_to_be_followed_again():
    body = 'event: progress\ndata: {"done": 0}\n\nevent: reconnect\ndata: {"done": 0}\n\n'
    assert read_job_events(opened(body)) == StreamEnd(heard=True, reconnect=True)


@pytest.mark.parametrize("body, heard", [(": keep-alive\n\n", False), ('event: progress\ndata: {"done": 2}\n\n', True)])
def test_a_stream_that_ends_without_done_or_reconnect_says_whether_anything_came(body, heard):
    assert read_job_events(opened(body)) == StreamEnd(heard=heard)


def test_a_stop_asked_ends_the_reading_after_the_event_at_hand():
    stop, shown = threading.Event(), []
    stop.set()
    body = 'event: progress\ndata: {"done": 0}\n\nevent: done\ndata: {"status": "succeeded"}\n\n'
    assert read_job_events(opened(body), shown.append, stop) == StreamEnd(heard=True)
    assert shown == [{"done": 0}]


def test_a_body_that_is_not_an_event_stream_is_a_transport_error_the_client_retries():
    with pytest.raises(SSEError) as raised:
        read_job_events(opened("<html>a proxy's page</html>", content_type="text/html"))
    assert isinstance(raised.value, httpx.TransportError)
