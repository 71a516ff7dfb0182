"""One bucket of an S3-compatible server (MinIO, AWS S3, SeaweedFS, ...), through the `minio` client.

Copies between two buckets the same credentials reach run server-side (CopyObject, or a multipart
compose above the threshold); a listing that fails midway resumes after the last key it gave.
"""

from __future__ import annotations

import builtins
import datetime
import hashlib
import io
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast
from urllib.parse import unquote_plus
from xml.etree import ElementTree

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.credentials.providers import IamAwsProvider
from minio.deleteobjects import DeleteError, DeleteObject
from minio.error import S3Error
from minio.helpers import DictType
from urllib3 import BaseHTTPResponse

from milvus_backup.core.config import StorageConfig
from milvus_backup.core.errors import StorageError
from milvus_backup.core.storage import retry
from milvus_backup.core.storage.base import Copied, ObjectInfo, Readable, Storage, refuse_everything
from milvus_backup.core.storage.errors import map_minio_error, one_line, short

log = logging.getLogger(__name__)
DELETE_BATCH = 1000  # S3 DeleteObjects takes at most 1000 keys
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest multipart part
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024  # S3's largest part, and largest single CopyObject
MAX_PARTS = 10000
MAX_KEYS = 1000  # the most entries an S3 listing page holds
# The greatest code point: "folder/" + PAST_FOLDER sorts after every key in the folder, and before the next one.
PAST_FOLDER = "\U0010ffff"


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
                    cfg.secret_access_key.get_secret_value(),
                    cfg.token.get_secret_value(),
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
                secret_key=None if cfg.use_iam else cfg.secret_access_key.get_secret_value(),
                session_token=cfg.token.get_secret_value() or None,
                secure=cfg.use_ssl,
                region=cfg.region or None,
                http_client=http,
                credentials=credentials,
            )
        except ValueError as exc:
            raise StorageError(
                f"invalid S3 endpoint {cfg.endpoint}: {short(exc)} (check the address and port keys)"
            ) from None

    def __repr__(self) -> str:
        return f"MinioStorage(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    def stream_memory(self, size: int) -> int:
        # minio reads a whole part (up to 5 MiB) into memory, growing it as it reads (copies), then signs
        # and sends it: about three times the part at the peak
        return 3 * min(size, MIN_PART_SIZE)

    def same_store(self, other: Storage) -> bool:
        return isinstance(other, MinioStorage) and other._identity == self._identity

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key} at {self.endpoint}"

    def list(self, prefix: str, recursive: bool = True) -> Iterator[ObjectInfo]:
        for info in self._listing(prefix, "" if recursive else "/"):
            if not info.key.endswith("/"):
                yield info

    def list_rolled(
        self, prefix: str, delimiter: str, after: str = "", through: str = "", page: int = MAX_KEYS
    ) -> Iterator[ObjectInfo]:
        folders: set[str] = set()
        for info in self._listing(prefix, delimiter, after, through, page):
            if info.key.endswith("/"):  # a listing resumed after a folder may give it again
                if info.key in folders:
                    continue
                folders.add(info.key)
            yield info

    def _listing(
        self, prefix: str, delimiter: str, after: str = "", through: str = "", page: int = MAX_KEYS
    ) -> Iterator[ObjectInfo]:
        """ListObjectsV2 with `delimiter` ("" for none), page by page; rolled-up prefixes come as keys ending
        in '/'. After a transient failure the listing resumes after the last key it gave."""
        last = ""  # the greatest key given
        failures = 0
        while True:
            try:
                for info in self._pages(prefix, delimiter, _past(last, delimiter) if last else after, through, page):
                    last = max(last, info.key)  # a page gives its objects, then its folders
                    failures = 0
                    yield info
                return
            except Exception as exc:
                failures += 1
                if not retry.is_transient(exc) or failures >= retry.RETRY_ATTEMPTS:
                    raise self._error(exc, "list", self.describe(prefix)) from exc
                retry.log_retry("list", self.describe(prefix), exc, failures)
                time.sleep(retry.backoff(failures))

    def _pages(self, prefix: str, delimiter: str, after: str, through: str, page: int) -> Iterator[ObjectInfo]:
        """The listing's entries after `after` and up to `through`, read from each page's XML for the three
        fields used. (minio's own list_objects builds a full object per entry, two parsed dates included:
        with thousands of entries, that took most of a `list` command's time. It also knows no delimiter
        but "/".) A page holds a stretch of the keys in order, so the first page reaching past `through`
        is the last one asked for.

        A page that ends on a rolled-up folder is followed by a listing that starts after the folder and
        all it holds, not by the continuation token: SeaweedFS resumes after such a token without the
        folder's siblings (with "/binlogs/" as the delimiter, a backup whose binlogs ended a page lost
        its meta files, and looked incomplete)."""
        query: DictType = {
            "list-type": "2",
            "prefix": prefix,
            "delimiter": delimiter,
            "max-keys": str(max(1, min(page, MAX_KEYS))),
            "encoding-type": "url",
        }
        if after:
            query["start-after"] = after
        tokens: set[str] = set()
        while True:
            try:
                response = self._client._execute("GET", self.bucket, query_params=query)
            except S3Error as exc:
                if exc.code == "NotImplemented":  # a server that knows no delimiter but "/": not worth a retry
                    raise StorageError(f"the store cannot list with delimiter {delimiter!r}: {exc.code}") from exc
                raise
            xml = ElementTree.fromstring(response.data)
            entries = builtins.list(_entries(xml))
            for info in entries:
                if info.key > after and (not through or info.key <= through):  # (> after: a store that
                    yield info  # ignored start-after would repeat what came before)
            token = _text(xml, "NextContinuationToken")
            last = max((info.key for info in entries), default="")
            if (through and last > through) or _text(xml, "IsTruncated").lower() != "true" or not token:
                return
            if delimiter and last.endswith(delimiter) and last > after:
                after = _past(last, delimiter)
                query.pop("continuation-token", None)
                query["start-after"] = after
                continue
            if token in tokens:  # MinIO has paged other delimiters than "/" so (minio/minio#20682)
                raise StorageError(f"the store gave the same continuation token twice (delimiter {delimiter!r})")
            tokens.add(token)
            query["continuation-token"] = token

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
            if info.is_dir:
                return None
            modified = info.last_modified.timestamp() if info.last_modified else 0.0
            return ObjectInfo(key, int(info.size or 0), unquote(info.etag), modified)

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

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        def run() -> tuple[bytes, str]:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read(), unquote(response.headers.get("ETag"))
            finally:
                response.close()
                response.release_conn()

        return self._call("read", self.describe(key), run)

    def write(self, key: str, data: bytes) -> None:
        self._call(
            "write", self.describe(key), lambda: self._client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        )

    @contextmanager
    def open(self, key: str) -> Iterator[Readable]:
        def run() -> BaseHTTPResponse:
            return self._client.get_object(self.bucket, key)

        response = self._call("read", self.describe(key), run)
        try:
            yield response
        finally:
            response.close()
            response.release_conn()

    def delete(self, key: str) -> None:
        self._call("delete", self.describe(key), lambda: self._client.remove_object(self.bucket, key))

    def delete_prefix(self, prefix: str) -> int:
        """Also removes the folders under `prefix` (and the prefix's own, when it is one) that the store
        keeps once their last object is gone, as SeaweedFS does: without that, every backup deleted would
        stay in the "/" listing of the backups as an empty folder that each listing has to look into."""
        refuse_everything(prefix, self.describe(prefix))
        deleted = 0
        batch: builtins.list[str] = []
        trail = FolderTrail(prefix)
        emptied: builtins.list[str] = []  # folders whose every object is in `batch` or already deleted
        folders = _EmptyFolders(self)
        for info in self.list(prefix):
            emptied.extend(trail.past(info.key))
            batch.append(info.key)
            if len(batch) == DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
                folders.remove(emptied)
                emptied = []
        if batch:
            deleted += self._delete_batch(batch)
        folders.remove(emptied + trail.end())
        return deleted

    def _delete_batch(self, keys: builtins.list[str]) -> int:
        def run() -> builtins.list[DeleteError]:
            return list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))

        errors = self._call("delete", self.describe(keys[0]), run)
        if errors:
            failed = errors[0]
            raise StorageError(
                f"delete {self.describe(failed.name or '')} failed: {failed.code}: {one_line(failed.message)} "
                f"({len(errors)} of {len(keys)} objects not deleted)"
            )
        return len(keys)

    def _delete_folder_keys(self, folders: builtins.list[str]) -> None:
        for start in range(0, len(folders), DELETE_BATCH):  # in their order: a folder after what it holds
            self._delete_batch(folders[start : start + DELETE_BATCH])

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

    def _put_stream(self, key: str, stream: Readable, length: int) -> str:
        # One part in flight per copy: copy_objects already runs many copies at once. minio types its
        # data argument BinaryIO but only calls read(), which every Readable has.
        result = self._client.put_object(self.bucket, key, cast(BinaryIO, stream), length, num_parallel_uploads=1)
        if stream.read(1):  # the source was longer than listed: do not leave a truncated copy behind
            self._client.remove_object(self.bucket, key)
            raise StorageError(
                f"write {self.describe(key)} failed: the source holds more than the expected "
                f"{length} bytes (was it changed during the copy?)"
            )
        return unquote(result.etag)

    def _server_copy(self, src: Storage, src_key: str, dst_key: str, size: int) -> Copied:
        assert isinstance(src, MinioStorage)
        if size <= min(self._threshold, MAX_PART_SIZE):
            return self._copy_whole(src, src_key, dst_key)
        # The parts must cover the object as it is now, whatever size the caller listed.
        actual = int(self._client.stat_object(src.bucket, src_key).size or 0)
        parts = _parts(actual, self._threshold)
        if len(parts) <= 1:
            return self._copy_whole(src, src_key, dst_key)
        sources = [ComposeSource(src.bucket, src_key, offset=offset, length=length) for offset, length in parts]
        result = self._client.compose_object(self.bucket, dst_key, sources)
        return Copied(etag=unquote(result.etag), single_part=False)

    def _copy_whole(self, src: MinioStorage, src_key: str, dst_key: str) -> Copied:
        """One CopyObject request. minio's copy_object first asks for the source's size (a HEAD per copy,
        a third of a small binlog's copy time) to choose between a copy and a compose; the caller has
        chosen already, from the listed size, so the request goes out alone. A source that grew past
        5 GiB since it was listed makes the store refuse the copy (an error, never a wrong copy)."""
        headers: dict[str, str | list[str] | tuple[str]] = {**CopySource(src.bucket, src_key).gen_copy_headers()}
        response = self._client._execute("PUT", self.bucket, object_name=dst_key, headers=headers)
        return Copied(etag=_copied_etag(response.data))

    def _error(self, exc: BaseException, op: str, where: str) -> StorageError:
        mapped = map_minio_error(exc, op, where, self.endpoint, self.bucket)
        return mapped if mapped is not None else super()._error(exc, op, where)


_S3_XML = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _text(element: ElementTree.Element, tag: str) -> str:
    return element.findtext(_S3_XML + tag) or element.findtext(tag) or ""


def _entries(page: ElementTree.Element) -> Iterator[ObjectInfo]:
    """A ListObjectsV2 page's objects (key, size, ETag, time) and then its common prefixes (as keys, size 0)."""
    ns = _S3_XML if page.tag.startswith(_S3_XML) else ""
    decode = unquote_plus if _text(page, "EncodingType") == "url" else str
    for entry in page.iterfind(ns + "Contents"):
        key = decode(entry.findtext(ns + "Key") or "")
        size, etag = int(entry.findtext(ns + "Size") or 0), unquote(entry.findtext(ns + "ETag"))
        yield ObjectInfo(key, size, etag, _timestamp(entry.findtext(ns + "LastModified")))
    for entry in page.iterfind(ns + "CommonPrefixes"):
        yield ObjectInfo(decode(entry.findtext(ns + "Prefix") or ""), 0)


def _timestamp(text: str | None) -> float:
    """S3's LastModified (ISO 8601 in UTC, `2026-12-01T11:00:00.000Z`) in seconds; 0 when absent or unreadable."""
    try:
        return datetime.datetime.fromisoformat(text).timestamp() if text else 0.0
    except ValueError:
        return 0.0


def _copied_etag(answer: bytes) -> str:
    """The new object's ETag from a CopyObject answer. (minio's parse_copy_object also parses the date it
    holds, with strptime: a tenth of a small binlog's copy CPU, for a value never used.)"""
    etag = unquote(_text(ElementTree.fromstring(answer), "ETag"))
    if not etag:  # S3 may answer a failed copy with 200 and an error document
        raise ValueError(f"the store's answer to a copy holds no ETag: {answer[:200]!r}")
    return etag


def _past(key: str, delimiter: str) -> str:
    """The start-after that goes on after `key`: for a rolled-up folder, after everything it holds."""
    return key + PAST_FOLDER if delimiter and key.endswith(delimiter) else key


def unquote(etag: str | None) -> str:
    """An ETag as S3 sends it ("\"abc\"") without its quotes; "" for none."""
    return (etag or "").strip().strip('"')


def _parts(size: int, threshold: int) -> list[tuple[int, int]]:
    """(offset, length) ranges for a multipart copy: parts of `threshold` bytes within S3's limits."""
    part = max(threshold, MIN_PART_SIZE, -(-size // MAX_PARTS))
    part = min(part, MAX_PART_SIZE)
    return [(offset, min(part, size - offset)) for offset in range(0, size, part)]


class FolderTrail:
    """The folders of keys given in sorted order under `prefix` (the prefix's own included when it ends
    in '/'): past(key) gives back, deepest first, the folders that no key from `key` on is in: every key
    they hold has gone by. end() gives the rest. So a folder always comes after the folders it holds."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self._open: builtins.list[str] = []  # the folders of the last key, outermost first

    def past(self, key: str) -> builtins.list[str]:
        folders = self._folders(key)
        same = 0
        while same < min(len(folders), len(self._open)) and folders[same] == self._open[same]:
            same += 1
        closed = self._open[same:][::-1]
        self._open = folders
        return closed

    def end(self) -> builtins.list[str]:
        closed, self._open = self._open[::-1], []
        return closed

    def _folders(self, key: str) -> builtins.list[str]:
        top = self.prefix.rfind("/") + 1  # a folder only from the prefix's own on ("bk" is not one)
        own = [self.prefix] if self.prefix.endswith("/") else []
        cuts = [i + 1 for i in range(len(self.prefix), len(key)) if key[i] == "/"]
        return own + [key[:cut] for cut in cuts if cut > top]


class _EmptyFolders:
    """The folders a deletion emptied, removed where the store keeps them: the first ones tell (one "/"
    listing of their parent); on a store that drops a folder with its last object (AWS S3, MinIO), no
    request more."""

    def __init__(self, storage: MinioStorage):
        self.storage = storage
        self.kept: bool | None = None  # does the store keep empty folders? not known until asked

    def remove(self, folders: builtins.list[str]) -> None:
        """Remove `folders` (deepest first, every object in them deleted) where the store keeps them. A
        failure is logged, not raised: the objects are gone, and an empty folder left behind costs
        listings only time."""
        if not folders or self.kept is False:
            return
        try:
            if self.kept is None:
                parent = folders[0][: folders[0].rstrip("/").rfind("/") + 1]
                self.kept = any(info.key == folders[0] for info in self.storage.list_rolled(parent, "/"))
            if self.kept:
                self.storage._delete_folder_keys(folders)
        except StorageError as exc:
            log.warning("%s: its objects are deleted, some empty folders are left: %s", folders[-1], exc)
            self.kept = False  # not tried again in this deletion
