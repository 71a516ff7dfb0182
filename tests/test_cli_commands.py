"""The commands operators script: `check`, `server`, `--json` answers, `-d` databases and default names.

Run as a user runs them (a subprocess, the sandbox's config), checked by exit code, output and effect.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from milvus_backup.sandbox.demo import demo_collection
from milvus_backup.sandbox.servers import free_port
from tests.conftest import assert_same_rows, cli_env, drop_if_exists, fetch_rows, run_cli
from tests.test_cli import _error_line, _keys, _run, _uid

pytestmark = pytest.mark.integration


def test_check_passes_against_the_sandbox_and_leaves_nothing(sandbox):
    proc = _run(sandbox, "check")
    assert proc.returncode == 0, proc.stderr
    steps = [line for line in proc.stdout.splitlines() if not line.startswith("milvus bucket")]
    assert len(steps) >= 6 and all(line.startswith("ok ") for line in steps), proc.stdout
    assert "milvus bucket a-bucket (rootPath files), backup bucket a-bucket (rootPath backup)" in proc.stdout
    as_json = json.loads(_run(sandbox, "check", "--json").stdout)
    assert as_json["ok"] is True and as_json["milvus_version"].startswith("v2.3.5")
    assert not [k for k in _keys(sandbox, "") if ".milvus_backup_probe_" in k]


def test_check_fails_with_one_line_when_the_store_is_unreachable(sandbox, tmp_path):
    config = yaml.safe_load(sandbox.config_path.read_text())
    config["minio"]["port"] = free_port()  # nothing listens there
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli(path, "check")
    assert proc.returncode == 1
    # the store's retries warn as they go; the verdict is one error line, last
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert "check failed at milvus storage bucket" in lines[-1] and "cannot reach" in lines[-1]
    assert "ok      milvus " in proc.stdout and "FAILED" in proc.stdout
    assert "minioadmin" not in proc.stdout + proc.stderr


def test_check_with_a_local_backup_folder_copies_across_the_two_stores(sandbox, tmp_path):
    config = yaml.safe_load(sandbox.config_path.read_text())
    folder = tmp_path / "backups"
    folder.mkdir()
    config["minio"].update(backupStorageType="local", backupRootPath=str(folder))
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli(path, "check", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["backup_bucket"] == str(folder)
    across = next(s for s in report["steps"] if s["name"] == "copy milvus storage -> backup storage")
    assert str(folder) in across["detail"]
    assert list(folder.iterdir()) == []  # the probes are gone
    assert not [k for k in _keys(sandbox, "") if ".milvus_backup_probe_" in k]
    missing = tmp_path / "missing.yaml"
    config["minio"]["backupRootPath"] = str(tmp_path / "nope")
    missing.write_text(yaml.safe_dump(config))
    failed = run_cli(missing, "check")
    assert failed.returncode == 1 and "does not exist" in _error_line(failed)


def test_list_collections_as_json(sandbox):
    proc = _run(sandbox, "list-collections", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {f"{c['db_name']}.{c['collection_name']}": c for c in json.loads(proc.stdout)}
    hello = demo_collection("hello_milvus")
    # Milvus's statistics count deleted rows until compaction drops them
    shown = rows["default.hello_milvus"]["row_count"]
    assert len(hello.expected_rows()) <= shown <= sum(len(numbers) for _, numbers in hello.batches)
    assert rows["default.hello_milvus"]["load_state"] == "Loaded"
    assert "shop.products" in rows


def test_create_of_databases_with_a_default_name_then_restore_and_delete_as_json(sandbox):
    created = _run(sandbox, "create", "-d", "default,shop", "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    name = info["name"]
    try:
        assert re.fullmatch(r"backup_\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}_\d+", name), name
        assert info["state_code"] == 2 and info["progress"] == 100
        assert sorted(f"{c['db_name']}.{c['collection_name']}" for c in info["collection_backups"]) == [
            "default.books",
            "default.hello_milvus",
            "shop.products",
        ]
        listed = json.loads(_run(sandbox, "list", "--json").stdout)
        [mine] = [b for b in listed if b["name"] == name]
        assert mine["state"] == "success" and mine["id"] == info["id"] and mine["size"] == info["size"]
        assert json.loads(_run(sandbox, "get", "-n", name, "--json").stdout)["id"] == info["id"]

        suffix = f"_cj{_uid()}"
        restored = _run(
            sandbox, "restore", "-n", name, "-c", "shop.products", "-s", suffix, "--restore_index", "--load", "--json"
        )
        assert restored.returncode == 0, restored.stderr
        record = json.loads(restored.stdout)
        assert record["state_code"] == 2 and record["progress"] == 100
        [task] = record["collection_restore_tasks"]
        assert (task["target_db_name"], task["target_collection_name"]) == ("shop", f"products{suffix}")
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "shop", f"products{suffix}"), demo_collection("products"))
        drop_if_exists(sandbox.milvus_uri, "shop", f"products{suffix}")
    finally:
        deleted = _run(sandbox, "delete", "-n", name, "--json")
    assert deleted.returncode == 0, deleted.stderr
    answer = json.loads(deleted.stdout)
    assert answer["backup_name"] == name and answer["deleted_objects"] > 5
    assert not _keys(sandbox, f"backup/{name}/")
    gone = _run(sandbox, "get", "-n", name, "--json")
    assert gone.returncode == 1 and gone.stdout == "" and "not found" in _error_line(gone)


def test_create_of_one_database(sandbox):
    name = f"db_{_uid()}"
    try:
        proc = _run(sandbox, "create", "-n", name, "-d", "shop")
        assert proc.returncode == 0, proc.stderr
        assert f"backup {name} created: 1 collection(s)" in proc.stdout
        full = json.loads(_run(sandbox, "get", "-n", name).stdout)
        assert [(c["db_name"], c["collection_name"]) for c in full["collection_backups"]] == [("shop", "products")]
    finally:
        _run(sandbox, "delete", "-n", name)


@pytest.mark.parametrize(
    "args,words",
    [
        (["create", "-d", "default,shop", "-c", "books"], "-c goes with one database only"),
        (["create", "-d", "no_such_db"], "database no_such_db not found"),
        (["restore", "-n", "no_such_backup", "--json"], "not found"),
        (["server", "--token-file", "/nonexistent/token"], "cannot read the token file"),
    ],
)
def test_refusals_are_one_line_and_a_nonzero_exit(sandbox, args, words):
    before = _keys(sandbox, "backup/")
    proc = _run(sandbox, *args)
    assert proc.returncode in (1, 2), proc
    assert words in _error_line(proc)
    assert proc.stdout == ""
    assert _keys(sandbox, "backup/") == before


def test_server_refuses_a_port_in_use(sandbox):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = _run(sandbox, "server", "-p", str(port), timeout=60)
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (pick another port with -p, or stop what "
        "uses it)"
    ]


def test_help_lists_every_command():
    proc = subprocess.run(
        [sys.executable, "-m", "milvus_backup.cli", "--help"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    for command in ("create", "list", "get", "delete", "restore", "list-collections", "check", "server"):
        assert command in proc.stdout
    server_help = subprocess.run(
        [sys.executable, "-m", "milvus_backup.cli", "server", "--help"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "-p PORT" in server_help.stdout and "--host" in server_help.stdout and "8080" in server_help.stdout


# What `--help` and a usage error must not load: the engine (core.service pulls pymilvus and grpc), the
# faces' frameworks, the progress bar. They take a second or more; building the parser needs none.
HEAVY = ("textual", "fastapi", "starlette", "uvicorn", "pymilvus", "pandas", "grpc", "rich", "minio")
NOT_FOR_HELP = ("milvus_backup.core", "milvus_backup.tui", "milvus_backup.api", "milvus_backup.sandbox")


@pytest.mark.parametrize("args", [["--help"], ["restore", "--help"], ["frobnicate"], ["create", "--bogus"]])
def test_help_and_usage_errors_import_nothing_heavy(args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "milvus_backup.cli", *args],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == (0 if "--help" in args else 2), proc.stderr[-2000:]
    # -X importtime writes one "import time: self | cumulative | module" line per module imported
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "milvus_backup.cli.main" in imported  # the listing is the command's own
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []
    assert sorted(m for m in imported if m.startswith(NOT_FOR_HELP)) == []


@pytest.mark.parametrize("args", [["list", "--json"], ["list"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path, args):
    """`milvus-backup list --json | head -2`: no traceback, the status of a tool that SIGPIPE ends."""
    backups = tmp_path / "backups"  # a local backup store: no servers needed
    for i in range(2000):  # an answer far larger than a pipe holds (64 KiB), so the writer must wait
        (backups / f"bk_{i:04}").mkdir(parents=True)
        (backups / f"bk_{i:04}" / "leftover").write_text("x")
    config = tmp_path / "local.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "log": {"file": {"filename": str(tmp_path / "backup.log")}},
                "minio": {"backupStorageType": "local", "backupRootPath": str(backups)},
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "milvus_backup.cli", "--config", str(config), *args],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    try:
        first = proc.stdout.readline().decode()
        proc.stdout.close()  # the reader has seen enough
        stderr = proc.stderr.read().decode()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first.split() == (
        ["["] if "--json" in args else ["NAME", "STATE", "SIZE", "CREATED", "(UTC)", "MILVUS", "COLLECTIONS"]
    )
    assert stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    assert proc.returncode == 141
