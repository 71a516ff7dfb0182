"""Jobs outlive their terminal and are seen and cancelled from anywhere.

Units (no servers): a job's record is written from its own thread, at the start, as it changes and at
the end; a cancel request in storage stops the job; a record whose process is gone reads `interrupted`.

On the real sandbox, with real processes: the CLI and the terminal app each start a restore held at a
pause point (core/pause.py), lose their terminal (a pty closed; `tmux kill-session`), and the restore
still ends with every row and `jobs --json` says success. A restore in another process is listed and
cancelled with `cancel ID` (held in its import phase until the cancel arrives); a restore killed with
SIGKILL reads `interrupted`, and `cancel ID` then removes what it left.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymilvus import MilvusClient

from milvus_backup.core.errors import InvalidRequest
from milvus_backup.core.job_records import (
    HOST,
    STALE_SECONDS,
    JobRecorder,
    JobRecords,
    RecordedJob,
    record_state,
)
from milvus_backup.core.jobs import CollectionTask, Job, JobKind, JobState, Phase
from milvus_backup.core.paths import restore_record
from milvus_backup.core.pause import PAUSE_AT, PAUSE_FILE, RESUME_FILE
from milvus_backup.core.storage import LocalStorage
from milvus_backup.sandbox.demo import demo_collection
from milvus_backup.sandbox.servers import free_port
from milvus_backup.tui.app import MilvusBackupApp
from tests.conftest import assert_same_rows, cli_command, cli_env, drop_if_exists, fetch_rows, made_backup, run_cli

ROOT = Path(__file__).resolve().parents[1]
POINT = "restore:import"
FOCUSED = "48;5;235m"  # the background Textual's default theme gives a focused field, in tmux's 256 colours


def _until(condition: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    """Poll `condition` until it gives something true; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


# -- units ------------------------------------------------------------------------------------------


def _record(**changes: Any) -> dict[str, Any]:
    record = {
        "id": "j-1",
        "kind": "restore",
        "backup_name": "bk",
        "state": "running",
        "phase": "import",
        "host": HOST,
        "pid": os.getpid(),
        "start_time": 100,
        "end_time": 0,
        "heartbeat": time.time(),
        "collections": [{"source": "default.a", "target": "default.a_r", "state": "restoring", "created": True}],
        "log": ["restoring default.a as default.a_r"],
    }
    record.update(changes)
    return record


class _EndsWhileRead(LocalStorage):
    """A folder store where the job's process writes its last record (and exits) just after the first read."""

    def __init__(self, base: Path, final: dict[str, Any]):
        super().__init__(base)
        self.final = final
        self.reads = 0

    def read(self, key: str) -> bytes:
        data = super().read(key)
        self.reads += 1
        if self.reads == 1:
            self.write(key, json.dumps(self.final).encode())
        return data


def test_a_record_read_as_its_process_ends_reads_its_last_state_not_interrupted(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = _EndsWhileRead(tmp_path, _record(pid=dead.pid, state="success", phase="done"))
    records = JobRecords(store, "files")
    records.write(_record(pid=dead.pid))  # "running", from a process that has ended since
    assert [r["state"] for r in records.list()] == ["success"]
    assert store.reads == 2
    assert records.read("j-1")["state"] == "success" and store.reads == 3  # a final record is read once


def test_a_record_whose_process_is_gone_reads_interrupted():
    assert record_state(_record()) is JobState.RUNNING
    assert record_state(_record(heartbeat=time.time() - STALE_SECONDS - 1)) is JobState.INTERRUPTED
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert record_state(_record(pid=dead.pid)) is JobState.INTERRUPTED  # same host, no such process
    assert record_state(_record(pid=dead.pid, host="elsewhere")) is JobState.RUNNING  # only the heartbeat tells
    assert record_state(_record(state="success", heartbeat=0)) is JobState.SUCCESS
    job = RecordedJob(_record(pid=dead.pid), lambda job_id: None)
    assert job.state is JobState.INTERRUPTED and job.state.finished
    assert "interrupted" in job.error and job.end_time > 0
    assert [(t.source, t.target, t.created) for t in job.tasks] == [("default.a", "default.a_r", True)]
    assert job.lines == ["restoring default.a as default.a_r"]


def test_the_recorder_writes_from_its_thread_and_a_cancel_request_in_storage_stops_the_job(tmp_path):
    records = JobRecords(LocalStorage(tmp_path), "files")
    copying = threading.Event()
    threads: set[str] = set()

    def work(reporter):
        reporter.phase(Phase.COPY, "default.a", bytes_total=1000)
        reporter.add(bytes_done=400)
        copying.set()
        while True:  # until cancelled: the request can only come through storage
            reporter.check_cancelled()
            time.sleep(0.01)

    job = Job(JobKind.RESTORE, "bk", work, job_id="j-2", tasks=[CollectionTask("default.a", "default", "a_r")])
    write = records.write
    records.write = lambda record: (threads.add(threading.current_thread().name), write(record))[1]  # type: ignore[method-assign]
    JobRecorder(job, records, beat=0.05).start()
    first = records.read("j-2")
    assert (first["state"], first["kind"], first["backup_name"], first["pid"]) == (
        "running",
        "restore",
        "bk",
        os.getpid(),
    )
    job.start()
    copying.wait(10)
    _until(lambda: records.read("j-2")["bytes_done"] == 400, "the record to show the bytes copied")
    records.request_cancel("j-2")
    assert job.wait(10) is JobState.CANCELLED
    last = records.read("j-2")  # the last write happened before wait() returned
    assert (last["state"], last["phase"], last["cancel_requested"]) == ("cancelled", "done", True)
    assert "cancel requested from another process" in last["log"]
    assert last["end_time"] >= last["start_time"] and last["heartbeat"] >= first["heartbeat"]
    assert threads <= {"MainThread", "record-j-2", "restore-bk"}, threads
    assert "record-j-2" in threads  # the writes in between came from the recorder, not the worker


def _history(records: JobRecords) -> None:
    """Records of every kind a store holds after a while: ended, interrupted (and cleaned or not), a cancel
    request, and an object that is not a record."""
    records.write(_record(id="ended", state="success", phase="done"))
    records.write(_record(id="failed", state="failed", phase="done"))
    records.write(_record(id="lost", heartbeat=1.0))  # "running" from a process long gone: interrupted
    records.write(_record(id="cleaned", state="interrupted", cleaned=True))
    records.request_cancel("ended")
    records.storage.write(records.root + "/backup_job_records/notes.txt", b"an operator's")
    for job_id in ("ended", "lost"):  # a restore's Go-tool record (get_restore), by its job's id
        records.storage.write(restore_record(records.root, job_id), b"{}")


def _names(records: JobRecords) -> set[str]:
    return {o.key.rsplit("/", 1)[1] for o in records.storage.list(records.root + "/backup_job_records/")}


KEPT = {"lost.json", "notes.txt"}  # an interrupted job's record is how the user finds what it left behind


def test_records_of_jobs_ended_longer_ago_than_the_kept_days_are_removed_at_a_job_start(tmp_path):
    records = JobRecords(LocalStorage(tmp_path), "files", keep_days=30)
    _history(records)
    everything = _names(records)
    assert records.prune() == 0 and _names(records) == everything  # all written just now
    month_ago = time.time() - 31 * 86400
    for path in (tmp_path / "files" / "backup_job_records").iterdir():
        os.utime(path, (month_ago, month_ago))
    records.write(_record(id="recent", state="success", phase="done"))

    job = Job(JobKind.VERIFY, "bk", lambda reporter: None, job_id="starts")
    JobRecorder(job, records, beat=0.05).start()  # its start removes the old ones, in the background
    job.start()
    _until(lambda: _names(records) == KEPT | {"recent.json", "starts.json"}, "the old ended records to go")
    assert not records.storage.exists(restore_record("files", "ended"))  # went with its job's record
    assert records.storage.exists(restore_record("files", "lost"))
    assert job.wait(10) is JobState.SUCCESS
    assert {r["id"] for r in records.list()} == {"lost", "recent", "starts"}


def test_a_store_listing_gives_each_object_its_time_and_old_records_are_pruned_there(engine):
    storage = engine.ctx.milvus_storage
    records = JobRecords(storage, engine.ctx.milvus_layout.root + "/prune-" + uuid.uuid4().hex[:8], keep_days=30)
    before = time.time()
    _history(records)
    listed = list(storage.list(records.root + "/"))
    assert listed and all(before - 120 < o.modified < time.time() + 120 for o in listed)  # the store's clock
    key = listed[0].key
    assert abs(storage.stat(key).modified - listed[0].modified) < 2  # stat gives it too (listings round to s)
    assert records.prune() == 0
    assert records.prune(now=time.time() + 31 * 86400) == 4  # two ended, one cleaned, one cancel request
    assert _names(records) == KEPT
    assert not storage.exists(restore_record(records.root, "ended"))
    assert storage.exists(restore_record(records.root, "lost"))
    storage.delete_prefix(records.root + "/")


# -- on the sandbox: helpers ------------------------------------------------------------------------


def _jobs(sandbox) -> dict[str, dict]:
    proc = run_cli(sandbox.config_path, "jobs", "--json")
    assert proc.returncode == 0, proc.stderr
    return {job["id"]: job for job in json.loads(proc.stdout)}


def _job_of_pid(sandbox, pid: int) -> dict:
    """The running job of process `pid`, as `jobs --json` lists it."""
    found = _until(
        lambda: [j for j in _jobs(sandbox).values() if j["pid"] == pid and j["state"] == "running"],
        f"a running job of pid {pid} in `jobs --json`",
    )
    [job] = found
    for field in ("id", "kind", "backup_name", "state", "progress", "start_time", "end_time", "host", "pid"):
        assert field in job, field
    return job


def _paused(marker: Path) -> bool:
    return marker.is_file() and POINT in marker.read_text()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def _has(uri: str, db: str, name: str) -> bool:
    client = MilvusClient(uri=uri, db_name=db)
    try:
        return client.has_collection(name)
    finally:
        client.close()


@pytest.fixture(scope="module")
def products_backup(sandbox, base_config):
    """One small backup (shop.products, 200 rows, one import) for the module's restores."""
    with made_backup(base_config, "jobs", ["shop.products"]) as name:
        yield name


def _end(proc: subprocess.Popen, sandbox, collection: str) -> None:
    """A test's clean-up: its restore process gone (killed if still running), what it restored dropped."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stderr.close()
    drop_if_exists(sandbox.milvus_uri, "shop", collection)


def _held_restore(sandbox, tmp_path: Path, backup: str, suffix: str, resume: Path | None = None) -> subprocess.Popen:
    """`restore` in its own process, stopped after its first import (until cancelled or `resume` appears)."""
    marker = tmp_path / f"paused-{uuid.uuid4().hex}"
    env = {PAUSE_AT: POINT, PAUSE_FILE: str(marker), **({RESUME_FILE: str(resume)} if resume else {})}
    proc = subprocess.Popen(
        cli_command(sandbox.config_path, "restore", "-n", backup, "-s", suffix, "--restore_index", "--load"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env(**env),
    )
    _until(lambda: _paused(marker) or proc.poll() is not None, f"the restore to reach {POINT}")
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    return proc


# -- on the sandbox: hang-ups -----------------------------------------------------------------------


@pytest.mark.integration
def test_the_cli_restore_goes_on_when_its_terminal_hangs_up(sandbox, tmp_path, products_backup):
    """The CLI runs in a pseudo-terminal that the test then closes: the kernel hangs the terminal up
    (SIGHUP), as when an SSH link drops. The restore finishes with every row; `jobs --json` says success."""
    suffix = f"_hup{uuid.uuid4().hex[:6]}"
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    env = cli_env(**{PAUSE_AT: POINT, PAUSE_FILE: str(marker), RESUME_FILE: str(resume)})
    pid, master = pty.fork()
    if pid == 0:  # the child: straight into the CLI, on the pty as its controlling terminal
        os.chdir(ROOT)
        os.execve(
            sys.executable,
            cli_command(
                sandbox.config_path, "restore", "-n", products_backup, "-s", suffix, "--restore_index", "--load"
            ),
            env,
        )
    draining = threading.Event()
    draining.set()

    def drain() -> None:  # read what the CLI draws, so its writes never block on a full pty
        while draining.is_set():
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        _until(lambda: _paused(marker), f"the CLI's restore to reach {POINT}")
        job = _job_of_pid(sandbox, pid)
        draining.clear()
        reader.join(5)
        os.close(master)  # the terminal goes away: SIGHUP to the CLI
        master = -1
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the CLI died with its terminal"
        resume.touch()
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
        assert _jobs(sandbox)[job["id"]]["state"] == "success"
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "shop", "products" + suffix), demo_collection("products"))
    finally:
        draining.clear()
        if master >= 0:
            os.close(master)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)


def _tmux(socket_name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["tmux", "-L", socket_name, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=30
    )


def _start_app_in_tmux(socket_name: str, config: Path | str, env: dict[str, str]) -> None:
    """`milvus-backup --config CONFIG` (the app) in a 100x30 tmux session "app", with `env` added."""
    command = "cd {} && exec env {} {}".format(
        shlex.quote(str(ROOT)),
        " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()),
        shlex.join(cli_command(config)),
    )
    started = _tmux(socket_name, "new-session", "-d", "-s", "app", "-x", "100", "-y", "30", command)
    assert started.returncode == 0, started.stderr


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_app_restore_goes_on_after_tmux_kill_session_and_a_new_app_sees_it_finish(
    sandbox, base_config, tmp_path, products_backup
):
    """As an operator would: the app in tmux starts a restore (keys), the tmux session is killed, and
    the restore goes on. A new app lists it as another process's job and watches it end in success;
    every row is there and `jobs --json` says success."""
    from milvus_backup.core.engine import Engine

    suffix = f"_tmux{uuid.uuid4().hex[:6]}"
    socket_name = f"mbt{uuid.uuid4().hex[:8]}"
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    env = {PAUSE_AT: POINT, PAUSE_FILE: str(marker), RESUME_FILE: str(resume)}
    _start_app_in_tmux(socket_name, sandbox.config_path, env)
    pid = 0
    try:
        pid = int(_tmux(socket_name, "list-panes", "-t", "app", "-F", "#{pane_pid}").stdout.strip())

        def screen() -> str:
            return _tmux(socket_name, "capture-pane", "-p", "-t", "app").stdout

        def keys(*names: str) -> None:
            assert _tmux(socket_name, "send-keys", "-t", "app", *names).returncode == 0

        def wait(condition: Callable[[], bool], what: str) -> None:
            try:
                _until(condition, what)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the screen:\n{screen()}") from None

        def step(*names: str, until: str, what: str) -> None:
            """Keys, then the screen that says they were taken: a key sent before the last one's focus
            change has been applied goes to the widget that had the focus (a busy machine draws late)."""
            keys(*names)
            wait(lambda: until in screen(), what)

        def focused(label: str) -> bool:
            """The dialog's row holding `label` has the focused background (its left, the table behind
            the dialog, cut off)."""
            styled = _tmux(socket_name, "capture-pane", "-p", "-e", "-t", "app").stdout.splitlines()
            return any(FOCUSED in line.split("│", 1)[-1] for line in styled if label in line)

        def focus_to(label: str) -> None:
            keys("Tab")
            wait(lambda: focused(label), f"the focus on {label}")

        _until(lambda: products_backup in screen(), "the app to list the backup")
        step("Tab", until="r Restore", what="the backups table to take the focus")
        step("/", until="filter backups", what="the filter box")
        step("-l", products_backup, until=f"▊  {products_backup}", what="the filter text in its box")
        step("Enter", until="r Restore", what="the filtered backups table")
        step("r", until="shop.products → shop.products  EXISTS", what="the restore dialog and its preview")
        focus_to("Suffix")
        step("-l", suffix, until=f"products{suffix}  will be created", what="the preview of the target")
        for label in ("Rename", "Only", "Drop existing", "Restore indexes"):
            focus_to(label)
        step("Space", until="▐X▌ Restore indexes", what="restore indexes ticked")
        focus_to("Load afterwards")
        step("Space", until="▐X▌ Load afterwards", what="load ticked")
        keys("Tab")
        wait(lambda: not focused("Load afterwards"), "the focus on Start restore")
        keys("Enter")
        _until(lambda: _paused(marker), f"the app's restore to reach {POINT}")
        job = _job_of_pid(sandbox, pid)

        assert _tmux(socket_name, "kill-session", "-t", "app").returncode == 0
        assert not _gone(pid), "the app's process died with its tmux session"
        assert _jobs(sandbox)[job["id"]]["state"] == "running"

        engine = Engine(base_config)
        app = MilvusBackupApp(engine, refresh_seconds=0, jobs_poll_seconds=0.3)

        async def watch_it_finish() -> list[JobState]:
            seen: list[JobState] = []
            async with app.run_test(size=(100, 30)) as pilot:
                while job["id"] not in app.all_watches:
                    await pilot.pause(0.1)
                await pilot.press("j")
                watch = app.all_watches[job["id"]]
                seen.append(watch.job.state)
                resume.touch()
                while not watch.job.state.finished:
                    await pilot.pause(0.1)
                seen.append(watch.job.state)
            return seen

        try:
            assert asyncio.run(asyncio.wait_for(watch_it_finish(), 180)) == [JobState.RUNNING, JobState.SUCCESS]
        finally:
            engine.close()
        _until(lambda: _gone(pid), "the app's process to exit once its restore ended")
        assert _jobs(sandbox)[job["id"]]["state"] == "success"
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "shop", "products" + suffix), demo_collection("products"))
    finally:
        _tmux(socket_name, "kill-server")
        if pid and not _gone(pid):
            os.kill(pid, signal.SIGKILL)
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)


# -- on the sandbox: cancel and interrupted ---------------------------------------------------------


@pytest.mark.integration
def test_a_restore_in_another_process_is_listed_and_cancelled_by_id(sandbox, tmp_path, products_backup):
    suffix = f"_cxl{uuid.uuid4().hex[:6]}"
    proc = _held_restore(sandbox, tmp_path, products_backup, suffix)  # held in import until cancelled
    try:
        job = _job_of_pid(sandbox, proc.pid)
        assert (job["kind"], job["backup_name"], job["phase"]) == ("restore", products_backup, "import")
        assert job["host"] and 0 <= job["progress"] < 100 and job["end_time"] == 0
        assert _has(sandbox.milvus_uri, "shop", "products" + suffix), "held after its first import"
        cancel = run_cli(sandbox.config_path, "cancel", job["id"])
        assert cancel.returncode == 0, cancel.stderr
        assert "cancel requested" in cancel.stdout
        assert proc.wait(120) == 130  # the CLI's exit code for a cancelled job
        listed = _jobs(sandbox)[job["id"]]
        assert (listed["state"], listed["phase"]) == ("cancelled", "done")
        assert listed["end_time"] >= listed["start_time"]
        assert not _has(sandbox.milvus_uri, "shop", "products" + suffix), "a cancel drops what it created"
        again = run_cli(sandbox.config_path, "cancel", job["id"])
        assert again.returncode == 1 and "already ended (cancelled)" in again.stderr
        unknown = run_cli(sandbox.config_path, "cancel", "no-such-job")
        assert unknown.returncode == 1 and unknown.stderr.startswith("error: job no-such-job not found")
    finally:
        _end(proc, sandbox, "products" + suffix)


@pytest.mark.integration
def test_a_killed_restore_reads_interrupted_and_cancel_removes_what_it_left(sandbox, tmp_path, products_backup):
    suffix = f"_kil{uuid.uuid4().hex[:6]}"
    proc = _held_restore(sandbox, tmp_path, products_backup, suffix)
    try:
        job = _job_of_pid(sandbox, proc.pid)
        proc.kill()
        proc.wait()
        listed = _jobs(sandbox)[job["id"]]
        assert listed["state"] == "interrupted" and listed["end_time"] > 0
        assert _has(sandbox.milvus_uri, "shop", "products" + suffix), "the killed restore left its collection"
        clean = run_cli(sandbox.config_path, "cancel", job["id"])
        assert clean.returncode == 0, clean.stderr
        assert f"dropped shop.products{suffix}" in clean.stdout
        assert not _has(sandbox.milvus_uri, "shop", "products" + suffix)
        listed = _jobs(sandbox)[job["id"]]
        assert (listed["state"], listed["cleaned"]) == ("interrupted", True)
        again = run_cli(sandbox.config_path, "cancel", job["id"])
        assert again.returncode == 0 and "already removed" in again.stdout
    finally:
        _end(proc, sandbox, "products" + suffix)


@pytest.mark.integration
def test_cancel_of_a_job_of_this_process_that_ended_is_refused(engine, products_backup):
    job = engine.start_verify(products_backup)
    assert job.wait(120) is JobState.SUCCESS
    with pytest.raises(InvalidRequest, match="already ended"):
        engine.cancel_job(job.id)
    listed = {j.id: j for j in engine.list_jobs()}
    assert listed[job.id] is job  # this process's own job, live, not its record


class _SilentStore:
    """A TCP port that takes connections and never answers: a store behind a network that stopped
    carrying replies (each request would wait out its read timeout, 300 s, and be retried)."""

    def __init__(self) -> None:
        import socket

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[Any] = []
        threading.Thread(target=self._take, daemon=True).start()

    def _take(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_app_quits_at_once_while_its_backup_store_never_answers(tmp_path):
    """The backups listing (and its reads) wait on a store that never answers; `q` still ends the process
    within seconds, not after the requests' timeouts."""
    store = _SilentStore()
    closed_port = free_port()  # Milvus: nothing listens there, so its listing fails at once
    config = tmp_path / "backup.yaml"
    config.write_text(
        f"log:\n  file:\n    filename: {tmp_path / 'backup.log'}\n"
        f"milvus:\n  address: 127.0.0.1\n  port: {closed_port}\n"
        f"minio:\n  address: 127.0.0.1\n  port: {store.port}\n  accessKeyID: k\n  secretAccessKey: s\n"
        "  bucketName: a-bucket\n  rootPath: files\n  backupBucketName: a-bucket\n  backupRootPath: backup\n",
        encoding="utf-8",
    )
    socket_name = f"mbq{uuid.uuid4().hex[:8]}"
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    _start_app_in_tmux(socket_name, config, env)
    pid = 0
    try:
        pid = int(_tmux(socket_name, "list-panes", "-t", "app", "-F", "#{pane_pid}").stdout.strip())

        def screen() -> str:
            return _tmux(socket_name, "capture-pane", "-p", "-t", "app").stdout

        _until(lambda: "cannot reach Milvus" in screen(), "the app to show Milvus's failure", timeout=60)
        _until(lambda: store.held, "the backups listing's request to reach the store", timeout=30)
        assert "loading..." in screen()  # the backups listing is still waiting
        assert _tmux(socket_name, "send-keys", "-t", "app", "q").returncode == 0
        _until(lambda: _gone(pid), "the app's process to end after q", timeout=20)
    finally:
        if pid and not _gone(pid):
            os.kill(pid, signal.SIGKILL)
        _tmux(socket_name, "kill-server")
        store.close()
