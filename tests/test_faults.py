"""Faults between the engine and the store (tests/faults.py wraps the S3 client): transient errors and
timeouts are retried and give the same backup and the same rows; a store that fails for good or keeps
other bytes than it was given fails the backup cleanly, with nothing left that looks complete."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from minio import Minio

import milvus_backup.core.storage.retry as storage_retry
from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.integrity import decode_manifest
from milvus_backup.core.jobs import JobState
from milvus_backup.core.paths import MANIFEST
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows
from tests.faults import Rule, access_denied, connection_reset, inject, read_timeout, slow_down

pytestmark = pytest.mark.integration

BUCKET = "a-bucket"
COLLECTIONS = ["hello_milvus", "books"]


def _s3(sandbox) -> Minio:
    return Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)


def _keys(sandbox, prefix: str) -> list[str]:
    return sorted(o.object_name for o in _s3(sandbox).list_objects(BUCKET, prefix=prefix, recursive=True))


def _transient_rules() -> list[Rule]:
    # Each object meets each fault once; with RETRY_ATTEMPTS=4 every call gets through in the end.
    return [
        Rule("copy_object", slow_down),
        Rule("put_object", slow_down),
        Rule("get_object", read_timeout),
        Rule("get_object", connection_reset, mid_stream=True),
        Rule("stat_object", read_timeout),
        Rule("list_objects", connection_reset),
    ]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(storage_retry, "RETRY_WAIT_INITIAL", 0.01)
    monkeypatch.setattr(storage_retry, "RETRY_WAIT_MAX", 0.05)


@pytest.fixture
def faulty_engine(base_config):
    engine = Engine(base_config)
    assert engine.ctx.backup_storage is engine.ctx.milvus_storage  # one client carries both sides' faults
    real = engine.ctx.milvus_storage._client
    yield engine, real
    engine.ctx.milvus_storage._client = real
    engine.close()


def _source_hashes(sandbox, info) -> dict[str, str]:
    """MD5 of each binlog's source object in the Milvus bucket, by the log ID the backup names."""
    s3 = _s3(sandbox)
    found = {}
    for coll in info.collection_backups:
        for seg in coll.segments():
            for fb in [*seg.binlogs, *seg.deltalogs]:
                for b in fb.binlogs:
                    found[b.log_path] = hashlib.md5(s3.get_object(BUCKET, b.log_path).read()).hexdigest()
    return found


def test_transient_errors_and_timeouts_are_retried_and_the_result_is_identical(sandbox, faulty_engine):
    engine, real = faulty_engine
    storage = engine.ctx.milvus_storage
    name = f"faults_{uuid.uuid4().hex[:8]}"
    targets = [c + "_faults" for c in COLLECTIONS]
    drop_if_exists(sandbox.milvus_uri, "default", *targets)
    try:
        faults = inject(storage, _transient_rules())
        job = engine.start_backup(BackupRequest(name=name, collections=COLLECTIONS))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert {m for m, n in faults.injected.items() if n} == {
            "copy_object",
            "put_object",
            "list_objects",
        }, faults.injected  # no get_object: the copies are confirmed by a listing, never read back
        storage._client = real

        # identical: every binlog in the backup has its source's MD5 as its ETag
        info = job.result
        manifest = decode_manifest(_s3(sandbox).get_object(BUCKET, f"backup/{name}/meta/{MANIFEST}").read())
        by_log_id = {rel.rsplit("/", 1)[-1]: e.etag for rel, e in manifest.items() if rel.startswith("binlogs/")}
        sources = _source_hashes(sandbox, info)
        assert len(by_log_id) == len(sources) > 0
        assert {path.rsplit("/", 1)[-1]: digest for path, digest in sources.items()} == by_log_id

        faults = inject(storage, _transient_rules())
        report = engine.verify_backup(name, full=True)
        assert report.ok, report.to_dict()
        assert faults.injected["get_object"] > 0 and faults.injected["stat_object"] > 0

        faults = inject(storage, _transient_rules())
        job = engine.start_restore(RestoreRequest(name, suffix="_faults", restore_index=True, load=True))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert faults.injected["get_object"] > 0 and faults.injected["list_objects"] > 0
        storage._client = real
        for coll in COLLECTIONS:
            assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", coll + "_faults"), demo_collection(coll))
    finally:
        storage._client = real
        drop_if_exists(sandbox.milvus_uri, "default", *targets)
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)


def _check_failed_cleanly(sandbox, engine, name: str, job, rows_before: int) -> None:
    assert job.wait(300) is JobState.FAILED
    assert "\n" not in job.error and "Traceback" not in job.error
    assert _keys(sandbox, f"backup/{name}/") == []  # removed, nothing that could pass for a backup
    assert name not in [b.name for b in engine.list_backups()]
    assert engine.ctx.milvus.row_count("default", "hello_milvus") == rows_before  # the source is untouched


def test_a_store_that_keeps_failing_fails_the_backup_cleanly(sandbox, faulty_engine):
    engine, _ = faulty_engine
    name = f"faults_{uuid.uuid4().hex[:8]}"
    faults = inject(engine.ctx.milvus_storage, [Rule("put_object", access_denied, times=0, match=MANIFEST)])
    rows_before = engine.ctx.milvus.row_count("default", "hello_milvus")
    job = engine.start_backup(BackupRequest(name=name, collections=["hello_milvus"]))
    job.wait(300)
    assert faults.injected["put_object"] == 1  # not retried: access denied will not fix itself
    assert "permission" in job.error.lower() or "denied" in job.error.lower(), job.error
    _check_failed_cleanly(sandbox, engine, name, job, rows_before)


def _truncate(data: bytes) -> bytes:
    return data[:-1]


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x80]) + data[1:]


@pytest.mark.parametrize("keep", [_truncate, _flip], ids=["truncates", "flips-a-byte"])
def test_a_store_that_keeps_other_bytes_than_it_copied_fails_the_backup(sandbox, faulty_engine, keep):
    engine, _ = faulty_engine
    name = f"faults_{uuid.uuid4().hex[:8]}"
    faults = inject(engine.ctx.milvus_storage, [Rule("copy_object", keep=keep, match="/insert_log/")])
    rows_before = engine.ctx.milvus.row_count("default", "hello_milvus")
    job = engine.start_backup(BackupRequest(name=name, collections=["hello_milvus"]))
    job.wait(300)
    assert faults.injected["copy_object"] >= 1
    assert "did not keep what was written" in job.error, job.error
    _check_failed_cleanly(sandbox, engine, name, job, rows_before)
