"""The one retry policy for storage (and every AWS client): what counts as transient, how often a
client retries a request, and the budget the stages retry within on top of that."""

from __future__ import annotations

import time
from dataclasses import dataclass

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from renamer_ray.errors import one_line

# Every client (boto3's, pyarrow's S3 client, SQS) uses the AWS SDKs' "standard" retry mode (it
# also retries SlowDown) with this many attempts per request: pyarrow's default, 3, turned a short
# burst of SlowDown into a failed file.
S3_ATTEMPTS = 8


# A request on a connection the network dropped silently (an endpoint restarting behind a proxy)
# hangs until its read times out. botocore's and the AWS SDK's 60 s would spend the stages' whole
# retry budget on one try; with these the request is tried again well within it. A read timeout is
# between two reads of one response, not for the whole transfer.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 20


def boto_config(attempts: int | None = None) -> Config:
    """The retry policy above (``attempts`` per request, S3_ATTEMPTS unless given) and timeouts, for
    a boto3 client (read when the client is made)."""
    return Config(retries={"mode": "standard", "max_attempts": attempts or S3_ATTEMPTS},
                  connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS)


# Errors of pyarrow's S3 client that a later attempt may not see (the same list Ray Data retries:
# DataContext.retried_io_errors). A 503 on GetObject surfaces as INTERNAL_FAILURE ("Failed to flush
# response stream"), which pyarrow's own retry strategy does not retry.
TRANSIENT_S3_ERRORS = ("AWS Error INTERNAL_FAILURE", "AWS Error NETWORK_CONNECTION", "AWS Error SLOW_DOWN",
                       "AWS Error SERVICE_UNAVAILABLE", "HTTP status 503")


# A storage outage (an endpoint restarting, a network partition, a long burst of throttling) can
# outlast the clients' own retries (8 attempts: seconds). The stages retry transient errors on top,
# with backoff, until this budget is spent; only then does a file fail ("running again may succeed").
STORAGE_RETRY_SECONDS = 60.0
_TRANSIENT_CODES = ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
                    "ThrottlingException", "RequestTimeTooSkewed")


# What a person can do about the storage errors a mistyped command or a missing credential causes.
_EXPLAINED_CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied: the credentials in use may not read or write there",
    "AllAccessDisabled": "access denied: the credentials in use may not read or write there",
    "InvalidAccessKeyId": "the AWS access key is not known to the endpoint: check the credentials",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key: check the credentials",
    "ExpiredToken": "the AWS session token has expired: refresh the credentials",
    "InvalidBucketName": "that is not a valid bucket name",
}
_EXPLAINED_WORDS = {"NO_SUCH_BUCKET": _EXPLAINED_CODES["NoSuchBucket"], "ACCESS_DENIED": _EXPLAINED_CODES["AccessDenied"]}


def explain(exc: BaseException) -> str | None:
    """One sentence for a storage error a user can fix (no credentials, a missing bucket, access
    denied, an endpoint that does not answer), or None for any other error."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
                "or run where an instance role provides them")
    if isinstance(exc, EndpointConnectionError):
        return f"the S3 endpoint does not answer ({exc}): check AWS_ENDPOINT_URL and the network"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return _EXPLAINED_CODES.get(code) or (_EXPLAINED_CODES["AccessDenied"] if code == "403" else None)
    return next((text for words, text in _EXPLAINED_WORDS.items() if words in str(exc)), None)


def is_transient(exc: BaseException) -> bool:
    """An S3 error that a later attempt may not see: no connection, a timeout, a 5xx, throttling."""
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
        return meta.get("HTTPStatusCode", 0) >= 500 or error.get("Code") in _TRANSIENT_CODES
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return isinstance(exc, ConnectionError) or any(words in str(exc) for words in TRANSIENT_S3_ERRORS)
    return False


# A store that is down, not blinking. Per process and per store (an S3 endpoint: ``outage_scope``;
# local files are not tracked): when the current stretch of transient failures began (the start of
# the first failed call) and when the last one ended. Once a stretch has lasted longer than a call's
# budget, calls to that store fail at once (StorageUnavailable) for PROBE_SECONDS after each
# failure, and then one call tries again. So a run over a store that never answers fails its files
# in about one budget per process, not one budget per file: a decode task reads its 8 files one
# after the other, and each read is itself up to S3_ATTEMPTS requests with the client's backoff
# (≈ 50 s against a store that answers 503). A pause of OUTAGE_GAP_SECONDS without a failure, or any
# success, ends the stretch. Another store (local files, another endpoint) is never refused for it.
PROBE_SECONDS = 5.0
OUTAGE_GAP_SECONDS = 30.0


@dataclass
class Outage:
    since: float | None = None        # start of the current stretch of failures, or None
    last_failure: float = 0.0
    last_error: str = ""

    def down(self, now: float, budget: float) -> bool:
        return self.since is not None and now - self.last_failure < OUTAGE_GAP_SECONDS and now - self.since > budget


_outages: dict[str, Outage] = {}


class StorageUnavailable(ConnectionError):
    """Not tried: this process has seen only transient errors from this store for longer than the budget."""


def _scope_of(values) -> str | None:
    """The store a call talks to, from the first location among its arguments that has one."""
    for value in values:
        if scope := getattr(getattr(value, "storage", None), "outage_scope", None):
            return scope
    return None


def retrying(call, *args, budget: float | None = None, scope: str | None = None, **kwargs):
    """``call(*args, **kwargs)``, retried on transient storage errors with backoff until
    ``budget`` seconds (STORAGE_RETRY_SECONDS) have passed; other errors are raised at once. While
    the call's store (``scope``, else that of the first location among the arguments) is down
    (above), it is tried at most once per PROBE_SECONDS in this process."""
    budget = STORAGE_RETRY_SECONDS if budget is None else budget
    scope = scope or _scope_of([*args, *kwargs.values()])
    outage = _outages.setdefault(scope, Outage()) if scope else Outage()
    deadline = time.monotonic() + budget
    delay = 0.1
    while True:
        started = time.monotonic()
        if outage.down(started, budget) and started - outage.last_failure < PROBE_SECONDS:
            raise StorageUnavailable(f"storage has answered only errors for {started - outage.since:.0f} s, "
                                     f"so this was not tried (the last: {outage.last_error})")
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if outage.since is None or now - outage.last_failure >= OUTAGE_GAP_SECONDS:
                outage.since = started
            outage.last_failure, outage.last_error = now, one_line(exc)[:200]
            if now + delay > deadline or outage.down(now, budget):
                raise
        else:
            outage.since = None
            return result
        time.sleep(delay)  # backoff between attempts
        delay = min(delay * 2, 5.0)
