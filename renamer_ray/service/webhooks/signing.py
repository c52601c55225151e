"""Signing job callbacks the Standard Webhooks way (standardwebhooks.com), and checking a signature.

The body is the job's JSON view (as ``GET /v1/jobs/{id}``) and three headers come with it:

- ``webhook-id``: ``msg_<32 hex>``, one per delivery, the same on its retries (a receiver dedupes on it);
- ``webhook-timestamp``: integer Unix seconds, set on each attempt;
- ``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over ``f"{id}.{timestamp}.{body}"``.

The HMAC key is the secret of the job's namespace (WEBHOOK_SECRETS: ``namespace:secret,…``), else the
shared WEBHOOK_SECRET. A secret that starts with ``whsec_`` is base64 of the key bytes (as the standard's
libraries expect); any other secret is used as its UTF-8 bytes. :func:`verify` is what a receiver does:
it also refuses a timestamp more than ``tolerance`` seconds (300) away from its clock, so a captured
delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Mapping

from renamer_ray.config import key_bytes, parse_secrets

ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
TOLERANCE_SECONDS = 300           # verify(): how far a timestamp may be from the receiver's clock


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`` (Standard Webhooks)."""
    content = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(key_bytes(secret), content, hashlib.sha256).digest()).decode("ascii")


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes | str, tolerance: float = TOLERANCE_SECONDS, *,
           now: float | None = None) -> bool:
    """What a receiver does, over the raw body before parsing it: the three headers are present, the
    timestamp is within ``tolerance`` seconds of ``now`` (older: a replay; newer: forged or a skewed
    clock), and one of the ``v1,`` signatures (space-separated) matches, compared in constant time."""
    lowered = {str(name).lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (lowered.get(h) for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
    if not msg_id or not stamp or not signatures or not stamp.isascii() or not stamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(stamp)) > tolerance:
        return False
    expected = sign(secret, msg_id, stamp, body.encode("utf-8") if isinstance(body, str) else body)
    return any(hmac.compare_digest(expected.encode(), given.encode()) for given in signatures.split() if given.isascii())


def secret_for(settings, namespace: str | None) -> str | None:
    """The secret that signs callbacks of ``namespace``'s jobs: its own (WEBHOOK_SECRETS), else the
    shared WEBHOOK_SECRET; None when neither is set (callbacks are then refused)."""
    own = parse_secrets(getattr(settings, "webhook_secrets", "") or "")
    return own.get(namespace or "") or settings.webhook_secret
