"""When a storage operation is tried again: transient failures (connection errors, timeouts, S3 5xx,
SlowDown), with exponential backoff, a few times.

The knobs are module-level so tests (and impatient callers) can shorten them: patch them on this
module (`milvus_backup.core.storage.retry`); every retry reads them from here when it waits.
"""

from __future__ import annotations

import logging

import tenacity
import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from milvus_backup.core.storage.errors import SourceReadError, short

log = logging.getLogger(__name__)

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


def retrying(op: str, where: str) -> tenacity.Retrying:
    """A tenacity policy that retries transient failures of one operation, logging each retry."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        log_retry(op, where, state.outcome.exception() if state.outcome is not None else None, state.attempt_number)

    def wait(state: tenacity.RetryCallState) -> float:
        return backoff(state.attempt_number)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
