"""`kill -9` of the real CLI at each phase of a backup and in the middle of a restore.

The CLI runs in a subprocess with the documented test hook (core/pause.py): it stops at a named point
and says so in a file; the test waits for that file, then sends SIGKILL. Afterwards a killed backup is
never complete: `list` shows it incomplete, get/verify/restore refuse it, `delete` removes every object,
and the same name works again. A killed restore leaves the backup untouched, the target absent or
partial, and a rerun with --drop_exist_collection brings back every row. A drop-existing restore killed
mid-import keeps the old collection whole, and a rerun drops the half-filled temporary one; killed during
its swap, it leaves the old or the restored collection whole under the target name (or aside, named in
its swap intent), and a rerun finishes the swap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from minio import Minio
from pymilvus import MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.paths import BACKUP_META, MANIFEST, swap_intents_root
from milvus_backup.core.pause import PAUSE_AT, PAUSE_FILE
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, cli_command, cli_env, drop_if_exists, fetch_rows, run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "a-bucket"


def _objects(sandbox, prefix: str) -> dict[str, bytes]:
    s3 = Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)
    return {
        o.object_name: s3.get_object(BUCKET, o.object_name).read()
        for o in s3.list_objects(BUCKET, prefix=prefix, recursive=True)
    }


def _kill_at(sandbox, tmp_path: Path, point: str, *args: str, **env: str) -> None:
    """Run the CLI until it reaches `point`, then SIGKILL it."""
    marker = tmp_path / f"paused-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        cli_command(sandbox.config_path, *args),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(**{PAUSE_AT: point, PAUSE_FILE: str(marker)}, **env),
    )
    try:
        deadline = time.monotonic() + 300
        while not (marker.is_file() and point in marker.read_text()):
            if proc.poll() is not None:
                raise AssertionError(
                    f"the CLI ended (exit {proc.returncode}) before reaching {point}: "
                    f"{proc.stderr.read().decode()[-2000:]}"
                )
            assert time.monotonic() < deadline, f"the CLI never reached {point}"
            time.sleep(0.05)  # polling the marker, not guessing a duration
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def _listed(stdout: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in stdout.splitlines()[1:] if line.strip()}


@pytest.mark.parametrize("point", ["backup:copy", "backup:meta", "backup:final"])
def test_a_backup_killed_at_any_phase_is_never_complete_and_delete_then_reuse_work(sandbox, tmp_path, point):
    name = f"crash_{point.split(':')[1]}_{uuid.uuid4().hex[:6]}"
    prefix = f"backup/{name}/"
    try:
        _kill_at(
            sandbox, tmp_path, point, "create", "-n", name, "-c", "hello_milvus,books", BACKUP_PARALLELISM_COPYDATA="1"
        )
        left = _objects(sandbox, prefix)
        assert left, "the kill came before anything was written: the test did not test a crash"
        assert prefix + f"meta/{BACKUP_META}" not in left
        assert (prefix + f"meta/{MANIFEST}" in left) is (point == "backup:final")
        if point == "backup:copy":
            assert all("/binlogs/" in k for k in left)

        listing = run_cli(sandbox.config_path, "list")
        assert listing.returncode == 0, listing.stderr
        assert _listed(listing.stdout)[name] == "incomplete"
        for args in (["get", "-n", name], ["verify", "-n", name, "--full"], ["restore", "-n", name, "-s", "_crash"]):
            proc = run_cli(sandbox.config_path, *args)
            assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
            assert "incomplete" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        taken = run_cli(sandbox.config_path, "create", "-n", name, "-c", "hello_milvus")
        assert taken.returncode == 1 and "already exists" in taken.stderr

        deleted = run_cli(sandbox.config_path, "delete", "-n", name)
        assert deleted.returncode == 0, deleted.stderr
        assert f"({len(left)} objects)" in deleted.stdout
        assert _objects(sandbox, prefix) == {}

        again = run_cli(sandbox.config_path, "create", "-n", name, "-c", "hello_milvus,books")
        assert again.returncode == 0, again.stderr
        verified = run_cli(sandbox.config_path, "verify", "-n", name, "--full")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert _listed(run_cli(sandbox.config_path, "list").stdout)[name] == "success"
    finally:
        run_cli(sandbox.config_path, "delete", "-n", name)


def test_a_restore_killed_mid_import_leaves_the_backup_untouched_and_a_rerun_succeeds(sandbox, base_config, tmp_path):
    name = f"crash_restore_{uuid.uuid4().hex[:6]}"
    target = "books_crash"
    engine = Engine(base_config)
    drop_if_exists(sandbox.milvus_uri, "default", target)
    try:
        job = engine.start_backup(BackupRequest(name=name, collections=["books"]))
        assert job.wait(300) is JobState.SUCCESS, job.error
        before = _objects(sandbox, f"backup/{name}/")
        expected = len(demo_collection("books").expected_rows())

        _kill_at(sandbox, tmp_path, "restore:import", "restore", "-n", name, "-s", "_crash")

        assert _objects(sandbox, f"backup/{name}/") == before  # the backup is untouched
        assert run_cli(sandbox.config_path, "verify", "-n", name, "--full").returncode == 0
        milvus = engine.ctx.milvus
        if milvus.has_collection("default", target):  # partial: created, not every group imported
            assert milvus.row_count("default", target) <= expected + len(demo_collection("books").deleted)
        refused = run_cli(sandbox.config_path, "restore", "-n", name, "-s", "_crash")
        assert refused.returncode == 1 and "already exist" in refused.stderr

        again = ("restore", "-n", name, "-s", "_crash", "--drop_exist_collection", "--restore_index", "--load")
        rerun = run_cli(sandbox.config_path, *again)
        assert rerun.returncode == 0, rerun.stderr
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), demo_collection("books"))
        assert _objects(sandbox, f"backup/{name}/") == before
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", target)
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()


@pytest.mark.parametrize("point", ["restore:swap:intent", "restore:swap:aside", "restore:swap:renamed"])
def test_a_drop_existing_restore_killed_during_its_swap_loses_nothing_and_a_rerun_recovers(
    sandbox, base_config, tmp_path, point
):
    name = f"crash_swap_{uuid.uuid4().hex[:6]}"
    target = f"books_swap_{point.rsplit(':', 1)[1]}"
    alias = f"{target}_alias"
    engine = Engine(base_config)
    milvus = engine.ctx.milvus
    client = MilvusClient(uri=sandbox.milvus_uri)
    books = demo_collection("books")
    args = ("restore", "-n", name, "-r", f"books:{target}", "--restore_index", "--load", "--verify", "quick")

    def names() -> dict[str, int]:
        return {n: milvus.collection_id("default", n) for n in milvus.list_collections() if n.startswith(target)}

    try:
        job = engine.start_backup(BackupRequest(name=name, collections=["books"]))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert run_cli(sandbox.config_path, *args).returncode == 0  # the "old" collection: ten rows fewer, and an alias
        client.delete(target, ids=[books.make_row(i)["isbn"] for i in range(100, 110)])
        client.flush(target)
        client.create_alias(target, alias)
        old_id = milvus.collection_id("default", target)
        old_rows = fetch_rows(sandbox.milvus_uri, "default", target)

        _kill_at(sandbox, tmp_path, point, *args, "--drop_exist_collection")

        left = names()
        aside = next((n for n in left if "_replaced_" in n), None)
        restored = next((n for n in left if "_restoring_" in n), None)
        if point == "restore:swap:intent":  # nothing renamed yet: the old one serves, whole
            assert left[target] == old_id and aside is None and restored is not None
            assert len(fetch_rows(sandbox.milvus_uri, "default", target)) == len(old_rows)
        elif point == "restore:swap:aside":  # the name is free; both are whole under their own names
            assert target not in left and left[aside] == old_id and restored is not None
            assert len(fetch_rows(sandbox.milvus_uri, "default", aside)) == len(old_rows)
            assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", restored), books)
        else:  # the restored one holds the name; the old one waits aside
            assert left[target] != old_id and left[aside] == old_id and restored is None
            assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), books)

        rerun = run_cli(sandbox.config_path, *args, "--drop_exist_collection")
        assert rerun.returncode == 0, rerun.stderr
        assert list(names()) == [target]  # nothing aside, nothing half-restored
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), books)
        assert milvus.aliases("default", target) == [alias]
        assert list(engine.ctx.milvus_storage.list(swap_intents_root(engine.ctx.milvus_layout.root) + "/")) == []
    finally:
        for n in [n for n in milvus.list_collections() if n.startswith(target)]:
            for a in milvus.aliases("default", n):
                client.drop_alias(a)
            client.drop_collection(n)
        client.close()
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()


def test_a_drop_existing_restore_killed_mid_import_leaves_the_old_collection_and_a_rerun_cleans_up(
    sandbox, base_config, tmp_path
):
    name = f"crash_fill_{uuid.uuid4().hex[:6]}"
    target = "books_fill"
    engine = Engine(base_config)
    milvus = engine.ctx.milvus
    client = MilvusClient(uri=sandbox.milvus_uri)
    args = ("restore", "-n", name, "-r", f"books:{target}", "--restore_index", "--load", "--verify", "quick")
    try:
        job = engine.start_backup(BackupRequest(name=name, collections=["books"]))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert run_cli(sandbox.config_path, *args).returncode == 0
        client.delete(target, ids=[demo_collection("books").make_row(i)["isbn"] for i in range(100, 110)])
        client.flush(target)
        old_id = milvus.collection_id("default", target)
        old_rows = fetch_rows(sandbox.milvus_uri, "default", target)

        _kill_at(sandbox, tmp_path, "restore:import", *args, "--drop_exist_collection")

        assert milvus.collection_id("default", target) == old_id  # the old one serves, whole
        assert fetch_rows(sandbox.milvus_uri, "default", target) == old_rows
        half = [n for n in milvus.list_collections() if n.startswith(f"{target}_restoring_")]
        assert len(half) == 1  # the half-filled temporary collection, named in the swap record

        rerun = run_cli(sandbox.config_path, *args, "--drop_exist_collection")
        assert rerun.returncode == 0, rerun.stderr
        assert [n for n in milvus.list_collections() if n.startswith(target)] == [target]  # half[0] is gone
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), demo_collection("books"))
        assert list(engine.ctx.milvus_storage.list(swap_intents_root(engine.ctx.milvus_layout.root) + "/")) == []
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", *[n for n in milvus.list_collections() if n.startswith(target)])
        client.close()
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()
