"""Job callbacks: when a job reaches its final status, POST its view to the job's ``callback_url``.

**Signature** (the Standard Webhooks form, standardwebhooks.com): the body is the job's JSON view (as
``GET /v1/jobs/{id}``) and three headers come with it:

- ``webhook-id``: ``msg_<32 hex>``, one per delivery, the same on its retries (a receiver dedupes on it);
- ``webhook-timestamp``: integer Unix seconds, set on each attempt;
- ``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over ``f"{id}.{timestamp}.{body}"``.

The HMAC key is the secret of the job's namespace (WEBHOOK_SECRETS: ``namespace:secret,…``), else the
shared WEBHOOK_SECRET. A secret that starts with ``whsec_`` is base64 of the key bytes (as the standard's
libraries expect); any other secret is used as its UTF-8 bytes. :func:`verify` is what a receiver does:
it also refuses a timestamp more than ``tolerance`` seconds (300) away from its clock, so a captured
delivery cannot be replayed later.

**Where it goes**: only to an ``https://`` URL (``http://`` when CALLBACK_ALLOW_HTTP) whose host
resolves to global addresses only (``is_global``, IPv4-mapped, 6to4 and NAT64 addresses judged by the
IPv4 address they carry; multicast never), unless CALLBACK_ALLOW_PRIVATE. The host is resolved once per
delivery and every attempt connects to that checked address, while TLS (SNI, certificate name) and
the ``Host`` header keep the URL's host name: a second DNS answer (rebinding) is never asked for.

**Bounds**: each attempt has a connect timeout, a per-read timeout and a wall-clock deadline after
which its socket is shut down (a receiver that trickles its answer cannot hold a thread), and at most
MAX_ANSWER_BYTES of the answer are read. Delivery is retried with exponential backoff on connection
errors, timeouts and 5xx/429 answers; any other answer ends it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from threading import Event
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

log = logging.getLogger("renamer_ray.webhooks")
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300           # verify(): how far a timestamp may be from the receiver's clock
ATTEMPTS = 6                      # 1 + 5 retries: 1, 2, 4, 8, 16 s apart (≈ 31 s in all)
FIRST_BACKOFF_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0     # TCP connect to the checked address
READ_TIMEOUT_SECONDS = 10.0       # any one read (TLS handshake, answer) waiting for bytes
ATTEMPT_DEADLINE_SECONDS = 15.0   # one whole attempt, wall clock: then its socket is shut down
MAX_ANSWER_BYTES = 4096           # of the receiver's answer body (only its status matters)
MAX_URL_CHARS = 2048
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")
NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")   # as DEFAULT_NAMESPACE and API_KEYS' namespaces
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

Resolver = Callable[[str, int], Iterable[str]]   # (host, port) → addresses, as getaddrinfo gives them


class CallbackRefused(ValueError):
    """The callback URL may not be used; the message says why."""


# Signing ----------------------------------------------------------------------------------------
def key_bytes(secret: str) -> bytes:
    """The HMAC key a secret stands for: ``whsec_<base64>`` is decoded; anything else is its UTF-8
    bytes. Raises ValueError (without the secret in the message) for a ``whsec_`` that is not base64."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a secret starting with whsec_ must continue with the key in base64") from None
        if not key:
            raise ValueError("a whsec_ secret must hold a key")
        return key
    return secret.encode("utf-8")


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


def secret_for(settings, namespace: str | None) -> str | None:
    """The secret that signs callbacks of ``namespace``'s jobs: its own (WEBHOOK_SECRETS), else the
    shared WEBHOOK_SECRET; None when neither is set (callbacks are then refused)."""
    own = parse_secrets(getattr(settings, "webhook_secrets", "") or "")
    return own.get(namespace or "") or settings.webhook_secret


# Where a callback may go ------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A checked callback URL: what to connect to (``address``, resolved once) and what to say (``host``)."""

    url: str
    scheme: str
    host: str          # ASCII, as in the URL: TLS SNI and certificate name, and the Host header
    port: int
    path: str          # path and query
    address: str       # the checked IP address every attempt connects to

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.scheme == "https" else 80) else f"{host}:{self.port}"


def system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address; an IPv6 address that carries an IPv4 one is judged by that one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return _is_public(ip.sixtofour) and ip.is_global
        if any(ip in net for net in NAT64):
            return _is_public(ipaddress.IPv4Address(ip.packed[-4:]))
        if ip.packed[:12] == bytes(12):  # ::/96, the deprecated IPv4-compatible form (and :: and ::1)
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


def check_url(url: str, *, allow_private: bool, allow_http: bool = False, resolve: Resolver | None = None) -> Target:
    """The URL, checked and with its host resolved once (``resolve``: the system's resolver unless a
    test gives one): an absolute http(s) URL, https unless ``allow_http``, whose host resolves only
    to global addresses unless ``allow_private``. Raises CallbackRefused with a sentence saying why."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise CallbackRefused(f"callback_url is too long: at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port, hostname = parts.port, parts.hostname
    except ValueError as exc:   # an unclosed [ of an IPv6 address, a port that is not a number 0-65535
        raise CallbackRefused(f"callback_url is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise CallbackRefused("callback_url must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry a user name or password")
    if port == 0:
        raise CallbackRefused("callback_url has port 0: give a port from 1 to 65535")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not re.fullmatch(r"[!-~]*", path):
        raise CallbackRefused("callback_url: the path may hold only printable ASCII (percent-encode the rest)")
    literal = _ip(hostname)
    if literal is None:
        try:
            hostname = hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise CallbackRefused(f"callback_url: {hostname!r} is not a valid host name") from None
        if not HOST_NAME.match(hostname) or len(hostname) > 253:
            raise CallbackRefused(f"callback_url: {hostname!r} is not a valid host name")
        try:
            answers = list(dict.fromkeys((resolve or system_resolve)(hostname, port)))
        except (OSError, UnicodeError):
            raise CallbackRefused(f"callback_url: the host {hostname!r} does not resolve") from None
        addresses = [ip for a in answers if (ip := _ip(a)) is not None]
        if not addresses or len(addresses) != len(answers):
            raise CallbackRefused(f"callback_url: the host {hostname!r} does not resolve to an IP address")
    else:
        addresses = [literal]
    if not allow_private and not all(_is_public(ip) for ip in addresses):
        raise CallbackRefused(f"callback_url: {hostname!r} is a private, local or otherwise non-public address "
                              "(callbacks go to public hosts only)")
    if parts.scheme == "http" and not allow_http:
        raise CallbackRefused("callback_url must be https:// (this deployment does not send callbacks over "
                              "plain http: CALLBACK_ALLOW_HTTP)")
    first = addresses[0]
    if isinstance(first, ipaddress.IPv6Address) and first.ipv4_mapped is not None:
        first = first.ipv4_mapped   # connect over IPv4 to the address it was judged as
    return Target(url=url, scheme=parts.scheme, host=hostname, port=port, path=path, address=str(first))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# Delivery ---------------------------------------------------------------------------------------
class _Deadline:
    """Shuts the watched socket down when an attempt's time is up: any read blocked on it returns."""

    def __init__(self, seconds: float):
        self.lock, self.sock, self.expired = threading.Lock(), None, False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sock = sock
            if self.expired:
                self._shut()

    def _expire(self) -> None:
        with self.lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self.sock is not None:
            try:
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)   # the fd's, also under a TLS socket
            except OSError:
                pass

    def stop(self) -> None:
        self.timer.cancel()
        with self.lock:
            self.sock = None


class Webhooks:
    """Delivers callbacks on a few background threads, so a slow receiver never holds a run.

    ``resolve``, ``connect`` (``socket.create_connection``'s signature) and ``tls`` (an SSLContext)
    are the system's unless given (tests give their own); the timing knobs default to the module's."""

    def __init__(self, secret: str | None, *, allow_private: bool, allow_http: bool = False, threads: int = 4,
                 resolve: Resolver | None = None, connect=None, tls: ssl.SSLContext | None = None,
                 attempts: int = ATTEMPTS, first_backoff: float = FIRST_BACKOFF_SECONDS,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS, read_timeout: float = READ_TIMEOUT_SECONDS,
                 deadline: float = ATTEMPT_DEADLINE_SECONDS):
        self.secret, self.allow_private, self.allow_http = secret, allow_private, allow_http
        self.resolve, self.connect = resolve or system_resolve, connect or socket.create_connection
        self.tls = tls or ssl.create_default_context()
        self.attempts, self.first_backoff = attempts, first_backoff
        self.connect_timeout, self.read_timeout, self.deadline = connect_timeout, read_timeout, deadline
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
        self.closing = Event()

    def send(self, url: str, body: bytes, job_id: str, *, secret: str | None = None, allow_http: bool | None = None):
        """Queue one delivery signed with ``secret`` (the job's namespace's; default: the shared one);
        returns its future (True when the receiver answered 2xx)."""
        return self.pool.submit(self._deliver, url, body, job_id, secret or self.secret,
                                self.allow_http if allow_http is None else allow_http)

    def _deliver(self, url: str, body: bytes, job_id: str, secret: str | None, allow_http: bool) -> bool:
        if not secret:
            log.error("job %s has a callback_url but no webhook secret is set (WEBHOOK_SECRET, WEBHOOK_SECRETS): "
                      "not sent", job_id)
            return False
        try:
            key_bytes(secret)
            # Resolved and checked again now (DNS may have changed since the job was submitted), once:
            # every attempt below connects to this address.
            target = check_url(url, allow_private=self.allow_private, allow_http=allow_http, resolve=self.resolve)
        except ValueError as exc:  # CallbackRefused, or a whsec_ secret that is not base64
            log.error("callback of job %s not sent: %s", job_id, exc)
            return False
        msg_id = f"msg_{uuid.uuid4().hex}"
        backoff = self.first_backoff
        for attempt in range(1, self.attempts + 1):
            headers = {"Host": target.host_header, "Content-Type": "application/json",
                       "User-Agent": "renamer-ray-webhook/2", "Connection": "close",
                       **signed_headers(secret, msg_id, body)}
            try:
                status, answer = self._post(target, body, headers)
                if 200 <= status < 300:
                    log.info("callback of job %s delivered (attempt %d)", job_id, attempt)
                    return True
                if status < 500 and status != 429:
                    log.error("callback of job %s refused by the receiver: HTTP %d %r", job_id, status, answer[:200])
                    return False
                problem = f"HTTP {status}"
            except (OSError, http.client.HTTPException, ValueError) as exc:  # ssl.SSLError is an OSError
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("callback of job %s to %s (%s) failed (attempt %d/%d): %s", job_id, target.host,
                        target.address, attempt, self.attempts, problem)
            if attempt < self.attempts and self.closing.wait(backoff):  # a retry's backoff, cut short on shutdown
                return False
            backoff *= 2
        return False

    def _post(self, target: Target, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """One attempt: connect to the checked address, TLS against the URL's host name, POST, read
        the status and at most MAX_ANSWER_BYTES; all within ``deadline`` seconds."""
        deadline = _Deadline(self.deadline)
        sock = None
        try:
            sock = self.connect((target.address, target.port), timeout=self.connect_timeout)
            deadline.watch(sock)
            sock.settimeout(self.read_timeout)
            if target.scheme == "https":
                sock = self.tls.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
                deadline.watch(sock)
                sock.do_handshake()
            conn = http.client.HTTPConnection(target.address, target.port)
            conn.sock = sock   # connected already: http.client never resolves or connects by itself
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            if deadline.expired:  # cut while the headers came: http.client takes the EOF for their end
                raise TimeoutError(f"no complete answer within {self.deadline:g} s")
            try:
                answer = response.read(MAX_ANSWER_BYTES)
            except (OSError, http.client.HTTPException):  # the status is what counts
                answer = b""
            return response.status, answer
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise TimeoutError(f"no complete answer within {self.deadline:g} s") from exc
            raise
        finally:
            deadline.stop()
            if sock is not None:
                sock.close()

    def close(self) -> None:
        self.closing.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
