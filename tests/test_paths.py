"""core.paths parses what it builds: the parsers give back the parts the builders took, and refuse, with a
clear one-line MalformedKey, any key of another shape. No sandbox: these are pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_backup.core.paths import (
    BackupLayout,
    DeltaLogKey,
    InsertLogKey,
    MalformedKey,
    MilvusLayout,
    is_binlog,
    log_id_of,
    relative_to,
    restore_temp_root,
)

ids = st.integers(min_value=0, max_value=2**63 - 1)
partition_ids = st.integers(min_value=-1, max_value=2**63 - 1)
roots = st.sampled_from(["", "files", "/files/", "a/b/c", "insert_log", "delta_log/x"])


@given(roots, ids, partition_ids, ids, ids, ids)
def test_insert_log_round_trip(root, collection, partition, segment, field, log):
    layout = MilvusLayout(root)
    key = layout.insert_log(collection, partition, segment, field, log)
    assert key.startswith(layout.insert_segment(collection, partition, segment))
    assert layout.parse_insert_log(key) == InsertLogKey(collection, partition, segment, field, log)


@given(roots, ids, partition_ids, ids, ids)
def test_delta_log_round_trip(root, collection, partition, segment, log):
    layout = MilvusLayout(root)
    key = layout.delta_log(collection, partition, segment, log)
    assert key.startswith(layout.delta_segment(collection, partition, segment))
    assert layout.parse_delta_log(key) == DeltaLogKey(collection, partition, segment, log)


def test_milvus_keys_as_milvus_writes_them():
    layout = MilvusLayout("files")
    assert layout.insert_log(449, 450, 451, 100, 452) == "files/insert_log/449/450/451/100/452"
    assert layout.parse_insert_log("files/insert_log/449/450/451/100/452").field_id == 100
    assert layout.parse_delta_log("files/delta_log/449/-1/451/452") == DeltaLogKey(449, -1, 451, 452)


@pytest.mark.parametrize(
    "key",
    [
        "files/insert_log/1/2/3/4",  # a part short
        "files/insert_log/1/2/3/4/5/6",  # a part too many
        "files/insert_log/1/2/3/4/5/",  # a folder
        "files/insert_log/1/2/3/x/5",  # not an ID
        "files/insert_log/1/2/3/4/²",  # a digit, but not an ASCII one
        "files/insert_log/1/2/3/-4/5",  # only a partition may be -1
        "files/insert_log/1/2/3/4/ 5",
        "files/insert_log/1/2/3/4/123456789012345678901",  # longer than any int64
        "files/delta_log/1/2/3/4/5",  # a delta log where an insert log should be
        "other/insert_log/1/2/3/4/5",  # another root
        "files/insert_log//2/3/4/5",
        "",
    ],
)
def test_malformed_insert_logs_are_refused(key):
    with pytest.raises(MalformedKey) as info:
        MilvusLayout("files").parse_insert_log(key)
    message = str(info.value)
    assert "\n" not in message and repr(key[:200]) in message


@pytest.mark.parametrize(
    "key", ["files/delta_log/1/2/3", "files/delta_log/1/2/3/4/5", "files/insert_log/1/2/3/4", "files/delta_log/1/2/3/x"]
)
def test_malformed_delta_logs_are_refused(key):
    with pytest.raises(MalformedKey, match=r"delta log|log ID"):
        MilvusLayout("files").parse_delta_log(key)


def test_log_id_of_takes_the_last_part_whatever_the_layout():
    assert log_id_of("files/insert_log/1/2/3/4/5") == 5
    assert log_id_of("some/other/root/77") == 77
    assert log_id_of("77") == 77
    for bad in ("files/insert_log/1/2/3/4/", "a/b/x1", "a/²", ""):
        with pytest.raises(MalformedKey, match="does not end in a log ID"):
            log_id_of(bad)


def test_relative_to_strips_the_prefix_or_refuses():
    assert relative_to("backup/b/", "backup/b/meta/x.json") == "meta/x.json"
    assert relative_to("", "a/b") == "a/b"
    assert relative_to("backup/b/", "backup/b/a//odd\x01") == "a//odd\x01"  # listed keys are taken as they are
    with pytest.raises(MalformedKey, match="is not under"):
        relative_to("backup/b/", "backup/b2/meta/x.json")


@given(st.sampled_from(["", "backup", "x/y"]), ids, partition_ids, ids, ids, ids, ids)
def test_backup_keys_round_trip_via_relative_key_and_rebase(root, collection, partition, group, segment, field, log):
    layout, name = BackupLayout(root), "b_1"
    key = layout.insert_binlog(name, collection, partition, group, segment, field, log)
    relative = layout.relative_key(name, key)
    assert is_binlog(relative) and layout.object_key(name, relative) == key
    temp = BackupLayout(restore_temp_root("files", "r-1"))
    staged = layout.rebase(key, temp)
    assert staged == temp.insert_binlog(name, collection, partition, group, segment, field, log)
    assert temp.rebase(staged, layout) == key
    folder = layout.insert_group(name, collection, partition, group)
    assert layout.rebase(folder, temp) == temp.insert_group(name, collection, partition, group)


def test_rebase_refuses_a_key_of_another_root():
    with pytest.raises(MalformedKey):
        BackupLayout("backup").rebase("elsewhere/b/binlogs/x", BackupLayout("tmp"))


def test_is_binlog():
    assert is_binlog("binlogs/insert_log/1/2/3/4/5/6")
    assert not is_binlog("meta/backup_meta.json") and not is_binlog("binlogs") and not is_binlog("binlogsx/1")


def test_oldest_layout_segment_folders_hold_their_binlogs():
    layout = BackupLayout("backup")
    insert = layout.insert_segment("b1", 7, 8, 9)
    delta = layout.delta_segment("b1", 7, 8, 9)
    assert insert == "backup/b1/binlogs/insert_log/7/8/9/"
    assert delta == "backup/b1/binlogs/delta_log/7/8/9/"
    assert layout.insert_binlog("b1", 7, 8, None, 9, 100, 5).startswith(insert)
    assert layout.delta_binlog("b1", 7, 8, None, 9, 5).startswith(delta)
