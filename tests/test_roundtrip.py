"""Backup and restore against the real sandbox: every row, every field, every partition comes back."""

from __future__ import annotations

import contextlib
import json

import pytest
from minio import Minio

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.errors import AlreadyExists, InvalidRequest, NotFound
from milvus_backup.core.jobs import JobState
from milvus_backup.core.meta import BackupState
from milvus_backup.core.paths import BACKUP_META, MANIFEST, META_WRITE_ORDER, restore_temp_root
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import DEMO_COLLECTIONS, demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows, with_backup_storage

pytestmark = pytest.mark.integration


def _s3(sandbox) -> Minio:
    return Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)


def _run(job):
    assert job.wait(300) is JobState.SUCCESS, job.error
    return job.result


@pytest.fixture(scope="module")
def full_backup(sandbox, base_config):
    """One backup of all three demo collections, shared by the restore tests of this module."""
    engine = Engine(base_config)
    info = _run(
        engine.start_backup(BackupRequest(name="demo_all", collections=["hello_milvus", "books", "shop.products"]))
    )
    yield info
    engine.delete_backup("demo_all")
    engine.close()


def test_backup_writes_the_format(sandbox, base_config, full_backup):
    s3 = _s3(sandbox)
    keys = {o.object_name: o.size for o in s3.list_objects("a-bucket", prefix="backup/demo_all/", recursive=True)}
    for name in META_WRITE_ORDER:
        assert f"backup/demo_all/meta/{name}" in keys
    full = json.loads(s3.get_object("a-bucket", "backup/demo_all/meta/full_meta.json").read())
    assert full["name"] == "demo_all" and full["state_code"] == BackupState.SUCCESS
    assert {c["collection_name"] for c in full["collection_backups"]} == {"hello_milvus", "books", "products"}
    top = json.loads(s3.get_object("a-bucket", "backup/demo_all/meta/backup_meta.json").read())
    assert set(top) <= {"id", "state_code", "name", "size", "milvus_version", "format"}
    # Every binlog the meta names is in the backup at its group-layout key, with its size.
    binlog_keys = {k for k in keys if "/binlogs/" in k}
    named = 0
    for coll in full["collection_backups"]:
        for part in coll["partition_backups"]:
            for seg in part["segment_backups"]:
                assert seg["group_id"] == seg["segment_id"]
                for fb in seg["binlogs"]:
                    for b in fb["binlogs"]:
                        key = (
                            f"backup/demo_all/binlogs/insert_log/{coll['collection_id']}/{part['partition_id']}/"
                            f"{seg['segment_id']}/{seg['segment_id']}/{fb.get('fieldID', 0)}/{b['log_id']}"
                        )
                        assert keys[key] == b["log_size"]
                        named += 1
                for fb in seg.get("deltalogs", []):
                    for b in fb["binlogs"]:
                        key = (
                            f"backup/demo_all/binlogs/delta_log/{coll['collection_id']}/{part['partition_id']}/"
                            f"{seg['segment_id']}/{seg['segment_id']}/{b['log_id']}"
                        )
                        assert keys[key] == b["log_size"]
                        named += 1
    assert named == len(binlog_keys) > 0
    books = next(c for c in full["collection_backups"] if c["collection_name"] == "books")
    assert {p["partition_name"] for p in books["partition_backups"]} == {"_default", "fiction", "science"}
    assert books["schema"]["enable_dynamic_field"] is True
    assert books["index_infos"][0]["index_type"] == "IVF_FLAT"


def test_list_and_get_read_storage(sandbox, base_config, full_backup):
    fresh = Engine(base_config)  # no memory of the job that made it
    try:
        summary = next(b for b in fresh.list_backups() if b.name == "demo_all")
        assert summary.state == "success" and summary.size == full_backup.size > 0
        assert set(summary.collections) == {"default.hello_milvus", "default.books", "shop.products"}
        info = fresh.get_backup("demo_all")
        assert info.id == full_backup.id
        assert info.collection("default", "books").num_rows == full_backup.collection("default", "books").num_rows
    finally:
        fresh.close()


def test_restore_brings_back_every_row(sandbox, base_config, full_backup):
    # two collections at once, one Milvus import task in flight between them
    parallel = base_config.backup.model_copy(update={"restore_collection": 2, "import_job": 1})
    engine = Engine(base_config.model_copy(update={"backup": parallel}))
    targets = [(d.db, d.name + "_rt") for d in DEMO_COLLECTIONS]
    for db, name in targets:
        drop_if_exists(sandbox.milvus_uri, db, name)
    try:
        tasks = _run(engine.start_restore(RestoreRequest("demo_all", suffix="_rt", restore_index=True, load=True)))
        assert {t.target for t in tasks} == {f"{db}.{name}" for db, name in targets}
        for demo in DEMO_COLLECTIONS:
            rows = fetch_rows(sandbox.milvus_uri, demo.db, demo.name + "_rt")
            assert_same_rows(rows, demo)
            restored = next(t for t in tasks if t.target_name == demo.name + "_rt")
            assert restored.rows == len(demo.expected_rows())
        books = demo_collection("books")
        where = books.partition_of()
        for part in ("_default", "fiction", "science"):
            got = {r["isbn"] for r in fetch_rows(sandbox.milvus_uri, "default", "books_rt", part)}
            assert got == {k for k, p in where.items() if p == part}
    finally:
        for db, name in targets:
            drop_if_exists(sandbox.milvus_uri, db, name)
        engine.close()


def test_restore_refuses_existing_target_and_drops_only_on_request(sandbox, engine, full_backup):
    drop_if_exists(sandbox.milvus_uri, "default", "hello_copy")
    try:
        _run(
            engine.start_restore(
                RestoreRequest("demo_all", collections=["hello_milvus"], renames={"hello_milvus": "hello_copy"})
            )
        )
        before = len(fetch_rows(sandbox.milvus_uri, "default", "hello_milvus"))
        with pytest.raises(AlreadyExists, match="hello_copy"):
            engine.start_restore(
                RestoreRequest("demo_all", collections=["hello_milvus"], renames={"hello_milvus": "hello_copy"})
            )
        # the refusal touched nothing: the copy and the source still hold their rows
        assert engine.ctx.milvus.row_count("default", "hello_copy") == 2980
        assert len(fetch_rows(sandbox.milvus_uri, "default", "hello_milvus")) == before
        _run(
            engine.start_restore(
                RestoreRequest(
                    "demo_all",
                    collections=["hello_milvus"],
                    renames={"hello_milvus": "hello_copy"},
                    drop_exist_collection=True,
                    restore_index=True,
                    load=True,
                )
            )
        )
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "hello_copy"), demo_collection("hello_milvus"))
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "hello_copy")


def test_restore_meta_only_and_db_rename(sandbox, engine, full_backup):
    drop_if_exists(sandbox.milvus_uri, "archive", "products")
    try:
        _run(
            engine.start_restore(
                RestoreRequest(
                    "demo_all", collections=["shop.products"], renames={"shop.*": "archive.*"}, meta_only=True
                )
            )
        )
        desc = engine.ctx.milvus.describe("archive", "products")
        assert [f.name for f in desc.schema.fields] == ["id", "name", "price", "vector"]
        assert engine.ctx.milvus.row_count("archive", "products") == 0
    finally:
        drop_if_exists(sandbox.milvus_uri, "archive", "products")


def test_bad_names_are_refused_before_anything_is_written(sandbox, engine, full_backup):
    s3 = _s3(sandbox)
    before = sorted(o.object_name for o in s3.list_objects("a-bucket", prefix="backup/", recursive=True))
    with pytest.raises(InvalidRequest, match="invalid backup name"):
        engine.start_backup(BackupRequest(name="bad-name!", collections=["hello_milvus"]))
    with pytest.raises(AlreadyExists, match="demo_all"):
        engine.start_backup(BackupRequest(name="demo_all", collections=["hello_milvus"]))
    with pytest.raises(NotFound, match="no_such_collection"):
        engine.start_backup(BackupRequest(name="fresh_name", collections=["no_such_collection"]))
    with pytest.raises(InvalidRequest):
        engine.start_restore(RestoreRequest("demo_all", renames={"hello_milvus": "bad-target"}))
    assert sorted(o.object_name for o in s3.list_objects("a-bucket", prefix="backup/", recursive=True)) == before


def _cancel_at(engine: Engine, phase: str):
    """A listener that cancels its job when the job enters `phase` (it runs in the job's thread)."""
    return lambda p: engine.job(p.job_id).cancel() if p.phase == phase else None


def test_cancelled_backup_leaves_nothing_that_looks_complete(sandbox, engine):
    job = engine.start_backup(
        BackupRequest(name="to_cancel", collections=["hello_milvus", "books"]), [_cancel_at(engine, "copy")]
    )
    assert job.wait(120) is JobState.CANCELLED
    assert any("removed" in line for line in job.lines)  # it had started writing, and cleaned up
    assert not engine.ctx.catalog.is_complete("to_cancel")
    assert not engine.ctx.catalog.exists("to_cancel")
    assert "to_cancel" not in [b.name for b in engine.list_backups()]


def test_cancelled_restore_drops_what_it_created_and_keeps_the_backup(sandbox, engine, full_backup):
    drop_if_exists(sandbox.milvus_uri, "default", "books_cancel")
    job = engine.start_restore(
        RestoreRequest("demo_all", collections=["books"], suffix="_cancel"), [_cancel_at(engine, "import")]
    )
    assert job.wait(120) is JobState.CANCELLED
    assert not engine.ctx.milvus.has_collection("default", "books_cancel")
    assert engine.get_backup("demo_all").id == full_backup.id
    assert engine.ctx.milvus.row_count("default", "books") == 650  # the source is untouched


def _count_binlog_reads(storage, monkeypatch) -> list[int]:
    """Count the binlog bytes read through `storage.open` (streamed copies and re-hashes both go there)."""
    read = [0]
    plain = storage.open

    class Counting:
        def __init__(self, stream):
            self.stream = stream

        def read(self, size=-1):
            chunk = self.stream.read(size)
            read[0] += len(chunk)
            return chunk

    @contextlib.contextmanager
    def counting_open(key):
        with plain(key) as stream:
            yield Counting(stream) if "/binlogs/" in key else stream

    monkeypatch.setattr(storage, "open", counting_open)
    return read


def test_local_folder_backup_and_restore(sandbox, base_config, tmp_path, monkeypatch):
    config = with_backup_storage(base_config, storage_type="local", root_path=str(tmp_path / "backups"))
    engine = Engine(config)
    drop_if_exists(sandbox.milvus_uri, "default", "books_local")
    try:
        info = _run(engine.start_backup(BackupRequest(name="on_disk", collections=["books"])))
        meta = tmp_path / "backups" / "on_disk" / "meta"
        assert sorted(p.name for p in meta.iterdir()) == sorted((*META_WRITE_ORDER, MANIFEST))
        on_disk = sum(
            p.stat().st_size for p in (tmp_path / "backups" / "on_disk" / "binlogs").rglob("*") if p.is_file()
        )
        assert on_disk == info.size > 0
        read = _count_binlog_reads(engine.ctx.backup_storage, monkeypatch)
        _run(engine.start_restore(RestoreRequest("on_disk", suffix="_local", restore_index=True, load=True)))
        assert read[0] == info.size  # each byte read once: staged and checked by the same read
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "books_local"), demo_collection("books"))
        # the binlogs staged in the Milvus bucket for the import are gone
        temp = restore_temp_root("files", "")
        assert not list(_s3(sandbox).list_objects("a-bucket", prefix=temp, recursive=True))
        engine.delete_backup("on_disk")
        assert not (tmp_path / "backups" / "on_disk").exists()
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "books_local")
        engine.close()


def test_other_bucket_backup_is_staged_for_restore(sandbox, base_config):
    s3 = _s3(sandbox)
    if not s3.bucket_exists("backups-elsewhere"):
        s3.make_bucket("backups-elsewhere")
    config = with_backup_storage(base_config, bucket_name="backups-elsewhere")
    engine = Engine(config)
    drop_if_exists(sandbox.milvus_uri, "default", "hello_milvus_other")
    try:
        _run(engine.start_backup(BackupRequest(name="elsewhere", collections=["hello_milvus"])))
        assert s3.stat_object("backups-elsewhere", f"backup/elsewhere/meta/{BACKUP_META}")
        _run(engine.start_restore(RestoreRequest("elsewhere", suffix="_other", restore_index=True, load=True)))
        assert_same_rows(
            fetch_rows(sandbox.milvus_uri, "default", "hello_milvus_other"), demo_collection("hello_milvus")
        )
        assert not list(s3.list_objects("a-bucket", prefix=restore_temp_root("files", ""), recursive=True))
    finally:
        engine.delete_backup("elsewhere")
        drop_if_exists(sandbox.milvus_uri, "default", "hello_milvus_other")
        engine.close()
