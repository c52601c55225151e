"""Job callbacks: signed the Standard Webhooks way (per-namespace keys, replay window), retried with
backoff, bounded in time and size, sent only to public https hosts (resolved once: no rebinding)
unless allowed. Address lookups are given as fake resolvers; traffic goes to loopback receivers only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from types import SimpleNamespace

import pytest
from fastapi import HTTPException

from renamer_ray.config import SECRETS, ConfigError, Settings, key_bytes, load_settings, parse_secrets
from renamer_ray.service.webhooks import (ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, CallbackRefused, Webhooks,
                                          check_url, secret_for, sign, signed_headers, verify)
from tests.support.eventually import eventually
from tests.support.http_receiver import Receiver, make_certificate

PUBLIC = "93.184.215.14"   # a global unicast address: only ever "resolved" here, never connected to


def resolver(*answers, calls: list | None = None):
    """A fake DNS: each call gives the next answer (a list of addresses), the last one for ever after."""
    answers = [[a] if isinstance(a, str) else list(a) for a in answers]

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        return answers.pop(0) if len(answers) > 1 else answers[0]
    return resolve


@pytest.fixture
def receiver():
    made = []
    yield lambda statuses=(), **kw: made.append(Receiver(list(statuses), **kw)) or made[-1]
    for r in made:
        r.close()


def quick(secret="s3cret", **kw) -> Webhooks:
    """Webhooks for loopback receivers, with short backoffs."""
    return Webhooks(secret, **{"allow_private": True, "allow_http": True, "first_backoff": 0.01, **kw})


# Signing ----------------------------------------------------------------------------------------
def test_signature_matches_the_standard_webhooks_reference_vector():
    # The test vector published with the Standard Webhooks specification and its libraries.
    secret, msg_id, stamp, body = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                   1614265330, b'{"test": 2432232314}')
    assert sign(secret, msg_id, stamp, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    assert verify(secret, headers, body, now=stamp + 10)
    # A secret without the whsec_ prefix is its UTF-8 bytes: a reference computation by hand.
    mine = signed_headers("plain sécret", "msg_1", body, timestamp=1700000000)
    expected = base64.b64encode(hmac.new("plain sécret".encode(), b"msg_1.1700000000." + body,
                                         hashlib.sha256).digest()).decode()
    assert mine == {ID_HEADER: "msg_1", TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: f"v1,{expected}"}


def test_verify_refuses_replays_tampering_and_other_keys():
    body, now = b'{"job_id": "jr_0123456789abcdef"}', time.time()
    fresh = signed_headers("s3cret", "msg_a", body)
    assert verify("s3cret", fresh, body) and verify("s3cret", {k.upper(): v for k, v in fresh.items()}, body)
    old = signed_headers("s3cret", "msg_a", body, timestamp=int(now) - 301)
    assert verify("s3cret", old, body, now=int(now) - 300)      # valid when it was sent…
    assert not verify("s3cret", old, body)                      # …a replay five minutes later is not
    assert not verify("s3cret", signed_headers("s3cret", "msg_a", body, timestamp=int(now) + 400), body)
    assert not verify("other", fresh, body) and not verify("s3cret", fresh, body + b" ")
    assert not verify("s3cret", {**fresh, ID_HEADER: "msg_b"}, body)               # the id is signed too
    assert not verify("s3cret", {**fresh, TIMESTAMP_HEADER: str(int(now) + 1)}, body)  # and the time
    assert not verify("s3cret", {ID_HEADER: "msg_a", TIMESTAMP_HEADER: fresh[TIMESTAMP_HEADER]}, body)
    rotated = {**fresh, SIGNATURE_HEADER: "v1,bm90IGl0 " + fresh[SIGNATURE_HEADER]}  # several, space-separated
    assert verify("s3cret", rotated, body)


def test_secrets_per_namespace_parse_and_fall_back():
    key_a = "whsec_" + base64.b64encode(b"a" * 32).decode()
    settings = Settings(webhook_secret="shared", webhook_secrets=f"team-a:{key_a}, team-b:b-secret:with-colon")
    assert parse_secrets(settings.webhook_secrets) == {"team-a": key_a, "team-b": "b-secret:with-colon"}
    assert key_bytes(key_a) == b"a" * 32 and key_bytes("b-secret") == b"b-secret"
    assert [secret_for(settings, ns) for ns in ("team-a", "team-b", "demo")] == [key_a, "b-secret:with-colon",
                                                                                  "shared"]
    assert secret_for(Settings(webhook_secrets=f"team-a:{key_a}"), "demo") is None
    assert "webhook_secrets" in SECRETS and "webhook_secret" in SECRETS
    for bad in ("team-a", "team-a:", "Team A:SECRETVALUE", "team-a:SECRETVALUE,team-a:SECRETVALUE",
                "team-a:whsec_SECRET*VALUE"):
        with pytest.raises(ValueError) as caught:
            parse_secrets(bad)
        assert "SECRET" not in str(caught.value)  # messages name entries, never a secret
        with pytest.raises(ConfigError, match="WEBHOOK_SECRETS"):
            load_settings(webhook_secrets=bad)
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_settings(webhook_secret="whsec_!!!")


def test_a_job_is_signed_with_its_namespaces_secret(receiver):
    from renamer_ray.service.driver.lifecycle import Lifecycle
    from renamer_ray.service.jobs import JobRecord

    hook = receiver()
    settings = Settings(webhook_secret="shared", webhook_secrets="team-a:secret-a,team-b:secret-b",
                        callback_allow_private=True, callback_allow_http=True)
    errors = []
    lifecycle = Lifecycle(settings, store=None, queue=None,
                          metrics=SimpleNamespace(job_finished=lambda record: None, error=errors.append),
                          webhooks=Webhooks(settings.webhook_secret, allow_private=True))
    record = JobRecord(job_id="jr_0123456789abcdef", namespace="team-a", count=1, status="failed",
                       callback_url=hook.url)
    lifecycle.ended(record)  # the driver's own callback step, without its queue and Ray
    eventually(lambda: hook.posts, "the callback reached the receiver", timeout=30)
    assert errors == [] and len(hook.posts) == 1
    headers, body = hook.posts[0]
    assert b'"jr_0123456789abcdef"' in body
    assert verify("secret-a", headers, body)
    assert not verify("secret-b", headers, body) and not verify("shared", headers, body)


# Delivery ---------------------------------------------------------------------------------------
def test_delivery_is_retried_after_a_500_and_arrives_signed(receiver):
    hook = receiver([500])
    assert quick().send(hook.url, b'{"status": "succeeded"}', "jr_x").result(timeout=60) is True
    assert len(hook.posts) == 2  # the 500, then the delivery
    (first, _), (headers, body) = hook.posts
    assert body == b'{"status": "succeeded"}' and verify("s3cret", headers, body)
    assert first[ID_HEADER] == headers[ID_HEADER] and headers[ID_HEADER].startswith("msg_")  # one delivery
    assert abs(int(headers[TIMESTAMP_HEADER]) - time.time()) < 60
    assert "X-Renamer-Signature" not in headers


def test_a_4xx_answer_ends_the_delivery(receiver):
    hook = receiver([410])
    assert quick().send(hook.url, b"{}", "jr_x").result(timeout=30) is False
    assert len(hook.posts) == 1


NON_PUBLIC = ["100.64.0.1", "100.127.255.254", "10.0.0.1", "10.255.1.2", "172.16.0.1", "192.168.1.1", "127.0.0.1",
              "127.8.9.10", "169.254.169.254", "0.0.0.0", "255.255.255.255", "224.0.0.1", "198.18.0.1",
              "::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:100.64.0.1", "fe80::1", "fc00::1",
              "fd12:3456::1", "ff02::1", "ff0e::1", "::7f00:1", "2002:a00:1::1", "64:ff9b::a00:1", "2001:db8::1"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_refused(address):
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(CallbackRefused, match="private, local"):
        check_url(f"https://{literal}/hook", allow_private=False)
    with pytest.raises(CallbackRefused, match="private, local"):
        check_url("https://hook.example/x", allow_private=False, resolve=resolver(address))
    with pytest.raises(CallbackRefused, match="private, local"):  # one bad answer among good ones is enough
        check_url("https://hook.example/x", allow_private=False, resolve=resolver([PUBLIC, address]))


def test_public_addresses_pass_and_are_pinned():
    target = check_url("https://Hook.Example:8443/a/b?c=d#frag", allow_private=False, resolve=resolver(PUBLIC))
    assert (target.host, target.port, target.path, target.address) == ("hook.example", 8443, "/a/b?c=d", PUBLIC)
    assert target.host_header == "hook.example:8443"
    assert check_url("https://hook.example/", allow_private=False, resolve=resolver("::ffff:8.8.8.8")).address \
        == "8.8.8.8"   # an IPv4-mapped answer is judged, and connected to, as its IPv4 address
    assert check_url("https://[2606:4700::1]/", allow_private=False).host_header == "[2606:4700::1]"
    with pytest.raises(CallbackRefused, match="private"):  # the system's resolver, offline: localhost
        check_url("https://localhost/x", allow_private=False)
    assert check_url("http://127.0.0.1:9/x", allow_private=True, allow_http=True).address == "127.0.0.1"


def test_a_rebinding_resolver_is_asked_once_and_its_first_answer_used():
    calls, connects = [], []

    def connect(address, timeout):
        connects.append(address)
        raise ConnectionRefusedError("not really connecting")

    evil = resolver(PUBLIC, "127.0.0.1", calls=calls)   # public when checked, loopback when asked again
    webhooks = Webhooks("s3cret", allow_private=False, resolve=evil, connect=connect, attempts=3, first_backoff=0.01)
    assert webhooks.send("https://rebind.example/hook", b"{}", "jr_x").result(timeout=30) is False
    assert calls == [("rebind.example", 443)] and connects == [(PUBLIC, 443)] * 3


def test_a_rebinding_resolver_on_loopback_reaches_only_the_checked_address(receiver):
    hook = receiver([500], host="127.0.0.2")  # the first answer's receiver
    try:
        decoy = receiver(host="127.0.0.1", port=hook.port)  # the second answer's, on the same port
    except OSError:
        decoy = None
    calls = []
    webhooks = quick(resolve=resolver("127.0.0.2", "127.0.0.1", calls=calls))
    assert webhooks.send(f"http://hook.example:{hook.port}/hook", b"{}", "jr_x").result(timeout=30) is True
    assert calls == [("hook.example", hook.port)] and len(hook.posts) == 2  # both attempts to 127.0.0.2
    assert hook.posts[0][0]["Host"] == f"hook.example:{hook.port}"
    assert decoy is None or decoy.posts == []


def test_tls_checks_the_urls_host_name_while_connecting_to_the_checked_address(receiver, tmp_path):
    import ssl

    ca, cert, key = make_certificate(tmp_path, ["hook.example"])
    hook = receiver(tls=(cert, key))
    trust = ssl.create_default_context(cafile=str(ca))
    webhooks = quick(resolve=resolver("127.0.0.1"), tls=trust, attempts=2)
    assert webhooks.send(f"https://hook.example:{hook.port}/hook", b"{}", "jr_x").result(timeout=30) is True
    assert hook.posts[0][0]["Host"] == f"hook.example:{hook.port}" and verify("s3cret", *hook.posts[0])
    # The same server under a name its certificate does not carry: the handshake fails, nothing is sent.
    assert webhooks.send(f"https://other.example:{hook.port}/hook", b"{}", "jr_x").result(timeout=30) is False
    assert len(hook.posts) == 1


@pytest.mark.parametrize("mode, delivered", [("trickle-head", False), ("trickle-body", True), ("flood", True)])
def test_slow_or_endless_answers_are_cut_off(receiver, mode, delivered):
    hook = receiver(mode=mode)
    webhooks = quick(attempts=2, deadline=1.0, read_timeout=5.0)  # each read is quick enough: only the deadline
    # The receiver's answer lasts minutes or never ends: a send that returns within 20 s was cut off by the client.
    assert webhooks.send(hook.url, b"{}", "jr_x").result(timeout=20) is delivered
    assert len(hook.posts) == (1 if delivered else 2)


def test_http_is_refused_unless_allowed(receiver):
    public = resolver(PUBLIC)
    with pytest.raises(CallbackRefused, match="https"):
        check_url("http://hook.example/x", allow_private=False, resolve=public)
    assert check_url("http://hook.example/x", allow_private=False, allow_http=True, resolve=public).port == 80
    hook = receiver()
    assert Webhooks("s3cret", allow_private=True).send(hook.url, b"{}", "jr_x").result(timeout=30) is False
    assert hook.posts == []  # refused at send time too
    assert Webhooks("s3cret", allow_private=True).send(hook.url, b"{}", "jr_x", allow_http=True).result(timeout=30)
    settings = Settings(webhook_secret="s3cret", callback_allow_private=True)
    with pytest.raises(HTTPException) as caught:
        _check_fields({"callback_url": hook.url}, settings)
    assert caught.value.status_code == 422 and "https" in caught.value.detail


MALFORMED = ["http://[::1/", "https://example.com:99999/x", "https://example.com:port/x", "https://example.com:0/",
             "https://[not-an-ip]/", "https://user:pw@example.com/", "https://exa mple.com/", "https://example.com/a b",
             "https://example.com/é", "https://" + "a" * 2050 + ".com/", "ftp://example.com/x", "http:///nohost",
             "https://ex\u00e4mple..com/", "hook.example/x"]


def _check_fields(fields, settings):
    from renamer_ray.service.api.routes.jobs import _check_fields as check

    return check(fields, settings)


@pytest.mark.parametrize("url", MALFORMED)
def test_malformed_urls_are_a_clean_refusal(url):
    with pytest.raises(CallbackRefused) as caught:
        check_url(url, allow_private=False, allow_http=True, resolve=resolver(PUBLIC))
    assert str(caught.value).startswith("callback_url")
    settings = Settings(webhook_secret="s3cret", callback_allow_http=True)
    with pytest.raises(HTTPException) as answer:   # what the API answers: 422 with the sentence, not a 500
        _check_fields({"callback_url": url}, settings)
    assert answer.value.status_code == 422 and answer.value.detail.startswith("callback_url")


def test_no_secret_no_delivery(receiver):
    hook = receiver()
    assert quick(None).send(hook.url, b"{}", "jr_x").result(timeout=30) is False
    assert hook.posts == []


def test_any_text_is_a_target_or_a_refusal_never_a_crash():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(["http://", "https://", "[", "]", "::1", ":", "99999", "0", "@", "/", "?", "#", "%",
                              "é", " ", "\x00", "\r\n", "example.com", "127.0.0.1", ".", "xn--", "-"])

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.text(max_size=60), st.lists(pieces, max_size=12).map("".join)))
    def check(url):
        try:
            target = check_url(url, allow_private=False, allow_http=True, resolve=resolver(PUBLIC))
        except CallbackRefused as exc:
            assert str(exc).startswith("callback_url")
        else:
            assert target.scheme in ("http", "https") and 1 <= target.port <= 65535 and target.path.startswith("/")
    check()
