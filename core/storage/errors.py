"""How a failed storage operation reads to a user: minio's and the OS's exceptions mapped to one line.

Every message says what failed (the operation and where) and, when it can tell, what to check. Messages
never carry credentials: they name the endpoint and bucket only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from milvus_backup.core.errors import StorageError

if TYPE_CHECKING:
    from milvus_backup.core.storage.base import Storage

_AUTH_S3_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
    }
)


class ObjectNotFound(StorageError):
    """The key (or the bucket holding it) does not exist."""


class SourceReadError(Exception):
    """A failure reading the source of a streamed copy, kept apart from the destination's failures."""

    def __init__(self, original: BaseException, storage: Storage, key: str):
        super().__init__(str(original))
        self.original, self.storage, self.key = original, storage, key


def map_os_error(exc: BaseException, op: str, where: str) -> StorageError:
    """A local file's failure (or any failure no store knows better) as one line."""
    if (isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)) and op == "read") or (
        isinstance(exc, FileNotFoundError) and op == "copy"
    ):
        return ObjectNotFound(f"{op} {where} failed: no such object (check the key or backup name)")
    if isinstance(exc, PermissionError):
        return StorageError(f"{op} {where} failed: permission denied (check the folder's owner and mode)")
    if isinstance(exc, OSError) and exc.strerror:
        return StorageError(f"{op} {where} failed: {one_line(exc.strerror)}")
    return StorageError(f"{op} {where} failed: {short(exc)}")


def map_minio_error(exc: BaseException, op: str, where: str, endpoint: str, bucket: str) -> StorageError | None:
    """An S3 client's failure as one line, or None when it is not one minio or urllib3 raised."""
    if isinstance(exc, S3Error):
        return _map_s3_error(exc, op, where, endpoint, bucket)
    if isinstance(exc, (ServerError, InvalidResponseError)):
        return StorageError(
            f"{op} {where} failed: the server answered {short(exc)} "
            f"(check that {endpoint} is an S3 endpoint and healthy)"
        )
    if isinstance(exc, urllib3.exceptions.SSLError):
        return StorageError(
            f"{op} {where} failed: TLS error {short(exc)} (check the useSSL key and the server's certificate)"
        )
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return StorageError(
            f"{op} {where} failed: cannot reach {endpoint}: {_connection_reason(exc)} "
            "(check the address, port and useSSL keys, and that the server runs)"
        )
    if isinstance(exc, ValueError):  # minio's own checks, e.g. an invalid bucket name
        return StorageError(f"{op} {where} failed: {short(exc)}")
    return None


def _map_s3_error(exc: S3Error, op: str, where: str, endpoint: str, bucket: str) -> StorageError:
    code = exc.code or "error"
    if code in ("NoSuchKey", "NoSuchObject"):
        return ObjectNotFound(f"{op} {where} failed: no such object (check the key or backup name)")
    if code == "NoSuchBucket":
        return ObjectNotFound(
            f"{op} {where} failed: bucket {exc.bucket_name or bucket} does not exist "
            "(check the bucketName keys, or create the bucket)"
        )
    if code in _AUTH_S3_CODES:
        return StorageError(
            f"{op} {where} failed: {code} (check the access key, secret key and token for "
            f"{endpoint}, and the bucket's permissions)"
        )
    message = f": {one_line(exc.message)}" if exc.message else ""
    return StorageError(f"{op} {where} failed: {code}{message}")


def _connection_reason(exc: BaseException) -> str:
    text = short(exc)
    marker = "Failed to establish a new connection: "
    return text.split(marker, 1)[1] if marker in text else text


def short(exc: BaseException) -> str:
    """The exception's message on one line, at most 200 characters (its type's name when it has none)."""
    text = one_line(str(exc)) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())
