"""When a storage operation is tried again: transient failures (connection errors, timeouts, S3 5xx,
SlowDown), with exponential backoff, a few times.

The knobs are module-level so tests (and impatient callers) can shorten them: patch them on this
module (`milvus_backup.core.storage.retry`); every retry reads them from here when it waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from milvus_backup.core.storage.errors import SourceReadError, short

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_ATTEMPTS = 4
RETRY_WAIT_INITIAL = 0.2  # seconds; doubles each attempt
RETRY_WAIT_MAX = 2.0

_TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "OperationAborted",
        "XMinioServerNotInitialized",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the network or the server hiccupped; the request itself was fine."""
    if isinstance(exc, SourceReadError):
        return is_transient(exc.original)
    if isinstance(exc, S3Error):
        status = exc.response.status if exc.response is not None else 0
        return exc.code in _TRANSIENT_S3_CODES or status >= 500
    if isinstance(exc, ServerError):
        return exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):
        code: int = getattr(exc, "_code", 0)  # e.g. a proxy's HTML 502 page
        return code >= 500
    if isinstance(exc, urllib3.exceptions.SSLError):
        return False  # a certificate will not fix itself
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def backoff(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row."""
    return min(RETRY_WAIT_MAX, RETRY_WAIT_INITIAL * 2.0 ** (failures - 1))


def log_retry(op: str, where: str, exc: BaseException | None, failures: int) -> None:
    reason = short(exc) if exc is not None else "no exception"
    log.warning("%s %s failed (%s), retrying (attempt %d of %d)", op, where, reason, failures + 1, RETRY_ATTEMPTS)


def call_retrying(op: str, where: str, fn: Callable[[], T]) -> T:
    """fn(), tried again after each transient failure (logged) up to RETRY_ATTEMPTS times in all; the last
    failure, or the first that is not transient, is raised as it is. A loop, not a retry library's policy
    object: a backup runs this once per binlog copy, and building such a policy cost more CPU than the
    copy's own request."""
    failures = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            failures += 1
            if failures >= RETRY_ATTEMPTS or not is_transient(exc):
                raise
            log_retry(op, where, exc, failures)
            time.sleep(backoff(failures))
