"""Job callbacks: when a job reaches its final status, POST its view to the job's ``callback_url``.

The body is the job's JSON view (as ``GET /v1/jobs/{id}``); the header ``X-Renamer-Signature`` is
``sha256=`` + the hex HMAC-SHA256 of the exact body bytes under WEBHOOK_SECRET. A receiver
recomputes it over the raw body and compares with ``hmac.compare_digest``. Delivery is retried with
exponential backoff on connection errors and 5xx/429 answers; any other answer ends it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Event
from urllib.parse import urlsplit

import urllib3

log = logging.getLogger("renamer_ray.webhooks")
SIGNATURE_HEADER = "X-Renamer-Signature"
ATTEMPTS = 6                      # 1 + 5 retries: 1, 2, 4, 8, 16 s apart (≈ 31 s in all)
FIRST_BACKOFF_SECONDS = 1.0
TIMEOUT_SECONDS = 10.0
HTTP = urllib3.PoolManager()      # urllib3 (boto3's own HTTP client): no extra dependency for callbacks


class CallbackRefused(ValueError):
    """The callback URL may not be used; the message says why."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (documented in the README): constant-time comparison."""
    return hmac.compare_digest(sign(secret, body), signature)


def check_url(url: str, *, allow_private: bool) -> str:
    """An http(s) URL whose host does not resolve to a loopback, private or link-local address
    (unless ``allow_private``): callbacks must not reach into the deployment's own network."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("callback_url must be an absolute http:// or https:// URL")
    if len(url) > 2048:
        raise CallbackRefused("callback_url is too long: at most 2048 characters")
    if not allow_private:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
        except OSError:
            raise CallbackRefused(f"callback_url: the host {parts.hostname!r} does not resolve") from None
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
                raise CallbackRefused(f"callback_url: {parts.hostname!r} is a private or local address")
    return url


class Webhooks:
    """Delivers callbacks on a few background threads, so a slow receiver never holds a run."""

    def __init__(self, secret: str | None, *, allow_private: bool, threads: int = 4):
        self.secret, self.allow_private = secret, allow_private
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self.closing = Event()

    def send(self, url: str, body: bytes, job_id: str):
        """Queue one delivery; returns its future (True when the receiver answered 2xx)."""
        return self.pool.submit(self._deliver, url, body, job_id)

    def _deliver(self, url: str, body: bytes, job_id: str) -> bool:
        if not self.secret:
            log.error("job %s has a callback_url but WEBHOOK_SECRET is not set: not sent", job_id)
            return False
        try:
            check_url(url, allow_private=self.allow_private)  # again at send time: DNS may have changed
        except CallbackRefused as exc:
            log.error("callback of job %s not sent: %s", job_id, exc)
            return False
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body),
                   "X-Renamer-Delivery": uuid.uuid4().hex, "User-Agent": "renamer-ray-webhook/1"}
        backoff = FIRST_BACKOFF_SECONDS
        for attempt in range(1, ATTEMPTS + 1):
            try:
                answer = HTTP.request("POST", url, body=body, headers=headers, timeout=TIMEOUT_SECONDS,
                                      redirect=False, retries=False)
                if 200 <= answer.status < 300:
                    log.info("callback of job %s delivered (attempt %d)", job_id, attempt)
                    return True
                if answer.status < 500 and answer.status != 429:
                    log.error("callback of job %s refused by the receiver: HTTP %d", job_id, answer.status)
                    return False
                problem = f"HTTP {answer.status}"
            except urllib3.exceptions.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("callback of job %s failed (attempt %d/%d): %s", job_id, attempt, ATTEMPTS, problem)
            if attempt < ATTEMPTS and self.closing.wait(backoff):  # a retry's backoff, cut short on shutdown
                return False
            backoff *= 2
        return False

    def close(self) -> None:
        self.closing.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
