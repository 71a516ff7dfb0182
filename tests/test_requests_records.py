"""Units without servers: db_collections maps, restore ids and record keys, restore records' state and progress."""

from __future__ import annotations

import threading

import pytest

from milvus_backup.core.backup import BackupRequest, resolve_collections
from milvus_backup.core.errors import InvalidRequest, NotFound
from milvus_backup.core.job_records import JobRecorder, JobRecords
from milvus_backup.core.jobs import CollectionTask, Job, JobKind, JobState, Phase, TaskState
from milvus_backup.core.meta import BackupInfo, Collection
from milvus_backup.core.paths import BackupLayout, check_restore_id, probe_key, restore_record
from milvus_backup.core.records import RestoreRecords, restore_view
from milvus_backup.core.requests import parse_db_collections
from milvus_backup.core.restore import RestoreRequest, plan_targets, preview_targets
from milvus_backup.core.storage import LocalStorage


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, {}),
        ("", {}),
        ({}, {}),
        ({"db1": ["a", "b"], "db2": []}, {"db1": ["a", "b"], "db2": []}),
        ('{"db1": ["a"]}', {"db1": ["a"]}),
        ({"": ["a"]}, {"default": ["a"]}),
    ],
)
def test_db_collections_are_read_as_object_or_json_text(value, expected):
    assert parse_db_collections(value) == expected


@pytest.mark.parametrize("value", ["{oops", '["a"]', {"db": "a"}, {"db": [1]}, 5])
def test_malformed_db_collections_are_refused_with_an_example(value):
    with pytest.raises(InvalidRequest, match="db_collections"):
        parse_db_collections(value)


def test_db_collections_pick_from_a_backup():
    info = BackupInfo(
        name="b",
        collection_backups=[
            Collection(db_name="", collection_name="a"),
            Collection(db_name="default", collection_name="b"),
            Collection(db_name="shop", collection_name="p"),
        ],
    )

    def sources(db_collections, collections=()):
        request = RestoreRequest("b", collections=list(collections), db_collections=db_collections)
        return [t.source for t in preview_targets(info, request, existing=set())]

    assert sources({"default": []}) == ["default.a", "default.b"]
    assert sources({"shop": ["p"], "default": ["b"]}) == ["shop.p", "default.b"]
    assert sources({"default": ["shop.p"]}) == ["shop.p"]  # a qualified name keeps its own database
    assert sources({"shop": []}, collections=["b", "shop.p"]) == ["default.b", "shop.p"]  # named once
    with pytest.raises(NotFound, match="backup b holds no collection of database nope"):
        plan_targets(info, RestoreRequest("b", db_collections={"nope": []}))
    holds = r"collection shop\.x is not in backup b; it holds: default\.a, default\.b, shop\.p"
    with pytest.raises(NotFound, match=holds):
        plan_targets(info, RestoreRequest("b", db_collections={"shop": ["x"]}))


class _FakeMilvus:
    """What resolve_collections asks of Milvus: its databases and their collections."""

    def __init__(self, collections: dict[str, list[str]]):
        self.collections = collections

    def list_databases(self) -> list[str]:
        return list(self.collections)

    def list_collections(self, db: str) -> list[str]:
        return list(self.collections[db])


def test_db_collections_pick_from_milvus():
    milvus = _FakeMilvus({"default": ["a", "b"], "shop": ["p"], "empty": []})

    def pairs(**fields):
        return resolve_collections(milvus, BackupRequest(**fields))

    assert pairs(db_collections={"default": []}) == [("default", "a"), ("default", "b")]
    assert pairs(db_collections={"shop": ["p"], "default": ["b"]}) == [("shop", "p"), ("default", "b")]
    assert pairs(db_collections={"default": ["shop.p"]}) == [("shop", "p")]
    assert pairs(db_collections={"default": ["a"]}, collections=["a", "shop.p"]) == [("default", "a"), ("shop", "p")]
    assert pairs(collections=["p"], db="shop") == [("shop", "p")]
    assert pairs() == [("default", "a"), ("default", "b"), ("shop", "p")]
    with pytest.raises(NotFound, match=r"database nope not found in Milvus \(it has: default, shop, empty\)"):
        pairs(db_collections={"nope": []})
    with pytest.raises(NotFound, match=r"there are no collections to back up in database\(s\) empty"):
        pairs(db_collections={"empty": []})
    with pytest.raises(NotFound, match=r"collection shop\.x not found in Milvus"):
        pairs(db_collections={"shop": ["x"]})


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a" * 65, "a b", "x.json"])
def test_restore_ids_never_escape_their_folder(bad):
    with pytest.raises(InvalidRequest, match="invalid restore id"):
        check_restore_id(bad)


def test_records_and_probes_stay_out_of_the_backup_root():
    assert restore_record("files", "r-1") == "files/backup_restore_records/r-1.json"
    assert not restore_record("files", "r-1").startswith(BackupLayout("backup").backups_root())
    # a probe is a file directly under the root: not a folder, so never listed as a backup
    assert probe_key("backup", "x") == "backup/.milvus_backup_probe_x"
    assert probe_key("", "x") == ".milvus_backup_probe_x"


def _restore_job(outcome, tasks):
    gate = threading.Event()

    def work(reporter):
        gate.wait(10)
        for task in tasks:
            task.state = TaskState.RESTORING
            reporter.phase(Phase.IMPORT, task.target, objects_total=2)
            reporter.add(objects_done=1)
            if outcome == "fail":
                task.state = TaskState.FAILED
                raise InvalidRequest("import refused")
            task.state, task.rows = TaskState.SUCCESS, 10
        return tasks

    job = Job(JobKind.RESTORE, "bk", work, job_id="rid", tasks=tasks)
    return job, gate


def test_a_restore_view_follows_the_job_and_its_record_is_written_at_each_step(tmp_path):
    tasks = [CollectionTask("default.a", "default", "a_r"), CollectionTask("default.b", "default", "b_r")]
    job, gate = _restore_job("ok", tasks)
    records = RestoreRecords(LocalStorage(tmp_path), "files")
    recorder = JobRecorder(job, JobRecords(LocalStorage(tmp_path), "files"), restore_records=records, beat=0.01)
    start = restore_view(job)
    assert (start["state_code"], start["progress"], start["end_time"]) == (1, 0, 0)
    assert [t["state_code"] for t in start["collection_restore_tasks"]] == [0, 0]
    recorder.start()
    assert records.read("rid") == start
    job.start()
    gate.set()
    assert job.wait(10) is JobState.SUCCESS
    done = records.read("rid")
    assert done == restore_view(job)
    assert (done["state_code"], done["progress"], done["errorMessage"]) == (2, 100, "")
    assert [
        (t["target_collection_name"], t["state_code"], t["progress"], t["restored_rows"])
        for t in done["collection_restore_tasks"]
    ] == [("a_r", 2, 100, 10), ("b_r", 2, 100, 10)]
    assert (tmp_path / "files" / "backup_restore_records" / "rid.json").is_file()


def test_a_failed_restore_keeps_its_error_in_the_record(tmp_path):
    tasks = [CollectionTask("default.a", "default", "a_r")]
    job, gate = _restore_job("fail", tasks)
    records = RestoreRecords(LocalStorage(tmp_path), "files")
    JobRecorder(job, JobRecords(LocalStorage(tmp_path), "files"), restore_records=records).start()
    job.start()
    gate.set()
    assert job.wait(10) is JobState.FAILED
    record = records.read("rid")
    assert record["state_code"] == 3 and record["errorMessage"] == "import refused"
    assert record["progress"] < 100 and record["end_time"] >= record["start_time"]
    [task] = record["collection_restore_tasks"]
    assert task["state_code"] == 3 and task["errorMessage"] == "import refused"
    with pytest.raises(NotFound, match="restore nope not found"):
        records.read("nope")
