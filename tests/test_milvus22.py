"""Backups made on Milvus 2.2 restore into Milvus 2.3.5: the upgrade path the upstream supports.

The module starts a 2.2.16 sandbox (`--milvus-version 2.2.16`: the wheel from its private venv) beside the
session's 2.3.5 one and stops it by PID at the end. The `books` demo (partitions, deletes, a VarChar
primary key, JSON, a dynamic field, one segment per batch) is backed up from 2.2.16 straight into the
session sandbox's backup bucket, then restored into 2.3.5 and compared row by row, field by field.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import Config, load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.meta import BackupInfo, decode, encode, read_backup
from milvus_backup.core.paths import BACKUP_META, COLLECTION_META, FULL_META, PARTITION_META, SEGMENT_META
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import demo_collection, load_demo
from milvus_backup.sandbox.servers import Sandbox, SandboxState, free_port
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows, run_cli

pytestmark = pytest.mark.integration
BOOKS = demo_collection("books")
BACKUP = "from_milvus_22"


@pytest.fixture(scope="module")
def milvus22(sandbox, tmp_path_factory) -> SandboxState:
    """`milvus-backup sandbox start --milvus-version 2.2.16`, beside the session's 2.3.5 sandbox."""
    directory = tmp_path_factory.mktemp("milvus22")
    ports = ["--milvus-port", str(free_port()), "--s3-port", str(free_port())]
    try:
        started = run_cli(None, "sandbox", "start", "--dir", str(directory), "--milvus-version", "2.2.16", *ports)
        assert started.returncode == 0, started.stderr
        state = Sandbox(directory).load_state()
        assert state is not None and f"Milvus 2.2.16   {state.milvus_uri}" in started.stdout
        assert state.milvus_pid != sandbox.milvus_pid and state.milvus_port != sandbox.milvus_port
        load_demo(state.milvus_uri, (BOOKS,), load=False)
        yield state
    finally:
        Sandbox(directory).stop()


def test_an_unknown_milvus_version_is_one_line_and_starts_nothing(tmp_path):
    proc = run_cli(None, "sandbox", "start", "--dir", str(tmp_path / "bad"), "--milvus-version", "2.2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: --milvus-version must look like 2.2.16, not '2.2'"
    assert Sandbox(tmp_path / "bad").load_state() is None


def _deletes_written(storage_dir: Path, timeout: float = 60) -> None:
    """Milvus 2.2 writes the deletes of flushed segments at dataNode.segment.syncPeriod, not at Flush:
    wait until every partition that had deletes has its delta log on disk."""
    partitions_with_deletes = {part for part, numbers in BOOKS.batches if set(numbers) & set(BOOKS.deleted)}
    deadline = time.monotonic() + timeout
    while len([p for p in (storage_dir / "delta_log").glob("*/*") if any(p.rglob("*"))]) < len(partitions_with_deletes):
        assert time.monotonic() < deadline, "Milvus 2.2.16 did not write its delta logs"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def backup_22(milvus22, base_config):
    """A backup of `books` made on 2.2.16, written to the session sandbox's backup store."""
    config: Config = load_config(milvus22.config_path, env={})
    assert config.storage.storage_type == "local"  # the 2.2 wheel keeps its binlogs in a folder
    _deletes_written(Path(config.storage.root_path))
    config = config.model_copy(update={"backup_storage": base_config.backup_storage})
    engine = Engine(config)
    try:
        job = engine.start_backup(BackupRequest(name=BACKUP, collections=["books"], rbac=True))
        assert job.wait(300) is JobState.SUCCESS, job.error
        yield job.result
    finally:
        engine.close()
        cleanup = Engine(base_config)
        try:
            cleanup.delete_backup(BACKUP)
        finally:
            cleanup.close()


def _meta_files(config: Config) -> dict[str, bytes]:
    engine = Engine(config)
    try:
        storage, layout = engine.ctx.backup_storage, engine.ctx.backup_layout
        names = (BACKUP_META, COLLECTION_META, PARTITION_META, SEGMENT_META, FULL_META)
        return {name: storage.read(layout.meta(BACKUP, name)) for name in names}
    finally:
        engine.close()


def test_the_22_backup_meta_reads_as_the_upstreams(base_config, backup_22):
    files = _meta_files(base_config)
    top = json.loads(files[BACKUP_META])
    assert set(top) <= {"id", "state_code", "name", "size", "milvus_version", "format"}
    assert top["milvus_version"].startswith("v2.2.16") and top["state_code"] == 2
    full = read_backup(files)
    # the four level files alone rebuild the same tree a reader without full_meta.json gets
    levels = read_backup({k: v for k, v in files.items() if k != FULL_META})
    assert [encode(c) for c in levels.collection_backups] == [encode(c) for c in full.collection_backups]
    (books,) = full.collection_backups
    assert books.db_name == "default" and books.collection_name == "books" and books.schema.enable_dynamic_field
    assert [(f.field_id, f.name) for f in books.schema.fields] == [
        (100, "isbn"),
        (101, "title"),
        (102, "year"),
        (103, "in_print"),
        (104, "info"),
        (105, "embedding"),
    ]  # 2.2 does not describe its $meta field (106); its binlogs are in the backup all the same
    assert {p.partition_name: len(p.segment_backups) for p in books.partition_backups} == {
        "_default": 1,
        "fiction": 1,
        "science": 1,
    }
    assert books.num_rows == sum(len(numbers) for _, numbers in BOOKS.batches)
    for seg in books.segments():
        assert seg.group_id == seg.segment_id
        assert {fb.field_id for fb in seg.binlogs} == {0, 1, 100, 101, 102, 103, 104, 105, 106}
        assert seg.deltalogs and seg.deltalogs[0].binlogs  # each partition had one delete
    assert decode(BackupInfo, json.loads(files[FULL_META])) == full
    # RBAC reads from 2.2 too: its root user (no password), no role but the built-in ones
    assert full.rbac_meta is not None and [u.user for u in full.rbac_meta.users] == ["root"]
    assert full.rbac_meta.roles == []
    assert b"password" not in files[FULL_META].lower()


def test_a_22_backup_restores_into_235_with_every_row_and_field(sandbox, base_config, backup_22):
    drop_if_exists(sandbox.milvus_uri, "default", "books_from22")
    engine = Engine(base_config)
    try:
        request = RestoreRequest(BACKUP, suffix="_from22", restore_index=True, load=True)
        job = engine.start_restore(request)
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "books_from22"), BOOKS)
        where = BOOKS.partition_of()
        for part in ("_default", "fiction", "science"):
            got = {r["isbn"] for r in fetch_rows(sandbox.milvus_uri, "default", "books_from22", part)}
            assert got == {k for k, p in where.items() if p == part}
    finally:
        engine.close()
        drop_if_exists(sandbox.milvus_uri, "default", "books_from22")
