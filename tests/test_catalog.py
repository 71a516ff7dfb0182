"""Listing backups at scale: one listing of the root with "/binlogs/" as the delimiter gives every
backup's meta files and their ETags; a summary comes from a cache keyed by that ETag, and only backups
not seen before are read; `get` of one backup never lists the others. Checked on the real S3 of the
sandbox, counting the requests the catalog makes."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import uuid
from collections import Counter

import pytest
from minio import Minio

from milvus_backup.core.catalog import Catalog
from milvus_backup.core.errors import NotFound, StorageError
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
        self.rolled = 0
        self.folder_listings = 0
        self.ranges: list[tuple[str, str]] = []
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
                self.rolled += 1
                self.ranges.append((after, through))
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
        _put(s3, f"{root}/b{i}/binlogs/insert_log/1/2/3/4/{i}", b"x")  # rolled up: never listed one by one
    _put(s3, f"{root}/half/binlogs/insert_log/1/2/3/4/5", b"x")  # being written: no backup_meta.json yet
    _put(s3, f"{root}/gone/meta/{BACKUP_META}", b"{}")
    _put(s3, f"{root}/gone/binlogs/insert_log/1/2/3/4/5", b"x")
    for key in (f"{root}/gone/meta/{BACKUP_META}", f"{root}/gone/binlogs/insert_log/1/2/3/4/5"):
        s3.remove_object(BUCKET, key)  # a deleted backup: SeaweedFS may keep its empty folders
    _put(s3, f"{root}/stray.json", b"{}")  # a file beside the backups is no backup

    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    first = catalog.list()
    assert [(b.name, b.id, b.state, b.collections) for b in first] == [
        *[(f"b{i}", f"id-b{i}", "success", (f"default.coll{i}",)) for i in range(5)],
        ("half", "", "incomplete", ()),
    ]
    assert storage.reads == Counter({BACKUP_META: 5, COLLECTION_META: 5})
    assert storage.rolled == 1  # one listing of the root, nothing listed per backup (a few backups: no ranges)
    assert storage.listings == 0

    storage.reads.clear()
    assert catalog.list() == first  # the same answer from the cache, by the ETags the listing gave ...
    assert storage.reads == Counter()  # ... without reading any file

    # a backup made again under the same name has a new backup_meta.json (new ETag): read again
    s3.remove_object(BUCKET, f"{root}/b2/meta/{BACKUP_META}")
    _backup(s3, root, "b2", "other")
    _put(s3, f"{root}/b2/meta/{BACKUP_META}", b'{"id":"new","name":"b2","state_code":2}')
    s3.remove_object(BUCKET, f"{root}/b4/meta/{BACKUP_META}")
    s3.remove_object(BUCKET, f"{root}/b4/meta/{COLLECTION_META}")
    s3.remove_object(BUCKET, f"{root}/b4/binlogs/insert_log/1/2/3/4/4")  # b4 deleted
    storage.reads.clear()
    again = {b.name: (b.id, b.state, b.collections) for b in catalog.list()}
    assert again == {
        **{f"b{i}": (f"id-b{i}", "success", (f"default.coll{i}",)) for i in (0, 1, 3)},
        "b2": ("new", "success", ("default.other",)),
        "half": ("", "incomplete", ()),
    }
    assert storage.reads == Counter({BACKUP_META: 1, COLLECTION_META: 1})


def test_many_backups_are_listed_in_key_ranges_at_once(sandbox, base_config, store_root, tmp_path, monkeypatch):
    """Ranges of RANGE_BACKUPS backups (2 here), placed on the names the last listing found, or on a "/"
    listing of the root the first time: the same answer as one listing, and the cache stays exact for
    backups made, made again or deleted since (their names may fall anywhere in a range)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("milvus_backup.core.catalog.RANGE_BACKUPS", 2)
    root, s3 = store_root
    names = ["b0", "b1", "b10", "b1_x", "b2", "b3"]
    for name in names:
        _backup(s3, root, name, f"c_{name}")
        _put(s3, f"{root}/{name}/binlogs/insert_log/1/2/3/4/5", b"x")
    _put(s3, f"{root}/half/binlogs/insert_log/1/2/3/4/5", b"x")  # being written: no backup_meta.json yet
    expected = [*[(n, f"id-{n}", "success", (f"default.c_{n}",)) for n in names], ("half", "", "incomplete", ())]

    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    assert [(b.name, b.id, b.state, b.collections) for b in catalog.list()] == expected
    assert storage.folder_listings == 1  # the first listing: names from a "/" listing of the root
    assert len(storage.ranges) == 4  # 7 folders, 2 a range
    bounds = [through for _after, through in storage.ranges if through]
    assert sorted(storage.ranges) == sorted(zip(["", *sorted(bounds)], [*sorted(bounds), ""], strict=True))

    storage.reads.clear()
    storage.ranges.clear()
    second = catalog.list()
    assert [(b.name, b.id, b.state, b.collections) for b in second] == expected
    assert storage.reads == Counter() and storage.folder_listings == 1  # the cache's names, its summaries
    assert len(storage.ranges) == 3  # on the 6 names the cache holds (the incomplete one has no ETag)

    s3.remove_object(BUCKET, f"{root}/b10/meta/{BACKUP_META}")  # b10 made again under its name
    _put(s3, f"{root}/b10/meta/{BACKUP_META}", b'{"id":"new","name":"b10","state_code":2}')
    for key in (f"{root}/b2/meta/{BACKUP_META}", f"{root}/b2/meta/{COLLECTION_META}"):
        s3.remove_object(BUCKET, key)
    s3.remove_object(BUCKET, f"{root}/b2/binlogs/insert_log/1/2/3/4/5")  # b2 deleted
    _backup(s3, root, "b1_a", "c_new")  # new, between two names the cache knows
    storage.reads.clear()
    listed = {b.name: (b.id, b.collections) for b in catalog.list()}
    assert listed == {
        **{n: (f"id-{n}", (f"default.c_{n}",)) for n in ("b0", "b1", "b1_x", "b3")},
        "b10": ("new", ("default.c_b10",)),
        "b1_a": ("id-b1_a", ("default.c_new",)),
        "half": ("", ()),
    }
    assert storage.reads[BACKUP_META] == 2  # b10 and b1_a, nothing else
    in_ranges = catalog.list()
    monkeypatch.setattr(storage, "lists_in_parallel", False)
    assert catalog.list() == in_ranges  # one listing: the same answer
    assert storage.ranges[-1] == ("", "")


def test_a_local_folder_lists_the_same_way(tmp_path, monkeypatch):
    """A folder has no ETags: every backup is read, and the binlogs are still never walked."""
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


class SlashOnly(LocalStorage):
    """A store that answers any delimiter as if it were "/" (a folder per backup, no meta files)."""

    def list_rolled(self, prefix, delimiter, after="", through="", page=1000):
        return iter([ObjectInfo(d, 0) for d in self.list_dirs(prefix, holding_objects=False)])


class NoDelimiter(LocalStorage):
    """A store that refuses delimiters other than "/" (as some S3 servers answer: NotImplemented)."""

    def list_rolled(self, prefix, delimiter, after="", through="", page=1000):
        raise StorageError("list failed: NotImplemented")


@pytest.mark.parametrize("store", [SlashOnly, NoDelimiter])
def test_a_store_that_cannot_roll_up_is_listed_backup_by_backup(tmp_path, monkeypatch, store):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    local = store(tmp_path / "store")
    local.write(f"root/b0/meta/{BACKUP_META}", b'{"id":"id-b0","name":"b0","state_code":2}')
    local.write("root/b0/binlogs/insert_log/1/2/3/4/5", b"x")
    local.write("root/half/binlogs/insert_log/1/2/3/4/5", b"x")
    assert [(b.name, b.id, b.state) for b in Catalog(local, _layout("root")).list()] == [
        ("b0", "id-b0", "success"),
        ("half", "", "incomplete"),
    ]
