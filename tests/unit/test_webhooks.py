"""Job callbacks: signed with HMAC-SHA256, retried with backoff, never sent into private networks
unless allowed. A real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import pytest

from renamer_ray.service.webhooks import SIGNATURE_HEADER, CallbackRefused, Webhooks, check_url, sign, verify
from tests.support.http_receiver import Receiver


@pytest.fixture
def receiver():
    made = []
    yield lambda statuses=(): made.append(Receiver(list(statuses))) or made[-1]
    for r in made:
        r.close()


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"job_id": "jr_0123456789abcdef"}'
    signature = sign("s3cret", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("s3cret", body, signature)
    assert not verify("other", body, signature) and not verify("s3cret", body + b" ", signature)


def test_delivery_is_retried_after_a_500_and_arrives_signed(receiver):
    hook = receiver([500])
    webhooks = Webhooks("s3cret", allow_private=True)
    assert webhooks.send(hook.url, b'{"status": "succeeded"}', "jr_x").result(timeout=60) is True
    assert len(hook.posts) == 2  # the 500, then the delivery
    headers, body = hook.posts[-1]
    assert body == b'{"status": "succeeded"}' and verify("s3cret", body, headers[SIGNATURE_HEADER])
    assert hook.posts[0][0]["X-Renamer-Delivery"] == headers["X-Renamer-Delivery"]  # one delivery, retried


def test_a_4xx_answer_ends_the_delivery(receiver):
    hook = receiver([410])
    assert Webhooks("s3cret", allow_private=True).send(hook.url, b"{}", "jr_x").result(timeout=30) is False
    assert len(hook.posts) == 1


def test_private_and_odd_urls_are_refused_unless_allowed(receiver):
    for url in ("ftp://example.com/x", "http:///nohost", "http://127.0.0.1:9/x", "http://169.254.169.254/latest",
                "http://10.0.0.1/x", "http://localhost/x"):
        with pytest.raises(CallbackRefused):
            check_url(url, allow_private=False)
    assert check_url("http://127.0.0.1:9/x", allow_private=True)
    hook = receiver()
    assert Webhooks("s3cret", allow_private=False).send(hook.url, b"{}", "jr_x").result(timeout=30) is False
    assert hook.posts == []  # refused at send time too


def test_no_secret_no_delivery(receiver):
    hook = receiver()
    assert Webhooks(None, allow_private=True).send(hook.url, b"{}", "jr_x").result(timeout=30) is False
    assert hook.posts == []
