"""Delivering job callbacks: when a job reaches its final status, its view is POSTed, signed, to the
job's ``callback_url`` from a few background threads, so a slow receiver never holds a run.

Each attempt connects to the address checked once per delivery (``target.py``), has a connect
timeout, a per-read timeout and a wall-clock deadline after which its socket is shut down (a receiver
that trickles its answer cannot hold a thread), and reads at most MAX_ANSWER_BYTES of the answer.
Delivery is retried with exponential backoff on connection errors, timeouts and 5xx/429 answers; any
other answer ends it.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Event

from renamer_ray.config import key_bytes
from renamer_ray.service.webhooks.signing import signed_headers
from renamer_ray.service.webhooks.target import Resolver, Target, check_url, system_resolve

log = logging.getLogger("renamer_ray.webhooks")
ATTEMPTS = 6                      # 1 + 5 retries: 1, 2, 4, 8, 16 s apart (≈ 31 s in all)
FIRST_BACKOFF_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0     # TCP connect to the checked address
READ_TIMEOUT_SECONDS = 10.0       # any one read (TLS handshake, answer) waiting for bytes
ATTEMPT_DEADLINE_SECONDS = 15.0   # one whole attempt, wall clock: then its socket is shut down
MAX_ANSWER_BYTES = 4096           # of the receiver's answer body (only its status matters)


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
