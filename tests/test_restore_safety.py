"""Restores that never harm Milvus: a cancel mid-import leaves Milvus ready for the next restore, and a
drop-existing restore cannot lose the collection it replaces.

Each cancel test holds the restore at the `restore:import` pause point (its first segment group is
imported, the others are queued or running in Milvus), cancels it there, and checks what is left.
"""

from __future__ import annotations

import uuid

import pytest
from pymilvus import MilvusClient

from milvus_backup.core.engine import Engine
from milvus_backup.core.errors import AlreadyExists
from milvus_backup.core.integrity import DamagedBackup
from milvus_backup.core.jobs import Job, JobKind, JobState
from milvus_backup.core.paths import swap_intents_root
from milvus_backup.core.pause import PAUSE_AT, PAUSE_FILE, RESUME_FILE
from milvus_backup.core.restore import (
    CollectionMapping,
    DatabaseMapping,
    RestorePlan,
    RestoreRequest,
    prepare_restore,
    run_restore,
)
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows, made_backup

pytestmark = pytest.mark.integration

DB = "default"
BOOKS = demo_collection("books")


@pytest.fixture(scope="module")
def books_backup(sandbox, base_config):
    with made_backup(base_config, "safety", ["books"]) as name:
        yield name


def _hold_at_import_then_cancel(engine: Engine, request: RestoreRequest, monkeypatch, tmp_path) -> Job:
    marker = tmp_path / f"paused-{uuid.uuid4().hex}"
    monkeypatch.setenv(PAUSE_AT, "restore:import")
    monkeypatch.setenv(PAUSE_FILE, str(marker))
    seen: list[str] = []
    job = engine.start_restore(request, listeners=[lambda p: seen.append(p.message)])
    while not marker.is_file():  # the job reaches the point or ends; either way the marker decides
        assert not job.state.finished, f"the restore ended before its first import: {job.error}"
        job.wait(0.05)
    monkeypatch.delenv(PAUSE_AT)
    job.cancel()
    assert job.wait(1200) is JobState.CANCELLED, job.error
    return job


def _restore_leftovers(uri: str, target: str) -> list[str]:
    client = MilvusClient(uri=uri)
    try:
        return [n for n in client.list_collections() if n.startswith(target) and n != target]
    finally:
        client.close()


def _imports_holding_datanode(engine: Engine) -> list[int]:
    return [t.task_id for t in engine.ctx.milvus.import_tasks() if t.progress.holds_datanode]


def test_a_cancel_mid_import_waits_for_its_imports_and_the_next_restore_runs(
    sandbox, engine, books_backup, monkeypatch, tmp_path
):
    target = "books_cancelled"
    drop_if_exists(sandbox.milvus_uri, DB, target)
    try:
        job = _hold_at_import_then_cancel(
            engine, RestoreRequest(books_backup, suffix="_cancelled", verify="quick"), monkeypatch, tmp_path
        )
        assert not engine.ctx.milvus.has_collection(DB, target)
        assert _imports_holding_datanode(engine) == []  # nothing of ours is left in Milvus's import slot
        cleanup = [line for line in job.lines if "dropped" in line]
        assert cleanup and job.lines.index(cleanup[0]) > max(
            (i for i, line in enumerate(job.lines) if "waiting for" in line), default=-1
        ), job.lines  # the drop comes after the wait

        again = engine.start_restore(
            RestoreRequest(books_backup, suffix="_cancelled", restore_index=True, load=True, verify="quick")
        )
        assert again.wait(600) is JobState.SUCCESS, again.error
        assert_same_rows(fetch_rows(sandbox.milvus_uri, DB, target), BOOKS)
    finally:
        drop_if_exists(sandbox.milvus_uri, DB, target)


def _existing_target(sandbox, engine: Engine, backup: str, target: str) -> tuple[int, list[dict]]:
    """`target` restored from the backup, indexed, loaded, with an alias and ten rows fewer: the "old" one."""
    drop_if_exists(sandbox.milvus_uri, DB, target)
    job = engine.start_restore(
        RestoreRequest(backup, renames={"books": target}, restore_index=True, load=True, verify="quick")
    )
    assert job.wait(600) is JobState.SUCCESS, job.error
    client = MilvusClient(uri=sandbox.milvus_uri)
    try:
        client.delete(target, ids=[BOOKS.make_row(i)["isbn"] for i in range(100, 110)])
        client.flush(target)
        client.create_alias(target, f"{target}_alias")
    finally:
        client.close()
    return engine.ctx.milvus.collection_id(DB, target), fetch_rows(sandbox.milvus_uri, DB, target)


def _drop_with_alias(engine: Engine, uri: str, target: str) -> None:
    client = MilvusClient(uri=uri)
    try:
        for name in (target, *_restore_leftovers(uri, target)):
            for alias in engine.ctx.milvus.aliases(DB, name) if client.has_collection(name) else []:
                client.drop_alias(alias)
    finally:
        client.close()
    drop_if_exists(uri, DB, target, *_restore_leftovers(uri, target))


def test_a_cancelled_drop_existing_restore_leaves_the_old_collection_as_it_was(
    sandbox, engine, books_backup, monkeypatch, tmp_path
):
    target = "books_kept"
    try:
        old_id, old_rows = _existing_target(sandbox, engine, books_backup, target)
        assert len(old_rows) == len(BOOKS.expected_rows()) - 10
        _hold_at_import_then_cancel(
            engine,
            RestoreRequest(books_backup, renames={"books": target}, drop_exist_collection=True, verify="quick"),
            monkeypatch,
            tmp_path,
        )
        assert engine.ctx.milvus.collection_id(DB, target) == old_id
        assert sorted(fetch_rows(sandbox.milvus_uri, DB, target), key=lambda r: r["isbn"]) == sorted(
            old_rows, key=lambda r: r["isbn"]
        )
        assert engine.ctx.milvus.aliases(DB, target) == [f"{target}_alias"]
        assert _restore_leftovers(sandbox.milvus_uri, target) == []  # the temporary collection is gone
    finally:
        _drop_with_alias(engine, sandbox.milvus_uri, target)


def test_drop_existing_swaps_in_the_restored_collection_and_moves_the_aliases(sandbox, engine, books_backup):
    target = "books_swapped"
    try:
        old_id, _ = _existing_target(sandbox, engine, books_backup, target)
        job = engine.start_restore(
            RestoreRequest(
                books_backup,
                renames={"books": target},
                drop_exist_collection=True,
                restore_index=True,
                load=True,
                verify="quick",
            )
        )
        assert job.wait(600) is JobState.SUCCESS, job.error
        assert engine.ctx.milvus.collection_id(DB, target) != old_id
        assert_same_rows(fetch_rows(sandbox.milvus_uri, DB, target), BOOKS)
        assert engine.ctx.milvus.aliases(DB, target) == [f"{target}_alias"]
        assert _restore_leftovers(sandbox.milvus_uri, target) == []
        assert list(engine.ctx.milvus_storage.list(swap_intents_root(engine.ctx.milvus_layout.root) + "/")) == []
    finally:
        _drop_with_alias(engine, sandbox.milvus_uri, target)


def test_a_target_created_after_the_plan_is_refused_never_replaced(sandbox, engine, books_backup):
    target = "books_late"
    drop_if_exists(sandbox.milvus_uri, DB, target)
    request = RestoreRequest(books_backup, renames={"books": target}, drop_exist_collection=True, verify="quick")
    prepared = prepare_restore(engine.ctx, request)  # the plan: the target is free
    client = MilvusClient(uri=sandbox.milvus_uri)
    try:
        client.create_collection(target, dimension=4)  # somebody else's, made while the restore waited
        late_id = engine.ctx.milvus.collection_id(DB, target)
        job = Job(JobKind.RESTORE, books_backup, lambda r: run_restore(engine.ctx, request, r, prepared=prepared))
        assert job.start().wait(300) is JobState.FAILED
        assert "was created after this restore was planned" in job.error
        assert engine.ctx.milvus.collection_id(DB, target) == late_id

        # a face that showed the plan passes what existed then: a target that exists now but did not is refused
        with pytest.raises(AlreadyExists, match="appeared after the restore was confirmed"):
            engine.start_restore(
                RestoreRequest(
                    books_backup,
                    renames={"books": target},
                    drop_exist_collection=True,
                    verify="quick",
                    confirmed_existing=[],
                )
            )
        assert engine.ctx.milvus.collection_id(DB, target) == late_id
    finally:
        client.close()
        drop_if_exists(sandbox.milvus_uri, DB, target)


def _parallel_engine(base_config, restore_collection: int, import_job: int) -> Engine:
    backup = base_config.backup.model_copy(update={"restore_collection": restore_collection, "import_job": import_job})
    return Engine(base_config.model_copy(update={"backup": backup}))


def _books_twice(backup: str, *targets: str) -> RestoreRequest:
    """books restored under several names at once (a restorePlan may send a database to several targets)."""
    plan = RestorePlan(
        mapping=tuple(DatabaseMapping(DB, DB, (CollectionMapping("books", t),)) for t in targets),
    )
    return RestoreRequest(backup, plan=plan, verify="quick")


def test_a_cancel_while_two_collections_import_waits_for_all_their_imports_and_drops_both(
    sandbox, base_config, books_backup, monkeypatch, tmp_path
):
    targets = ("books_par_a", "books_par_b")
    drop_if_exists(sandbox.milvus_uri, DB, *targets)
    engine = _parallel_engine(base_config, restore_collection=2, import_job=2)
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_AT, "restore:import")
    monkeypatch.setenv(PAUSE_FILE, str(marker))
    try:
        job = engine.start_restore(_books_twice(books_backup, *targets))
        # each collection holds after its first group is imported; its other groups are in Milvus
        while not marker.is_file() or len(marker.read_text().split()) < 2:
            assert not job.state.finished, f"the restore ended before both collections imported: {job.error}"
            job.wait(0.05)
        assert all(engine.ctx.milvus.has_collection(DB, t) for t in targets)
        monkeypatch.delenv(PAUSE_AT)
        job.cancel()
        assert job.wait(1200) is JobState.CANCELLED, job.error
        assert [t for t in targets if engine.ctx.milvus.has_collection(DB, t)] == []
        assert _imports_holding_datanode(engine) == []
        assert [t.state.value for t in job.tasks] == ["failed", "failed"]
        assert "removing 2 collection(s) this restore made" in job.lines
        assert engine.ctx.milvus.row_count(DB, "books") == 650  # nothing else was touched
    finally:
        drop_if_exists(sandbox.milvus_uri, DB, *targets)
        engine.close()


def test_a_group_damaged_after_an_earlier_one_was_imported_is_refused_before_its_import(
    sandbox, engine, books_backup, monkeypatch, tmp_path
):
    """The check runs group by group, just before each import: damage that appears while the first
    group imports is caught before its own group is submitted, and the clean-up drops what was imported."""
    target = "books_damaged_later"
    drop_if_exists(sandbox.milvus_uri, DB, target)
    storage = engine.ctx.backup_storage
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    monkeypatch.setenv(PAUSE_AT, "restore:check")
    monkeypatch.setenv(PAUSE_FILE, str(marker))
    monkeypatch.setenv(RESUME_FILE, str(resume))
    job = engine.start_restore(RestoreRequest(books_backup, renames={"books": target}, verify="quick"))
    damaged = ""
    original = b""
    try:
        while not marker.is_file():  # the first group is submitted, the second is about to be checked
            assert not job.state.finished, f"the restore ended before its second group: {job.error}"
            job.wait(0.05)
        collection_id = engine.ctx.milvus.collection_id(DB, target)
        second = engine.get_backup(books_backup).collection_backups[0].partition_backups[1]  # imported in order
        listed = storage.list(engine.ctx.backup_layout.backup(books_backup))
        binlogs = [o.key for o in listed if "/insert_log/" in o.key]
        damaged = next(k for k in binlogs if k.split("/insert_log/")[1].split("/")[1] == str(second.partition_id))
        original = storage.read(damaged)
        storage.write(damaged, original[: len(original) // 2])
        resume.touch()
        assert job.wait(1200) is JobState.FAILED
        assert isinstance(job.exception, DamagedBackup), job.error
        assert f"truncated {damaged}" in job.error and "stopped before importing it" in job.error
        ours = [t for t in engine.ctx.milvus.import_tasks() if t.collection_id == collection_id]
        assert len(ours) == 1  # the first group only: the damaged one was never submitted
        assert not engine.ctx.milvus.has_collection(DB, target)  # what was imported is dropped
        assert "removing 1 collection(s) this restore made" in job.lines
    finally:
        if original:
            storage.write(damaged, original)
        drop_if_exists(sandbox.milvus_uri, DB, target)
