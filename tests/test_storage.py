"""Object stores: the local folder in full, copy_objects, retries, and S3 against a real SeaweedFS server."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from minio import Minio

import milvus_backup.core.storage.retry as storage_retry
import milvus_backup.core.storage.s3 as s3_module
from milvus_backup.core.config import StorageConfig
from milvus_backup.core.errors import Cancelled, StorageError
from milvus_backup.core.storage import (
    CHUNK_SIZE,
    Copied,
    CopyTask,
    LocalStorage,
    MinioStorage,
    ObjectInfo,
    ObjectNotFound,
    copy_objects,
    layout_root,
    open_storage,
)
from milvus_backup.core.storage.s3 import FolderTrail, _EmptyFolders


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(storage_retry, "RETRY_WAIT_INITIAL", 0.01)
    monkeypatch.setattr(storage_retry, "RETRY_WAIT_MAX", 0.02)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".partial-")]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


# --------------------------------------------------------------------------- LocalStorage


@pytest.fixture
def local(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


def test_local_write_read_stat_exists(local):
    local.write("a/b/c.bin", b"hello")
    assert (local.base_dir / "a" / "b" / "c.bin").read_bytes() == b"hello"
    assert local.read("a/b/c.bin") == b"hello"
    assert local.stat("a/b/c.bin") == ObjectInfo("a/b/c.bin", 5)
    assert local.exists("a/b/c.bin") and not local.exists("a/b/nope")
    assert local.stat("a/b") is None and local.stat("a/b/") is None  # folders are not objects
    local.write("a/b/c.bin", b"replaced!")
    assert local.read("a/b/c.bin") == b"replaced!" and local.stat("a/b/c.bin").size == 9
    assert local.kind == "local" and local.bucket == "store"


def test_local_read_missing_is_one_line_not_found(local):
    with pytest.raises(ObjectNotFound) as info:
        local.read("no/such/key")
    assert "no/such/key" in one_line(info.value) and isinstance(info.value, StorageError)


def test_local_list_is_sorted_relative_and_by_string_prefix(local):
    for key, data in {"b/2": b"22", "a/x/1": b"1", "a/y/3": b"333", "a/y.txt": b"t", "ab/9": b"9", "top": b""}.items():
        local.write(key, data)
    assert list(local.list("")) == [
        ObjectInfo("a/x/1", 1),
        ObjectInfo("a/y.txt", 1),
        ObjectInfo("a/y/3", 3),
        ObjectInfo("ab/9", 1),
        ObjectInfo("b/2", 2),
        ObjectInfo("top", 0),
    ]
    assert [o.key for o in local.list("a/")] == ["a/x/1", "a/y.txt", "a/y/3"]
    assert [o.key for o in local.list("a")] == ["a/x/1", "a/y.txt", "a/y/3", "ab/9"]  # string prefix, as S3
    assert [o.key for o in local.list("a/y")] == ["a/y.txt", "a/y/3"]
    assert [o.key for o in local.list("a/", recursive=False)] == ["a/y.txt"]
    assert [o.key for o in local.list("", recursive=False)] == ["top"]
    assert list(local.list("missing/")) == []


def test_local_atomic_write_never_leaves_a_half_file(local):
    local.write("k/obj", b"old content")

    class Broken(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk went away")
            return b"x" * 10

    with pytest.raises(StorageError):
        local.put_stream("k/obj", Broken(), 1000)
    with pytest.raises(StorageError):
        local.put_stream("k/new", Broken(), 1000)
    assert local.read("k/obj") == b"old content"  # the old object is untouched
    assert not local.exists("k/new")
    assert temp_files(local.base_dir) == []
    assert [o.key for o in local.list("")] == ["k/obj"]


def test_local_temp_files_are_invisible(local):
    local.write("d/real", b"r")
    (local.base_dir / "d" / ".partial-0123").write_bytes(b"half")
    assert [o.key for o in local.list("d/")] == ["d/real"]


def test_local_delete_prunes_empty_folders(local):
    local.write("x/y/z/obj", b"1")
    local.write("x/keep", b"2")
    local.delete("x/y/z/obj")
    assert not (local.base_dir / "x" / "y").exists()
    assert (local.base_dir / "x" / "keep").exists()
    local.delete("x/y/z/obj")  # missing: not an error
    local.delete("x/keep")
    assert local.base_dir.is_dir() and list(local.base_dir.iterdir()) == []


def test_local_delete_prefix_counts_and_cleans(local):
    for i in range(5):
        local.write(f"backup/b1/binlogs/{i % 2}/{i}", b"d" * i)
    local.write("backup/b10/keep", b"k")
    local.write("backup/b1x", b"k")
    (local.base_dir / "backup" / "b1" / "binlogs" / ".partial-dead").write_bytes(b"crash litter")
    assert local.delete_prefix("backup/b1/") == 5
    assert not (local.base_dir / "backup" / "b1").exists()
    assert [o.key for o in local.list("")] == ["backup/b10/keep", "backup/b1x"]
    assert local.delete_prefix("backup/b1/") == 0
    with pytest.raises(StorageError):
        local.delete_prefix("")
    with pytest.raises(StorageError):
        local.delete_prefix("/")


def test_local_rejects_keys_escaping_the_folder(local):
    for key in ("../outside", "a/../../x", ""):
        with pytest.raises(StorageError):
            local.write(key, b"x")
    assert not (local.base_dir.parent / "outside").exists()


def test_local_copy_between_two_folders(tmp_path):
    src, dst = LocalStorage(tmp_path / "src"), LocalStorage(tmp_path / "dst")
    payload = os.urandom(3 * CHUNK_SIZE + 17)
    src.write("seg/1", payload)
    assert dst.same_store(src)
    copied = dst.copy_from(src, "seg/1", "copied/1", len(payload))
    assert dst.read("copied/1") == payload
    # the bytes passed through this process: hashed on the way, never read again
    assert copied == Copied(sha256=hashlib.sha256(payload).hexdigest())
    with pytest.raises(ObjectNotFound):
        dst.copy_from(src, "seg/missing", "copied/2", 5)
    assert not dst.exists("copied/2") and temp_files(dst.base_dir) == []


def test_streamed_copy_checks_the_size(tmp_path):
    src, dst = LocalStorage(tmp_path / "src"), LocalStorage(tmp_path / "dst")
    src.write("obj", b"0123456789")
    copied = dst.copy_from(src, "obj", "same", 10, server_side=False)
    assert dst.read("same") == b"0123456789" and copied.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    for wrong in (11, 9):
        with pytest.raises(StorageError) as info:
            dst.copy_from(src, "obj", f"bad{wrong}", wrong, server_side=False)
        assert "bytes" in one_line(info.value)
        assert not dst.exists(f"bad{wrong}")
    assert temp_files(dst.base_dir) == []


def test_open_storage_and_layout_root_for_local(tmp_path):
    cfg = StorageConfig(storage_type="local", root_path=str(tmp_path / "backups"))
    store = open_storage(cfg)
    assert isinstance(store, LocalStorage) and store.base_dir == tmp_path / "backups"
    assert layout_root(cfg) == ""
    store.write("my_backup/meta/backup_meta.json", b"{}")
    assert (tmp_path / "backups" / "my_backup" / "meta" / "backup_meta.json").is_file()
    s3 = StorageConfig(storage_type="s3", root_path="files")
    assert layout_root(s3) == "files" and isinstance(open_storage(s3), MinioStorage)


def test_local_check_and_ensure_bucket(tmp_path):
    store = LocalStorage(tmp_path / "later")
    with pytest.raises(StorageError) as info:
        store.check()
    assert str(tmp_path / "later") in one_line(info.value)
    store.ensure_bucket()
    store.check()


# --------------------------------------------------------------------------- copy_objects


class SlowLocal(LocalStorage):
    """A destination that takes its time per copy and records how many ran at once."""

    def __init__(self, base_dir, delay: float = 0.03):
        super().__init__(base_dir)
        self.delay = delay
        self.lock = threading.Lock()
        self.active = self.peak = self.started = 0

    def copy_from(self, src, src_key, dst_key, size, *, server_side=True):
        with self.lock:
            self.active += 1
            self.started += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            return super().copy_from(src, src_key, dst_key, size, server_side=server_side)
        finally:
            with self.lock:
                self.active -= 1


def make_sources(store: LocalStorage, count: int) -> list[CopyTask]:
    tasks = []
    for i in range(count):
        data = hashlib.sha256(str(i).encode()).digest() * (i + 1)
        store.write(f"src/{i:03d}", data)
        tasks.append(CopyTask(f"src/{i:03d}", f"dst/{i:03d}", len(data)))
    return tasks


def test_copy_objects_parallel_with_progress(tmp_path):
    src, dst = LocalStorage(tmp_path / "s"), SlowLocal(tmp_path / "d")
    tasks = make_sources(src, 24)
    lock = threading.Lock()
    totals = [0, 0]

    def progress(nbytes, nobjects):
        with lock:
            totals[0] += nbytes
            totals[1] += nobjects

    copy_objects(src, dst, tasks, parallelism=4, on_progress=progress)
    assert totals == [sum(t.size for t in tasks), 24]
    assert 1 < dst.peak <= 4
    for t in tasks:
        assert dst.read(t.dst_key) == src.read(t.src_key)


def test_copy_objects_cancel_finishes_in_flight_and_starts_nothing_new(tmp_path):
    src, dst = LocalStorage(tmp_path / "s"), SlowLocal(tmp_path / "d", delay=0.05)
    tasks = make_sources(src, 40)
    cancel = threading.Event()
    done = []
    with pytest.raises(Cancelled) as info:
        copy_objects(
            src, dst, tasks, parallelism=4, on_progress=lambda b, n: (done.append(n), cancel.set()), cancel=cancel
        )
    assert "of 40" in one_line(info.value)
    copied = list(dst.list("dst/"))
    assert dst.started <= 4 and len(copied) == dst.started == len(done)
    for info_ in copied:  # what was copied is complete; nothing half-written is left
        assert dst.read(info_.key) == src.read(info_.key.replace("dst/", "src/"))
    assert temp_files(dst.base_dir) == []


def test_copy_objects_cancel_before_start(tmp_path):
    src, dst = LocalStorage(tmp_path / "s"), LocalStorage(tmp_path / "d")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        copy_objects(src, dst, make_sources(src, 3), parallelism=2, cancel=cancel)
    assert list(dst.list("")) == []


def test_copy_objects_cancel_seen_by_after_copy_is_a_cancel_not_a_failure(tmp_path):
    # a check after each copy (after_copy) that notices a cancel raises Cancelled
    src, dst = LocalStorage(tmp_path / "s"), LocalStorage(tmp_path / "d")
    cancel = threading.Event()

    def after_copy(task, copied):
        cancel.set()
        raise Cancelled("reading was cancelled")

    with pytest.raises(Cancelled):
        copy_objects(src, dst, make_sources(src, 5), parallelism=1, cancel=cancel, after_copy=after_copy)


def test_copy_objects_first_failure_stops_new_work(tmp_path):
    src, dst = LocalStorage(tmp_path / "s"), SlowLocal(tmp_path / "d", delay=0.0)
    tasks = make_sources(src, 4)
    tasks.insert(1, CopyTask("src/missing", "dst/missing", 10))
    with pytest.raises(StorageError) as info:
        copy_objects(src, dst, tasks, parallelism=1)
    assert "src/missing" in one_line(info.value)
    assert [o.key for o in dst.list("")] == ["dst/000"] and dst.started == 2


def test_copy_objects_wraps_unexpected_errors(tmp_path):
    class Exploding(LocalStorage):
        def copy_from(self, *args, **kwargs):
            raise RuntimeError("boom")

    src = LocalStorage(tmp_path / "s")
    with pytest.raises(StorageError) as info:
        copy_objects(src, Exploding(tmp_path / "d"), make_sources(src, 2), parallelism=2)
    assert "boom" in one_line(info.value) and "src/00" in str(info.value)


def test_copy_objects_edge_arguments(tmp_path):
    src, dst = LocalStorage(tmp_path / "s"), LocalStorage(tmp_path / "d")
    copy_objects(src, dst, [], parallelism=3)
    with pytest.raises(ValueError):
        copy_objects(src, dst, [], parallelism=0)


# --------------------------------------------------------------------------- retries


class Flaky(LocalStorage):
    def __init__(self, base_dir, failures: list[BaseException]):
        super().__init__(base_dir)
        self.failures = failures
        self.calls = 0

    def _server_copy(self, src, src_key, dst_key, size):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        super()._server_copy(src, src_key, dst_key, size)


def test_transient_errors_are_retried(tmp_path):
    src = LocalStorage(tmp_path / "s")
    src.write("k", b"data")
    dst = Flaky(tmp_path / "d", [ConnectionResetError("reset"), TimeoutError("slow")])
    dst.copy_from(src, "k", "k", 4)
    assert dst.calls == 3 and dst.read("k") == b"data"


def test_retries_give_up_after_a_few_attempts(tmp_path):
    src = LocalStorage(tmp_path / "s")
    src.write("k", b"data")
    dst = Flaky(tmp_path / "d", [ConnectionResetError("reset")] * 10)
    with pytest.raises(StorageError):
        dst.copy_from(src, "k", "k", 4)
    assert dst.calls == storage_retry.RETRY_ATTEMPTS


def test_retry_knobs_are_read_from_the_retry_module(tmp_path, monkeypatch):
    monkeypatch.setattr(storage_retry, "RETRY_ATTEMPTS", 2)
    src = LocalStorage(tmp_path / "s")
    src.write("k", b"data")
    dst = Flaky(tmp_path / "d", [ConnectionResetError("reset")] * 10)
    with pytest.raises(StorageError):
        dst.copy_from(src, "k", "k", 4)
    assert dst.calls == 2
    assert storage_retry.backoff(1) == storage_retry.RETRY_WAIT_INITIAL == 0.01  # the fixture's patch holds


def test_permanent_errors_are_not_retried(tmp_path):
    src = LocalStorage(tmp_path / "s")
    src.write("k", b"data")
    dst = Flaky(tmp_path / "d", [PermissionError(13, "Permission denied")])
    with pytest.raises(StorageError) as info:
        dst.copy_from(src, "k", "k", 4)
    assert dst.calls == 1 and "permission denied" in one_line(info.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_s3_is_retried_then_one_line(caplog):
    secret = "very-secret-key-123"
    store = open_storage(StorageConfig(address="127.0.0.1", port=free_port(), secret_access_key=secret))
    with caplog.at_level(logging.WARNING, logger="milvus_backup.core.storage"), pytest.raises(StorageError) as info:
        store.check()
    message = one_line(info.value)
    assert "cannot reach 127.0.0.1:" in message and "port" in message
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == storage_retry.RETRY_ATTEMPTS - 1
    assert secret not in message and secret not in caplog.text and secret not in repr(store)


# --------------------------------------------------------------------------- S3 against a real SeaweedFS

ACCESS_KEY, SECRET_KEY = "minioadmin", "minioadmin"


@pytest.fixture(scope="session")
def s3_storage_params(sandbox):
    """The S3 store of the session's sandbox (tests/conftest.py): (endpoint, access_key, secret_key)."""
    return sandbox.s3_endpoint, ACCESS_KEY, SECRET_KEY


def s3_config(params, bucket: str, **changes) -> StorageConfig:
    endpoint, access_key, secret_key = params
    host, port = endpoint.rsplit(":", 1)
    fields = {
        "storage_type": "minio",
        "address": host,
        "port": int(port),
        "access_key_id": access_key,
        "secret_access_key": secret_key,
        "bucket_name": bucket,
        "root_path": "files",
    }
    fields.update(changes)
    return StorageConfig(**fields)


def new_bucket(params, threshold_mib: int = 500) -> MinioStorage:
    store = open_storage(s3_config(params, f"t-{uuid.uuid4().hex[:12]}"), threshold_mib)
    for attempt in range(20):  # the filer may lag the S3 port by a moment
        try:
            store.ensure_bucket()
            break
        except StorageError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    store.check()
    return store


@pytest.fixture
def s3(s3_storage_params) -> MinioStorage:
    return new_bucket(s3_storage_params)


@pytest.mark.integration
def test_s3_write_read_list_stat(s3):
    data = {
        "files/insert_log/1/2/3/100/1": b"a" * 10,
        "files/insert_log/1/2/3/101/1": b"bb",
        "files/insert_log/1/2/4/100/1": b"ccc",
        "files/delta_log/1/2/3/9": b"d",
        "files/x": b"x",
    }
    for key, value in data.items():
        s3.write(key, value)

    def md5(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()

    assert list(s3.list("files/insert_log/")) == [  # with each object's ETag, unquoted
        ObjectInfo("files/insert_log/1/2/3/100/1", 10, md5(b"a" * 10)),
        ObjectInfo("files/insert_log/1/2/3/101/1", 2, md5(b"bb")),
        ObjectInfo("files/insert_log/1/2/4/100/1", 3, md5(b"ccc")),
    ]
    assert [o.key for o in s3.list("files/", recursive=False)] == ["files/x"]
    assert s3.read("files/insert_log/1/2/4/100/1") == b"ccc"
    assert s3.stat("files/x") == ObjectInfo("files/x", 1, md5(b"x")) and s3.exists("files/x")
    assert s3.stat("files/nope") is None and s3.stat("files/insert_log/") is None
    odd = "files/odd/a b+c&d%20é.json"  # listed keys come URL-encoded: each must come back as written
    s3.write(odd, b"{}")
    assert sorted(s3.list_rolled("files/", "/2/"), key=lambda o: o.key) == [
        ObjectInfo("files/delta_log/1/2/", 0),
        ObjectInfo("files/insert_log/1/2/", 0),
        ObjectInfo(odd, 2, md5(b"{}")),
        ObjectInfo("files/x", 1, md5(b"x")),
    ]
    with pytest.raises(StorageError) as info:
        s3.read("files/nope")
    assert isinstance(info.value, ObjectNotFound) and "files/nope" in one_line(info.value)


@pytest.mark.integration
def test_s3_rolled_listing_in_key_ranges(s3):
    """Ranges bounded by folder prefixes, listed in small pages: together they answer exactly the one
    listing, each folder (rolled up or not) in one range only. SeaweedFS skips a whole folder when
    start-after names it without its '/', so bounds are folder prefixes ending in '/'."""
    for name in ("a", "b", "b0", "b_x", "c"):
        s3.write(f"root/{name}/meta/backup_meta.json", b"{}")
        s3.write(f"root/{name}/meta/collection_meta.json", b"{}")
        s3.write(f"root/{name}/binlogs/insert_log/1/2/3/4/5", b"x")
    whole = sorted(o.key for o in s3.list_rolled("root/", "/binlogs/"))
    assert len(whole) == 15 and "root/b_x/binlogs/" in whole
    for page in (1, 2, 4, 5):  # pages ending on a rolled-up folder (SeaweedFS's token then skipped its siblings)
        assert sorted(o.key for o in s3.list_rolled("root/", "/binlogs/", page=page)) == whole
    bounds = ["root/b/", "root/b0/", "root/c/"]
    ranges = [
        sorted(o.key for o in s3.list_rolled("root/", "/binlogs/", after, through, page=2))
        for after, through in zip(["", *bounds], [*bounds, ""], strict=True)
    ]
    assert ranges == [
        [f"root/a/{rest}" for rest in ("binlogs/", "meta/backup_meta.json", "meta/collection_meta.json")],
        [f"root/b/{rest}" for rest in ("binlogs/", "meta/backup_meta.json", "meta/collection_meta.json")],
        [
            f"root/{n}/{rest}"
            for n in ("b0", "b_x")
            for rest in ("binlogs/", "meta/backup_meta.json", "meta/collection_meta.json")
        ],
        [f"root/c/{rest}" for rest in ("binlogs/", "meta/backup_meta.json", "meta/collection_meta.json")],
    ]


@pytest.mark.integration
def test_s3_server_side_copy_within_and_across_buckets(s3_storage_params, s3):
    other = new_bucket(s3_storage_params)
    payload = os.urandom(300_000)
    s3.write("files/seg/1", payload)
    assert s3.same_store(other) and other.same_store(s3)
    within = s3.copy_from(s3, "files/seg/1", "backup/b/seg/1", len(payload))
    across = other.copy_from(s3, "files/seg/1", "backup/b/seg/1", len(payload))
    assert s3.read("backup/b/seg/1") == payload and other.read("backup/b/seg/1") == payload
    # server-side: nothing hashed here; the store's ETag of the copy (the MD5 of a one-part object), as listed
    md5 = hashlib.md5(payload).hexdigest()
    assert within == across == Copied(etag=md5)
    assert [(o.key, o.size, o.etag) for o in other.list("backup/b/")] == [("backup/b/seg/1", len(payload), md5)]
    with pytest.raises(ObjectNotFound):
        other.copy_from(s3, "files/seg/none", "backup/b/seg/2", 1)


@pytest.mark.integration
def test_s3_multipart_server_side_copy_above_threshold(s3_storage_params):
    store = new_bucket(s3_storage_params, threshold_mib=5)
    payload = os.urandom(12 * 1024 * 1024 + 5)
    endpoint, access_key, secret_key = s3_storage_params
    client = Minio(endpoint, access_key, secret_key, secure=False)
    # One PUT, so the source's ETag is a plain MD5 and only a multipart copy gives the copy a "-N" ETag.
    client.put_object(store.bucket, "big", io.BytesIO(payload), len(payload), part_size=64 * 1024 * 1024)
    assert "-" not in client.stat_object(store.bucket, "big").etag
    store.copy_from(store, "big", "big-copy", len(payload))
    assert store.read("big-copy") == payload
    assert client.stat_object(store.bucket, "big-copy").etag.endswith("-3")  # three parts of at most 5 MiB


@pytest.mark.integration
def test_s3_to_local_and_local_to_s3_streaming(s3, tmp_path):
    local = LocalStorage(tmp_path / "backups")
    payload = os.urandom(7 * 1024 * 1024 + 3)  # more than one chunk and one S3 part
    s3.write("files/seg/1", payload)
    assert not local.same_store(s3) and not s3.same_store(local)
    down = local.copy_from(s3, "files/seg/1", "b/seg/1", len(payload))
    assert (tmp_path / "backups" / "b" / "seg" / "1").read_bytes() == payload
    up = s3.copy_from(local, "b/seg/1", "restored/seg/1", len(payload))
    assert s3.read("restored/seg/1") == payload and s3.stat("restored/seg/1").size == len(payload)
    # streamed both ways: hashed on the way; the upload also reports the ETag the store gave it
    assert down.sha256 == up.sha256 == hashlib.sha256(payload).hexdigest()
    assert up.etag == s3.stat("restored/seg/1").etag != ""
    assert temp_files(local.base_dir) == []


@pytest.mark.integration
def test_s3_streamed_copy_between_stores_on_request_and_size_check(s3_storage_params, s3):
    other = new_bucket(s3_storage_params)
    s3.write("obj", b"0123456789")
    other.copy_from(s3, "obj", "forced", 10, server_side=False)
    assert other.read("forced") == b"0123456789"
    for wrong in (9, 11):
        with pytest.raises(StorageError):
            other.copy_from(s3, "obj", f"bad{wrong}", wrong, server_side=False)
        assert other.stat(f"bad{wrong}") is None


@pytest.mark.integration
def test_s3_delete_and_delete_prefix(s3):
    for i in range(7):
        s3.write(f"backup/b1/binlogs/{i}", b"x" * i)
    s3.write("backup/b10/keep", b"k")
    s3.delete("backup/b1/binlogs/0")
    assert s3.stat("backup/b1/binlogs/0") is None
    assert s3.delete_prefix("backup/b1/") == 6
    assert list(s3.list("backup/b1/")) == []
    assert [o.key for o in s3.list("backup/")] == ["backup/b10/keep"]
    with pytest.raises(StorageError):
        s3.delete_prefix("")


def test_folder_trail_gives_each_folder_once_after_what_it_holds():
    keys = ["b/x/1/a", "b/x/1/b", "b/x/2/a", "b/y", "b/z/3/c"]
    trail = FolderTrail("b/")
    seen = [(key, trail.past(key)) for key in keys]
    assert seen == [
        ("b/x/1/a", []),
        ("b/x/1/b", []),
        ("b/x/2/a", ["b/x/1/"]),
        ("b/y", ["b/x/2/", "b/x/"]),
        ("b/z/3/c", []),
    ]
    assert trail.end() == ["b/z/3/", "b/z/", "b/"]
    # a string prefix: a folder only once every key in it matches the prefix
    trail = FolderTrail("backup/b1")
    assert [trail.past("backup/b1/m/x"), trail.past("backup/b10/y"), trail.end()] == [
        [],
        ["backup/b1/m/", "backup/b1/"],
        ["backup/b10/"],
    ]


class _DropsEmptyFolders(MinioStorage):
    """A store that keeps no empty folder (as AWS S3 and MinIO): its "/" listings show none."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.removed: list[str] = []

    def list_rolled(self, prefix, delimiter, after="", through="", page=1000):
        self.listed.append(prefix)
        return iter(())

    def _delete_folder_keys(self, folders):
        self.removed.extend(folders)


def test_empty_folders_cost_one_listing_on_a_store_that_keeps_none():
    store = _DropsEmptyFolders()
    folders = _EmptyFolders(store)
    folders.remove(["b/x/1/", "b/x/"])
    folders.remove(["b/y/", "b/"])
    assert store.listed == ["b/x/"] and store.removed == []


@pytest.mark.integration
def test_s3_delete_prefix_leaves_no_empty_folder(s3, monkeypatch):
    """SeaweedFS keeps a folder after its last object: each deleted backup would stay in the "/" listing
    of the backups as an empty folder that every listing looks into. Batches of 4, so that folders are
    removed between batches too."""
    monkeypatch.setattr(s3_module, "DELETE_BATCH", 4)
    keys = [f"backup/g1/binlogs/insert_log/1/2/{s}/{f}/{log}" for s in range(3) for f in range(3) for log in range(2)]
    keys += ["backup/g1/meta/backup_meta.json", "backup/g1/meta/full_meta.json"]
    for key in [*keys, "backup/g10/keep", "backup/g1x"]:
        s3.write(key, b"x")
    assert {o.key for o in s3.list_rolled("backup/", "/")} == {"backup/g1/", "backup/g10/", "backup/g1x"}
    assert s3.delete_prefix("backup/g1/") == len(keys)
    assert {o.key for o in s3.list_rolled("backup/", "/")} == {"backup/g10/", "backup/g1x"}
    assert list(s3.list_rolled("backup/g1/", "/")) == []
    assert s3.read("backup/g10/keep") == b"x" and s3.read("backup/g1x") == b"x"
    # a string prefix takes the folders whose every key it matches, and no other
    assert s3.delete_prefix("backup/g1") == 2
    assert not [o.key for o in s3.list_rolled("backup/", "/") if o.key.startswith("backup/g1")]


@pytest.mark.integration
def test_s3_copy_objects_to_local_with_progress(s3, tmp_path):
    tasks = []
    for i in range(20):
        data = os.urandom(1000 + i)
        s3.write(f"files/seg/{i:02d}", data)
        tasks.append(CopyTask(f"files/seg/{i:02d}", f"b/seg/{i:02d}", len(data)))
    local = LocalStorage(tmp_path / "bk")
    seen = []
    lock = threading.Lock()

    def progress(nbytes, nobjects):
        with lock:
            seen.append((nbytes, nobjects))

    copy_objects(s3, local, tasks, parallelism=6, on_progress=progress)
    assert sum(b for b, _ in seen) == sum(t.size for t in tasks) and sum(n for _, n in seen) == 20
    assert all(local.read(t.dst_key) == s3.read(t.src_key) for t in tasks)


@pytest.mark.integration
def test_s3_check_errors_are_one_line_without_secrets(s3_storage_params):
    missing = open_storage(s3_config(s3_storage_params, f"t-missing-{uuid.uuid4().hex[:8]}"))
    with pytest.raises(StorageError) as info:
        missing.check()
    assert missing.bucket in one_line(info.value)
    wrong_secret = "wrong-secret-XYZ-987"
    bad = open_storage(s3_config(s3_storage_params, "a-bucket", secret_access_key=wrong_secret))
    with pytest.raises(StorageError) as info:
        bad.check()
    message = one_line(info.value)
    assert "secret key" in message and wrong_secret not in message
    assert not bad.same_store(missing) and missing.same_store(open_storage(s3_config(s3_storage_params, "x-bkt")))


def test_check_staged_compares_what_a_copy_vouches_for_with_the_manifest(tmp_path):
    from milvus_backup.core.integrity import Entry, check_staged

    src, dst = LocalStorage(tmp_path / "backup"), LocalStorage(tmp_path / "stage")
    src.write("b/binlogs/1", b"0123456789")
    copied = dst.copy_from(src, "b/binlogs/1", "stage/1", 10, server_side=False)
    good = Entry(10, hashlib.sha256(b"0123456789").hexdigest())
    assert check_staged("b/binlogs/1", good, copied, 10) is None
    bad = check_staged("b/binlogs/1", Entry(10, hashlib.sha256(b"other byte").hexdigest()), copied, 10)
    assert bad is not None and bad.kind == "altered"
    short = check_staged("b/binlogs/1", Entry(11, good.sha256), copied, 10)
    assert short is not None and short.kind == "truncated"
    md5 = hashlib.md5(b"0123456789").hexdigest()
    assert check_staged("k", Entry(10, None, md5), Copied(etag=md5), 10) is None
    moved = check_staged("k", Entry(10, None, md5), Copied(etag="0" * 32), 10)
    assert moved is not None and moved.kind == "altered"


def test_streamed_copies_share_a_bounded_memory_budget():
    from milvus_backup.core.storage.base import ByteBudget

    budget = ByteBudget(10)
    lock, active, peak, entered = threading.Lock(), [0], [0], [0]
    first_two = threading.Barrier(2, timeout=30)

    def work(_: int) -> None:
        with budget.hold(4):
            with lock:
                active[0] += 1
                entered[0] += 1
                peak[0] = max(peak[0], active[0])
                early = entered[0] <= 2
            if early:
                first_two.wait()  # two shares of 4 fit in 10: both are inside together
            with lock:
                active[0] -= 1

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(12)))
    assert peak[0] == 2  # never a third: 12 bytes would be over the budget
    with budget.hold(50):  # a share larger than the whole waits for everything else, then runs alone
        pass
