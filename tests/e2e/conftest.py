"""The end-to-end tier's fixture: the local stack (`renamer-ray up`), shared by the tests that use it."""

from __future__ import annotations

import uuid

import pytest

from renamer_ray.service.local.ports import free_ports
from tests.support.cut_proxy import CutProxy
from tests.support.stack import KEY_A, KEY_B, LIMITS, MAX_RECEIVES, STACK_SECRET, start_stack


@pytest.fixture(scope="session")
def stack(s3_endpoint, tmp_path_factory):
    """`renamer-ray up` against the session's moto server, with two API keys and small limits; stopped
    with Ctrl-C at the end, and that stop must succeed. The stack reaches the server through a
    proxy (``stack.endpoint``) that the fault suite can cut, as if the endpoint restarted."""
    api_port, dashboard_port = free_ports(2)
    tag = uuid.uuid4().hex[:6]
    endpoint = CutProxy(s3_endpoint)
    env = dict(AWS_ENDPOINT_URL=endpoint.url, API_PORT=str(api_port), API_KEYS=f"{KEY_A}:team-a,{KEY_B}:team-b",
               S3_IN_BUCKET=f"svc-in-{tag}", S3_OUT_BUCKET=f"svc-out-{tag}", MODEL_ID="toy-shapes", BATCH_SIZE="4",
               VISIBILITY_TIMEOUT="8", HEARTBEAT_SECONDS="2", SQS_WAIT_SECONDS="1", MAX_RECEIVES=str(MAX_RECEIVES),
               WEBHOOK_SECRET=STACK_SECRET, EVENT_SILENCE_SECONDS="3",  # the page's silent-stream test
               **{k: str(v) for k, v in LIMITS.items()})
    running = start_stack(env, tmp_path_factory.mktemp("stack"), dashboard_port)
    running.endpoint = endpoint
    yield running
    assert running.interrupt() == 0
    endpoint.close()
