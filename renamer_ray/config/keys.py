"""The secret settings: which they are (never shown), and the formats of API_KEYS and WEBHOOK_SECRET(S)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

SECRETS = ("api_keys", "webhook_secret", "webhook_secrets", "engine_api_key")   # shown as *** by `renamer-ray config`
WEBHOOK_SECRET_PREFIX = "whsec_"
NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")   # as DEFAULT_NAMESPACE and API_KEYS' namespaces


def key_namespaces(api_keys: str) -> dict[str, str]:
    """API_KEYS (``KEY`` or ``KEY:namespace``, comma-separated) as API key → namespace. A key without
    ``:namespace`` gets one derived from its hash."""
    out = {}
    for item in filter(None, (part.strip() for part in api_keys.split(","))):
        key, _, namespace = item.partition(":")
        out[key] = namespace or "k-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return out


def key_bytes(secret: str) -> bytes:
    """The HMAC key a webhook secret stands for: ``whsec_<base64>`` is decoded; anything else is its
    UTF-8 bytes. Raises ValueError (without the secret in the message) for a ``whsec_`` that is not base64."""
    if secret.startswith(WEBHOOK_SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(WEBHOOK_SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a secret starting with whsec_ must continue with the key in base64") from None
        if not key:
            raise ValueError("a whsec_ secret must hold a key")
        return key
    return secret.encode("utf-8")


def parse_secrets(text: str) -> dict[str, str]:
    """WEBHOOK_SECRETS (``namespace:secret,namespace:secret``, like API_KEYS) as namespace → secret.
    ValueError names the entry's namespace or position, never a secret."""
    out: dict[str, str] = {}
    for position, item in enumerate(filter(None, (part.strip() for part in (text or "").split(","))), start=1):
        namespace, colon, secret = item.partition(":")
        namespace, secret = namespace.strip(), secret.strip()
        if not colon or not secret:
            raise ValueError(f"entry {position} must be namespace:secret")
        if not NAMESPACE.match(namespace):
            raise ValueError(f"entry {position}: {namespace!r} is not a namespace (a-z, 0-9, -; at most 63)")
        if namespace in out:
            raise ValueError(f"namespace {namespace!r} is given twice")
        try:
            key_bytes(secret)
        except ValueError as exc:
            raise ValueError(f"the secret of {namespace!r}: {exc}") from None
        out[namespace] = secret
    return out
