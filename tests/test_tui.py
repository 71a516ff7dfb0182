"""The TUI driven from the keyboard through Textual's Pilot, on the real sandbox (Milvus + S3).

Each test presses keys as an operator would and then checks the real thing: the backup in the
bucket, the rows in Milvus, the collections that must not have changed.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time

import humanize
import pytest
from minio import Minio
from pymilvus import MilvusClient
from rich.console import Console
from textual.command import CommandList, CommandPalette

from milvus_backup.core import restore as restore_module
from milvus_backup.core.pause import PAUSE_AT, PAUSE_FILE, RESUME_FILE
from milvus_backup.core.service import BackupRequest, BackupService, Config, JobKind, JobState, open_service
from milvus_backup.sandbox.demo import demo_collection
from milvus_backup.tui.app import MilvusBackupApp
from milvus_backup.tui.details import BackupDetailsScreen, backup_view
from milvus_backup.tui.dialogs import BackupDialog, ConfirmDialog, QuitDialog, RestoreDialog
from milvus_backup.tui.jobs import JobsScreen
from milvus_backup.tui.tables import FANCY, SyncTable
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows

pytestmark = pytest.mark.integration
SIZE = (100, 30)


async def _until(pilot, condition, what: str, timeout: float = 120) -> None:
    """Let the app run until `condition()` holds; fail with `what` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


async def _loaded(app, pilot) -> None:
    await asyncio.wait_for(app.loaded.wait(), 60)
    await pilot.pause()


async def _cursor_to(pilot, table: SyncTable, key: str) -> None:
    """Move the cursor to the row `key` with the arrow keys."""
    table.focus()
    await pilot.pause()
    target = table.get_row_index(key)
    while table.cursor_row != target:
        await pilot.press("down" if table.cursor_row < target else "up")


def _backup_names(engine: BackupService) -> set[str]:
    return {b.name for b in engine.list_backups()}


def _made_backup(engine: BackupService, name: str, collections: list[str]) -> None:
    """A finished backup for a test to work on, made through the engine."""
    job = engine.start_backup(BackupRequest(name=name, collections=collections))
    assert job.wait(300) is JobState.SUCCESS, job.error


async def _start_restore(app, pilot, name: str, suffix: str) -> None:
    """r on backup `name`, the suffix typed, Start pressed; returns once the job is running."""
    await _cursor_to(pilot, app.backups_table, name)
    await pilot.press("r")
    await _until(pilot, lambda: isinstance(app.screen, RestoreDialog), "the restore dialog")
    app.screen.query_one("#suffix").focus()
    await pilot.press(*suffix, "enter")  # enter in a field starts
    await _until(pilot, lambda: app.watches, "the restore job")


def _run(scenario) -> None:
    asyncio.run(scenario())


def test_backup_and_restore_from_the_keyboard(sandbox, engine):
    """Mark books, back it up (name typed), watch 100 %, restore with a suffix, every row back."""
    name, suffix = "tui_books", "_tui"
    books = demo_collection("books")
    drop_if_exists(sandbox.milvus_uri, "default", "books" + suffix)
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            # books is loaded: its live count(*) (its deletes applied), said to be the live one
            assert str(app.collections_table.get_row("default.books")[3]) == f"{650 - len(books.deleted)} live"
            await _cursor_to(pilot, app.collections_table, "default.books")
            await pilot.press("space", "b")
            await _until(pilot, lambda: isinstance(app.screen, BackupDialog), "the backup dialog")
            await pilot.press(*name, "ctrl+s")  # the offered name is selected: typing replaces it
            await _until(pilot, lambda: len(app.watches) == 1, "the backup job")
            assert not app.marked, "the marks were for the backup that started"
            watch = next(iter(app.watches.values()))
            await pilot.press("j")
            await _until(pilot, lambda: watch.job.state.finished, "the backup to finish")
            await pilot.pause(0.5)  # one refresh tick of the jobs screen
            assert watch.job.state is JobState.SUCCESS, watch.job.error
            assert isinstance(app.screen, JobsScreen)
            assert app.screen.query_one("#job-bar").percentage == 1.0
            cells = [str(c) for c in app.screen.query_one("#job-table").get_row(watch.job.id)]
            assert cells[3:5] == ["done", "100%"], cells
            info = watch.job.result
            size = sum(p.size for p in info.collection_backups[0].partition_backups)
            shown = humanize.naturalsize(size)
            assert watch._backup_lines() == [("default.books", "done", f"{shown} / {shown}", "650", "done")]
            await pilot.press("escape")

            await _until(pilot, lambda: name in app.backups, "the new backup in the table")
            await _cursor_to(pilot, app.backups_table, name)
            await pilot.press("r")
            await _until(pilot, lambda: isinstance(app.screen, RestoreDialog), "the restore dialog")
            # focus: collection tick, suffix, renames, only, drop, index, load (no rbac here); ctrl+s starts
            await pilot.press("tab", *suffix, "tab", "tab", "tab", "tab", "space", "tab", "space", "ctrl+s")
            await _until(pilot, lambda: len(app.watches) == 2, "the restore job")
            restore = next(w for w in app.watches.values() if w.job.kind is JobKind.RESTORE)
            bar: list[float] = []
            while not restore.job.state.finished:  # the bar, as often as the screen would read it
                bar.append(restore.fraction())
                await pilot.pause(0.05)
            assert restore.job.state is JobState.SUCCESS, restore.job.error
            assert bar == sorted(bar), f"the bar went back: {bar}"
            assert restore.fraction() == 1.0
            task = restore.job.tasks[0]
            assert restore.bytes_pair() == (task.bytes_total, task.bytes_total) and task.bytes_total > 0
            line = restore._restore_lines(FANCY)[0]
            # books keeps 650 rows in its segments, 3 of them deleted: the restore says which count is which
            live = 650 - len(books.deleted)
            assert task.rows == live
            assert (line[1], line[3], line[4]) == ("done", f"{live} (650 stored)", "success"), line
            assert restore.phase_text() == "done"

    try:
        _run(scenario)
        info = engine.get_backup(name)
        assert [c.collection_name for c in info.collection_backups] == ["books"]
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "books" + suffix), books)
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "books" + suffix)
        if name in _backup_names(engine):
            engine.delete_backup(name)


def test_cancel_a_running_restore(sandbox, engine, monkeypatch):
    """c on the jobs screen asks, then stops a restore held in its first import; what it created is
    dropped, the backup untouched, and the collections it never reached say "not started"."""
    name, suffix = "tui_cancel", "_cancelled"
    _made_backup(engine, name, ["hello_milvus", "books", "shop.products"])
    before = engine.get_backup(name)
    reached, release = threading.Event(), threading.Event()

    def held(point: str, *_: object) -> None:
        if point == "restore:import":
            reached.set()
            release.wait(120)

    monkeypatch.setattr(restore_module, "pause_point", held)
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            await _start_restore(app, pilot, name, suffix)
            watch = next(iter(app.watches.values()))
            await _until(pilot, reached.is_set, "the restore's first import")
            await pilot.press("j", "c")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the cancel question")
            assert not watch.job.cancel_event.is_set(), "c must ask first"
            await pilot.press("y")
            await pilot.pause()
            release.set()
            await _until(pilot, lambda: watch.job.state.finished, "the restore to stop")
            assert watch.job.state is JobState.CANCELLED, f"{watch.job.state}: {watch.job.error}"
            assert "cancelled" in watch.outcome()
            states = [line[4] for line in watch._restore_lines(FANCY)]
            # restoreCollection=2: the first two stopped in their imports, or ended them and were dropped with
            # the rest (never "success"); the third was never reached
            assert set(states[:2]) <= {"cancelled", "rolled back"} and states[2:] == ["not started"], states
            await pilot.pause(0.5)
            cells = [str(c) for c in app.screen.query_one("#job-table").get_row(watch.job.id)]
            assert cells[2:4] == ["cancelled", "done"], cells

    try:
        _run(scenario)
        release.set()
        client = MilvusClient(uri=sandbox.milvus_uri)
        try:
            assert not client.has_collection("hello_milvus" + suffix)
            assert not client.has_collection("books" + suffix)
        finally:
            client.close()
        assert engine.get_backup(name) == before
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "hello_milvus" + suffix, "books" + suffix)
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)
        engine.delete_backup(name)


def test_refusals_change_nothing(sandbox, engine):
    """A taken name, an existing target, a declined delete: a notice each, and nothing changes."""
    name = "tui_refuse"
    _made_backup(engine, name, ["shop.products"])
    before_backups = _backup_names(engine)
    before_collections = engine.existing_collections()
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            # 1. back up under a name that is taken: the dialog says so and will not start
            await _cursor_to(pilot, app.collections_table, "shop.products")
            await pilot.press("b")
            await _until(pilot, lambda: isinstance(app.screen, BackupDialog), "the backup dialog")
            await pilot.press(*name)
            await pilot.pause()
            assert "already exists" in str(app.screen.query_one("#name-error").render())
            assert app.screen.query_one("#start").disabled
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, BackupDialog), "a refused name must keep the dialog open"
            assert any("already exists" in str(n.message) for n in app._notifications)
            await pilot.press("escape")

            # 2. restore over the collection that exists: shown before, refused without drop-existing
            await _cursor_to(pilot, app.backups_table, name)
            await pilot.press("r")
            await _until(pilot, lambda: isinstance(app.screen, RestoreDialog), "the restore dialog")
            preview = str(app.screen.query_one("#preview").render())
            assert "shop.products → shop.products" in preview and "EXISTS" in preview
            assert app.screen.query_one("#start").disabled
            # ticking drop-existing asks first; answering no starts nothing
            app.screen.query_one("#drop").focus()
            await pilot.press("space")
            app.screen.query_one("#start").focus()
            await pilot.press("enter")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the drop confirmation")
            await pilot.press("n")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()

            # 3. delete, then decline
            await _cursor_to(pilot, app.backups_table, name)
            await pilot.press("d")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the delete confirmation")
            await pilot.press("n")
            await pilot.pause(0.5)
            assert not app.watches, "no job may have started"

    try:
        _run(scenario)
        assert _backup_names(engine) == before_backups
        assert engine.existing_collections() == before_collections
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "shop", "products"), demo_collection("products"))
    finally:
        engine.delete_backup(name)


def test_details_show_the_backup(sandbox, engine):
    """enter on a backup: its collections, partitions, schema, indexes and Milvus version."""
    name = "tui_details"
    _made_backup(engine, name, ["books"])
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            await _cursor_to(pilot, app.backups_table, name)
            await pilot.press("enter")
            await _until(pilot, lambda: isinstance(app.screen, BackupDetailsScreen), "the details screen")
            await pilot.pause()
            return app.screen.info

    try:
        shown = asyncio.run(scenario())
        assert shown == engine.get_backup(name)
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(backup_view(shown, name))
        text = console.export_text()
        for expected in (
            "default.books",
            "fiction",
            "science",
            "_default",
            "embedding",
            "FloatVector(",
            "IVF_FLAT",
            shown.milvus_version,
            "primary",
            "dynamic",
        ):
            assert expected in text, f"{expected!r} missing from the details view"
    finally:
        engine.delete_backup(name)


# Runs `milvus-backup ARGS` in a process of its own with the engine's two listings counted, and prints
# what was asked for, by which thread; for `tui`, the app's run only takes the first listings' answers.
_COUNTED_LISTINGS = """
import functools, json, sys, threading
from milvus_backup.core.engine import Engine
from milvus_backup.cli.main import run

asked = []
for name in ("list_backups", "list_collections"):
    def counted(self, *args, _real=getattr(Engine, name), **kwargs):
        asked.append([_real.__name__, threading.current_thread().name])
        return _real(self, *args, **kwargs)
    setattr(Engine, name, functools.wraps(getattr(Engine, name))(counted))
if sys.argv[2:3] == ["tui"]:
    from milvus_backup.tui.app import MilvusBackupApp
    def taken(app):
        app.first_load.first_screen_shown()
        return app.first_load.backups()(lambda early: None), app.first_load.collections()(lambda early: None)
    MilvusBackupApp.run = taken
code = run(sys.argv[1:])
sys.stdout.flush()
print(json.dumps({"code": code, "asked": sorted(asked), "app": "milvus_backup.tui.launch" in sys.modules}))
"""


@pytest.mark.parametrize("command", ["list", "tui"])
def test_only_the_app_asks_for_the_first_listings_before_it_is_there(sandbox, command):
    """`milvus-backup` (the app) asks the engine for both listings in threads of their own, once each; a
    command such as `list` asks only for what it prints, itself, and never loads the app's launcher."""
    proc = subprocess.run(
        [sys.executable, "-c", _COUNTED_LISTINGS, f"--config={sandbox.config_path}", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout.splitlines()[-1])
    if command == "list":
        assert answer == {"code": 0, "asked": [["list_backups", "MainThread"]], "app": False}
    else:
        first = [["list_backups", "first-list_backups"], ["list_collections", "first-list_collections"]]
        assert answer == {"code": 0, "asked": first, "app": True}


def test_unreachable_milvus_says_where(sandbox, base_config: Config):
    """A Milvus that does not answer: a notice naming the address, the backups still listed, no crash."""
    from milvus_backup.sandbox.servers import free_port

    port = free_port()
    config = base_config.model_copy(update={"milvus": base_config.milvus.model_copy(update={"port": port})})
    engine = open_service(config)
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            alert = str(app.query_one("#alert").render())
            assert f"127.0.0.1:{port}" in alert and "ctrl+r" in alert
            assert app.query_one("#alert").display
            assert app.backups_table.row_count == len(engine.list_backups())
            await pilot.press("ctrl+r")
            await pilot.pause(1)
            assert app.is_running

    try:
        _run(scenario)
    finally:
        engine.close()


async def _quit_from_the_palette(app, pilot) -> None:
    """ctrl+p, "quit", and enter once the palette offers its Quit first."""
    await pilot.press("ctrl+p")
    await _until(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
    await pilot.press(*"quit")

    def offered() -> bool:
        options = app.screen.query_one(CommandList)
        return options.option_count > 0 and str(options.get_option_at_index(0).prompt).startswith("Quit")

    await _until(pilot, offered, "Quit offered first")
    if app.screen.query_one(CommandList).highlighted is None:
        await pilot.press("down")
    await pilot.press("enter")


def test_every_way_of_quitting_asks_while_a_job_runs_and_leaving_lets_it_finish(sandbox, engine, tmp_path, monkeypatch):
    """q, ctrl+q and the palette's Quit ask the same question; staying changes nothing, and "leave
    running" (the default) closes the app while the restore goes on to bring back every row."""
    name, suffix = "tui_quit", "_quit"
    _made_backup(engine, name, ["shop.products"])
    marker, resume = tmp_path / "paused", tmp_path / "resume"
    monkeypatch.setenv(PAUSE_AT, "restore:import")  # held after its first import until `resume` exists
    monkeypatch.setenv(PAUSE_FILE, str(marker))
    monkeypatch.setenv(RESUME_FILE, str(resume))
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await _loaded(app, pilot)
            await _start_restore(app, pilot, name, suffix)
            await _until(pilot, lambda: marker.is_file(), "the restore to reach its import")
            for ask in ("q", "ctrl+q", "palette"):
                if ask == "palette":
                    await _quit_from_the_palette(app, pilot)
                else:
                    await pilot.press(ask)
                await _until(pilot, lambda: isinstance(app.screen, QuitDialog), f"the quit question after {ask}")
                await pilot.press("escape")  # stay
                await _until(pilot, lambda: not isinstance(app.screen, QuitDialog), "the question to close")
                assert app.is_running and app.quit_choice == ""
            await pilot.press("q")
            await _until(pilot, lambda: isinstance(app.screen, QuitDialog), "the quit question")
            await pilot.press("enter")  # the focused default: leave running
            return next(iter(app.watches.values())).job

    try:
        job = asyncio.run(scenario())
        assert app.quit_choice == "leave"
        assert not job.state.finished, "leaving must not stop the job"
        resume.touch()
        assert job.wait(300) is JobState.SUCCESS, job.error
        [task] = job.tasks  # the restore counted the rows in Milvus against those it imported
        assert (task.target, task.rows) == ("shop.products" + suffix, len(demo_collection("products").expected_rows()))
    finally:
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)
        engine.delete_backup(name)


def test_a_cancel_that_comes_after_success_says_it_came_too_late(sandbox, engine):
    """c asks first; answered only after the restore ended, it says the cancel came too late."""
    name, suffix = "tui_late_cancel", "_late"
    _made_backup(engine, name, ["hello_milvus", "books"])
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await _loaded(app, pilot)
            await _start_restore(app, pilot, name, suffix)
            watch = next(iter(app.watches.values()))
            await pilot.press("j", "c")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the cancel question")
            await _until(pilot, lambda: watch.job.state.finished, "the restore to finish")
            await pilot.press("y")
            await pilot.pause()
            assert watch.job.state is JobState.SUCCESS, watch.job.error
            assert any("came too late" in str(n.message) for n in app._notifications)

    try:
        _run(scenario)
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "hello_milvus" + suffix, "books" + suffix)
        engine.delete_backup(name)


def test_quitting_with_cancel_jobs_cancels_and_cleans_up(sandbox, engine, tmp_path, monkeypatch):
    name, suffix = "tui_quit_cancel", "_qc"
    _made_backup(engine, name, ["shop.products"])
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_AT, "restore:import")  # held after its first import, until cancelled
    monkeypatch.setenv(PAUSE_FILE, str(marker))
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            await _start_restore(app, pilot, name, suffix)
            await _until(pilot, lambda: marker.is_file(), "the restore to reach its import")
            await pilot.press("q")
            await _until(pilot, lambda: isinstance(app.screen, QuitDialog), "the quit question")
            await pilot.press("c")
            return next(iter(app.watches.values())).job

    try:
        job = asyncio.run(scenario())
        assert app.quit_choice == "cancel"
        assert job.wait(120) is JobState.CANCELLED, job.error
        assert "products" + suffix not in {c.name for c in engine.list_collections("shop")}
    finally:
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)
        engine.delete_backup(name)


def test_a_job_of_another_process_is_listed_and_cancelled_with_c(sandbox, engine, tmp_path):
    """The jobs screen lists a restore the CLI runs (held in its import) and `c` stops it there."""
    name, suffix = "tui_other", "_other"
    _made_backup(engine, name, ["shop.products"])
    marker = tmp_path / "paused"
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_AT, PAUSE_FILE)}
    command = [sys.executable, "-m", "milvus_backup.cli", "--config", str(sandbox.config_path)]
    proc = subprocess.Popen(
        [*command, "restore", "-n", name, "-s", suffix],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, PAUSE_AT: "restore:import", PAUSE_FILE: str(marker)},
    )
    app = MilvusBackupApp(engine, refresh_seconds=0, jobs_poll_seconds=0.3)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            await _until(pilot, lambda: marker.is_file(), "the CLI's restore to reach its import")

            def theirs():
                return [
                    w
                    for w in app.all_watches.values()
                    if getattr(w.job, "pid", 0) == proc.pid and not w.job.state.finished
                ]

            await _until(pilot, theirs, "the CLI's restore on the jobs list")
            [watch] = theirs()
            await pilot.press("j")
            table = app.screen.query_one("#job-table")
            await _until(pilot, lambda: watch.job.id in table.rows, "its row on the jobs screen")
            table.move_cursor(row=table.get_row_index(watch.job.id))
            await pilot.pause()
            await pilot.press("c")
            await pilot.pause()
            if isinstance(app.screen, ConfirmDialog):  # when `c` asks first
                await pilot.press("y")
            await _until(pilot, lambda: app.all_watches[watch.job.id].job.state.finished, "the restore to stop")
            return app.all_watches[watch.job.id].job.state

    try:
        assert asyncio.run(scenario()) is JobState.CANCELLED
        assert proc.wait(120) == 130
        assert "products" + suffix not in {c.name for c in engine.list_collections("shop")}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)
        engine.delete_backup(name)


def test_delete_from_the_keyboard(sandbox, engine):
    """d, then y: every object of the backup is gone and the table no longer lists it."""
    name = "tui_delete"
    _made_backup(engine, name, ["shop.products"])
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            await _cursor_to(pilot, app.backups_table, name)
            order = [k.value for k in app.backups_table.rows]
            place = order.index(name)
            neighbour = order[place + 1] if place + 1 < len(order) else order[place - 1] if place else None
            await pilot.press("d")
            await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the delete confirmation")
            await pilot.press("y")
            await _until(pilot, lambda: name not in app.backups, "the table to drop the backup")
            assert name not in [k.value for k in app.backups_table.rows]
            assert app.backups_table.current_key == neighbour, "the cursor stays where the deleted row was"

    _run(scenario)
    assert name not in _backup_names(engine)
    assert not engine.backup_exists(name), "every object of the backup must be gone"


def test_verify_from_the_keyboard_finds_a_flipped_byte(sandbox, engine):
    """v checks sizes and ETags, V re-hashes: a flipped byte in a binlog is named on the jobs screen."""
    name = "tui_verify"
    _made_backup(engine, name, ["shop.products"])
    s3 = Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)
    binlog = next(
        o.object_name for o in s3.list_objects("a-bucket", prefix=f"backup/{name}/binlogs/insert_log/", recursive=True)
    )
    data = s3.get_object("a-bucket", binlog).read()
    s3.put_object("a-bucket", binlog, io.BytesIO(data[:10] + bytes([data[10] ^ 1]) + data[11:]), len(data))
    app = MilvusBackupApp(engine, refresh_seconds=0)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(app, pilot)
            await _cursor_to(pilot, app.backups_table, name)
            await pilot.press("v")
            await _until(pilot, lambda: len(app.watches) == 1, "the quick verify")
            quick = next(iter(app.watches.values()))
            await _until(pilot, lambda: quick.job.state.finished, "the quick verify to finish")
            assert not quick.succeeded(), "the rewrite gave the object a new ETag: one listing sees it"
            await pilot.press("V")
            await _until(pilot, lambda: len(app.watches) == 2, "the full verify")
            full = next(w for w in app.watches.values() if w is not quick)
            await _until(pilot, lambda: full.job.state.finished, "the full verify to finish")
            assert not full.succeeded()
            await pilot.press("j")
            await pilot.pause(0.5)
            table = app.screen.query_one("#job-table")
            table.move_cursor(row=table.get_row_index(full.job.id))
            await pilot.pause(0.5)
            shown = str(app.screen.query_one("#job-outcome").render())
            assert "DAMAGED" in shown and "altered" in shown and binlog in shown

    try:
        _run(scenario)
    finally:
        engine.delete_backup(name)
