"""The face every object store shows: bucket-relative keys with '/' separators, listing by string prefix
as in S3, and copies that run server-side when two stores can see each other's objects and otherwise
stream through this process in constant memory.

`Storage` holds what the backends share: the copy logic, and `_call`, which runs one operation with
its transient failures retried (`retry`) and every failure mapped to a one-line StorageError (`errors`).
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar

from milvus_backup.core.errors import StorageError
from milvus_backup.core.storage.errors import SourceReadError, map_os_error
from milvus_backup.core.storage.retry import call_retrying

T = TypeVar("T")

CHUNK_SIZE = 256 * 1024  # a streamed read's chunk, written to a folder as it comes
STREAM_BUDGET = 24 * 1024 * 1024  # what all streamed copies of this process hold in memory at once, at most


class ByteBudget:
    """A bound on the bytes held at once by work running in parallel: each piece of work takes its share
    before it starts and gives it back when done, so memory stays flat however many copies run."""

    def __init__(self, total: int):
        self.total, self._free = total, total
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        size = min(size, self.total)  # a share larger than the whole waits for everything else
        with self._cond:
            self._cond.wait_for(lambda: self._free >= size)
            self._free -= size
        try:
            yield
        finally:
            with self._cond:
                self._free += size
                self._cond.notify_all()


_stream_budget = ByteBudget(STREAM_BUDGET)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def _return_large_buffers_to_the_system() -> None:
    """Have glibc give every buffer of 1 MiB or more its own mapping, returned to the system when freed.
    By default glibc raises that threshold after the first large free, and the parts of streamed copies
    (5 MiB each, in many threads) then stay in per-thread heaps: a restore from a folder grew by 35 MiB
    that way. Elsewhere (musl, macOS) this does nothing."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


_return_large_buffers_to_the_system()


class Readable(Protocol):
    """A stream of an object's bytes: a local file, or an S3 response."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""  # the store's ETag, unquoted; "" where a store has none (a local folder)
    # when the store last wrote it, in seconds since the epoch; 0 where unknown (a delimiter listing's folder)
    modified: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Copied:
    """What a copy can vouch for without reading the copy back.

    A server-side copy reports the ETag the store gave the new object (bytes never pass through here);
    a copy whose bytes stream through this process reports their SHA-256, hashed on the way.
    `single_part` is False for a multipart (composed) copy, whose ETag is no digest of the whole object.
    """

    etag: str = ""
    sha256: str = ""
    single_part: bool = True


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
    def list_rolled(
        self, prefix: str, delimiter: str, after: str = "", through: str = "", page: int = 1000
    ) -> Iterator[ObjectInfo]:
        """Objects under `prefix`, as S3's ListObjects with `delimiter` gives them: every key holding the
        delimiter after the prefix rolls up into one entry, the key up to and including the delimiter's
        first occurrence, with size 0 (a folder: its key ends with the delimiter, which ends with '/').
        Not sorted; a rolled-up folder shows once. Few entries is not little work: with any delimiter
        but "/", SeaweedFS walks every key it rolls up.

        Only entries after `after` and up to `through` (when given) come: key ranges listed side by side
        cover a listing exactly when each range's `through` is the next one's `after`. Choose bounds that
        no rolled-up folder straddles (a folder prefix such as "root/name/" does). `page` is how many
        entries one request asks for (S3's max-keys): a range that expects a few hundred asks for no more."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, or None when there is no such object."""

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The whole object. Raises ObjectNotFound (a StorageError) when it does not exist."""

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """The whole object and its ETag ("" where the store has none), in one request."""
        return self.read(key), ""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Create or replace an object; a reader never sees it half-written."""

    @abstractmethod
    def open(self, key: str) -> AbstractContextManager[Readable]:
        """A context manager giving a readable stream of the object, closed when the block ends."""

    def write_file(self, key: str, file: BinaryIO, length: int) -> None:
        """Write the first `length` bytes of a seekable file, in constant memory; retried as `write` is
        (each attempt reads the file from its start)."""

        def run() -> str:
            file.seek(0)
            return self._put_stream(key, file, length)

        self._call("write", self.describe(key), run)

    def put_stream(self, key: str, stream: Readable, length: int) -> None:
        """Write exactly `length` bytes read from `stream`, in constant memory. Not retried (a stream
        cannot be rewound): copy_from retries by reopening its source."""
        self._call("write", self.describe(key), lambda: self._put_stream(key, stream, length), retry=False)

    def copy_from(self, src: Storage, src_key: str, dst_key: str, size: int, *, server_side: bool = True) -> Copied:
        """Copy one object of `src` into this store: server-side when same_store (and allowed), else streamed.

        `size` is the object's size as listed; a streamed copy checks the source gives exactly that much.
        server_side=False forces streaming, for `minio.crossStorage`. Returns what the copy vouches for.
        """
        where = f"{src.describe(src_key)} to {self.describe(dst_key)}"
        if server_side and self.same_store(src):
            return self._call("copy", where, lambda: self._server_copy(src, src_key, dst_key, size))
        return self._call("copy", where, lambda: self._stream_copy(src, src_key, dst_key, size))

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
    def _put_stream(self, key: str, stream: Readable, length: int) -> str:
        """put_stream without retry or error mapping; returns the new object's ETag ("" if none)."""

    @abstractmethod
    def _server_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> Copied:
        """A copy inside the store; `src` is a store for which same_store(src) is True."""

    def stream_memory(self, size: int) -> int:
        """What one streamed write of `size` bytes into this store holds in memory at most."""
        return min(size, CHUNK_SIZE)

    def _stream_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> Copied:
        with _stream_budget.hold(self.stream_memory(size)), src.open(src_key) as stream:
            reader = HashingReader(SourceReader(stream, src, src_key))
            etag = self._put_stream(dst_key, reader, size)
        return Copied(etag=etag, sha256=reader.hexdigest())

    def _error(self, exc: BaseException, op: str, where: str) -> StorageError:
        """Turn a failure into the one line a user sees."""
        if isinstance(exc, SourceReadError):
            return exc.storage._error(exc.original, "read", exc.storage.describe(exc.key))
        return map_os_error(exc, op, where)

    def _call(self, op: str, where: str, fn: Callable[[], T], retry: bool = True) -> T:
        """Run one operation: transient failures retried, every failure mapped to a StorageError."""
        try:
            if not retry:
                return fn()
            return call_retrying(op, where, fn)
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, op, where) from exc


class SourceReader:
    """Wraps a source stream so its failures are reported (and classified) as the source's."""

    def __init__(self, stream: Readable, storage: Storage, key: str):
        self._stream, self._storage, self._key = stream, storage, key

    def read(self, size: int = -1) -> bytes:
        try:
            return self._stream.read(size) if size is not None and size >= 0 else self._stream.read()
        except Exception as exc:
            raise SourceReadError(exc, self._storage, self._key) from exc


class HashingReader:
    """Hashes what passes through it (SHA-256), so a streamed copy is hashed without a second read."""

    def __init__(self, stream: Readable):
        self._stream, self._digest = stream, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def refuse_everything(prefix: str, where: str) -> None:
    """Raise unless `prefix` names less than the whole store: a delete of '' would empty it."""
    if not prefix.strip("/"):
        raise StorageError(f"refusing to delete everything in {where}: give a non-empty prefix")


def first(items: Iterator[T]) -> T | None:
    for item in items:
        return item
    return None
