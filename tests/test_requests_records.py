"""Units without servers: db_collections maps, restore ids and record keys, restore records' state and progress."""

from __future__ import annotations

import threading

import pytest

from milvus_backup.core.errors import InvalidRequest, NotFound
from milvus_backup.core.jobs import Job, JobState
from milvus_backup.core.meta import BackupInfo, Collection
from milvus_backup.core.paths import BackupLayout, check_restore_id, probe_key, restore_record
from milvus_backup.core.records import RestoreRecords, restore_view
from milvus_backup.core.requests import collections_in_backup, parse_db_collections
from milvus_backup.core.restore import RestoredCollection
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
    assert collections_in_backup(info, {"default": []}) == ["default.a", "default.b"]
    assert collections_in_backup(info, {"shop": ["p"], "default": ["b"]}) == ["shop.p", "default.b"]
    with pytest.raises(NotFound, match="no collection of database nope"):
        collections_in_backup(info, {"nope": []})


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
            task.state = "restoring"
            reporter.phase("import", task.target, objects_total=2)
            reporter.add(objects_done=1)
            if outcome == "fail":
                task.state = "failed"
                raise InvalidRequest("import refused")
            task.state, task.rows = "success", 10
        return tasks

    job = Job("restore", "bk", work, job_id="rid")
    job.restore_tasks = tasks
    return job, gate


def test_a_restore_view_follows_the_job_and_its_record_is_written_at_each_step(tmp_path):
    tasks = [RestoredCollection("default.a", "default", "a_r"), RestoredCollection("default.b", "default", "b_r")]
    job, gate = _restore_job("ok", tasks)
    records = RestoreRecords(LocalStorage(tmp_path), "files")
    job.listeners.append(records.recorder(job, interval=0))
    start = restore_view(job)
    assert (start["state_code"], start["progress"], start["end_time"]) == (1, 0, 0)
    assert [t["state_code"] for t in start["collection_restore_tasks"]] == [0, 0]
    records.write(start)
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
    tasks = [RestoredCollection("default.a", "default", "a_r")]
    job, gate = _restore_job("fail", tasks)
    records = RestoreRecords(LocalStorage(tmp_path), "files")
    job.listeners.append(records.recorder(job))
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
