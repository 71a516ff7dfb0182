"""Listing backups at scale: one "/" listing of the root gives the backups' names, then each backup's
`backup_meta.json` is read; a summary comes from a cache keyed by its ETag, so `collection_meta.json` is
read only for backups not seen before. No listing ever walks a backup's binlogs (a delimiter other than
"/" makes SeaweedFS do exactly that), and `get` of one backup never lists the others. Checked on
the real S3 of the sandbox, counting the requests the catalog makes."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import uuid
from collections import Counter

import pytest
from minio import Minio

from milvus_backup.core.catalog import CHECKING, BackupSummary, Catalog
from milvus_backup.core.errors import NotFound
from milvus_backup.core.paths import BACKUP_META, COLLECTION_META
from milvus_backup.core.storage import LocalStorage, MinioStorage, ObjectInfo

pytestmark = pytest.mark.integration

BUCKET = "a-bucket"


class CountingStorage(MinioStorage):
    """The sandbox's S3 store, counting reads by file name and listings."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.reads: Counter[str] = Counter()
        self.listings = 0
        self.folder_listings = 0
        self.other_listings: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def read(self, key):
        with self._lock:
            self.reads[key.rsplit("/", 1)[-1]] += 1
        return super().read(key)

    def read_tagged(self, key):
        with self._lock:
            self.reads[key.rsplit("/", 1)[-1]] += 1
        return super().read_tagged(key)

    def list(self, prefix, recursive=True):
        with self._lock:
            self.listings += 1
        return super().list(prefix, recursive)

    def list_rolled(self, prefix, delimiter, after="", through="", page=1000):
        with self._lock:
            if delimiter == "/":
                self.folder_listings += 1
            else:
                self.other_listings.append((prefix, delimiter))
        return super().list_rolled(prefix, delimiter, after, through, page)


@pytest.fixture
def store_root(sandbox):
    """A fresh backup root in the sandbox's bucket, with a few hand-made backups."""
    root = f"catalog_{uuid.uuid4().hex[:8]}"
    s3 = Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)
    yield root, s3
    for o in s3.list_objects(BUCKET, prefix=root + "/", recursive=True):
        s3.remove_object(BUCKET, o.object_name)


def _put(s3: Minio, key: str, data: bytes) -> None:
    s3.put_object(BUCKET, key, io.BytesIO(data), len(data))


def _backup(s3: Minio, root: str, name: str, collection: str) -> None:
    _put(s3, f"{root}/{name}/meta/{BACKUP_META}", f'{{"id":"id-{name}","name":"{name}","state_code":2}}'.encode())
    collections = f'{{"infos":[{{"db_name":"default","collection_name":"{collection}"}}]}}'
    _put(s3, f"{root}/{name}/meta/{COLLECTION_META}", collections.encode())


def test_listing_reads_only_backups_it_has_not_seen(sandbox, base_config, store_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root, s3 = store_root
    for i in range(5):
        _backup(s3, root, f"b{i}", f"coll{i}")
        _put(s3, f"{root}/b{i}/binlogs/insert_log/1/2/3/4/{i}", b"x")  # never listed
    _put(s3, f"{root}/half/binlogs/insert_log/1/2/3/4/5", b"x")  # being written: no backup_meta.json yet
    _put(s3, f"{root}/gone/meta/{BACKUP_META}", b"{}")
    _put(s3, f"{root}/gone/binlogs/insert_log/1/2/3/4/5", b"x")
    for key in (f"{root}/gone/meta/{BACKUP_META}", f"{root}/gone/binlogs/insert_log/1/2/3/4/5"):
        s3.remove_object(BUCKET, key)  # a deleted backup: SeaweedFS may keep its empty folders
    _put(s3, f"{root}/stray.json", b"{}")  # a file beside the backups is no backup

    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    early: list[list[BackupSummary]] = []
    first = catalog.list(early=early.append)
    names = ["b0", "b1", "b2", "b3", "b4", "gone", "half"]  # the "/" listing's: nothing read yet
    assert early == [[BackupSummary(n, "", CHECKING, 0, "", 0, 0, ()) for n in names]]
    assert [(b.name, b.id, b.state, b.collections) for b in first] == [
        *[(f"b{i}", f"id-b{i}", "success", (f"default.coll{i}",)) for i in range(5)],
        ("half", "", "incomplete", ()),
    ]
    # gone/ and half/ have no backup_meta.json: read (not found), then one listing each to see what is left
    assert storage.reads == Counter({BACKUP_META: 7, COLLECTION_META: 5})
    assert (storage.folder_listings, storage.listings, storage.other_listings) == (1, 2, [])

    storage.reads.clear()
    early.clear()
    assert catalog.list(early=early.append) == first  # the same answer, from the cache by the ETags read ...
    assert early == [[*first[:5], *(BackupSummary(n, "", CHECKING, 0, "", 0, 0, ()) for n in ("gone", "half"))]]
    assert storage.reads == Counter({BACKUP_META: 7})  # ... without reading collection_meta.json

    # a backup made again under the same name has a new backup_meta.json (new ETag): read again
    s3.remove_object(BUCKET, f"{root}/b2/meta/{BACKUP_META}")
    _backup(s3, root, "b2", "other")
    _put(s3, f"{root}/b2/meta/{BACKUP_META}", b'{"id":"new","name":"b2","state_code":2}')
    s3.remove_object(BUCKET, f"{root}/b4/meta/{BACKUP_META}")
    s3.remove_object(BUCKET, f"{root}/b4/meta/{COLLECTION_META}")
    s3.remove_object(BUCKET, f"{root}/b4/binlogs/insert_log/1/2/3/4/4")  # b4 deleted
    _backup(s3, root, "b1_a", "c_new")  # new, between two names the cache knows
    storage.reads.clear()
    early.clear()
    again = {b.name: (b.id, b.state, b.collections) for b in catalog.list(early=early.append)}
    assert [b for b in early[0] if b.name == "b2"] == [first[2]]  # what was last seen of it, until read
    assert again == {
        **{f"b{i}": (f"id-b{i}", "success", (f"default.coll{i}",)) for i in (0, 1, 3)},
        "b1_a": ("id-b1_a", "success", ("default.c_new",)),
        "b2": ("new", "success", ("default.other",)),
        "half": ("", "incomplete", ()),
    }
    assert storage.reads[COLLECTION_META] == 2  # b1_a and b2, nothing else
    assert storage.other_listings == []


def test_a_listing_takes_what_its_caller_knows_of_finished_backups(
    sandbox, base_config, store_root, tmp_path, monkeypatch
):
    """The app's timed refresh passes the rows it shows: finished backups still listed are not read again,
    new names and unfinished ones are, and the cache keeps what it held of the ones taken as given."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root, s3 = store_root
    for i in range(3):
        _backup(s3, root, f"b{i}", f"coll{i}")
    _put(s3, f"{root}/half/binlogs/insert_log/1/2/3/4/5", b"x")
    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    first = catalog.list()
    assert [(b.name, b.state) for b in first] == [
        ("b0", "success"),
        ("b1", "success"),
        ("b2", "success"),
        ("half", "incomplete"),
    ]

    _backup(s3, root, "b3", "coll3")  # new
    _put(s3, f"{root}/half/meta/{BACKUP_META}", b'{"id":"h","name":"half","state_code":2}')  # finished since
    assert catalog.delete("b1") == 2  # by this tool, on any machine: its folder goes too
    storage.reads.clear()
    again = catalog.list(known={b.name: b for b in first})
    assert [(b.name, b.id, b.state) for b in again] == [
        ("b0", "id-b0", "success"),
        ("b2", "id-b2", "success"),
        ("b3", "id-b3", "success"),
        ("half", "h", "success"),
    ]
    assert storage.reads == Counter({BACKUP_META: 2, COLLECTION_META: 2})  # b3 and half only
    storage.reads.clear()
    assert catalog.list() == again
    assert storage.reads == Counter({BACKUP_META: 4})  # every ETag checked; the cache kept b0 and b2


def test_a_backup_found_by_id_costs_one_read_once_listed(sandbox, base_config, store_root, tmp_path, monkeypatch):
    """get_backup?backup_id=...: the name comes from the listing cache, checked by reading that one
    backup_meta.json; a whole listing only for an id this machine has not seen, or no longer holds."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root, s3 = store_root
    for i in range(4):
        _backup(s3, root, f"b{i}", f"coll{i}")
    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    assert catalog.name_of_id("id-b2") == "b2"  # nothing cached: a whole listing
    assert (storage.folder_listings, storage.reads[BACKUP_META]) == (1, 4)

    storage.reads.clear()
    storage.folder_listings = 0
    assert catalog.name_of_id("id-b2") == "b2"
    assert (storage.folder_listings, storage.reads) == (0, Counter({BACKUP_META: 1}))

    # made again under its name with another id: the cache is not believed, the listing finds neither
    _put(s3, f"{root}/b2/meta/{BACKUP_META}", b'{"id":"other","name":"b2","state_code":2}')
    storage.reads.clear()
    assert catalog.name_of_id("id-b2") is None
    assert catalog.name_of_id("other") == "b2"
    assert catalog.name_of_id("") is None


def test_listing_cost_does_not_grow_with_binlogs(sandbox, base_config, store_root, tmp_path, monkeypatch):
    """The store is asked the same requests whether a backup holds one binlog or many: the listing never
    reaches into `binlogs/` (the old listing with "/binlogs/" as the delimiter made SeaweedFS walk them)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root, s3 = store_root
    _backup(s3, root, "small", "c1")
    _put(s3, f"{root}/small/binlogs/insert_log/1/2/3/4/1", b"x")
    _backup(s3, root, "big", "c2")
    for i in range(300):
        _put(s3, f"{root}/big/binlogs/insert_log/1/2/3/{i // 100}/{i}", b"x")
    storage = CountingStorage(base_config.backup_storage)
    listed: list[tuple[str, str]] = []
    real = MinioStorage._pages

    def pages(self, prefix, delimiter, after, through, page):
        listed.append((prefix, delimiter))
        yield from real(self, prefix, delimiter, after, through, page)

    monkeypatch.setattr(MinioStorage, "_pages", pages)
    assert [(b.name, b.collections) for b in Catalog(storage, _layout(root)).list()] == [
        ("big", ("default.c2",)),
        ("small", ("default.c1",)),
    ]
    assert listed == [(f"{root}/", "/")]  # one listing, of the names
    assert storage.reads == Counter({BACKUP_META: 2, COLLECTION_META: 2})


def test_a_local_folder_lists_the_same_way(tmp_path, monkeypatch):
    """A folder has no ETags: every backup is read."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    local = LocalStorage(tmp_path / "store")
    for name in ("b0", "b1"):
        local.write(f"root/{name}/meta/{BACKUP_META}", f'{{"id":"id-{name}","name":"{name}","state_code":2}}'.encode())
        local.write(f"root/{name}/binlogs/insert_log/1/2/3/4/5", b"x")
    local.write("root/half/binlogs/insert_log/1/2/3/4/5", b"x")
    local.write("root/stray.json", b"{}")
    assert sorted(local.list_rolled("root/", "/binlogs/"), key=lambda o: o.key) == [
        ObjectInfo("root/b0/binlogs/", 0),
        ObjectInfo(f"root/b0/meta/{BACKUP_META}", local.stat(f"root/b0/meta/{BACKUP_META}").size),
        ObjectInfo("root/b1/binlogs/", 0),
        ObjectInfo(f"root/b1/meta/{BACKUP_META}", local.stat(f"root/b1/meta/{BACKUP_META}").size),
        ObjectInfo("root/half/binlogs/", 0),
        ObjectInfo("root/stray.json", 2),
    ]
    assert [(b.name, b.id, b.state) for b in Catalog(local, _layout("root")).list()] == [
        ("b0", "id-b0", "success"),
        ("b1", "id-b1", "success"),
        ("half", "", "incomplete"),
    ]


def test_get_never_lists_the_other_backups(sandbox, base_config, store_root):
    root, s3 = store_root
    for i in range(3):
        _backup(s3, root, f"b{i}", f"coll{i}")
    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    assert catalog.get("b1").collection_backups[0].collection_name == "coll1"
    assert storage.listings == 0
    with pytest.raises(NotFound, match="not found"):
        catalog.get("nope")


def _layout(root: str):
    from milvus_backup.core.paths import BackupLayout

    return BackupLayout(root)


@pytest.mark.parametrize("args", [["list"], ["get", "-n", "nope"], ["verify", "-n", "nope"], ["delete", "-n", "nope"]])
def test_commands_that_need_no_milvus_never_import_pymilvus(sandbox, args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "milvus_backup.cli", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "milvus_backup.core.service" in imported  # the command did run against the store
    assert "minio.api" in imported
    heavy = {"pymilvus", "pandas", "numpy", "grpc", "textual", "fastapi", "uvicorn", "Crypto", "argon2"}
    if args[0] != "verify":  # verify shows progress (rich); the others print an answer
        heavy.add("rich")
    assert sorted(m for m in imported if m.split(".")[0] in heavy) == []
    # nor the modules of the jobs they do not run (core.service re-exports them lazily)
    jobs = {"backup", "restore", "swap", "rbac", "check", "versions", "requests"}
    if args[0] != "verify":
        jobs.add("integrity")
    # difflib: only a config mistake needs it (a suggestion of the key meant)
    not_run = {f"milvus_backup.core.{name}" for name in jobs} | {"urllib.request", "difflib"}
    assert sorted(imported & not_run) == []


def test_every_name_core_service_exports_resolves():
    """The lazy re-exports: each name of `__all__` is there on first use, and is the core module's own."""
    from milvus_backup.core import service
    from milvus_backup.core.restore import RestoreRequest

    assert [name for name in service.__all__ if getattr(service, name, None) is None] == []
    assert service.RestoreRequest is RestoreRequest
    with pytest.raises(AttributeError, match="NoSuchName"):
        _ = service.NoSuchName  # type: ignore[attr-defined]


def test_minio_crypto_loads_when_first_used():
    """The stand-in for minio's admin crypto hands over to the real module on first use."""
    code = (
        "import sys, milvus_backup.core.storage, minio.minioadmin\n"
        "assert 'Crypto' not in sys.modules\n"
        "from minio.crypto import encrypt\n"
        "sealed = encrypt(b'payload', 'secret')\n"
        "assert len(sealed) > len(b'payload') and 'Crypto' in sys.modules\n"
        "assert sys.modules['minio.crypto'].DecryptReader\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
