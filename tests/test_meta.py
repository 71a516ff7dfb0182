"""Tests for core.meta: the BackupInfo model reads and writes the Go tool's meta JSON without loss.

The reference examples (FORMAT.md's meta-examples/) are embedded below so the tests run anywhere;
one test checks the copies still match the reference when it is present.
"""

from __future__ import annotations

import copy
import functools
import json
import tracemalloc
from pathlib import Path

import pytest

from milvus_backup.core import meta
from milvus_backup.core.errors import BackupToolError
from milvus_backup.core.meta import (
    BackupInfo,
    BackupState,
    Binlog,
    Collection,
    Database,
    Field,
    FieldBinlog,
    IndexInfo,
    KeyValue,
    MetaError,
    Partition,
    RBACMeta,
    Schema,
    Segment,
    UserInfo,
    decode,
    encode,
    meta_files,
    read_backup,
)
from milvus_backup.core.paths import (
    BACKUP_META,
    CHANNEL_CP_META,
    COLLECTION_META,
    FULL_META,
    META_WRITE_ORDER,
    PARTITION_META,
    SEGMENT_META,
)

REFERENCE = Path("/work/shared/reference/meta-examples")

# fmt: off
EXAMPLES: dict[str, bytes] = {
    'backup_meta.json': rb'''{"id":"3f2b9c1e-6a7d-4c55-9d0e-2b1f7c8a9e01","state_code":0,"name":"my_backup","size":42188,"milvus_version":"v2.6.6"}'''
    b"\n",
    'collection_meta.json': rb'''{"infos":[{"id":"3f2b9c1e-6a7d-4c55-9d0e-2b1f7c8a9e01","collection_id":450001,"db_name":"default","collection_name":"hello_milvus","schema":{"name":"hello_milvus","description":"hello_milvus is the simplest demo","fields":[{"fieldID":100,"name":"pk","is_primary_key":true,"data_type":5},{"fieldID":101,"name":"embeddings","data_type":101,"type_params":[{"key":"dim","value":"8"}]}],"enable_dynamic_field":true},"shards_num":1,"consistency_level":2,"partition_backups":[{"partition_id":450002,"partition_name":"_default","collection_id":450001,"size":40960,"load_state":"Loaded"}],"backup_timestamp":454749234201886721,"size":42188,"has_index":true,"index_infos":[{"field_name":"embeddings","index_name":"embeddings","index_type":"HNSW","params":{"index_type":"HNSW","metric_type":"L2","params":"{\"M\":8,\"efConstruction\":64}"},"index_id":450005}],"load_state":"Loaded","backup_physical_timestamp":1734730721,"channel_checkpoints":{"by-dev-rootcoord-dml_0_450001v0":"<base64 of proto-marshalled msgpb.MsgPosition>"},"db_id":1,"created_timestamp":454700000000000000,"virtual_channel_names":["by-dev-rootcoord-dml_0_450001v0"],"physical_channel_names":["by-dev-rootcoord-dml_0"]}]}'''
    b"\n",
    'partition_meta.json': rb'''{"infos":[{"partition_id":450002,"partition_name":"_default","collection_id":450001,"size":40960,"load_state":"Loaded"}]}'''
    b"\n",
    'segment_meta.json': rb'''{"infos":[{"segment_id":450010,"collection_id":450001,"partition_id":450002,"num_of_rows":3000,"binlogs":[{"fieldID":0,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/0/450101","log_size":8133,"log_id":450101}]},{"fieldID":1,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/1/450102","log_size":544,"log_id":450102}]},{"fieldID":100,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/100/450103","log_size":8120,"log_id":450103}]},{"fieldID":101,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/101/450104","log_size":23011,"log_id":450104}]}],"deltalogs":[{"binlogs":[{"log_path":"files/delta_log/450001/450002/450010/450105","log_size":1152,"log_id":450105}]}],"size":40960,"group_id":450010,"v_channel":"by-dev-rootcoord-dml_0_450001v0","storage_version":2}]}'''
    b"\n",
    'full_meta.json': rb'''{"id":"3f2b9c1e-6a7d-4c55-9d0e-2b1f7c8a9e01","state_code":0,"name":"my_backup","collection_backups":[{"id":"3f2b9c1e-6a7d-4c55-9d0e-2b1f7c8a9e01","collection_id":450001,"db_name":"default","collection_name":"hello_milvus","schema":{"name":"hello_milvus","description":"hello_milvus is the simplest demo","fields":[{"fieldID":100,"name":"pk","is_primary_key":true,"data_type":5},{"fieldID":101,"name":"embeddings","data_type":101,"type_params":[{"key":"dim","value":"8"}]}],"enable_dynamic_field":true},"shards_num":1,"consistency_level":2,"partition_backups":[{"partition_id":450002,"partition_name":"_default","collection_id":450001,"segment_backups":[{"segment_id":450010,"collection_id":450001,"partition_id":450002,"num_of_rows":3000,"binlogs":[{"fieldID":0,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/0/450101","log_size":8133,"log_id":450101}]},{"fieldID":1,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/1/450102","log_size":544,"log_id":450102}]},{"fieldID":100,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/100/450103","log_size":8120,"log_id":450103}]},{"fieldID":101,"binlogs":[{"log_path":"files/insert_log/450001/450002/450010/101/450104","log_size":23011,"log_id":450104}]}],"deltalogs":[{"binlogs":[{"log_path":"files/delta_log/450001/450002/450010/450105","log_size":1152,"log_id":450105}]}],"size":40960,"group_id":450010,"v_channel":"by-dev-rootcoord-dml_0_450001v0","storage_version":2}],"size":40960,"load_state":"Loaded"}],"backup_timestamp":454749234201886721,"size":42188,"has_index":true,"index_infos":[{"field_name":"embeddings","index_name":"embeddings","index_type":"HNSW","params":{"index_type":"HNSW","metric_type":"L2","params":"{\"M\":8,\"efConstruction\":64}"},"index_id":450005}],"load_state":"Loaded","backup_physical_timestamp":1734730721,"channel_checkpoints":{"by-dev-rootcoord-dml_0_450001v0":"<base64 of proto-marshalled msgpb.MsgPosition>"},"l0_segments":[{"segment_id":450020,"collection_id":450001,"partition_id":-1,"num_of_rows":12,"deltalogs":[{"binlogs":[{"log_path":"files/delta_log/450001/-1/450020/450201","log_size":1228,"log_id":450201}]}],"size":1228,"is_l0":true,"v_channel":"by-dev-rootcoord-dml_0_450001v0","storage_version":2}],"db_id":1,"created_timestamp":454700000000000000,"virtual_channel_names":["by-dev-rootcoord-dml_0_450001v0"],"physical_channel_names":["by-dev-rootcoord-dml_0"]}],"size":42188,"milvus_version":"v2.6.6","database_backups":[{"db_name":"default","db_id":1}]}'''
    b"\n",
    'channel_cp_meta.v0.4.json': rb'''{"hello_milvus":[{"name":"by-dev-rootcoord-dml_0","position":"<base64 msgpb.MsgPosition>"}]}'''
    b"\n",
}
# fmt: on

META_NAMES = (BACKUP_META, COLLECTION_META, PARTITION_META, SEGMENT_META, FULL_META)
# The class behind each file: BackupInfo for the top-level files, the `infos` items for the others.
FILE_CLASS = {
    BACKUP_META: BackupInfo,
    FULL_META: BackupInfo,
    COLLECTION_META: Collection,
    PARTITION_META: Partition,
    SEGMENT_META: Segment,
}


def parsed(name: str) -> dict:
    return json.loads(EXAMPLES[name])


def round_trip(name: str, data: dict) -> dict:
    cls = FILE_CLASS[name]
    if cls is BackupInfo:
        return encode(decode(BackupInfo, data))
    return {"infos": [encode(decode(cls, item)) for item in data["infos"]]}


def example_files() -> dict[str, bytes]:
    return {name: EXAMPLES[name] for name in META_NAMES}


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference examples not on this machine")
def test_embedded_examples_match_the_reference():
    on_disk = {p.name: p.read_bytes() for p in REFERENCE.iterdir()}
    assert on_disk == EXAMPLES


# --- reading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", META_NAMES)
def test_every_meta_example_parses_into_the_model(name):
    data = parsed(name)
    if FILE_CLASS[name] is BackupInfo:
        info = decode(BackupInfo, data)
        assert info.id == "3f2b9c1e-6a7d-4c55-9d0e-2b1f7c8a9e01"
        assert info.name == "my_backup"
        assert info.state_code is BackupState.INITIAL
        assert info.size == 42188
        assert info.milvus_version == "v2.6.6"
    else:
        items = [decode(FILE_CLASS[name], item) for item in data["infos"]]
        assert len(items) == 1
        assert all(isinstance(i, FILE_CLASS[name]) for i in items)


def test_channel_checkpoint_file_of_old_backups_is_valid_json_and_tolerated():
    assert json.loads(EXAMPLES["channel_cp_meta.v0.4.json"])["hello_milvus"][0]["name"] == "by-dev-rootcoord-dml_0"
    files = example_files() | {CHANNEL_CP_META: EXAMPLES["channel_cp_meta.v0.4.json"]}
    assert read_backup(files) == read_backup(example_files())


def test_full_meta_values_land_in_the_right_attributes():
    info = read_backup(example_files())
    coll = info.collection("default", "hello_milvus")
    assert coll is not None
    assert (coll.collection_id, coll.db_id, coll.shards_num, coll.consistency_level) == (450001, 1, 1, 2)
    assert coll.backup_timestamp == 454749234201886721  # a TSO: beyond float precision, must stay an int
    assert coll.has_index is True and coll.load_state == "Loaded"
    assert coll.schema.enable_dynamic_field is True
    pk, vec = coll.schema.fields
    assert (pk.field_id, pk.name, pk.is_primary_key, pk.data_type) == (100, "pk", True, 5)
    assert (vec.field_id, vec.data_type, vec.type_params) == (101, 101, [KeyValue("dim", "8")])
    assert coll.index_infos[0].params["metric_type"] == "L2"
    assert coll.index_infos[0].index_id == 450005
    assert coll.channel_checkpoints == {
        "by-dev-rootcoord-dml_0_450001v0": "<base64 of proto-marshalled msgpb.MsgPosition>"
    }
    assert coll.virtual_channel_names == ["by-dev-rootcoord-dml_0_450001v0"]
    assert coll.extra == {"created_timestamp": 454700000000000000}

    (part,) = coll.partition_backups
    assert (part.partition_id, part.partition_name, part.size) == (450002, "_default", 40960)
    (seg,) = part.segment_backups
    assert (seg.segment_id, seg.group_id, seg.num_of_rows, seg.storage_version) == (450010, 450010, 3000, 2)
    assert [fb.field_id for fb in seg.binlogs] == [0, 1, 100, 101]
    assert seg.binlogs[3].binlogs == [Binlog("files/insert_log/450001/450002/450010/101/450104", 23011, 450104)]
    assert seg.deltalogs[0].field_id == 0
    assert seg.insert_size == 8133 + 544 + 8120 + 23011
    assert seg.delta_size == 1152

    (l0,) = coll.l0_segments
    assert (l0.segment_id, l0.partition_id, l0.is_l0, l0.num_of_rows) == (450020, -1, True, 12)
    assert coll.segments() == [seg]  # partition segments only
    assert coll.num_rows == 3000
    assert info.database_backups == [Database("default", 1)]


def test_collection_lookup_by_database_and_name():
    info = read_backup(example_files())
    assert info.collection("default", "hello_milvus").collection_id == 450001
    assert info.collection("", "hello_milvus").collection_id == 450001  # "" is the default database
    assert info.collection("other_db", "hello_milvus") is None
    assert info.collection("default", "nope") is None


def test_missing_keys_take_defaults():
    assert decode(BackupInfo, {}) == BackupInfo()
    seg = decode(Segment, {"segment_id": 7})
    assert seg == Segment(segment_id=7)
    assert (seg.binlogs, seg.size, seg.is_l0, seg.v_channel) == ([], 0, False, "")
    coll = decode(Collection, {"collection_name": "c"})
    assert coll.schema == Schema() and coll.partition_backups == [] and coll.channel_checkpoints == {}
    assert coll.num_rows == 0
    field = decode(Field, {"fieldID": 3, "autoID": True})
    assert (field.field_id, field.auto_id, field.name, field.default_value) == (3, True, "", None)


def test_null_reads_as_not_set():
    seg = decode(Segment, {"segment_id": 1, "binlogs": None, "v_channel": None})
    assert seg.binlogs == [] and seg.v_channel == ""
    # The source had no "size" either, so a faithful rewrite leaves it out.
    assert encode(seg) == {"segment_id": 1}


def test_state_codes_are_an_int_enum_and_unknown_ones_survive():
    assert [int(s) for s in BackupState] == [0, 1, 2, 3, 4]
    assert decode(BackupInfo, {"state_code": 2}).state_code is BackupState.SUCCESS
    assert encode(BackupInfo(state_code=BackupState.FAIL))["state_code"] == 3
    assert type(encode(BackupInfo(state_code=BackupState.FAIL))["state_code"]) is int
    future = decode(BackupInfo, {"state_code": 9})
    assert future.state_code == 9 and encode(future)["state_code"] == 9


def test_int64_written_as_strings_are_accepted():
    # protobuf's canonical JSON mapping quotes int64; tolerate it on read, write numbers.
    seg = decode(Segment, {"segment_id": "450010", "partition_id": "-1"})
    assert (seg.segment_id, seg.partition_id) == (450010, -1)
    assert encode(seg)["segment_id"] == 450010


# --- writing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", META_NAMES)
def test_encode_decode_reproduces_each_example_exactly(name):
    data = parsed(name)
    assert round_trip(name, data) == data


@pytest.mark.parametrize("name", META_NAMES)
def test_meta_files_of_the_full_meta_reproduce_every_example(name):
    files = meta_files(read_backup({FULL_META: EXAMPLES[FULL_META]}))
    assert json.loads(files[name]) == parsed(name)


@pytest.mark.parametrize("name", [BACKUP_META, PARTITION_META, SEGMENT_META])
def test_files_without_unknown_keys_come_out_byte_identical(name):
    # The Go tool adds no trailing newline; the reference files end with one.
    files = meta_files(read_backup({FULL_META: EXAMPLES[FULL_META]}))
    assert files[name] == EXAMPLES[name].rstrip(b"\n")


def test_meta_files_are_compact_utf8_and_in_write_order():
    info = read_backup(example_files())
    info.collection_backups[0].schema.description = "démo ✓"
    files = meta_files(info)
    assert tuple(files) == META_WRITE_ORDER
    assert list(files)[-1] == BACKUP_META  # the completion marker goes last
    for raw in files.values():
        assert raw == json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    assert "démo ✓".encode() in files[FULL_META]


def test_keys_come_out_in_proto_order_with_unknown_keys_last():
    seg = Segment(
        segment_id=1,
        collection_id=2,
        partition_id=3,
        num_of_rows=4,
        binlogs=[FieldBinlog(100, [Binlog("a", 5, 6)])],
        deltalogs=[FieldBinlog(0, [Binlog("d", 7, 8)])],
        size=9,
        group_id=1,
        is_l0=True,
        v_channel="v",
        storage_version=2,
        extra={"zz_new": 1},
    )
    out = encode(seg)
    assert list(out) == [
        "segment_id",
        "collection_id",
        "partition_id",
        "num_of_rows",
        "binlogs",
        "deltalogs",
        "size",
        "group_id",
        "is_l0",
        "v_channel",
        "storage_version",
        "zz_new",
    ]
    assert list(out["binlogs"][0]) == ["fieldID", "binlogs"]
    assert list(out["binlogs"][0]["binlogs"][0]) == ["log_path", "log_size", "log_id"]
    info = BackupInfo(
        id="i",
        state_code=BackupState.SUCCESS,
        error_message="e",
        start_time=1,
        end_time=2,
        progress=100,
        name="n",
        backup_timestamp=3,
        collection_backups=[Collection(id="i")],
        size=4,
        milvus_version="v",
        rbac_meta=RBACMeta(users=[UserInfo(user="u")]),
        database_backups=[Database("d", 1)],
        meta_size=5,
        format="f",
    )
    assert list(encode(info)) == [
        "id",
        "state_code",
        "errorMessage",
        "start_time",
        "end_time",
        "progress",
        "name",
        "backup_timestamp",
        "collection_backups",
        "size",
        "milvus_version",
        "rbac_meta",
        "database_backups",
        "meta_size",
        "format",
    ]


def test_new_objects_omit_empty_values_except_the_always_written_keys():
    assert encode(BackupInfo()) == {"state_code": 0, "progress": 0, "size": 0, "meta_size": 0}
    assert encode(Collection()) == {"size": 0, "has_index": False}
    assert encode(Partition()) == {"size": 0}
    assert encode(Segment()) == {"size": 0}
    assert encode(Binlog()) == {"log_size": 0}
    assert encode(IndexInfo()) == {}
    assert encode(Field()) == {}
    assert encode(Schema()) == {}
    assert encode(KeyValue()) == {}
    # fieldID 0 (delta logs, and the RowID field) is omitted, as Go's omitempty does.
    assert encode(FieldBinlog(0, [Binlog("p", 0, 1)])) == {"binlogs": [{"log_path": "p", "log_size": 0, "log_id": 1}]}
    assert encode(FieldBinlog(101, [])) == {"fieldID": 101}


def test_json_names_that_are_not_snake_case():
    assert encode(Field(field_id=5, auto_id=True)) == {"fieldID": 5, "autoID": True}
    assert encode(Schema(auto_id=True, enable_dynamic_field=True)) == {"autoID": True, "enable_dynamic_field": True}
    assert encode(BackupInfo(error_message="boom"))["errorMessage"] == "boom"
    assert decode(BackupInfo, {"errorMessage": "boom"}).error_message == "boom"


def test_map_keys_are_sorted_like_go_but_opaque_values_are_left_alone():
    out = encode(IndexInfo(params={"z": "1", "a": "2"}))
    assert list(out["params"]) == ["a", "z"]
    info = decode(BackupInfo, {"rbac_meta": {"z": 1, "a": 2}})
    assert list(encode(info)["rbac_meta"]) == ["z", "a"]


def test_zero_values_a_file_wrote_are_kept_and_always_keys_it_left_out_stay_out():
    # The example writes "fieldID":0 for the RowID binlogs but not for delta logs, and leaves out
    # BackupInfo's progress; a rewrite must reproduce both.
    info = read_backup({FULL_META: EXAMPLES[FULL_META]})
    seg = info.collection_backups[0].partition_backups[0].segment_backups[0]
    assert encode(seg.binlogs[0])["fieldID"] == 0
    assert "fieldID" not in encode(seg.deltalogs[0])
    assert "progress" not in encode(info)
    # Values changed after reading are written by the ordinary rules.
    info.progress = 50
    assert encode(info)["progress"] == 50


def test_unknown_keys_survive_a_full_write_read_cycle():
    full = parsed(FULL_META)
    full["future_top"] = {"nested": [1, 2]}
    coll = full["collection_backups"][0]
    coll["future_coll"] = "x"
    coll["schema"]["fields"][0]["future_field"] = True
    coll["partition_backups"][0]["future_part"] = 1
    seg = coll["partition_backups"][0]["segment_backups"][0]
    seg["statslogs"] = [{"fieldID": 100, "binlogs": []}]
    seg["binlogs"][0]["binlogs"][0]["entries_num"] = 3000
    coll["l0_segments"][0]["future_l0"] = 2
    full["database_backups"][0]["future_db"] = "y"

    info = read_backup({FULL_META: json.dumps(full).encode()})
    assert info.extra == {"future_top": {"nested": [1, 2]}}
    assert info.collection_backups[0].segments()[0].binlogs[0].binlogs[0].extra == {"entries_num": 3000}
    assert encode(info) == full

    files = meta_files(info)
    assert json.loads(files[FULL_META]) == full
    level = json.loads(files[SEGMENT_META])["infos"][0]
    assert level["statslogs"] == [{"fieldID": 100, "binlogs": []}]
    assert json.loads(files[PARTITION_META])["infos"][0]["future_part"] == 1
    assert json.loads(files[COLLECTION_META])["infos"][0]["future_coll"] == "x"
    assert json.loads(files[COLLECTION_META])["infos"][0]["schema"]["fields"][0]["future_field"] is True


def test_level_files_carry_no_segments_and_segment_meta_no_l0():
    files = meta_files(read_backup(example_files()))
    coll = json.loads(files[COLLECTION_META])["infos"][0]
    assert "l0_segments" not in coll
    assert all("segment_backups" not in p for p in coll["partition_backups"])
    assert all("segment_backups" not in p for p in json.loads(files[PARTITION_META])["infos"])
    assert [s["segment_id"] for s in json.loads(files[SEGMENT_META])["infos"]] == [450010]
    assert set(json.loads(files[BACKUP_META])) == {"id", "state_code", "name", "size", "milvus_version"}


def test_meta_files_do_not_change_the_tree():
    info = read_backup(example_files())
    before = copy.deepcopy(info)
    meta_files(info)
    assert info == before
    assert info.collection_backups[0].partition_backups[0].segment_backups


# --- rebuilding without full_meta.json --------------------------------------------------------------


def without_full(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k != FULL_META}


def test_read_backup_without_full_meta_rebuilds_the_same_tree():
    with_full = read_backup(example_files())
    rebuilt = read_backup(without_full(example_files()))
    # The level files hold neither the L0 segments nor the database list (FORMAT.md): those live
    # only in full_meta.json. Everything else must match.
    assert [c.l0_segments for c in rebuilt.collection_backups] == [[]]
    assert rebuilt.database_backups == []
    for c in with_full.collection_backups:
        c.l0_segments = []
    with_full.database_backups = []
    assert rebuilt == with_full
    assert rebuilt.collection("default", "hello_milvus").num_rows == 3000


def built_tree() -> BackupInfo:
    """A two-collection backup built in code, as a backup job would."""

    def seg(coll: int, part: int, seg_id: int, rows: int) -> Segment:
        return Segment(
            segment_id=seg_id,
            collection_id=coll,
            partition_id=part,
            num_of_rows=rows,
            binlogs=[
                FieldBinlog(0, [Binlog(f"i/{seg_id}/0/1", 10, 1)]),
                FieldBinlog(100, [Binlog(f"i/{seg_id}/100/2", 20, 2)]),
            ],
            size=30,
            group_id=seg_id,
            storage_version=2,
        )

    c1 = Collection(
        id="b",
        collection_id=1,
        db_name="default",
        collection_name="c1",
        size=90,
        schema=Schema(name="c1", fields=[Field(field_id=100, name="pk", is_primary_key=True, data_type=5)]),
        partition_backups=[
            Partition(10, "_default", 1, [seg(1, 10, 100, 5), seg(1, 10, 101, 6)], 60),
            Partition(11, "p1", 1, [seg(1, 11, 102, 7)], 30),
        ],
    )
    c2 = Collection(
        id="b",
        collection_id=2,
        db_name="db2",
        collection_name="c2",
        db_id=2,
        partition_backups=[Partition(20, "_default", 2, [seg(2, 20, 200, 8)], 30)],
    )
    return BackupInfo(
        id="b",
        state_code=BackupState.SUCCESS,
        name="nightly",
        size=120,
        milvus_version="v2.3.5",
        collection_backups=[c1, c2],
    )


def test_a_built_tree_survives_meta_files_and_both_ways_of_reading_back():
    info = built_tree()
    files = meta_files(info)
    assert read_backup(files) == info
    assert read_backup(without_full(files)) == info
    assert info.collection("default", "c1").num_rows == 18
    assert info.collection("db2", "c2").segments()[0].segment_id == 200
    # Freshly built: fieldID 0 is omitted, as the Go tool does.
    seg = json.loads(files[SEGMENT_META])["infos"][0]
    assert seg["binlogs"][0] == {"binlogs": [{"log_path": "i/100/0/1", "log_size": 10, "log_id": 1}]}
    assert seg["binlogs"][1]["fieldID"] == 100


def test_rebuild_groups_segments_by_collection_and_partition():
    # Two collections reuse partition id 10: segments must go by (collection, partition), not partition alone.
    a = Collection(
        collection_id=1, collection_name="a", partition_backups=[Partition(10, "_default", 1, [Segment(1, 1, 10, 5)])]
    )
    b = Collection(
        collection_id=2, collection_name="b", partition_backups=[Partition(10, "_default", 2, [Segment(2, 2, 10, 7)])]
    )
    info = BackupInfo(name="x", collection_backups=[a, b])
    rebuilt = read_backup(without_full(meta_files(info)))
    assert [c.segments()[0].segment_id for c in rebuilt.collection_backups] == [1, 2]


def test_rebuild_puts_l0_segments_found_in_segment_meta_back_on_their_collection():
    files = without_full(example_files())
    seg_meta = parsed(SEGMENT_META)
    seg_meta["infos"].append(parsed(FULL_META)["collection_backups"][0]["l0_segments"][0])
    files[SEGMENT_META] = json.dumps(seg_meta).encode()
    coll = read_backup(files).collection_backups[0]
    assert [s.segment_id for s in coll.l0_segments] == [450020]
    assert [s.segment_id for s in coll.segments()] == [450010]


def test_backup_meta_has_the_last_word_on_the_top_level():
    top = parsed(BACKUP_META) | {"state_code": 2, "size": 1, "name": "renamed", "id": "other"}
    info = read_backup(example_files() | {BACKUP_META: json.dumps(top).encode()})
    assert (info.state_code, info.size, info.name, info.id) == (BackupState.SUCCESS, 1, "renamed", "other")
    assert info.collection_backups[0].collection_name == "hello_milvus"  # the tree still from full_meta


def test_file_names_may_carry_the_meta_prefix():
    files = {f"backup/my_backup/meta/{k}": v for k, v in example_files().items()}
    assert read_backup(files) == read_backup(example_files())


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", META_NAMES)
def test_invalid_json_names_the_file(name):
    files = without_full(example_files()) if name != FULL_META else example_files()
    files[name] = b'{"infos": [ not json'
    with pytest.raises(MetaError) as err:
        read_backup(files)
    message = str(err.value)
    assert name in message and "not valid JSON" in message
    assert "\n" not in message
    assert isinstance(err.value, BackupToolError)


@pytest.mark.parametrize("raw", [b"[1, 2]", b"\xff\xfe\xfa", b""])
def test_other_unreadable_files_raise_meta_error(raw):
    with pytest.raises(MetaError, match=FULL_META):
        read_backup({FULL_META: raw})


def test_wrong_value_types_name_the_file_and_the_key():
    bad = parsed(SEGMENT_META)
    bad["infos"][0]["binlogs"][1]["binlogs"][0]["log_size"] = "big"
    files = without_full(example_files()) | {SEGMENT_META: json.dumps(bad).encode()}
    with pytest.raises(MetaError, match=r"segment_meta\.json.*infos\[0\]\.binlogs\[1\]\.binlogs\[0\]\.log_size"):
        read_backup(files)
    bad_full = parsed(FULL_META) | {"collection_backups": {"not": "a list"}}
    with pytest.raises(MetaError, match=r"full_meta\.json: collection_backups: expected a list"):
        read_backup({FULL_META: json.dumps(bad_full).encode()})
    with pytest.raises(MetaError, match="expected true/false"):
        decode(Collection, {"has_index": "yes"})


def test_no_top_level_file_is_not_a_backup():
    with pytest.raises(MetaError, match=BACKUP_META):
        read_backup({COLLECTION_META: EXAMPLES[COLLECTION_META]})


def test_meta_files_are_written_a_segment_at_a_time(monkeypatch):
    """The meta files of 2,000 binlogs come out as one json.dumps of each file's whole tree would give
    them, while the Python memory rendering all five takes at its peak is a fraction of what building one
    whole tree and its text takes (small buffers here, so that 2,000 binlogs show it)."""
    monkeypatch.setattr(meta, "_META_IN_MEMORY", 16 * 1024)
    monkeypatch.setattr(meta, "_TEXT_BUFFER", 16 * 1024)
    segments = [
        Segment(
            segment_id=s,
            collection_id=1,
            partition_id=10,
            num_of_rows=5,
            binlogs=[FieldBinlog(f, [Binlog(f"i/{s}/{f}/{n}", 100, n) for n in range(10)]) for f in range(100, 110)],
        )
        for s in range(20)
    ]
    info = BackupInfo(
        name="big",
        collection_backups=[Collection(collection_id=1, partition_backups=[Partition(10, "_default", 1, segments)])],
    )
    dump = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)
    tracemalloc.start()
    try:
        full = dump(encode(info)).encode()
        whole_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with meta.rendered_meta(info) as rendered:
            peak = tracemalloc.get_traced_memory()[1]
            files = {name: f.file.read() for name, f in rendered.items()}
    finally:
        tracemalloc.stop()
    assert files[FULL_META] == full
    assert files[SEGMENT_META] == dump({"infos": [encode(s) for s in segments]}).encode()
    assert all(rendered[name].length == len(data) for name, data in files.items())
    assert peak < whole_peak / 4, (peak, whole_peak)
