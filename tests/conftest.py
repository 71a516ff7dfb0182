"""Shared fixtures: one real sandbox (Milvus 2.3.5 + SeaweedFS) per test session, on free ports.

The sandbox is started by the same code as `milvus-backup sandbox start`, in a temporary folder, so
the suite never touches a sandbox someone left running. The demo collections are loaded once; tests
that change data work on copies (restores under new names) and clean up after themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient

from milvus_backup.core.config import Config, load_config
from milvus_backup.core.engine import Engine
from milvus_backup.sandbox.demo import DemoCollection, load_demo
from milvus_backup.sandbox.servers import Sandbox, SandboxState, free_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `compacts` run last. Milvus 2.3.5's manual compaction of one collection also rewrote the
    demo collections' segments in the session sandbox (books came out with its deletes merged: 647 rows and
    no delete logs where every later backup of it expects 650 and delta logs)."""
    items.sort(key=lambda item: item.get_closest_marker("compacts") is not None)  # a stable sort: order kept


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> SandboxState:
    directory = Path(os.environ.get("TEST_SANDBOX_DIR") or tmp_path_factory.mktemp("sandbox"))
    box = Sandbox(directory, milvus_port=free_port(), s3_port=free_port())
    try:
        state = box.start()
        load_demo(state.milvus_uri)
        yield state
    finally:
        box.stop()


@pytest.fixture(scope="session")
def base_config(sandbox: SandboxState) -> Config:
    return load_config(sandbox.config_path, env={})


@pytest.fixture
def engine(base_config: Config):
    eng = Engine(base_config)
    yield eng
    eng.close()


def with_backup_storage(config: Config, **changes: Any) -> Config:
    """The same config with other backup-storage settings."""
    return config.model_copy(update={"backup_storage": config.backup_storage.model_copy(update=changes)})


def fetch_rows(uri: str, db: str, collection: str, partition: str | None = None) -> list[dict]:
    """Every row of a loaded collection (or one partition of it), all fields."""
    client = MilvusClient(uri=uri, db_name=db)
    try:
        return client.query(
            collection, filter="", output_fields=["*"], limit=16384, partition_names=[partition] if partition else None
        )
    finally:
        client.close()


def assert_same_rows(actual: list[dict], demo: DemoCollection) -> None:
    """Every row of the demo collection came back, with every field equal, and nothing else."""
    expected = demo.expected_rows()
    got = {row[demo.primary_key]: row for row in actual}
    assert len(actual) == len(got), "duplicate primary keys after restore"
    assert set(got) == set(expected), (
        f"missing {sorted(set(expected) - set(got))[:5]}, unexpected {sorted(set(got) - set(expected))[:5]}"
    )
    for key, want in expected.items():
        row = got[key]
        for name, value in want.items():
            have = row.get(name)
            if isinstance(value, list):
                have = [float(x) for x in have]
            assert have == value, f"{demo.name} row {key!r} field {name}: {have!r} != {value!r}"


def drop_if_exists(uri: str, db: str, *names: str) -> None:
    client = MilvusClient(uri=uri, db_name=db)
    try:
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
    finally:
        client.close()
