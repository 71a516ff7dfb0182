"""Every kind of collection Milvus 2.3.5 holds comes back from one backup, row for row and field for field.

One backup holds them all, and one restore (with a suffix) brings them back; each test then compares the
restored collection with its source: every row, every field, and what makes the kind (the partition each
key hashes to, the properties, the aliases). The collections are small: a few hundred rows each.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from pymilvus import DataType, MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.restore import RestoreRequest
from tests.conftest import drop_if_exists, fetch_rows

pytestmark = [pytest.mark.integration, pytest.mark.compacts]  # its compaction reaches other collections

BACKUP = "kinds"
SUFFIX = "_kinds"
DB = "default"
PARTITION_KEY, ARRAYS, PROPS, AUTO_ID, COMPACTED = "k_partkey", "k_arrays", "k_props", "k_autoid", "k_compacted"
KINDS = (PARTITION_KEY, ARRAYS, PROPS, AUTO_ID, COMPACTED)
ALIAS = "k_props_alias"
NUM_PARTITIONS = 4
# Every element type Milvus 2.3.5 accepts in an ARRAY field.
ARRAY_TYPES = {
    "a_bool": (DataType.BOOL, lambda i: [bool((i + j) % 2) for j in range(i % 4)]),
    "a_int8": (DataType.INT8, lambda i: [(i * j) % 127 - 60 for j in range(3)]),
    "a_int16": (DataType.INT16, lambda i: [i * 7 - j for j in range(i % 3)]),
    "a_int32": (DataType.INT32, lambda i: [i * 1000 + j for j in range(2)]),
    "a_int64": (DataType.INT64, lambda i: [i * 10_000_000_000 + j for j in range(i % 5)]),
    "a_float": (DataType.FLOAT, lambda i: [i / 4 + j / 8 for j in range(3)]),
    "a_double": (DataType.DOUBLE, lambda i: [i / 3 + j for j in range(2)]),
    "a_varchar": (DataType.VARCHAR, lambda i: [f"s{i}-{j}" for j in range(i % 4)]),
}
PROPERTIES = {"collection.ttl.seconds": "864000", "mmap.enabled": "true"}


def _vector(i: int) -> list[float]:
    return [((i * 13 + j * 7) % 101) / 128.0 for j in range(4)]


def _schema(client: MilvusClient, *, auto_id: bool = False) -> Any:
    schema = client.create_schema(auto_id=auto_id, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
    return schema


def _index(client: MilvusClient, name: str) -> None:
    params = client.prepare_index_params()
    params.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
    client.create_index(name, params)


def _insert_flushed(client: MilvusClient, name: str, rows: list[dict], batches: int = 1) -> None:
    step = -(-len(rows) // batches)
    for start in range(0, len(rows), step):
        client.insert(name, rows[start : start + step])
        client.flush(name)  # one sealed segment per batch


def _make_partition_key(client: MilvusClient) -> None:
    schema = _schema(client)
    schema.add_field("tenant", DataType.VARCHAR, max_length=16, is_partition_key=True)
    schema.add_field("score", DataType.DOUBLE)
    client.create_collection(PARTITION_KEY, schema=schema, num_partitions=NUM_PARTITIONS, consistency_level="Strong")
    rows = [{"id": i, "vec": _vector(i), "tenant": f"tenant{i % 7}", "score": i / 16} for i in range(300)]
    _insert_flushed(client, PARTITION_KEY, rows, batches=2)
    client.delete(PARTITION_KEY, ids=list(range(0, 300, 11)))
    client.flush(PARTITION_KEY)


def _make_arrays(client: MilvusClient) -> None:
    schema = _schema(client)
    for name, (element, _) in ARRAY_TYPES.items():
        extra = {"max_length": 32} if element is DataType.VARCHAR else {}
        schema.add_field(name, DataType.ARRAY, element_type=element, max_capacity=8, **extra)
    client.create_collection(ARRAYS, schema=schema, consistency_level="Strong")
    rows = [{"id": i, "vec": _vector(i)} | {n: make(i) for n, (_, make) in ARRAY_TYPES.items()} for i in range(200)]
    _insert_flushed(client, ARRAYS, rows)


def _make_properties(client: MilvusClient) -> None:
    client.create_collection(PROPS, schema=_schema(client), consistency_level="Strong")
    client.alter_collection_properties(PROPS, PROPERTIES)
    client.create_alias(PROPS, ALIAS)
    _insert_flushed(client, PROPS, [{"id": i, "vec": _vector(i)} for i in range(100)])


def _make_auto_id(client: MilvusClient) -> None:
    schema = _schema(client, auto_id=True)
    schema.add_field("n", DataType.INT32)
    client.create_collection(AUTO_ID, schema=schema, consistency_level="Strong")
    ids = client.insert(AUTO_ID, [{"vec": _vector(i), "n": i} for i in range(250)])["ids"]
    client.flush(AUTO_ID)
    client.delete(AUTO_ID, ids=random.Random(7).sample(list(ids), 40))
    client.flush(AUTO_ID)


def _make_compacted(client: MilvusClient) -> None:
    schema = _schema(client)
    schema.add_field("label", DataType.VARCHAR, max_length=16)
    client.create_collection(COMPACTED, schema=schema, consistency_level="Strong")
    rows = [{"id": i, "vec": _vector(i), "label": f"r{i}"} for i in range(400)]
    _insert_flushed(client, COMPACTED, rows[:240], batches=3)
    client.delete(COMPACTED, ids=list(range(0, 240, 9)))
    client.flush(COMPACTED)
    job = client.compact(COMPACTED)
    deadline = time.monotonic() + 120
    while client.get_compaction_state(job) != "Completed":
        assert time.monotonic() < deadline, "the compaction did not finish"
        time.sleep(0.5)  # polling Milvus's compaction state
    _insert_flushed(client, COMPACTED, rows[240:], batches=2)  # and new segments beside the compacted one


@pytest.fixture(scope="module")
def kinds(sandbox, base_config):
    """The source collections, one backup of them all, and one restore of it under SUFFIX."""
    uri = sandbox.milvus_uri
    drop_if_exists(uri, DB, *KINDS, *(k + SUFFIX for k in KINDS))
    client = MilvusClient(uri=uri)
    engine = Engine(base_config)
    try:
        for make in (_make_partition_key, _make_arrays, _make_properties, _make_auto_id, _make_compacted):
            make(client)
        for name in KINDS:
            _index(client, name)
            client.load_collection(name)
        job = engine.start_backup(BackupRequest(name=BACKUP, collections=list(KINDS)))
        assert job.wait(300) is JobState.SUCCESS, job.error
        restore = engine.start_restore(
            RestoreRequest(BACKUP, suffix=SUFFIX, restore_index=True, load=True, verify="quick")
        )
        assert restore.wait(600) is JobState.SUCCESS, restore.error
        yield job.result
    finally:
        if engine.ctx.catalog.exists(BACKUP):
            engine.delete_backup(BACKUP)
        engine.close()
        if ALIAS in client.list_aliases(PROPS).get("aliases", []) if client.has_collection(PROPS) else False:
            client.drop_alias(ALIAS)
        client.close()
        drop_if_exists(uri, DB, *KINDS, *(k + SUFFIX for k in KINDS))


def _assert_same(uri: str, name: str) -> int:
    source = {r["id"]: r for r in fetch_rows(uri, DB, name)}
    restored = {r["id"]: r for r in fetch_rows(uri, DB, name + SUFFIX)}
    assert set(restored) == set(source), (
        f"{name}: missing {sorted(set(source) - set(restored))[:5]}, extra {sorted(set(restored) - set(source))[:5]}"
    )
    for key, row in source.items():
        assert restored[key] == row, f"{name} row {key}: {restored[key]} != {row}"
    return len(source)


def test_partition_key_collection_comes_back_with_each_key_in_its_partition(sandbox, kinds):
    assert _assert_same(sandbox.milvus_uri, PARTITION_KEY) == 300 - len(range(0, 300, 11))
    client = MilvusClient(uri=sandbox.milvus_uri)
    try:
        partitions = client.list_partitions(PARTITION_KEY + SUFFIX)
        assert sorted(partitions) == sorted(f"_default_{i}" for i in range(NUM_PARTITIONS))
        # A filter on the key searches only the partition the key hashes to: every key's rows must be there.
        for t in range(7):
            found = client.query(PARTITION_KEY + SUFFIX, filter=f'tenant == "tenant{t}"', output_fields=["id"])
            assert sorted(r["id"] for r in found) == [i for i in range(t, 300, 7) if i % 11], t
    finally:
        client.close()


def test_array_fields_of_every_element_type_come_back(sandbox, kinds):
    assert _assert_same(sandbox.milvus_uri, ARRAYS) == 200
    row = next(r for r in fetch_rows(sandbox.milvus_uri, DB, ARRAYS + SUFFIX) if r["id"] == 5)
    for name, (_, make) in ARRAY_TYPES.items():
        want = make(5)
        assert row[name] == (pytest.approx(want) if name == "a_float" else want), name


def test_ttl_and_mmap_properties_come_back_and_aliases_are_not_taken(sandbox, kinds):
    assert _assert_same(sandbox.milvus_uri, PROPS) == 100
    client = MilvusClient(uri=sandbox.milvus_uri)
    try:
        props = client.describe_collection(PROPS + SUFFIX).get("properties", {})
        assert {k: str(v).lower() for k, v in props.items() if k in PROPERTIES} == PROPERTIES
        # The backup records the alias; the restore leaves it with the collection that serves it now.
        saved = next(c for c in kinds.collection_backups if c.collection_name == PROPS)
        assert saved.aliases == [ALIAS]
        assert client.list_aliases(PROPS + SUFFIX).get("aliases", []) == []
        assert client.list_aliases(PROPS).get("aliases", []) == [ALIAS]
    finally:
        client.close()


def test_auto_id_collection_keeps_its_ids_and_its_deletes(sandbox, kinds):
    assert _assert_same(sandbox.milvus_uri, AUTO_ID) == 250 - 40


def test_several_segments_per_partition_after_a_compaction_come_back(sandbox, kinds):
    saved = next(c for c in kinds.collection_backups if c.collection_name == COMPACTED)
    assert len(saved.partition_backups[0].segment_backups) >= 2
    assert _assert_same(sandbox.milvus_uri, COMPACTED) == 400 - len(range(0, 240, 9))
