"""Backups of the Go tool (zilliztech/milvus-backup) are listed, read, restored and deleted; ours read as its JSON.

The Go tool's meta comes from FORMAT.md's reference examples, written into the sandbox bucket as that
tool would leave them. Its oldest binlog layout (no group folder) is built from a real backup of ours.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.errors import NotFound
from milvus_backup.core.jobs import JobState
from milvus_backup.core.meta import BackupState, encode, meta_files, read_backup
from milvus_backup.core.paths import (
    BACKUP_META,
    CHANNEL_CP_META,
    COLLECTION_META,
    FULL_META,
    META_WRITE_ORDER,
    PARTITION_META,
    SEGMENT_META,
)
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows

pytestmark = pytest.mark.integration

BUCKET = "a-bucket"
REFERENCE = Path("/work/shared/reference/meta-examples")
EXAMPLE_ID = "3f2b9c1e-6a7d-4c55-9d0e-2b1f7c8a9e01"
LEVEL_FILES = (BACKUP_META, COLLECTION_META, PARTITION_META, SEGMENT_META)


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _s3(sandbox) -> Minio:
    return Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)


def _keys(sandbox, prefix: str) -> list[str]:
    return sorted(o.object_name for o in _s3(sandbox).list_objects(BUCKET, prefix=prefix, recursive=True))


def _put(sandbox, key: str, data: bytes) -> None:
    _s3(sandbox).put_object(BUCKET, key, io.BytesIO(data), len(data))


def _get_json(sandbox, key: str) -> Any:
    return json.loads(_s3(sandbox).get_object(BUCKET, key).read())


def _run(job):
    assert job.wait(300) is JobState.SUCCESS, job.error
    return job.result


def _examples() -> dict[str, bytes]:
    """The reference meta files as the Go tool names them in a backup's meta/ folder."""
    if REFERENCE.is_dir():
        raw = {p.name: p.read_bytes() for p in REFERENCE.iterdir() if p.is_file()}
    else:
        try:
            from tests.test_meta import EXAMPLES
        except ImportError:
            pytest.skip(f"{REFERENCE} is absent and tests/test_meta.py has no embedded copy")
        raw = dict(EXAMPLES)
    files = {name: raw[name] for name in (*LEVEL_FILES, FULL_META) if name in raw}
    if "channel_cp_meta.v0.4.json" in raw:
        files[CHANNEL_CP_META] = raw["channel_cp_meta.v0.4.json"]
    if set(LEVEL_FILES) - set(files):
        pytest.skip(f"the reference examples lack {sorted(set(LEVEL_FILES) - set(files))}")
    return files


def _write_go_backup(sandbox, folder: str, files: dict[str, bytes]) -> None:
    # as the Go tool writes them: backup_meta.json last
    for name in sorted(files, key=lambda n: n == BACKUP_META):
        _put(sandbox, f"backup/{folder}/meta/{name}", files[name])


def _summary_of(engine: Engine, backup_id: str):
    found = [b for b in engine.list_backups() if b.id == backup_id]
    assert len(found) == 1, [b.name for b in engine.list_backups()]
    return found[0]


def _check_example_tree(info, *, with_l0: bool) -> None:
    """What the reference example holds, value by value."""
    assert info.id == EXAMPLE_ID and info.state_code == BackupState.INITIAL
    assert info.size == 42188 and info.milvus_version == "v2.6.6"
    assert [(c.db_name, c.collection_name) for c in info.collection_backups] == [("default", "hello_milvus")]
    coll = info.collection("default", "hello_milvus")
    assert coll.collection_id == 450001 and coll.shards_num == 1 and coll.consistency_level == 2
    assert [(f.field_id, f.name, f.data_type) for f in coll.schema.fields] == [(100, "pk", 5), (101, "embeddings", 101)]
    assert coll.schema.fields[0].is_primary_key and coll.schema.enable_dynamic_field
    assert [(i.index_type, i.field_name) for i in coll.index_infos] == [("HNSW", "embeddings")]
    assert [(p.partition_id, p.partition_name) for p in coll.partition_backups] == [(450002, "_default")]
    (seg,) = coll.segments()
    assert (seg.segment_id, seg.partition_id, seg.num_of_rows, seg.group_id, seg.size) == (
        450010,
        450002,
        3000,
        450010,
        40960,
    )
    assert [fb.field_id for fb in seg.binlogs] == [0, 1, 100, 101]
    assert [b.log_size for fb in seg.binlogs for b in fb.binlogs] == [8133, 544, 8120, 23011]
    assert [(b.log_id, b.log_size) for fb in seg.deltalogs for b in fb.binlogs] == [(450105, 1152)]
    assert coll.num_rows == 3000
    if with_l0:
        assert [(s.segment_id, s.partition_id, s.is_l0) for s in coll.l0_segments] == [(450020, -1, True)]


def _delete_and_check_gone(sandbox, engine: Engine, folder: str, written: int) -> None:
    assert engine.delete_backup(folder) == written
    assert _keys(sandbox, f"backup/{folder}/") == []
    with pytest.raises(NotFound):
        engine.get_backup(folder)
    assert EXAMPLE_ID not in [b.id for b in engine.list_backups()]


def _read_as_get_shows_it(engine: Engine, folder: str) -> Any:
    """The backup's meta read whole, binlog lists included, after checking that `get` writes the same
    (a segment at a time) and that get_backup holds the same tree less the binlog lists."""
    info = engine.ctx.catalog.get(folder, binlogs=True)
    rendered = engine.backup_json(folder, indent=2)
    with rendered.file:
        assert json.loads(rendered.file.read()) == encode(info)
    bare = encode(engine.get_backup(folder))
    for coll in bare.get("collection_backups", []):
        for seg in [s for p in coll.get("partition_backups", []) for s in p.get("segment_backups", [])]:
            assert not seg.get("binlogs") and not seg.get("deltalogs")
    return info


def test_go_backup_with_full_meta_is_listed_read_and_deleted(sandbox, engine):
    files = _examples()
    folder = f"go_example_{_uid()}"
    try:
        _write_go_backup(sandbox, folder, files)
        summary = _summary_of(engine, EXAMPLE_ID)
        assert summary.size == 42188 and summary.milvus_version == "v2.6.6"
        assert summary.collections == ("default.hello_milvus",)
        # The Go tool lists the name its meta holds ("my_backup"); either that or the folder is acceptable.
        assert summary.name in (folder, "my_backup")
        info = _read_as_get_shows_it(engine, folder)
        _check_example_tree(info, with_l0=FULL_META in files)
        assert info.collection("default", "hello_milvus").channel_checkpoints == {
            "by-dev-rootcoord-dml_0_450001v0": "<base64 of proto-marshalled msgpb.MsgPosition>"
        }
        _delete_and_check_gone(sandbox, engine, folder, len(files))
    finally:
        for key in _keys(sandbox, f"backup/{folder}/"):
            _s3(sandbox).remove_object(BUCKET, key)


def test_go_backup_with_only_the_level_files_is_rebuilt(sandbox, engine):
    examples = _examples()
    files = {name: examples[name] for name in LEVEL_FILES}
    folder = f"go_levels_{_uid()}"
    try:
        _write_go_backup(sandbox, folder, files)
        summary = _summary_of(engine, EXAMPLE_ID)
        assert summary.size == 42188 and summary.milvus_version == "v2.6.6"
        assert summary.collections == ("default.hello_milvus",)
        info = _read_as_get_shows_it(engine, folder)
        _check_example_tree(info, with_l0=False)
        if FULL_META in examples:  # the rebuilt tree holds the same segments as the full one
            full = read_backup({FULL_META: examples[FULL_META]})
            assert [encode(s) for s in info.collection_backups[0].segments()] == [
                encode(s) for s in full.collection_backups[0].segments()
            ]
        _delete_and_check_gone(sandbox, engine, folder, len(files))
    finally:
        for key in _keys(sandbox, f"backup/{folder}/"):
            _s3(sandbox).remove_object(BUCKET, key)


@pytest.fixture(scope="module")
def own_backup(sandbox, base_config):
    """A real backup of hello_milvus and books made by this tool."""
    engine = Engine(base_config)
    name = f"compat_{_uid()}"
    try:
        yield _run(engine.start_backup(BackupRequest(name=name, collections=["hello_milvus", "books"])))
    finally:
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()


def _copy_objects(engine: Engine, pairs: list[tuple[str, int, str]]) -> None:
    storage = engine.ctx.backup_storage
    for src, size, dst in pairs:
        storage.copy_from(storage, src, dst, size)


def test_oldest_go_layout_without_group_folders_restores_every_row(sandbox, engine, own_backup):
    name, old = own_backup.name, own_backup.name + "_old"
    storage, layout = engine.ctx.backup_storage, engine.ctx.backup_layout
    targets = ["hello_milvus_oldlay", "books_oldlay"]
    for target in targets:
        drop_if_exists(sandbox.milvus_uri, "default", target)
    try:
        # binlogs: insert_log/<c>/<p>/<g>/<s>/<f>/<log> -> insert_log/<c>/<p>/<s>/<f>/<log>, same for delta_log
        src_root = layout.backup(name) + "binlogs/"
        pairs = []
        for obj in storage.list(src_root):
            kind, coll, part, group, seg, *rest = obj.key[len(src_root) :].split("/")
            assert group == seg, obj.key  # our own layout: the group is the segment
            pairs.append((obj.key, obj.size, "/".join([layout.backup(old) + "binlogs", kind, coll, part, seg, *rest])))
        assert pairs
        _copy_objects(engine, pairs)

        info = read_backup({f: storage.read(layout.meta(name, f)) for f in META_WRITE_ORDER})
        info.name = old
        for coll in info.collection_backups:
            for seg in coll.segments():
                seg.group_id = 0
        files = meta_files(info)
        for filename in META_WRITE_ORDER[:-1]:  # the level files only, as the oldest Go tool wrote them
            if filename != FULL_META:
                storage.write(layout.meta(old, filename), files[filename])
        storage.write(
            layout.meta(old, CHANNEL_CP_META),
            json.dumps({"hello_milvus": [{"name": "by-dev-rootcoord-dml_0", "position": "AA=="}]}).encode(),
        )
        storage.write(layout.meta(old, BACKUP_META), files[BACKUP_META])
        # no group folder anywhere in the old backup
        for key in _keys(sandbox, f"backup/{old}/binlogs/"):
            parts = key.split("/")
            assert len(parts) == (9 if parts[3] == "insert_log" else 8), key

        tasks = _run(engine.start_restore(RestoreRequest(old, suffix="_oldlay", restore_index=True, load=True)))
        assert sorted(t.target_name for t in tasks) == sorted(targets)
        for demo_name in ("hello_milvus", "books"):
            demo = demo_collection(demo_name)
            assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", demo_name + "_oldlay"), demo)
            assert next(t for t in tasks if t.target_name == demo_name + "_oldlay").rows == len(demo.expected_rows())
        books = demo_collection("books")
        where = books.partition_of()
        for part in ("_default", "fiction", "science"):
            got = {r["isbn"] for r in fetch_rows(sandbox.milvus_uri, "default", "books_oldlay", part)}
            assert got == {k for k, p in where.items() if p == part}
    finally:
        for target in targets:
            drop_if_exists(sandbox.milvus_uri, "default", target)
        if engine.ctx.catalog.exists(old):
            engine.delete_backup(old)


def test_a_backup_copied_under_another_name_restores_from_its_own_folder(sandbox, engine):
    """Operators copy backup folders (to another bucket, a new name); the Go tool restores by folder name."""
    name = f"compat_mv_{_uid()}"
    moved = name + "_moved"
    storage, layout = engine.ctx.backup_storage, engine.ctx.backup_layout
    drop_if_exists(sandbox.milvus_uri, "default", "books_moved")
    try:
        _run(engine.start_backup(BackupRequest(name=name, collections=["books"])))
        src = layout.backup(name)
        objects = list(storage.list(src))
        _copy_objects(engine, [(o.key, o.size, layout.backup(moved) + o.key[len(src) :]) for o in objects])
        engine.delete_backup(name)  # only the copy is left, its meta unchanged (it still says `name`)
        assert engine.get_backup(moved).collection("default", "books").num_rows == 650
        _run(engine.start_restore(RestoreRequest(moved, suffix="_moved", load=True, restore_index=True)))
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "books_moved"), demo_collection("books"))
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "books_moved")
        for backup in (name, moved):
            if engine.ctx.catalog.exists(backup):
                engine.delete_backup(backup)


def _all_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _all_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _all_keys(item)


def _check_segment(seg: dict) -> None:
    assert "size" in seg, seg.keys()
    assert seg["size"] == sum(
        b["log_size"] for fb in seg.get("binlogs", []) + seg.get("deltalogs", []) for b in fb["binlogs"]
    )
    for fb in seg.get("binlogs", []):
        for b in fb["binlogs"]:
            assert "log_size" in b and isinstance(b["log_size"], int)
            # log_path ends with <field>/<log>: the field binlog names its field as fieldID (omitted when 0)
            field_id = int(b["log_path"].split("/")[-2])
            assert fb.get("fieldID", 0) == field_id
            if field_id:
                assert "fieldID" in fb
    for fb in seg.get("deltalogs", []):
        assert fb.get("fieldID", 0) == 0
        for b in fb["binlogs"]:
            assert "log_size" in b and isinstance(b["log_size"], int)


def test_our_meta_uses_the_go_key_spellings(sandbox, engine, own_backup):
    name = own_backup.name
    meta = {f: _get_json(sandbox, f"backup/{name}/meta/{f}") for f in META_WRITE_ORDER}  # plain json parses them
    # spellings the Go tool never writes
    wrong = {
        "field_id",
        "auto_id",
        "enableDynamicField",
        "error_message",
        "errorMsg",
        "stateCode",
        "logSize",
        "logPath",
        "segmentId",
        "collectionId",
    }
    for filename, data in meta.items():
        assert not wrong & set(_all_keys(data)), (filename, wrong & set(_all_keys(data)))

    top, full = meta[BACKUP_META], meta[FULL_META]
    for doc in (top, full):
        assert doc["state_code"] == 2 and isinstance(doc["state_code"], int)
        assert "errorMessage" not in doc  # empty: omitted, as Go's omitempty does
        assert doc["size"] == own_backup.size > 0
        assert doc["name"] == name
    assert set(top) <= {"id", "state_code", "name", "size", "milvus_version", "format"}

    colls = {c["collection_name"]: c for c in full["collection_backups"]}
    assert set(colls) == {"hello_milvus", "books"}
    for coll_name, coll in colls.items():
        assert "size" in coll and "has_index" in coll and coll["has_index"] is True
        described = engine.ctx.milvus.describe("default", coll_name)
        desc = described.schema
        schema = coll["schema"]
        assert ("autoID" in schema) == desc.autoID
        by_name = {f["name"]: f for f in schema["fields"]}
        for field in desc.fields:
            assert by_name[field.name]["fieldID"] == field.fieldID
            assert ("autoID" in by_name[field.name]) == field.autoID
            assert by_name[field.name]["data_type"] == int(field.data_type)
        # an enum as its number, left out when 0 (Strong, as the demo collections are)
        assert coll.get("consistency_level", 0) == int(described.consistency_level)
        for part in coll["partition_backups"]:
            assert "size" in part
            assert part["size"] == sum(s["size"] for s in part["segment_backups"])
            for seg in part["segment_backups"]:
                _check_segment(seg)
        assert coll["size"] == sum(p["size"] for p in coll["partition_backups"])
    assert colls["books"]["schema"]["enable_dynamic_field"] is True
    assert "enable_dynamic_field" not in colls["hello_milvus"]["schema"]  # false: omitted
    # the books backup has deletes and hello_milvus several insert fields: both kinds were checked
    segs = [s for c in colls.values() for p in c["partition_backups"] for s in p["segment_backups"]]
    assert any(s.get("deltalogs") for s in segs)
    assert {fb.get("fieldID", 0) for s in segs for fb in s["binlogs"]} >= {0, 1, 100, 101, 102}

    # the level files: same objects, without their children
    for info in meta[COLLECTION_META]["infos"]:
        assert "size" in info and all("segment_backups" not in p for p in info.get("partition_backups", []))
    assert all("size" in p and "segment_backups" not in p for p in meta[PARTITION_META]["infos"])
    level_segments = meta[SEGMENT_META]["infos"]
    assert sorted(s["segment_id"] for s in level_segments) == sorted(s["segment_id"] for s in segs)
    for seg in level_segments:
        _check_segment(seg)
