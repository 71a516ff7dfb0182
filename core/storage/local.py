"""A folder on this machine as an object store: key `a/b/c` is the file `<folder>/a/b/c`.

Writes go through a temp file renamed into place, so a crash never leaves a half-written file under a
real key; keys with '.', '..' or empty parts are refused, so no key reaches outside the folder.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from milvus_backup.core.errors import StorageError
from milvus_backup.core.storage.base import (
    CHUNK_SIZE,
    Copied,
    HashingReader,
    ObjectInfo,
    Readable,
    Storage,
    refuse_everything,
)

_TMP_PREFIX = ".partial-"  # temp files; never listed as objects


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
        yield from self._listing(prefix, recursive, "")

    def list_rolled(
        self, prefix: str, delimiter: str, after: str = "", through: str = "", page: int = 1000
    ) -> Iterator[ObjectInfo]:
        if not delimiter.endswith("/"):
            raise ValueError(f"a folder's delimiter ends with '/': {delimiter!r}")
        for info in self._listing(prefix, True, delimiter):
            if info.key > after and (not through or info.key <= through):
                yield info

    def _listing(self, prefix: str, recursive: bool, delimiter: str) -> Iterator[ObjectInfo]:
        # One folder's entries at a time, in key order: memory stays flat however many files there are.
        folder = self._folder_of(prefix)
        start = self._key_of(str(folder)) if folder != self.base_dir else ""
        try:
            for key, size, modified in self._scan(folder, start, recursive, (prefix, delimiter)):
                if key.startswith(prefix):
                    yield ObjectInfo(key, size, modified=modified)
        except OSError as exc:
            raise self._error(exc, "list", self.describe(prefix)) from exc

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
        return ObjectInfo(key, st.st_size, modified=st.st_mtime) if path.is_file() else None

    def read(self, key: str) -> bytes:
        path = self._path(key)
        return self._call("read", str(path), path.read_bytes, retry=False)

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._call("write", str(path), lambda: _atomic_write(path, lambda f: f.write(data)), retry=False)

    @contextmanager
    def open(self, key: str) -> Iterator[Readable]:
        path = self._path(key)
        stream = self._call("read", str(path), lambda: open(path, "rb"), retry=False)  # noqa: SIM115 - closed by the with below
        with stream:
            yield stream

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._call("delete", str(path), lambda: path.unlink(missing_ok=True), retry=False)
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        refuse_everything(prefix, self.describe(prefix))
        deleted = 0
        parents: set[Path] = set()
        for info in self.list(prefix):
            path = self._path(info.key)
            self._call("delete", str(path), functools.partial(path.unlink, missing_ok=True), retry=False)
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

    def _put_stream(self, key: str, stream: Readable, length: int) -> str:
        path = self._path(key)
        _atomic_write(path, lambda f: _copy_exactly(stream, f, length, str(path)))
        return ""  # a folder has no ETags

    def _server_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> Copied:
        # Between two folders the bytes pass through this process anyway: they are hashed on the way.
        assert isinstance(src, LocalStorage)
        src_path, dst_path = src._path(src_key), self._path(dst_key)
        with open(src_path, "rb") as source:
            reader = HashingReader(source)
            _atomic_write(dst_path, lambda f: shutil.copyfileobj(reader, f, CHUNK_SIZE))
        return Copied(sha256=reader.hexdigest())

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

    def _scan(
        self, folder: Path, key: str, recursive: bool, rolled: tuple[str, str] = ("", "")
    ) -> Iterator[tuple[str, int, float]]:
        """(key, size, modified) of the files below `folder` (whose key is `key`), sorted by key as S3 sorts:
        a folder's entries are ordered by name, a sub-folder's name taken with its '/'. With `rolled`
        (prefix, delimiter), a sub-folder whose key holds the delimiter after the prefix is given as
        itself (size 0) when it holds files, and not entered: what S3's delimiter listing does."""
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return  # gone while we listed, or never there
        named = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if is_dir:
                named.append((entry.name + "/", entry))
            elif not entry.name.startswith(_TMP_PREFIX):
                named.append((entry.name, entry))
        prefix, delimiter = rolled
        for name, entry in sorted(named, key=lambda item: item[0]):
            child = f"{key}/{name}" if key else name
            if name.endswith("/"):
                if delimiter and child.startswith(prefix) and delimiter in child[len(prefix) :]:
                    if _holds_files(entry.path):
                        yield child, 0, 0.0
                elif recursive:
                    yield from self._scan(Path(entry.path), child.rstrip("/"), recursive, rolled)
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # deleted while we listed
                continue
            yield child, st.st_size, st.st_mtime

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


def _copy_exactly(source: Readable, target: BinaryIO, length: int, where: str) -> None:
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


def _holds_files(folder: str) -> bool:
    return any(any(not name.startswith(_TMP_PREFIX) for name in files) for _root, _dirs, files in os.walk(folder))


def _raise_unless_gone(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):
        raise exc
