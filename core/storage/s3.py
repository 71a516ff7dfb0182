"""The object stores the tool reads and writes: S3-compatible buckets (through `minio`) and a local folder.

Both look the same to callers: bucket-relative keys with '/' separators, listing by string prefix as in
S3, and copies that run server-side when two stores can see each other's objects (same S3 endpoint and
credentials, or two local folders) and otherwise stream through this process in constant memory.
`copy_objects` runs many copies on a bounded pool, reports progress and honours a cancel event.

Transient failures (connection errors, timeouts, S3 5xx, SlowDown) are retried with exponential backoff;
everything else becomes a one-line StorageError saying what failed and what to check. Credentials never
appear in a message, a log line or a repr.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import certifi
import tenacity
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.credentials import IamAwsProvider
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from milvus_backup.core.config import S3_STORAGE_TYPES, StorageConfig
from milvus_backup.core.errors import Cancelled, StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Retry policy for transient failures. Module-level so tests (and impatient callers) can shorten it.
RETRY_ATTEMPTS = 4
RETRY_WAIT_INITIAL = 0.2  # seconds; doubles each attempt
RETRY_WAIT_MAX = 2.0

CHUNK_SIZE = 1024 * 1024  # streaming copies hold at most this much of an object (local side) in memory
DELETE_BATCH = 1000  # S3 DeleteObjects takes at most 1000 keys
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest multipart part
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024  # S3's largest part, and largest single CopyObject
MAX_PARTS = 10000
_TMP_PREFIX = ".partial-"  # local temp files; never listed as objects

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


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class CopyTask:
    src_key: str
    dst_key: str
    size: int


# --------------------------------------------------------------------------- the common face


class Storage(ABC):
    """One bucket of an S3-compatible store, or one local folder. Keys are relative to it."""

    kind: str  # "minio" | "local"
    bucket: str

    @abstractmethod
    def same_store(self, other: Storage) -> bool:
        """True when a server-side copy from `other` into this store works."""

    @abstractmethod
    def describe(self, key: str = "") -> str:
        """Where a key lives, for messages: never includes credentials."""

    @abstractmethod
    def list(self, prefix: str, recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects whose keys start with `prefix` (a string prefix, as in S3), sorted by key.

        recursive=False leaves out objects below a further '/' after the prefix."""

    @abstractmethod
    def list_dirs(self, prefix: str) -> list[str]:
        """The immediate child folders of folder `prefix` that hold objects, as full keys ending in '/'."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, or None when there is no such object."""

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The whole object. Raises ObjectNotFound (a StorageError) when it does not exist."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Create or replace an object; a reader never sees it half-written."""

    @abstractmethod
    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A context manager giving a readable stream of the object, closed when the block ends."""

    def put_stream(self, key: str, stream: BinaryIO, length: int) -> None:
        """Write exactly `length` bytes read from `stream`, in constant memory. Not retried (a stream
        cannot be rewound): copy_from retries by reopening its source."""
        self._call("write", self.describe(key), lambda: self._put_stream(key, stream, length), retry=False)

    def copy_from(self, src: Storage, src_key: str, dst_key: str, size: int, *, server_side: bool = True) -> None:
        """Copy one object of `src` into this store: server-side when same_store (and allowed), else streamed.

        `size` is the object's size as listed; a streamed copy checks the source gives exactly that much.
        server_side=False forces streaming, for `minio.crossStorage`.
        """
        where = f"{src.describe(src_key)} to {self.describe(dst_key)}"
        if server_side and self.same_store(src):
            self._call("copy", where, lambda: self._server_copy(src, src_key, dst_key, size))
        else:
            self._call("copy", where, lambda: self._stream_copy(src, src_key, dst_key, size))

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one object; a missing object is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix`; returns how many. Pass a folder prefix
        ending in '/' unless you mean a string prefix ('bk' also matches 'bk2/...'). Refuses ''."""

    @abstractmethod
    def ensure_bucket(self) -> None:
        """Create the bucket (or folder) when it does not exist."""

    @abstractmethod
    def check(self) -> None:
        """Raise a one-line StorageError unless the store answers and the bucket (or folder) exists."""

    # ---- what subclasses provide to the shared copy and retry logic

    @abstractmethod
    def _put_stream(self, key: str, stream: BinaryIO, length: int) -> None:
        """put_stream without retry or error mapping."""

    @abstractmethod
    def _server_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> None:
        """A copy inside the store; `src` is a store for which same_store(src) is True."""

    def _stream_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> None:
        with src.open(src_key) as stream:
            self._put_stream(dst_key, _SourceReader(stream, src, src_key), size)

    def _error(self, exc: BaseException, op: str, where: str) -> StorageError:
        """Turn a failure into the one line a user sees."""
        if isinstance(exc, _SourceReadError):
            return exc.storage._error(exc.original, "read", exc.storage.describe(exc.key))
        if (isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)) and op == "read") or (
            isinstance(exc, FileNotFoundError) and op == "copy"
        ):
            return ObjectNotFound(f"{op} {where} failed: no such object (check the key or backup name)")
        if isinstance(exc, PermissionError):
            return StorageError(f"{op} {where} failed: permission denied (check the folder's owner and mode)")
        if isinstance(exc, OSError) and exc.strerror:
            return StorageError(f"{op} {where} failed: {_one_line(exc.strerror)}")
        return StorageError(f"{op} {where} failed: {_short(exc)}")

    def _call(self, op: str, where: str, fn: Callable[[], T], retry: bool = True) -> T:
        """Run one operation: transient failures retried, every failure mapped to a StorageError."""
        try:
            if not retry:
                return fn()
            return _retrying(op, where)(fn)
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, op, where) from exc


# --------------------------------------------------------------------------- S3 through minio


class MinioStorage(Storage):
    """One bucket of a MinIO / S3 / SeaweedFS server."""

    kind = "minio"

    def __init__(self, cfg: StorageConfig, multipart_copy_threshold_mib: int = 500, max_connections: int = 128):
        self.bucket = cfg.bucket_name
        self.endpoint = cfg.endpoint
        self._threshold = max(1, multipart_copy_threshold_mib) * 1024 * 1024
        # Only a digest of the credentials is kept here: enough to tell whether two stores match.
        self._identity = hashlib.sha256(
            repr(
                (
                    cfg.address.lower(),
                    cfg.port,
                    cfg.use_ssl,
                    cfg.use_iam,
                    cfg.iam_endpoint,
                    cfg.access_key_id,
                    cfg.secret_access_key,
                    cfg.token,
                )
            ).encode()
        ).hexdigest()
        # urllib3 must not retry on its own: our retry reopens sources, and its retries would multiply ours.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=10, read=300),
            maxsize=max_connections,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        credentials = IamAwsProvider(custom_endpoint=cfg.iam_endpoint or None) if cfg.use_iam else None
        try:
            self._client = Minio(
                cfg.endpoint,
                access_key=None if cfg.use_iam else (cfg.access_key_id or None),
                secret_key=None if cfg.use_iam else cfg.secret_access_key,
                session_token=cfg.token or None,
                secure=cfg.use_ssl,
                region=cfg.region or None,
                http_client=http,
                credentials=credentials,
            )
        except ValueError as exc:
            raise StorageError(
                f"invalid S3 endpoint {cfg.endpoint}: {_short(exc)} (check the address and port keys)"
            ) from None

    def __repr__(self) -> str:
        return f"MinioStorage(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def same_store(self, other: Storage) -> bool:
        return isinstance(other, MinioStorage) and other._identity == self._identity

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key} at {self.endpoint}"

    def list(self, prefix: str, recursive: bool = True) -> Iterator[ObjectInfo]:
        # A listing is many requests; after a transient failure it resumes after the last key it gave.
        last: str | None = None
        failures = 0
        while True:
            try:
                for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=recursive, start_after=last):
                    if obj.is_dir or obj.object_name.endswith("/"):
                        continue
                    last = obj.object_name
                    failures = 0
                    yield ObjectInfo(obj.object_name, int(obj.size or 0))
                return
            except Exception as exc:
                failures += 1
                if not _is_transient(exc) or failures >= RETRY_ATTEMPTS:
                    raise self._error(exc, "list", self.describe(prefix)) from exc
                _log_retry("list", self.describe(prefix), exc, failures)
                time.sleep(_backoff(failures))

    def list_dirs(self, prefix: str) -> list[str]:
        folder = _as_folder(prefix)

        def run() -> list[str]:
            return sorted(o.object_name for o in self._client.list_objects(self.bucket, prefix=folder) if o.is_dir)

        # SeaweedFS keeps a folder after its last object is deleted: only folders with objects count.
        return [d for d in self._call("list", self.describe(folder), run) if _first(self.list(d)) is not None]

    def stat(self, key: str) -> ObjectInfo | None:
        if not key or key.endswith("/"):
            return None

        def run() -> ObjectInfo | None:
            try:
                info = self._client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return None
                raise
            return None if info.is_dir else ObjectInfo(key, int(info.size or 0))

        return self._call("stat", self.describe(key), run)

    def read(self, key: str) -> bytes:
        def run() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call("read", self.describe(key), run)

    def write(self, key: str, data: bytes) -> None:
        self._call(
            "write", self.describe(key), lambda: self._client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        )

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        response = self._call("read", self.describe(key), lambda: self._client.get_object(self.bucket, key))
        try:
            yield response
        finally:
            response.close()
            response.release_conn()

    def delete(self, key: str) -> None:
        self._call("delete", self.describe(key), lambda: self._client.remove_object(self.bucket, key))

    def delete_prefix(self, prefix: str) -> int:
        _refuse_everything(prefix, self.describe(prefix))
        deleted = 0
        batch: list[str] = []
        for info in self.list(prefix):
            batch.append(info.key)
            if len(batch) == DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    def _delete_batch(self, keys: list[str]) -> int:
        def run() -> list:
            return list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))

        errors = self._call("delete", self.describe(keys[0]), run)
        if errors:
            first = errors[0]
            raise StorageError(
                f"delete {self.describe(first.name)} failed: {first.code}: {_one_line(first.message)} "
                f"({len(errors)} of {len(keys)} objects not deleted)"
            )
        return len(keys)

    def ensure_bucket(self) -> None:
        def run() -> None:
            if self._client.bucket_exists(self.bucket):
                return
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

        self._call("create bucket", self.describe(), run)

    def check(self) -> None:
        if not self._call("check", self.describe(), lambda: self._client.bucket_exists(self.bucket)):
            raise StorageError(
                f"bucket {self.bucket} does not exist at {self.endpoint} (create it, or fix the bucketName key)"
            )

    def _put_stream(self, key: str, stream: BinaryIO, length: int) -> None:
        # One part in flight per copy: copy_objects already runs many copies at once.
        self._client.put_object(self.bucket, key, stream, length, num_parallel_uploads=1)
        if stream.read(1):  # the source was longer than listed: do not leave a truncated copy behind
            self._client.remove_object(self.bucket, key)
            raise StorageError(
                f"write {self.describe(key)} failed: the source holds more than the expected "
                f"{length} bytes (was it changed during the copy?)"
            )

    def _server_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> None:
        assert isinstance(src, MinioStorage)
        if size <= min(self._threshold, MAX_PART_SIZE):
            self._client.copy_object(self.bucket, dst_key, CopySource(src.bucket, src_key))
            return
        # The parts must cover the object as it is now, whatever size the caller listed.
        actual = int(self._client.stat_object(src.bucket, src_key).size or 0)
        parts = _parts(actual, self._threshold)
        if len(parts) <= 1:
            self._client.copy_object(self.bucket, dst_key, CopySource(src.bucket, src_key))
            return
        sources = [ComposeSource(src.bucket, src_key, offset=offset, length=length) for offset, length in parts]
        self._client.compose_object(self.bucket, dst_key, sources)

    def _error(self, exc: BaseException, op: str, where: str) -> StorageError:
        if isinstance(exc, S3Error):
            return self._s3_error(exc, op, where)
        if isinstance(exc, (ServerError, InvalidResponseError)):
            return StorageError(
                f"{op} {where} failed: the server answered {_short(exc)} "
                f"(check that {self.endpoint} is an S3 endpoint and healthy)"
            )
        if isinstance(exc, urllib3.exceptions.SSLError):
            return StorageError(
                f"{op} {where} failed: TLS error {_short(exc)} (check the useSSL key and the server's certificate)"
            )
        if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
            return StorageError(
                f"{op} {where} failed: cannot reach {self.endpoint}: {_reason(exc)} "
                "(check the address, port and useSSL keys, and that the server runs)"
            )
        if isinstance(exc, ValueError):  # minio's own checks, e.g. an invalid bucket name
            return StorageError(f"{op} {where} failed: {_short(exc)}")
        return super()._error(exc, op, where)

    def _s3_error(self, exc: S3Error, op: str, where: str) -> StorageError:
        code = exc.code or "error"
        if code in ("NoSuchKey", "NoSuchObject"):
            return ObjectNotFound(f"{op} {where} failed: no such object (check the key or backup name)")
        if code == "NoSuchBucket":
            return ObjectNotFound(
                f"{op} {where} failed: bucket {exc.bucket_name or self.bucket} does not exist "
                "(check the bucketName keys, or create the bucket)"
            )
        if code in _AUTH_S3_CODES:
            return StorageError(
                f"{op} {where} failed: {code} (check the access key, secret key and token for "
                f"{self.endpoint}, and the bucket's permissions)"
            )
        message = f": {_one_line(exc.message)}" if exc.message else ""
        return StorageError(f"{op} {where} failed: {code}{message}")


# --------------------------------------------------------------------------- a local folder


class LocalStorage(Storage):
    """A folder on this machine: key `a/b/c` is the file `base_dir/a/b/c`.

    Writes go to a temp file in the same folder and are renamed into place, so a crash never leaves
    a half-written file under a real key. Empty folders are removed after deletes, as S3 has none.
    """

    kind = "local"

    def __init__(self, base_dir: str | Path):
        self.base_dir = Path(os.path.abspath(os.path.expanduser(str(base_dir))))
        self.bucket = self.base_dir.name

    def __repr__(self) -> str:
        return f"LocalStorage(base_dir={str(self.base_dir)!r})"

    def same_store(self, other: Storage) -> bool:
        return isinstance(other, LocalStorage)

    def describe(self, key: str = "") -> str:
        return str(self.base_dir / key) if key else str(self.base_dir)

    def list(self, prefix: str, recursive: bool = True) -> Iterator[ObjectInfo]:
        folder = self._folder_of(prefix)
        try:
            found = self._scan(folder, prefix, recursive)
        except OSError as exc:
            raise self._error(exc, "list", self.describe(prefix)) from exc
        for key, size in sorted(found):
            yield ObjectInfo(key, size)

    def list_dirs(self, prefix: str) -> list[str]:
        folder = _as_folder(prefix)
        path = self._folder_of(folder)
        if not path.is_dir():
            return []
        try:
            names = sorted(e.name for e in os.scandir(path) if e.is_dir() and _holds_files(e.path))
        except OSError as exc:
            raise self._error(exc, "list", self.describe(folder)) from exc
        return [f"{folder}{name}/" for name in names]

    def stat(self, key: str) -> ObjectInfo | None:
        if not key or key.endswith("/"):
            return None
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, "stat", str(path)) from exc
        return ObjectInfo(key, st.st_size) if path.is_file() else None

    def read(self, key: str) -> bytes:
        path = self._path(key)
        return self._call("read", str(path), path.read_bytes, retry=False)

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._call("write", str(path), lambda: _atomic_write(path, lambda f: f.write(data)), retry=False)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        stream = self._call("read", str(path), lambda: open(path, "rb"), retry=False)  # noqa: SIM115 - closed by the with below
        with stream:
            yield stream

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._call("delete", str(path), lambda: path.unlink(missing_ok=True), retry=False)
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        _refuse_everything(prefix, self.describe(prefix))
        deleted = 0
        parents: set[Path] = set()
        for info in self.list(prefix):
            path = self._path(info.key)
            self._call("delete", str(path), lambda path=path: path.unlink(missing_ok=True), retry=False)
            parents.add(path.parent)
            deleted += 1
        if prefix.endswith("/"):
            self._remove_leftovers(self._folder_of(prefix))
            parents.add(self._folder_of(prefix))
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            self._prune(parent)
        return deleted

    def ensure_bucket(self) -> None:
        self._call(
            "create folder", str(self.base_dir), lambda: self.base_dir.mkdir(parents=True, exist_ok=True), retry=False
        )

    def check(self) -> None:
        if not self.base_dir.is_dir():
            raise StorageError(
                f"local storage folder {self.base_dir} does not exist (create it, or fix the rootPath key)"
            )

    def _put_stream(self, key: str, stream: BinaryIO, length: int) -> None:
        path = self._path(key)
        _atomic_write(path, lambda f: _copy_exactly(stream, f, length, str(path)))

    def _server_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> None:
        assert isinstance(src, LocalStorage)
        src_path, dst_path = src._path(src_key), self._path(dst_key)
        with open(src_path, "rb") as source:
            _atomic_write(dst_path, lambda f: shutil.copyfileobj(source, f, CHUNK_SIZE))

    # ---- paths

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise StorageError(f"invalid object key {key!r}: it must name a file below {self.base_dir}")
        return self.base_dir.joinpath(*parts)

    def _folder_of(self, prefix: str) -> Path:
        """The folder a listing of `prefix` starts in: everything up to the prefix's last '/'."""
        head = prefix.rpartition("/")[0]
        parts = [p for p in head.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise StorageError(f"invalid prefix {prefix!r}: it must stay below {self.base_dir}")
        return self.base_dir.joinpath(*parts)

    def _key_of(self, path: str) -> str:
        return Path(path).relative_to(self.base_dir).as_posix()

    def _scan(self, folder: Path, prefix: str, recursive: bool) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        if not folder.is_dir():
            return found
        walk = os.walk(folder, onerror=_raise_unless_gone) if recursive else [_one_level(folder)]
        for root, _dirs, files in walk:
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    continue
                full = os.path.join(root, name)
                key = self._key_of(full)
                if not key.startswith(prefix):
                    continue
                try:
                    found.append((key, os.stat(full).st_size))
                except FileNotFoundError:  # deleted while we listed
                    continue
        return found

    def _remove_leftovers(self, folder: Path) -> None:
        """Temp files a crashed writer left behind, which would keep the folder alive."""
        if not folder.is_dir():
            return
        for root, _dirs, files in os.walk(folder, topdown=False, onerror=_raise_unless_gone):
            for name in files:
                if name.startswith(_TMP_PREFIX):
                    Path(root, name).unlink(missing_ok=True)
            try:
                os.rmdir(root)
            except OSError:
                pass  # not empty: objects of another writer, or a folder we may not touch

    def _prune(self, folder: Path) -> None:
        """Remove now-empty folders from `folder` up to (not including) the base folder."""
        while folder != self.base_dir and self.base_dir in folder.parents:
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass  # already removed (by _remove_leftovers): its parent may be empty now
            except OSError:
                return  # not empty: stop here
            folder = folder.parent


# --------------------------------------------------------------------------- opening and copying


def open_storage(cfg: StorageConfig, multipart_copy_threshold_mib: int = 500) -> Storage:
    """The store a config names. For storage_type local, the LocalStorage is rooted at cfg.root_path and
    keys are relative to that folder: build them on layout_root(cfg), not on cfg.root_path."""
    if cfg.storage_type == "local":
        return LocalStorage(cfg.root_path)
    if cfg.storage_type in S3_STORAGE_TYPES:
        return MinioStorage(cfg, multipart_copy_threshold_mib)
    raise StorageError(f"storage type {cfg.storage_type!r} is not supported (use minio, s3 or local)")


def layout_root(cfg: StorageConfig) -> str:
    """The root to build keys on inside the store open_storage(cfg) returns: '' for a local folder
    (the store is already rooted at root_path), root_path inside an S3 bucket."""
    return "" if cfg.storage_type == "local" else cfg.root_path


def copy_objects(
    src: Storage,
    dst: Storage,
    tasks: Sequence[CopyTask],
    parallelism: int,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    server_side: bool = True,
    after_copy: Callable[[CopyTask], None] | None = None,
) -> None:
    """Copy every task's object from `src` to `dst` with at most `parallelism` copies at a time.

    on_progress(bytes_done_delta, objects_done_delta) is called from worker threads after each object.
    When `cancel` is set, copies in flight finish, no new one starts, and Cancelled is raised. The first
    failure stops new copies too and is raised as a StorageError once the copies in flight are done.
    server_side=False forces streaming copies (`minio.crossStorage`).
    after_copy(task), when given, runs in the worker right after each copy (before its progress is
    reported), e.g. to read the copy back and hash it; its failure fails the copy.
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")

    def copy_one(task: CopyTask) -> None:
        dst.copy_from(src, task.src_key, task.dst_key, task.size, server_side=server_side)
        if after_copy is not None:
            after_copy(task)
        if on_progress is not None:
            on_progress(task.size, 1)

    failure: BaseException | None = None
    failed_task: CopyTask | None = None
    cancelled = False
    done_count = 0
    pending: dict[Future, CopyTask] = {}
    queue = iter(tasks)
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="copy") as pool:
        while True:
            # Submit only as many as can run: the cancel check then happens right before each copy starts.
            while failure is None and not cancelled and len(pending) < parallelism:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                task = next(queue, None)
                if task is None:
                    break
                pending[pool.submit(copy_one, task)] = task
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                task = pending.pop(future)
                error = future.exception()
                if error is None:
                    done_count += 1
                elif isinstance(error, Cancelled):  # after_copy saw the cancel while it read
                    cancelled = True
                elif failure is None:
                    failure, failed_task = error, task
    if failure is not None:
        if isinstance(failure, StorageError):
            raise failure
        raise StorageError(f"copy of {failed_task.src_key} failed: {_short(failure)}") from failure
    if cancelled:
        raise Cancelled(f"copy cancelled after {done_count} of {len(tasks)} objects")


# --------------------------------------------------------------------------- helpers


class _SourceReadError(Exception):
    """A failure reading the source of a streamed copy, kept apart from the destination's failures."""

    def __init__(self, original: BaseException, storage: Storage, key: str):
        super().__init__(str(original))
        self.original, self.storage, self.key = original, storage, key


class _SourceReader:
    """Wraps a source stream so its failures are reported (and classified) as the source's."""

    def __init__(self, stream: BinaryIO, storage: Storage, key: str):
        self._stream, self._storage, self._key = stream, storage, key

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size) if size is not None and size >= 0 else self._stream.read()
        except Exception as exc:
            raise _SourceReadError(exc, self._storage, self._key) from exc


def _is_transient(exc: BaseException) -> bool:
    """Worth another try: the network or the server hiccupped; the request itself was fine."""
    if isinstance(exc, _SourceReadError):
        return _is_transient(exc.original)
    if isinstance(exc, S3Error):
        status = exc.response.status if exc.response is not None else 0
        return exc.code in _TRANSIENT_S3_CODES or status >= 500
    if isinstance(exc, ServerError):
        return exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):
        return getattr(exc, "_code", 0) >= 500  # e.g. a proxy's HTML 502 page
    if isinstance(exc, urllib3.exceptions.SSLError):
        return False  # a certificate will not fix itself
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def _backoff(failures: int) -> float:
    return min(RETRY_WAIT_MAX, RETRY_WAIT_INITIAL * 2 ** (failures - 1))


def _log_retry(op: str, where: str, exc: BaseException, failures: int) -> None:
    log.warning("%s %s failed (%s), retrying (attempt %d of %d)", op, where, _short(exc), failures + 1, RETRY_ATTEMPTS)


def _retrying(op: str, where: str) -> tenacity.Retrying:
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_transient),
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS),
        wait=lambda state: _backoff(state.attempt_number),
        before_sleep=lambda state: _log_retry(op, where, state.outcome.exception(), state.attempt_number),
        reraise=True,
    )


def _atomic_write(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write through a temp file in the target folder, then rename it over `path`."""
    tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    for attempt in range(3):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(tmp, "xb")  # noqa: SIM115 - closed by the caller
            break
        except FileNotFoundError:  # a concurrent delete pruned the folder between mkdir and open
            if attempt == 2:
                raise
    try:
        with handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data does
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy_exactly(source: BinaryIO, target: BinaryIO, length: int, where: str) -> None:
    remaining = length
    while remaining > 0:
        chunk = source.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise StorageError(
                f"write {where} failed: the source ended after {length - remaining} of "
                f"{length} bytes (was it changed during the copy?)"
            )
        target.write(chunk)
        remaining -= len(chunk)
    if source.read(1):
        raise StorageError(
            f"write {where} failed: the source holds more than the expected {length} bytes "
            "(was it changed during the copy?)"
        )


def _parts(size: int, threshold: int) -> list[tuple[int, int]]:
    """(offset, length) ranges for a multipart copy: parts of `threshold` bytes within S3's limits."""
    part = max(threshold, MIN_PART_SIZE, -(-size // MAX_PARTS))
    part = min(part, MAX_PART_SIZE)
    return [(offset, min(part, size - offset)) for offset in range(0, size, part)]


def _as_folder(prefix: str) -> str:
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def _refuse_everything(prefix: str, where: str) -> None:
    if not prefix.strip("/"):
        raise StorageError(f"refusing to delete everything in {where}: give a non-empty prefix")


def _first(items: Iterator[T]) -> T | None:
    for item in items:
        return item
    return None


def _holds_files(folder: str) -> bool:
    return any(any(not name.startswith(_TMP_PREFIX) for name in files) for _root, _dirs, files in os.walk(folder))


def _one_level(folder: Path) -> tuple[str, list[str], list[str]]:
    files = [e.name for e in os.scandir(folder) if e.is_file()]
    return str(folder), [], files


def _raise_unless_gone(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):
        raise exc


def _reason(exc: BaseException) -> str:
    text = _short(exc)
    marker = "Failed to establish a new connection: "
    return text.split(marker, 1)[1] if marker in text else text


def _short(exc: BaseException) -> str:
    text = _one_line(str(exc)) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())
