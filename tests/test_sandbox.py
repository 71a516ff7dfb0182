"""`milvus-backup sandbox`: start is idempotent, status shows the servers, sandboxes run side by side and
stop independently, a busy port is refused with one clear line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from milvus_backup.core.config import load_config
from milvus_backup.sandbox.servers import Sandbox, SandboxError, _listens, _wait, free_port
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
STALE = "# stale line the next start must not keep\n"


def _alive(pid: int | None) -> bool:
    """The process exists and is not a zombie."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200 and "OK" in resp.read().decode(errors="replace")
    except OSError:
        return False


def test_start_on_a_running_sandbox_is_idempotent(sandbox):
    config = sandbox.config_path
    original = config.read_text()
    config.write_text(STALE + original)
    try:
        state = Sandbox(sandbox.dir, sandbox.milvus_port, sandbox.s3_port).start()
        assert (state.milvus_pid, state.weed_pid) == (sandbox.milvus_pid, sandbox.weed_pid)
        assert (state.milvus_port, state.s3_port) == (sandbox.milvus_port, sandbox.s3_port)
        assert state.milvus_ports == sandbox.milvus_ports and state.weed_ports == sandbox.weed_ports
        assert _alive(sandbox.milvus_pid) and _alive(sandbox.weed_pid)
        assert _healthy(sandbox.health_url)
        text = config.read_text()
        assert STALE not in text  # rewritten
        loaded = load_config(config, env={})
        assert (loaded.milvus.address, loaded.milvus.port) == ("127.0.0.1", sandbox.milvus_port)
        assert loaded.storage.port == loaded.backup_storage.port == sandbox.s3_port
        assert loaded.storage.bucket_name == "a-bucket" and loaded.backup_storage.root_path == "backup"
    finally:
        if STALE in config.read_text():
            config.write_text(original)


def test_status_shows_both_pids(sandbox):
    proc = run_cli(None, "sandbox", "status", "--dir", str(sandbox.dir))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert f"running pid {sandbox.milvus_pid}" in lines["milvus"]
    assert f"running pid {sandbox.weed_pid}" in lines["s3"]
    assert "not healthy" not in lines["milvus"]


def test_status_of_an_empty_folder_says_stopped(tmp_path):
    proc = run_cli(None, "sandbox", "status", "--dir", str(tmp_path / "none"))
    assert proc.returncode == 1
    assert "stopped" in proc.stdout and "running" not in proc.stdout


def test_a_second_sandbox_runs_alongside_and_stops_alone(sandbox, tmp_path):
    second = tmp_path / "second"
    milvus_port, s3_port = free_port(), free_port()
    while s3_port == milvus_port:
        s3_port = free_port()
    try:
        started = run_cli(
            None,
            "sandbox",
            "start",
            "--dir",
            str(second),
            "--milvus-port",
            str(milvus_port),
            "--s3-port",
            str(s3_port),
            timeout=300,
        )
        assert started.returncode == 0, started.stderr
        state = Sandbox(second).load_state()
        assert state is not None and (state.milvus_port, state.s3_port) == (milvus_port, s3_port)
        assert str(state.milvus_pid) in started.stdout and str(state.weed_pid) in started.stdout
        assert {state.milvus_pid, state.weed_pid}.isdisjoint({sandbox.milvus_pid, sandbox.weed_pid})
        assert _alive(state.milvus_pid) and _alive(state.weed_pid)

        # both answer, each on its own ports
        assert _healthy(state.health_url) and _healthy(sandbox.health_url)
        assert state.health_url != sandbox.health_url
        listed = run_cli(None, "--config", str(second / "backup.yaml"), "list-collections")
        assert listed.returncode == 0, listed.stderr
        assert "hello_milvus" not in listed.stdout  # a fresh, empty Milvus, not the session's
        session = run_cli(None, "--config", str(sandbox.config_path), "list-collections")
        assert session.returncode == 0 and "default.hello_milvus" in session.stdout

        stopped = run_cli(None, "sandbox", "stop", "--dir", str(second), timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert str(state.milvus_pid) in stopped.stdout and str(state.weed_pid) in stopped.stdout
        assert not _alive(state.milvus_pid) and not _alive(state.weed_pid)
        assert _alive(sandbox.milvus_pid) and _alive(sandbox.weed_pid)
        assert _healthy(sandbox.health_url)
        status = run_cli(None, "sandbox", "status", "--dir", str(second))
        assert status.returncode == 1 and "running" not in status.stdout
    finally:
        Sandbox(second).stop()


def test_start_on_a_busy_port_fails_with_one_line_naming_it(sandbox, tmp_path):
    other = tmp_path / "busy"
    try:
        proc = run_cli(
            None,
            "sandbox",
            "start",
            "--dir",
            str(other),
            "--milvus-port",
            str(sandbox.milvus_port),
            "--s3-port",
            str(free_port()),
            timeout=300,
        )
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, proc.stderr
        assert str(sandbox.milvus_port) in errors[0]
        assert "Traceback" not in proc.stderr
        # the session sandbox is untouched
        assert _alive(sandbox.milvus_pid) and _healthy(sandbox.health_url)
    finally:
        Sandbox(other).stop()


def test_a_failed_start_leaves_nothing_running_and_a_retry_on_another_port_works(sandbox, tmp_path):
    other = tmp_path / "retry"
    try:
        failed = run_cli(
            None,
            "sandbox",
            "start",
            "--dir",
            str(other),
            "--milvus-port",
            str(sandbox.milvus_port),
            "--s3-port",
            str(free_port()),
            timeout=300,
        )
        assert failed.returncode != 0
        state = Sandbox(other).load_state()
        assert state is None or not (_alive(state.weed_pid) or _alive(state.milvus_pid)), (
            "the failed start left a server running"
        )
        port = free_port()
        retried = run_cli(
            None,
            "sandbox",
            "start",
            "--dir",
            str(other),
            "--milvus-port",
            str(port),
            "--s3-port",
            str(free_port()),
            timeout=300,
        )
        assert retried.returncode == 0, retried.stderr
        assert Sandbox(other).load_state().milvus_port == port
    finally:
        Sandbox(other).stop()


def test_a_port_answered_by_another_process_fails_the_start_at_once(tmp_path):
    """Two sandboxes started at the same moment on the same port: the one whose server lost the port must not
    go on with the other's server (seen: a benchmark ran against another engineer's SeaweedFS)."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            assert _listens(os.getpid(), port) and not _listens(ours.pid, port)
            with pytest.raises(SandboxError, match=f"port {port} is served by another process, not the SeaweedFS"):
                _wait("SeaweedFS", lambda: True, 30, ours, tmp_path / "weed.out", port)
        finally:
            ours.kill()
            ours.wait()
