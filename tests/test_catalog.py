"""Listing backups at scale: one delimiter listing, each backup's backup_meta.json read in parallel,
the rest of its summary from a cache keyed by that file's ETag; `get` of one backup never lists the
others. Checked on the real S3 of the sandbox, counting the requests the catalog makes."""

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
from milvus_backup.core.errors import NotFound
from milvus_backup.core.paths import BACKUP_META, COLLECTION_META
from milvus_backup.core.storage import MinioStorage

pytestmark = pytest.mark.integration

BUCKET = "a-bucket"


class CountingStorage(MinioStorage):
    """The sandbox's S3 store, counting reads by file name and listings."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.reads: Counter[str] = Counter()
        self.listings = 0
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


def test_listing_reads_one_file_per_backup_once_seen(sandbox, base_config, store_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root, s3 = store_root
    for i in range(5):
        _backup(s3, root, f"b{i}", f"coll{i}")
    _put(s3, f"{root}/half/binlogs/insert_log/1/2/3/4/5", b"x")  # an interrupted backup
    _put(s3, f"{root}/gone/meta/{BACKUP_META}", b"{}")
    s3.remove_object(BUCKET, f"{root}/gone/meta/{BACKUP_META}")  # SeaweedFS may keep the empty folder

    storage = CountingStorage(base_config.backup_storage)
    catalog = Catalog(storage, _layout(root))
    first = catalog.list()
    assert [(b.name, b.state, b.collections) for b in first] == [
        *[(f"b{i}", "success", (f"default.coll{i}",)) for i in range(5)],
        ("half", "incomplete", ()),
    ]
    folders = len(list(s3.list_objects(BUCKET, prefix=root + "/")))  # 7 when the store kept gone/, else 6
    assert storage.reads == Counter({BACKUP_META: folders, COLLECTION_META: 5})

    storage.reads.clear()
    assert catalog.list() == first  # the same answer from the cache ...
    assert storage.reads == Counter({BACKUP_META: folders})  # ... with one read per folder

    # a backup made again under the same name has a new backup_meta.json (new ETag): read again
    s3.remove_object(BUCKET, f"{root}/b2/meta/{BACKUP_META}")
    _backup(s3, root, "b2", "other")
    _put(s3, f"{root}/b2/meta/{BACKUP_META}", b'{"id":"new","name":"b2","state_code":2}')
    storage.reads.clear()
    again = {b.name: b for b in catalog.list()}
    assert (again["b2"].id, again["b2"].collections) == ("new", ("default.other",))
    assert storage.reads[COLLECTION_META] == 1


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
    heavy = {"pymilvus", "pandas", "numpy", "grpc", "textual", "fastapi", "uvicorn"}
    assert sorted(m for m in imported if m.split(".")[0] in heavy) == []
