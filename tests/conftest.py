"""Shared fixtures: one real sandbox (Milvus 2.3.5 + SeaweedFS) per test session, on free ports.

The sandbox is started by the same code as `milvus-backup sandbox start`, in a temporary folder, so
the suite never touches a sandbox someone left running. The demo collections are loaded once; tests
that change data work on copies (restores under new names) and clean up after themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import ENV_OVERRIDES, Config, load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.pause import PAUSE_AT, PAUSE_FILE, RESUME_FILE
from milvus_backup.sandbox.demo import DemoCollection, load_demo
from milvus_backup.sandbox.servers import Sandbox, SandboxState, free_port

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `compacts` run last. Milvus 2.3.5's manual compaction of one collection also rewrote the
    demo collections' segments in the session sandbox (books came out with its deletes merged: 647 rows and
    no delete logs where every later backup of it expects 650 and delta logs)."""
    items.sort(key=lambda item: item.get_closest_marker("compacts") is not None)  # a stable sort: order kept


@pytest.fixture(scope="session", autouse=True)
def _own_cache_home(tmp_path_factory) -> Iterator[None]:
    """The listing cache (and anything else under XDG_CACHE_HOME) of this run's processes, the CLI's and the
    app's included, goes to a temporary folder: never into the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


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


@contextmanager
def made_backup(config: Config, prefix: str, collections: list[str]) -> Iterator[str]:
    """A backup of `collections` under a fresh name starting with `prefix`, deleted when the block ends."""
    engine = Engine(config)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        job = engine.start_backup(BackupRequest(name=name, collections=collections))
        assert job.wait(300) is JobState.SUCCESS, job.error
        yield name
        engine.delete_backup(name)
    finally:
        engine.close()


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


def traced_peak(run: Callable[[], Any]) -> tuple[Any, int]:
    """run()'s result, and the peak of Python's own allocations while it ran (tracemalloc: no timing)."""
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


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


def pymilvus_summaries(uri: str, token: str = "") -> list[tuple]:
    """Every collection as pymilvus's own client reads it, database by database: (db, name, id, rows, load
    state, partitions, "field:INDEX_TYPE" labels), to hold the tool's gRPC reads against."""
    found = []
    for db in sorted(MilvusClient(uri, token=token).list_databases()):
        client = MilvusClient(uri, token=token, db_name=db)
        try:
            for name in sorted(client.list_collections()):
                indexes = [client.describe_index(name, i) for i in client.list_indexes(name)]
                found.append(
                    (
                        db,
                        name,
                        client.describe_collection(name)["collection_id"],
                        int(client.get_collection_stats(name)["row_count"]),
                        client.get_load_state(name)["state"].name,
                        len(client.list_partitions(name)),
                        tuple(sorted(f"{i['field_name']}:{i['index_type']}" for i in indexes)),
                    )
                )
        finally:
            client.close()
    return found


def summarised(summaries: list) -> list[tuple]:
    """The tool's CollectionSummary list in pymilvus_summaries' shape."""
    return sorted(
        (s.db_name, s.name, s.collection_id, s.row_count, s.load_state, s.partitions, tuple(sorted(s.indexes)))
        for s in summaries
    )


def drop_if_exists(uri: str, db: str, *names: str) -> None:
    client = MilvusClient(uri=uri, db_name=db)
    try:
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
    finally:
        client.close()


# -- the command line in a child process -----------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The caller's environment without what would steer a child against the test's intent: overrides of
    config keys (the config file decides), pause points and the API token. `extra` is added back."""
    names = {name for name, _ in ENV_OVERRIDES} | {PAUSE_AT, PAUSE_FILE, RESUME_FILE, "MILVUS_BACKUP_API_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def cli_command(config: Path | str | None, *args: str) -> list[str]:
    """`milvus-backup [--config CONFIG] ARGS` as this interpreter runs it."""
    command = [sys.executable, "-m", "milvus_backup.cli"]
    if config is not None:
        command += ["--config", str(config)]
    return [*command, *args]


def run_cli(
    config: Path | str | None, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Runs the CLI to its end, no stdin, output captured; the exit code is the caller's to check."""
    return subprocess.run(
        cli_command(config, *args),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        env=env if env is not None else cli_env(),
        timeout=timeout,
    )
