"""The restore's dealings with Milvus's import queue, on a fake Milvus (unit tests of core.restore).

The real-Milvus side (a cancel mid-import, then the next restore) is in test_restore_safety.py; here the
states Milvus 2.3 cannot be made to hold on demand: an import that stays queued, one that keeps the
DataNode after a cancel.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, cast

import pytest

from milvus_backup.core.context import Context
from milvus_backup.core.integrity import DamagedBackup, Entry, ExpectedObjects
from milvus_backup.core.jobs import CollectionTask, Job, JobKind, Reporter
from milvus_backup.core.milvus import ImportProgress
from milvus_backup.core.restore import RestoreRequest, _Entries, _ImportUnit, _Restore, _Step
from milvus_backup.core.storage.local import LocalStorage

QUEUED = ImportProgress("pending", 0, "", holds_datanode=True)
RUNNING = ImportProgress("running", 0, "", holds_datanode=True)
PERSISTED = ImportProgress("running", 0, "", holds_datanode=False)  # the DataNode is free again


class FakeMilvus:
    def __init__(self, answer):
        self.answer = answer  # task id -> the next ImportProgress
        self.dropped: list[str] = []

    def start_import(self, db: str, collection: str, partition: str, files: list[str]) -> list[int]:
        assert partition == "p1"  # every import names its partition
        return [7]

    def import_progress(self, task_id: int) -> ImportProgress:
        return self.answer(task_id)

    def busy_imports(self) -> int:
        return 3  # two of others, and ours

    def row_count(self, db: str, name: str) -> int:
        return 5

    def drop_collection(self, db: str, name: str) -> None:
        self.dropped.append(f"{db}.{name}")


def _restore(milvus: FakeMilvus) -> tuple[_Restore, Job[Any]]:
    backup = SimpleNamespace(import_job=768, import_queued_notice=1, keep_temp_files=False, restore_collection=2)
    ctx = SimpleNamespace(
        milvus=milvus,
        config=SimpleNamespace(backup=backup, storage=SimpleNamespace(root_path="files")),
        backup_storage=None,
        milvus_storage=None,
        milvus_layout=SimpleNamespace(root="files"),
    )
    job: Job[Any] = Job(JobKind.RESTORE, "b", lambda r: None)
    return _Restore(cast(Context, ctx), RestoreRequest("b"), Reporter(job), "rid", []), job


def test_an_import_milvus_has_not_started_says_it_is_queued_instead_of_sitting_at_zero():
    restore: _Restore
    job: Job[Any]

    def answer(task_id: int) -> ImportProgress:
        told = any("import queued: Milvus DataNode busy" in line for line in job.lines)
        return ImportProgress("completed", 5, "") if told else QUEUED

    restore, job = _restore(FakeMilvus(answer))
    unit = _ImportUnit("p1", "insert/", "", 5, objects=0, size=0)
    task = CollectionTask("default.c", "default", "c")
    restore._import("default", "c", [unit], "default.c", task)
    assert task.rows == 5
    queued = [line for line in job.lines if "import queued" in line]
    assert queued == [
        "default.c: import queued: Milvus DataNode busy with 2 other import(s); Milvus starts this one when they end"
    ]


def test_a_cancelled_restore_waits_for_its_imports_to_leave_the_datanode_before_dropping():
    states = iter([RUNNING, RUNNING, PERSISTED])
    milvus = FakeMilvus(lambda task_id: next(states))
    restore, job = _restore(milvus)
    restore.imports = {7: "default.c"}
    restore.created = [("default", "c")]
    restore._wait_for_imports()
    assert next(states, None) is None  # asked until the task was done with the DataNode
    assert milvus.dropped == []  # nothing dropped while waiting
    restore._undo()
    assert milvus.dropped == ["default.c"]
    waiting = job.lines.index("waiting for 1 Milvus import task(s) to end; Milvus 2.3 cannot stop them")
    assert waiting < job.lines.index("dropped default.c, which this restore had created")


class CountingMilvus(FakeMilvus):
    """Each import completes on its third look; records how many were in flight at once."""

    def __init__(self) -> None:
        super().__init__(lambda task_id: QUEUED)
        self.lock = threading.Lock()
        self.looks: dict[int, int] = {}
        self.most_in_flight = 0

    def start_import(self, db: str, collection: str, partition: str, files: list[str]) -> list[int]:
        with self.lock:
            task_id = len(self.looks) + 1
            self.looks[task_id] = 0
            in_flight = sum(1 for looks in self.looks.values() if looks < 3)
            self.most_in_flight = max(self.most_in_flight, in_flight)
        return [task_id]

    def import_progress(self, task_id: int) -> ImportProgress:
        with self.lock:
            self.looks[task_id] += 1
            done = self.looks[task_id] >= 3
        return ImportProgress("completed", 5, "") if done else RUNNING

    def row_count(self, db: str, name: str) -> int:
        return 10


def test_collections_restored_at_once_share_the_import_job_limit():
    milvus = CountingMilvus()
    restore, _ = _restore(milvus)
    restore.import_slots = threading.Semaphore(1)  # importJob=1
    tasks = [CollectionTask(f"default.c{i}", "default", f"c{i}") for i in range(2)]
    units = [_ImportUnit("p1", f"insert/{g}/", "", 5, objects=0, size=0) for g in range(2)]
    workers = [
        threading.Thread(target=restore._import, args=("default", t.target_name, units, t.target, t)) for t in tasks
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [t.rows for t in tasks] == [10, 10]  # both collections imported both their groups
    assert len(milvus.looks) == 4 and milvus.most_in_flight == 1


def test_target_databases_are_created_once_before_collections_restore_at_once():
    """Two collections bound for one new database, restored at once, raced to create it ("database already
    exist"): the databases are made first, one after the other."""
    calls: list[tuple[str, str]] = []

    class DatabaseMilvus(FakeMilvus):
        def create_database(self, db: str) -> None:
            calls.append(("database", db))

    restore, _ = _restore(DatabaseMilvus(lambda task_id: QUEUED))
    targets = [SimpleNamespace(db=db) for db in ("plan", "plan", "other")]
    restore.tasks = [CollectionTask(f"{t.db}.c{i}", t.db, f"c{i}") for i, t in enumerate(targets)]
    restore._restore_one = lambda info, target, task: calls.append(("collection", target.db))  # type: ignore[method-assign]
    restore._restore_all(cast(Any, None), cast(Any, targets))
    assert calls[:2] == [("database", "plan"), ("database", "other")]
    assert sorted(calls[2:]) == [("collection", "other"), ("collection", "plan"), ("collection", "plan")]


def test_a_binlog_that_came_in_after_its_groups_check_is_refused_when_staged(tmp_path):
    """A group's objects are listed again when staged (a restore no longer holds a collection's listing):
    a binlog that is there now but was not when the group was checked is refused, never imported."""
    restore, _job = _restore(FakeMilvus(lambda task_id: QUEUED))
    storage = LocalStorage(tmp_path)
    group = "backup/b/binlogs/insert_log/1/2/3/"
    storage.write(group + "3/100/11", b"checked")
    storage.write(group + "3/100/12", b"late")
    expected = ExpectedObjects()
    expected.setdefault("binlogs/insert_log/1/2/3/3/100/11", Entry(7, etag="0" * 32))
    restore.ctx.backup_storage = storage
    restore.entries = _Entries("backup/b/", expected)
    try:
        with pytest.raises(DamagedBackup, match=f"unexpected {group}3/100/12\\)"):
            restore._stage(_ImportUnit("p1", group, "", 1, objects=1, size=7), _Step("default.c"))
    finally:
        expected.close()
