"""Deterministic sample collections for the sandbox's `--demo` and for the test suite.

Every value is a function of the row number, so a test can rebuild what each row must hold after a
restore and compare every row and every field. Vectors use multiples of 1/1024 so float32 storage
returns them exactly. The set covers what a restore must bring back: several segments, partitions,
deletes, a VarChar primary key, JSON, a dynamic field, and a second database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymilvus import DataType, MilvusClient


def _vector(i: int, dim: int) -> list[float]:
    return [((i * 31 + j * 17) % 997) / 1024.0 for j in range(dim)]


@dataclass(frozen=True)
class DemoCollection:
    db: str
    name: str
    primary_key: str
    build_schema: Callable[[], Any]
    make_row: Callable[[int], dict]
    batches: tuple[tuple[str | None, range], ...]  # (partition, row numbers), one flush after each
    deleted: tuple[int, ...] = ()
    index: dict = field(default_factory=dict)
    partitions: tuple[str, ...] = ()

    def expected_rows(self) -> dict[Any, dict]:
        """The live rows after loading, keyed by primary key."""
        rows = {}
        for _, numbers in self.batches:
            for i in numbers:
                if i not in self.deleted:
                    row = self.make_row(i)
                    rows[row[self.primary_key]] = row
        return rows

    def partition_of(self) -> dict[Any, str]:
        return {
            self.make_row(i)[self.primary_key]: (part or "_default")
            for part, numbers in self.batches
            for i in numbers
            if i not in self.deleted
        }


def _hello_schema():
    schema = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=False, description="hello_milvus is the simplest demo"
    )
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("random", DataType.DOUBLE)
    schema.add_field("embeddings", DataType.FLOAT_VECTOR, dim=8)
    return schema


def _hello_row(i: int) -> dict:
    return {"pk": i, "random": (i % 1000) / 8.0, "embeddings": _vector(i, 8)}


def _books_schema():
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("isbn", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("title", DataType.VARCHAR, max_length=256)
    schema.add_field("year", DataType.INT32)
    schema.add_field("in_print", DataType.BOOL)
    schema.add_field("info", DataType.JSON)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=16)
    return schema


def _books_row(i: int) -> dict:
    return {
        "isbn": f"978-{i:09d}",
        "title": f"Book number {i} — édition {i % 7}",
        "year": 1900 + i % 125,
        "in_print": i % 3 == 0,
        "info": {"pages": 100 + i, "tags": [f"t{i % 5}", f"t{i % 11}"], "rating": (i % 50) / 10},
        "embedding": _vector(i, 16),
        "shelf": f"S{i % 12}",  # dynamic field
    }


def _products_schema():
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("name", DataType.VARCHAR, max_length=64)
    schema.add_field("price", DataType.FLOAT)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
    return schema


def _products_row(i: int) -> dict:
    return {"id": 10_000 + i, "name": f"product-{i}", "price": i * 0.25, "vector": _vector(i, 4)}


DEMO_COLLECTIONS: tuple[DemoCollection, ...] = (
    DemoCollection(
        db="default",
        name="hello_milvus",
        primary_key="pk",
        build_schema=_hello_schema,
        make_row=_hello_row,
        batches=((None, range(0, 2000)), (None, range(2000, 3000))),
        deleted=tuple(range(0, 3000, 150)),
        index={
            "field_name": "embeddings",
            "index_type": "HNSW",
            "metric_type": "L2",
            "params": {"M": 8, "efConstruction": 64},
        },
    ),
    DemoCollection(
        db="default",
        name="books",
        primary_key="isbn",
        build_schema=_books_schema,
        make_row=_books_row,
        batches=((None, range(0, 300)), ("fiction", range(300, 500)), ("science", range(500, 650))),
        deleted=(5, 310, 520),
        index={"field_name": "embedding", "index_type": "IVF_FLAT", "metric_type": "IP", "params": {"nlist": 16}},
        partitions=("fiction", "science"),
    ),
    DemoCollection(
        db="shop",
        name="products",
        primary_key="id",
        build_schema=_products_schema,
        make_row=_products_row,
        batches=((None, range(0, 200)),),
        index={"field_name": "vector", "index_type": "FLAT", "metric_type": "L2", "params": {}},
    ),
)


def demo_collection(name: str) -> DemoCollection:
    return next(c for c in DEMO_COLLECTIONS if c.name == name)


def load_demo(
    uri: str,
    collections: tuple[DemoCollection, ...] = DEMO_COLLECTIONS,
    *,
    replace: bool = False,
    load: bool = True,
    token: str = "",
) -> list[str]:
    """Create the demo collections (skipping those present unless `replace`); returns what was created."""
    created = []
    for demo in collections:
        with_default = MilvusClient(uri=uri, token=token)
        try:
            if demo.db not in with_default.list_databases():
                with_default.create_database(demo.db)
        finally:
            with_default.close()
        client = MilvusClient(uri=uri, token=token, db_name=demo.db)
        try:
            if client.has_collection(demo.name):
                if not replace:
                    continue
                client.drop_collection(demo.name)
            create_demo_collection(client, demo, load=load)
            created.append(f"{demo.db}.{demo.name}")
        finally:
            client.close()
    return created


def create_demo_collection(client: MilvusClient, demo: DemoCollection, *, load: bool = True) -> None:
    client.create_collection(demo.name, schema=demo.build_schema(), shards_num=1, consistency_level="Strong")
    for partition in demo.partitions:
        client.create_partition(demo.name, partition)
    for part, numbers in demo.batches:
        rows = [demo.make_row(i) for i in numbers]
        for start in range(0, len(rows), 1000):
            client.insert(demo.name, rows[start : start + 1000], partition_name=part or "")
        client.flush(demo.name)  # one sealed segment per batch
    if demo.deleted:
        keys = [demo.make_row(i)[demo.primary_key] for i in demo.deleted]
        client.delete(demo.name, ids=keys)
        client.flush(demo.name)
    if demo.index:
        params = client.prepare_index_params()
        params.add_index(**demo.index)
        client.create_index(demo.name, params)
        if load:
            client.load_collection(demo.name)
