"""The `milvus-backup` command as a user runs it: a subprocess, stdin not a terminal, the sandbox's config.

Every command is checked by its exit code, what it printed (stdout for answers, stderr for progress and
one-line errors) and, above all, by what it did to Milvus and to the bucket.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
import yaml
from minio import Minio
from pymilvus import MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.sandbox.demo import DEMO_COLLECTIONS, demo_collection
from tests.conftest import assert_same_rows, cli_command, cli_env, drop_if_exists, fetch_rows, run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "a-bucket"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _run(sandbox, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_cli(sandbox.config_path, *args, **kwargs)


def _error_line(proc: subprocess.CompletedProcess) -> str:
    """stderr holds exactly one non-empty line, an `error:` line; returns it."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


def _s3(sandbox) -> Minio:
    return Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)


def _keys(sandbox, prefix: str) -> list[str]:
    return sorted(o.object_name for o in _s3(sandbox).list_objects(BUCKET, prefix=prefix, recursive=True))


def _listed(stdout: str) -> dict[str, str]:
    """`list`'s table as {name: state}."""
    lines = stdout.splitlines()
    assert lines and lines[0].split()[:2] == ["NAME", "STATE"], stdout
    return {line.split()[0]: line.split()[1] for line in lines[1:] if line.strip()}


def _live_count(uri: str, db: str, name: str) -> int:
    return len(fetch_rows(uri, db, name))


def _remove_backup(base_config, name: str) -> None:
    engine = Engine(base_config)
    try:
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def cli_backup(sandbox, base_config):
    """A backup of hello_milvus made by `milvus-backup create`; yields (name, the finished process)."""
    name = f"cli_{_uid()}"
    try:
        proc = _run(sandbox, "create", "-n", name, "-c", "hello_milvus")
        yield name, proc
    finally:
        _remove_backup(base_config, name)


def test_create_names_the_backup_and_prints_plain_progress(sandbox, cli_backup):
    name, proc = cli_backup
    assert proc.returncode == 0, proc.stderr
    assert name in proc.stdout
    # not a terminal: plain lines, one per phase, no carriage returns or escape codes
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    phases = [line.split()[0] for line in proc.stderr.splitlines() if line.strip()]
    assert "copy" in phases, proc.stderr
    assert "error:" not in proc.stderr
    assert f"backup/{name}/meta/backup_meta.json" in _keys(sandbox, f"backup/{name}/")
    # the job's log goes to log.file.filename
    log_file = Path(yaml.safe_load(sandbox.config_path.read_text())["log"]["file"]["filename"])
    assert f"backup {name} complete" in log_file.read_text()


def test_the_job_log_is_not_repeated_on_the_terminal(sandbox, cli_backup):
    _, proc = cli_backup
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith(("INFO ", "DEBUG "))], proc.stderr


def test_list_and_get_show_the_backup(sandbox, cli_backup):
    name, proc = cli_backup
    assert proc.returncode == 0, proc.stderr
    listing = _run(sandbox, "list")
    assert listing.returncode == 0, listing.stderr
    assert _listed(listing.stdout).get(name) == "success"

    got = _run(sandbox, "get", "-n", name)
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    full = json.loads(_s3(sandbox).get_object(BUCKET, f"backup/{name}/meta/full_meta.json").read())
    assert data["name"] == name and data["state_code"] == 2
    assert [c["collection_name"] for c in data["collection_backups"]] == ["hello_milvus"]
    assert data["collection_backups"] == full["collection_backups"]
    assert sum(
        s["num_of_rows"] for p in data["collection_backups"][0]["partition_backups"] for s in p["segment_backups"]
    ) >= len(demo_collection("hello_milvus").expected_rows())


def test_restore_with_suffix_brings_back_every_row_and_refuses_an_existing_target(sandbox, cli_backup):
    name, proc = cli_backup
    assert proc.returncode == 0, proc.stderr
    suffix = f"_cli{_uid()}"
    target = "hello_milvus" + suffix
    drop_if_exists(sandbox.milvus_uri, "default", target)
    try:
        restored = _run(sandbox, "restore", "-n", name, "-s", suffix, "--restore_index", "--load")
        assert restored.returncode == 0, restored.stderr
        assert target in restored.stdout
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), demo_collection("hello_milvus"))

        # the same again: the target exists, nothing is touched
        again = _run(sandbox, "restore", "-n", name, "-s", suffix)
        assert again.returncode == 1
        assert target in _error_line(again)
        assert _live_count(sandbox.milvus_uri, "default", target) == 2980
        # restoring without a suffix targets the source collection itself: refused, source untouched
        onto_source = _run(sandbox, "restore", "-n", name)
        assert onto_source.returncode == 1
        assert "hello_milvus" in _error_line(onto_source)
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "hello_milvus"), demo_collection("hello_milvus"))
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", target)


def test_create_with_a_taken_name_fails(sandbox, cli_backup):
    name, proc = cli_backup
    assert proc.returncode == 0, proc.stderr
    before = _keys(sandbox, f"backup/{name}/")
    again = _run(sandbox, "create", "-n", name, "-c", "books")
    assert again.returncode == 1
    assert name in _error_line(again)
    assert _keys(sandbox, f"backup/{name}/") == before


def test_delete_removes_the_backup_and_a_second_delete_fails(sandbox, base_config):
    name = f"cli_del_{_uid()}"
    engine = Engine(base_config)
    try:
        job = engine.start_backup(BackupRequest(name=name, collections=["books"]))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert _listed(_run(sandbox, "list").stdout).get(name) == "success"

        deleted = _run(sandbox, "delete", "-n", name)
        assert deleted.returncode == 0, deleted.stderr
        assert name in deleted.stdout
        assert _keys(sandbox, f"backup/{name}/") == []
        listing = _run(sandbox, "list")
        assert listing.returncode == 0 and name not in _listed(listing.stdout)

        second = _run(sandbox, "delete", "-n", name)
        assert second.returncode == 1
        assert name in _error_line(second)
        assert second.stdout == ""
    finally:
        _remove_backup(base_config, name)
        engine.close()


def test_get_of_a_missing_backup_fails(sandbox):
    name = f"missing_{_uid()}"
    proc = _run(sandbox, "get", "-n", name)
    assert proc.returncode == 1
    assert name in _error_line(proc)
    assert proc.stdout == ""


def test_invalid_backup_name_is_refused_before_anything_is_written(sandbox):
    before = _keys(sandbox, "backup/")
    proc = _run(sandbox, "create", "-n", "bad-name", "-c", "hello_milvus")
    assert proc.returncode == 1
    assert "bad-name" in _error_line(proc)
    assert _keys(sandbox, "backup/") == before
    assert not _keys(sandbox, "backup/bad-name")


def test_missing_config_file_is_a_usage_error(sandbox):
    proc = run_cli("/nonexistent.yaml", "list")
    assert proc.returncode == 2
    assert "/nonexistent.yaml" in _error_line(proc)


def test_unknown_config_key_is_a_usage_error_naming_the_key(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({"milvus": {"adress": "x"}}))
    proc = run_cli(config, "list")
    assert proc.returncode == 2
    assert "milvus.adress" in _error_line(proc)


def test_wrong_secret_fails_and_is_never_printed(sandbox, tmp_path):
    raw = yaml.safe_load(sandbox.config_path.read_text())
    raw["minio"]["secretAccessKey"] = "s3cr3t-wrong"
    raw["minio"]["backupSecretAccessKey"] = "s3cr3t-wrong"
    raw["log"]["file"]["filename"] = str(tmp_path / "backup.log")
    config = tmp_path / "wrong.yaml"
    config.write_text(yaml.safe_dump(raw))
    name = f"never_{_uid()}"
    for args in (["list"], ["create", "-n", name, "-c", "hello_milvus"]):
        proc = run_cli(config, *args)
        assert proc.returncode != 0, (args, proc.stdout)
        assert "s3cr3t-wrong" not in proc.stdout + proc.stderr
        _error_line(proc)
    log = tmp_path / "backup.log"
    assert not log.exists() or "s3cr3t-wrong" not in log.read_text()
    assert not _keys(sandbox, f"backup/{name}/")


@pytest.mark.parametrize("args", [["restore"], ["restore", "-s", "_x"], ["frobnicate"], ["create", "--bogus"]])
def test_bad_usage_exits_2_with_one_line(sandbox, args):
    proc = _run(sandbox, *args)
    assert proc.returncode == 2
    _error_line(proc)


def test_list_collections_shows_the_demo_with_row_counts(sandbox):
    proc = _run(sandbox, "list-collections")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["COLLECTION", "ROWS", "LOAD", "STATE"]
    table = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.strip()}
    for demo in DEMO_COLLECTIONS:
        full_name = f"{demo.db}.{demo.name}"
        assert full_name in table, proc.stdout
        shown = int(table[full_name][0].replace(",", ""))
        # Milvus's own statistics (what the ROWS column reports): every inserted row, deleted or not,
        # until compaction drops the deleted ones
        client = MilvusClient(uri=sandbox.milvus_uri, db_name=demo.db)
        try:
            stats = int(client.get_collection_stats(demo.name)["row_count"])
        finally:
            client.close()
        assert shown == stats
        inserted = sum(len(numbers) for _, numbers in demo.batches)
        assert len(demo.expected_rows()) <= shown <= inserted
        assert table[full_name][1] == "Loaded"


def test_environment_wins_over_the_config_file(sandbox):
    proc = _run(sandbox, "list-collections", env=cli_env(MILVUS_PORT="1"), timeout=90)
    assert proc.returncode == 1
    line = _error_line(proc)
    assert "127.0.0.1:1" in line
    assert proc.stdout == ""
    # and the same config without the variable works
    assert _run(sandbox, "list-collections").returncode == 0


def test_ctrl_c_cancels_a_backup_and_leaves_nothing_complete(sandbox, base_config):
    name = f"cli_sigint_{_uid()}"
    # one copy at a time, so the copy phase lasts long enough to be interrupted
    env = cli_env(BACKUP_PARALLELISM_COPYDATA="1")
    proc = subprocess.Popen(
        cli_command(sandbox.config_path, "create", "-n", name, "-c", "hello_milvus,books"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def pump():
        for line in proc.stderr:
            stderr.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while True:
            line = lines.get(timeout=120)
            if line is None or line.startswith("copy"):
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        reader.join(timeout=30)
        stdout = proc.stdout.read()
        text = "".join(stderr)
        assert proc.returncode in (0, 130), text
        if proc.returncode == 130:
            assert "Traceback" not in text
            assert [line for line in text.splitlines() if line.startswith("error:")], text
            assert _keys(sandbox, f"backup/{name}/meta/backup_meta.json") == []
            listing = _run(sandbox, "list")
            assert listing.returncode == 0
            assert _listed(listing.stdout).get(name) != "success"
        else:  # it had finished before the signal: then it is a complete backup
            assert name in stdout
            assert _listed(_run(sandbox, "list").stdout).get(name) == "success"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _remove_backup(base_config, name)


# -- the upstream's newer flags: --filter, --strategy, --rbac ---------------------------------------------


def _all_collections(uri: str) -> set[str]:
    found = set()
    for db in ("default", "shop"):
        client = MilvusClient(uri=uri, db_name=db)
        found |= {f"{db}.{name}" for name in client.list_collections()}
        client.close()
    return found


def test_filter_and_strategy_on_create_and_filter_after_the_suffix_on_restore(sandbox, base_config):
    name, suffix, uri = f"flt_{_uid()}", f"_f{_uid()}", sandbox.milvus_uri
    try:
        made = _run(sandbox, "create", "-n", name, "--filter", "shop.*,books", "--strategy", "bulk_flush", "--json")
        assert made.returncode == 0, made.stderr
        info = json.loads(made.stdout)
        assert sorted(f"{c['db_name']}.{c['collection_name']}" for c in info["collection_backups"]) == [
            "default.books",
            "shop.products",
        ]
        before = _all_collections(uri)
        # the filter is matched against the names after the suffix: the old name matches nothing
        missed = _run(sandbox, "restore", "-n", name, "-s", suffix, "--filter", "books")
        assert missed.returncode == 1 and "matches none of the restore's targets" in _error_line(missed)
        assert _all_collections(uri) == before
        restored = _run(
            sandbox, "restore", "-n", name, "-s", suffix, "--filter", f"books{suffix}", "--restore_index", "--load"
        )
        assert restored.returncode == 0, restored.stderr
        assert _all_collections(uri) - before == {f"default.books{suffix}"}
        assert_same_rows(fetch_rows(uri, "default", f"books{suffix}"), demo_collection("books"))
    finally:
        drop_if_exists(uri, "default", f"books{suffix}")
        _remove_backup(base_config, name)


@pytest.mark.parametrize(
    "args,words",
    [
        (["--strategy", "fastest"], "unknown strategy 'fastest': use one of meta_only, skip_flush"),
        (["--filter", "shop."], "the filter shop. matches no collection"),
        (["--filter", "no_db.*"], "database no_db of the filter not found"),
        (["--filter", "a-b"], "bad filter rule 'a-b'"),
        (["--filter", "books", "-c", "books"], "either filter or collection names"),
        (["--meta_only", "--strategy", "skip_flush"], "contradict each other"),
    ],
)
def test_bad_filters_and_strategies_write_nothing(sandbox, args, words):
    name = f"never_{_uid()}"
    before = _keys(sandbox, "")
    proc = _run(sandbox, "create", "-n", name, *args)
    assert proc.returncode == 1
    assert words in _error_line(proc)
    assert _keys(sandbox, "") == before


def test_rbac_is_taken_on_create_and_restore(sandbox, base_config):
    name, suffix = f"rbac_{_uid()}", f"_rb{_uid()}"
    try:
        assert _run(sandbox, "create", "-n", name, "-c", "books", "--rbac", "--strategy", "meta_only").returncode == 0
        proc = _run(sandbox, "restore", "-n", name, "-s", suffix, "--rbac", "--meta_only")
        assert proc.returncode == 0, proc.stderr
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", f"books{suffix}")
        _remove_backup(base_config, name)
