"""The TUI's screens as pictures (pytest-textual-snapshot) at 80x24 and 120x40, plus its pure parts.

These are unit tests of the TUI alone, so the engine is a fixed in-memory stand-in: the same
collections, backups and job progress every run, a fixed clock, no Milvus. The round trip through
the real Milvus and S3 is tests/test_tui.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog
from textual.widgets import _data_table as data_table_module
from textual.widgets.data_table import ColumnKey

import milvus_backup.tui.app as app_module
from milvus_backup.core.meta import IndexInfo, KeyValue, MetaFile, Partition, Schema, Segment, render_backup_json
from milvus_backup.core.service import (
    CHECKING,
    BackupInfo,
    BackupRequest,
    BackupService,
    BackupState,
    BackupSummary,
    CancelOutcome,
    CheckReport,
    Collection,
    CollectionShare,
    CollectionSummary,
    CollectionTask,
    Config,
    Field,
    InvalidRequest,
    Job,
    JobKind,
    JobState,
    Listener,
    MilvusError,
    NotFound,
    Phase,
    Progress,
    RestoreRequest,
    StorageError,
    TaskState,
    VerifyReport,
    load_config,
    preview_targets,
)
from milvus_backup.tui.app import MilvusBackupApp
from milvus_backup.tui.dialogs import QuitDialog, RestoreDialog
from milvus_backup.tui.jobs import JobsScreen, JobWatch
from milvus_backup.tui.launch import FirstLoad
from milvus_backup.tui.tables import FANCY, SyncTable, backup_rows, collection_key, collection_rows

SnapCompare = Callable[..., bool]  # pytest-textual-snapshot's fixture
NOW = 1_795_000_000.0  # a fixed "now" for "3 hours ago"
SIZES = [(80, 24), (120, 40)]


def _collection(db: str, name: str, rows: int, partitions: tuple[str, ...] = ("_default",)) -> Collection:
    fields = [
        Field(field_id=100, name="id", is_primary_key=True, data_type=5),
        Field(field_id=101, name="vector", data_type=101, type_params=[KeyValue("dim", "8")]),
        Field(field_id=102, name="title", data_type=21, type_params=[KeyValue("max_length", "256")]),
    ]
    parts = [
        Partition(
            partition_id=i + 1,
            partition_name=p,
            size=1000 * (i + 1),
            segment_backups=[Segment(segment_id=10 + i, num_of_rows=rows // len(partitions), size=1000)],
        )
        for i, p in enumerate(partitions)
    ]
    return Collection(
        db_name=db,
        collection_name=name,
        shards_num=1,
        size=sum(p.size for p in parts),
        schema=Schema(name=name, fields=fields, enable_dynamic_field=True),
        partition_backups=parts,
        has_index=True,
        load_state="Loaded",
        index_infos=[
            IndexInfo(
                field_name="vector",
                index_name="vector_idx",
                index_type="HNSW",
                params={"index_type": "HNSW", "metric_type": "L2", "M": "8"},
            )
        ],
    )


BACKUPS = {
    "nightly_2026_11_21": BackupInfo(
        id="0b7c",
        state_code=BackupState.SUCCESS,
        name="nightly_2026_11_21",
        start_time=int(NOW) - 3 * 3600,
        end_time=int(NOW) - 3 * 3600 + 4,
        milvus_version="v2.3.5",
        size=48_213_000,
        collection_backups=[
            _collection("default", "hello_milvus", 3000),
            _collection("default", "books", 650, ("_default", "fiction", "science")),
        ],
    ),
    "before_upgrade": BackupInfo(
        id="77aa",
        state_code=BackupState.SUCCESS,
        name="before_upgrade",
        start_time=int(NOW) - 9 * 86400,
        end_time=int(NOW) - 9 * 86400 + 2,
        milvus_version="v2.3.5",
        size=2_000_000,
        collection_backups=[_collection("shop", "products", 200)],
    ),
}


class FixedEngine:
    """The engine's service surface (core.service.BackupService, which mypy holds it to), answered from
    the tables above. It starts no jobs: the jobs screen's snapshot is fed its jobs directly."""

    def __init__(self) -> None:
        self.config: Config = load_config(None, env={})

    def close(self) -> None:
        pass

    def open_stores(self) -> None:
        pass

    # -- reads
    def list_collections(
        self, db: str | None = None, early: Callable[[list[CollectionSummary]], None] | None = None
    ) -> list[CollectionSummary]:
        return [
            CollectionSummary("shop", "products", 3, 200, "NotLoad", 1, ()),
            CollectionSummary("default", "hello_milvus", 2, 3000, "Loaded", 1, ("embeddings:HNSW",), 3000),
            CollectionSummary(
                "shop", "orders_2026_with_a_long_name", 4, 1_234_567, "Loaded", 12, ("vec:DISKANN",), 1_234_560
            ),
            CollectionSummary("default", "books", 1, 650, "Loaded", 3, ("embedding:IVF_FLAT",), 647),
        ]  # databases in no fixed order, as Milvus lists them

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        listed = [
            BackupSummary(
                b.name,
                b.id,
                "success",
                b.size,
                b.milvus_version,
                b.start_time,
                b.end_time,
                tuple(f"{c.db_name}.{c.collection_name}" for c in b.collection_backups),
            )
            for b in BACKUPS.values()
        ]
        return [*listed, BackupSummary("half_written", "", "incomplete", 1024, "", 0, 0, ())]

    def get_backup(self, name: str) -> BackupInfo:
        if name not in BACKUPS:
            raise NotFound(f"backup {name} not found")
        return BACKUPS[name]

    def backup_json(
        self,
        name: str,
        *,
        indent: int | None = None,
        last_word: Callable[[BackupInfo], dict[str, Any]] | None = None,
    ) -> MetaFile:
        info = self.get_backup(name)
        return render_backup_json(info, indent=indent, last_word=last_word(info) if last_word else None)

    def backup_exists(self, name: str) -> bool:
        return any(b.name == name for b in self.list_backups())

    def backup_name_of_id(self, backup_id: str) -> str | None:
        return next((b.name for b in self.list_backups() if b.id == backup_id), None)

    def delete_backup(self, name: str) -> int:
        raise InvalidRequest("the snapshot engine deletes nothing")

    def existing_collections(self) -> set[str]:
        return {"default.books", "default.hello_milvus", "shop.products"}

    def busy_imports(self) -> int:
        return 0

    def check(self) -> CheckReport:
        raise InvalidRequest("the snapshot engine has nothing to check")

    def get_restore(self, restore_id: str) -> dict[str, Any]:
        raise NotFound(f"restore {restore_id} not found")

    # -- jobs: none
    def jobs(self) -> list[Job[Any]]:
        return []

    def job(self, job_id: str) -> Job[Any] | None:
        return None

    def list_jobs(self) -> list[Job[Any]]:
        return []

    def cancel_job(self, job_id: str) -> CancelOutcome:
        raise NotFound(f"job {job_id} not found")

    def backup_job(self, name: str = "", job_id: str = "") -> Job[BackupInfo] | None:
        return None

    def running_backup(self, name: str) -> Job[BackupInfo] | None:
        return None

    def start_backup(self, request: BackupRequest, listeners: list[Listener] | None = None) -> Job[BackupInfo]:
        raise InvalidRequest("the snapshot engine starts no jobs")

    def start_restore(
        self, request: RestoreRequest, listeners: list[Listener] | None = None, restore_id: str | None = None
    ) -> Job[list[CollectionTask]]:
        raise InvalidRequest("the snapshot engine starts no jobs")

    def start_verify(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> Job[VerifyReport]:
        raise InvalidRequest("the snapshot engine starts no jobs")

    def verify_backup(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> VerifyReport:
        raise InvalidRequest("the snapshot engine starts no jobs")


def _app() -> MilvusBackupApp:
    engine: BackupService = FixedEngine()  # mypy holds the stand-in to the engine's protocol here
    return MilvusBackupApp(
        engine, clock=lambda: NOW, refresh_seconds=0, default_name=lambda: "backup_2026_11_22_10_00_00_1"
    )


async def _loaded(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, MilvusBackupApp)
    await asyncio.wait_for(app.loaded.wait(), 10)
    await pilot.pause()


def _jobs_app() -> MilvusBackupApp:
    """An app with one backup copying and one restore that failed, their progress fed as events."""
    app = _app()
    backup: Job[None] = Job(JobKind.BACKUP, "nightly_2026_11_22", lambda r: None, job_id="job-backup")
    backup.start_time = int(NOW) - 40
    watch = JobWatch(backup)
    head = ("job-backup", JobKind.BACKUP, "nightly_2026_11_22")
    for event in (
        Progress(*head, phase=Phase.PREPARE, collection="default.books", elapsed=1.0),
        Progress(*head, phase=Phase.PREPARE, collection="default.hello_milvus", elapsed=1.5),
        Progress(*head, phase=Phase.COPY, collection="", bytes_total=400_000_000, objects_total=120, elapsed=2.0),
        Progress(
            *head,
            phase=Phase.COPY,
            collection="",
            bytes_done=150_000_000,
            bytes_total=400_000_000,
            objects_done=45,
            objects_total=120,
            elapsed=12.0,
        ),
    ):
        watch.on_progress(event)
    assert watch.latest is not None
    backup.progress = watch.latest
    backup.shares = {
        "default.books": CollectionShare(bytes_total=150_000_000, bytes_done=150_000_000, rows=650),
        "default.hello_milvus": CollectionShare(bytes_total=250_000_000, bytes_done=0, rows=3000),
    }
    backup.lines = [
        "planning backup nightly_2026_11_22 of 2 collection(s)",
        "default.books: 3 segment(s), 27 binlog(s), 150000000 bytes",
        "default.hello_milvus: 2 segment(s), 12 binlog(s), 250000000 bytes",
        "copying 39 binlog(s), 400000000 bytes",
    ]
    restore: Job[None] = Job(
        JobKind.RESTORE,
        "before_upgrade",
        lambda r: None,
        job_id="job-restore",
        tasks=[CollectionTask("shop.products", "shop", "products_recover", 0, TaskState.FAILED)],
    )
    restore.start_time = int(NOW) - 300
    restore.end_time = int(NOW) - 298
    restore.error = "collection(s) shop.products_recover already exist"
    restore_watch = JobWatch(restore)
    restore.progress = Progress(
        "job-restore", JobKind.RESTORE, "before_upgrade", state=JobState.FAILED, phase=Phase.DONE, elapsed=2.0
    )
    restore.lines = ["restoring 1 collection(s) from backup before_upgrade", restore.error]
    app.watches = {backup.id: watch, restore.id: restore_watch}
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(_app(), terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_backup_dialog(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("space", "down", "space", "b")
        await pilot.pause()
        # the name field's cursor blinks (0.5 s on, 0.5 s off): held on, the picture no longer depends on
        # when, in that second, it is taken
        pilot.app.screen.query_one("#name", Input).cursor_blink = False

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_restore_dialog(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("tab", "r")
        await asyncio.sleep(0.3)
        await pilot.pause()
        pilot.app.screen.query_one("#suffix").focus()
        await pilot.press(*"_recover")
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_jobs_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("j")
        await pilot.pause(0.4)

    assert snap_compare(_jobs_app(), terminal_size=size, run_before=run_before)


def _waiting_restore_app() -> MilvusBackupApp:
    """An app with one restore whose second collection's import waits on Milvus."""
    app = _app()
    tasks = [
        CollectionTask("default.books", "default", "books_r", 650, TaskState.SUCCESS, 150_000_000, 650),
        CollectionTask("default.hello_milvus", "default", "hello_milvus_r", 0, TaskState.RESTORING, 250_000_000, 3000),
        CollectionTask("shop.products", "shop", "products_r", 0, TaskState.PENDING, 2_000_000, 200),
    ]
    job: Job[None] = Job(JobKind.RESTORE, "nightly_2026_11_21", lambda r: None, job_id="job-wait", tasks=tasks)
    job.start_time = int(NOW) - 95
    watch = JobWatch(job)
    head = ("job-wait", JobKind.RESTORE, "nightly_2026_11_21")
    for event in (
        Progress(*head, phase=Phase.CREATE, collection="default.books_r", elapsed=1.0),
        Progress(*head, phase=Phase.IMPORT, collection="default.books_r", objects_total=3, elapsed=2.0),
        Progress(
            *head,
            phase=Phase.IMPORT,
            collection="default.books_r",
            objects_done=3,
            objects_total=3,
            rows=650,
            elapsed=30.0,
        ),
        Progress(*head, phase=Phase.CREATE, collection="default.hello_milvus_r", rows=650, elapsed=31.0),
        Progress(
            *head, phase=Phase.IMPORT, collection="default.hello_milvus_r", objects_total=2, rows=650, elapsed=32.0
        ),
        Progress(
            *head,
            phase=Phase.IMPORT,
            collection="default.hello_milvus_r",
            objects_total=2,
            rows=650,
            message="import queued: Milvus DataNode busy",
            elapsed=33.0,
        ),
    ):
        watch.on_progress(event)
    assert watch.latest is not None
    job.progress = watch.latest
    job.lines = ["restoring 3 collection(s) from backup nightly_2026_11_21", "import queued: Milvus DataNode busy"]
    app.watches = {job.id: watch}
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_jobs_screen_restore_waiting(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("j")
        await pilot.pause(0.4)

    assert snap_compare(_waiting_restore_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_details_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await _loaded(pilot)
        await pilot.press("tab", "enter")
        await asyncio.sleep(0.3)
        await pilot.pause()

    assert snap_compare(_app(), terminal_size=size, run_before=run_before)


def test_help_screen(snap_compare: SnapCompare) -> None:
    assert snap_compare(_app(), run_before=_loaded, press=["question_mark"])


# -- the pure parts ---------------------------------------------------------------------------------


def test_job_watch_rate_and_eta_come_from_bytes_copied() -> None:
    app = _jobs_app()
    watch = app.watches["job-backup"]
    assert watch.fraction() == pytest.approx(0.05 + 0.9 * 0.375)  # the copy is 5..95 % of a backup
    assert watch.rate() == pytest.approx(15_000_000)  # 150 MB in the 10 s since the copy began
    assert watch.eta() == pytest.approx(250_000_000 / 15_000_000)
    line = watch.stats_line()
    assert "150.0 MB / 400.0 MB" in line and "15.0 MB/s" in line and "ETA 17 seconds" in line
    assert list(watch.collections) == ["default.books", "default.hello_milvus"]


def test_failed_job_says_why() -> None:
    watch = _jobs_app().watches["job-restore"]
    assert watch.outcome() == "restore before_upgrade failed: collection(s) shop.products_recover already exist"
    assert watch.eta() is None


def test_backup_rows_say_when_in_words() -> None:
    rows = backup_rows(FixedEngine().list_backups(), lambda: NOW)
    assert str(rows["nightly_2026_11_21"][1]) == "3 hours ago"
    assert str(rows["before_upgrade"][1]) == "9 days ago"
    assert str(rows["half_written"][4]) == "incomplete"


def test_restore_preview_marks_existing_targets() -> None:
    info = BACKUPS["nightly_2026_11_21"]
    plain = preview_targets(info, RestoreRequest(info.name), {"default.books"})
    assert [(p.target, p.exists) for p in plain] == [("default.hello_milvus", False), ("default.books", True)]
    suffixed = preview_targets(info, RestoreRequest(info.name, suffix="_r"), {"default.books"})
    assert [(p.target, p.exists) for p in suffixed] == [("default.hello_milvus_r", False), ("default.books_r", False)]


def test_table_refresh_keeps_the_cursor_and_filters() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)
            table: SyncTable = app.collections_table
            table.move_cursor(row=table.get_row_index("shop.products"))
            collections = app.engine.list_collections()
            # a refresh where one collection went away and the rows changed: the cursor stays on its row
            changed = [replace(c, row_count=c.row_count + 1) for c in collections if c.name != "books"]
            app._show_data(changed, None, {})
            await pilot.pause()
            assert table.current_key == "shop.products"
            assert table.row_count == 3
            assert str(table.get_row("shop.products")[3]) == "201 stored"
            await pilot.press("slash", *"hello")
            await pilot.pause()
            assert [k.value for k in table.rows] == ["default.hello_milvus"]
            await pilot.press("escape")
            await pilot.pause()
            assert table.row_count == 3
            assert isinstance(app.focused, DataTable)

    asyncio.run(scenario())


def test_command_palette_reaches_the_actions() -> None:
    """ctrl+p, type "jobs", enter: the jobs screen opens; every main action is listed by name."""

    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)
            titles = {command.title for command in app.get_system_commands(app.screen)}
            assert {
                "Back up",
                "Restore",
                "Backup details",
                "Delete backup",
                "Jobs",
                "Refresh",
                "Filter",
                "Keys",
            } <= titles
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Jobs")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await pilot.pause(0.3)
            assert isinstance(app.screen, JobsScreen)

    asyncio.run(scenario())


def test_late_ticks_after_quitting_do_nothing() -> None:
    """A job-line tick or a refresh that lands while the app closes must not raise (its widgets are gone)."""
    app = _jobs_app()

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)

    asyncio.run(scenario())  # leaving run_test closes the app
    assert not app.is_running
    app._update_jobline()
    app._show_data(FixedEngine().list_collections(), FixedEngine().list_backups(), {})


# -- the jobs screen tells the truth ------------------------------------------------------------------


def _restore_watch(sizes: dict[str, int]) -> tuple[Job[None], JobWatch]:
    """A restore of `sizes` ("db.name" -> bytes) that has not run: its events are fed by the test."""
    tasks = [
        CollectionTask(name, "default", name.split(".")[1] + "_r", bytes_total=size, rows_total=100)
        for name, size in sizes.items()
    ]
    job: Job[None] = Job(JobKind.RESTORE, "nightly", lambda r: None, job_id="job-r", tasks=tasks)
    return job, JobWatch(job)


def test_the_backups_cursor_goes_to_a_backup_started_here_once_it_is_listed() -> None:
    """A backup started in the app: once a listing holds it, the cursor is on it (d, r, v or enter then mean
    the backup just made), unless the operator moved the cursor since it started."""

    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot)
            table = app.backups_table
            listed = list(app.backups.values())
            was_on = table.current_key
            assert was_on is not None

            def started(name: str) -> None:
                job: Job[None] = Job(JobKind.BACKUP, name, lambda r: None, job_id=f"job-{name}")
                app._job_started(JobWatch(job))

            def listing_with(*names: str) -> list[BackupSummary]:
                made = [replace(listed[0], name=n, id=n, start_time=int(NOW) + i) for i, n in enumerate(names, 1)]
                return [*listed, *made]

            started("made_here")
            app._show_data(None, listed, {})  # not listed yet: the cursor stays
            assert table.current_key == was_on
            app._show_data(None, listing_with("made_here"), {})
            await pilot.pause()
            assert table.current_key == "made_here"
            started("another")
            table.move_cursor(row=table.get_row_index(was_on))  # the operator goes elsewhere meanwhile
            app._show_data(None, listing_with("made_here", "another"), {})
            await pilot.pause()
            assert table.current_key == was_on

    asyncio.run(scenario())


def test_restore_has_one_bar_that_never_goes_back() -> None:
    """Two collections, each created, staged, imported: the bar rises through every phase of both, and
    bytes, rate and ETA are those of the whole restore."""
    job, watch = _restore_watch({"default.a": 100_000_000, "default.b": 300_000_000})
    head = ("job-r", JobKind.RESTORE, "nightly")
    seen: list[float] = []
    events = []
    for n, task in enumerate(job.tasks):
        t0 = 10.0 * n
        events += [
            (task, Progress(*head, phase=Phase.CREATE, collection=task.target, elapsed=t0 + 1)),
            (
                task,
                Progress(*head, phase=Phase.COPY, collection=task.target, bytes_total=task.bytes_total, elapsed=t0 + 2),
            ),
            (
                task,
                Progress(
                    *head,
                    phase=Phase.COPY,
                    collection=task.target,
                    bytes_done=task.bytes_total // 2,
                    bytes_total=task.bytes_total,
                    elapsed=t0 + 4,
                ),
            ),
            (task, Progress(*head, phase=Phase.IMPORT, collection=task.target, objects_total=2, elapsed=t0 + 6)),
            (
                task,
                Progress(
                    *head, phase=Phase.IMPORT, collection=task.target, objects_done=1, objects_total=2, elapsed=t0 + 7
                ),
            ),
            (task, Progress(*head, phase=Phase.LOAD, collection=task.target, elapsed=t0 + 9)),
        ]
    for task, event in events:
        task.state = TaskState.RESTORING
        watch.on_progress(event)
        job.progress = event
        seen.append(watch.fraction())
        if event.phase is Phase.LOAD:
            task.state = TaskState.SUCCESS
            task.rows = 100
    assert seen == sorted(seen), f"the bar went back: {seen}"
    assert seen[0] < 0.01 and 0.95 < seen[-1] < 1.0
    # halfway through staging b: a is whole (100 MB) and b is 2 % + half of its 48 % copy span
    job.tasks[1].state = TaskState.RESTORING
    watch.on_progress(events[8][1])
    done, total = watch.bytes_pair()
    assert total == 400_000_000
    assert done == pytest.approx(100_000_000 + 300_000_000 * (0.02 + 0.48 * 0.5), rel=1e-6)
    assert watch.rate() > 0 and watch.eta() is not None
    line = watch.stats_line()
    assert "/ 400.0 MB" in line and "MB/s" in line and "ETA" in line


def test_phases_and_states_say_what_happened() -> None:
    """After success the phase is done (not the last step's); a collection a cancel never reached is
    "not started", never "pending"."""
    job, watch = _restore_watch({"default.a": 10, "default.b": 10})
    head = ("job-r", JobKind.RESTORE, "nightly")
    job.tasks[0].state = TaskState.RESTORING
    watch.on_progress(Progress(*head, phase=Phase.LOAD, collection="default.a_r", elapsed=1))
    job.tasks[0].state, job.tasks[0].rows = TaskState.SUCCESS, 100
    job.progress = Progress(*head, state=JobState.CANCELLED, phase=Phase.DONE, elapsed=2)
    lines = watch._restore_lines(FANCY)
    assert [(line[1], line[4]) for line in lines] == [("done", "rolled back"), ("-", "not started")]
    assert lines[0][3] == "100 / 100"
    assert watch.phase_text() == "done"

    job.progress = Progress(*head, state=JobState.SUCCESS, phase=Phase.DONE, elapsed=2)
    job.tasks[1].state = TaskState.SUCCESS
    assert watch.fraction() == 1.0
    assert [line[1] for line in watch._restore_lines(FANCY)] == ["done", "done"]


def test_backup_collections_show_their_bytes_and_rows() -> None:
    watch = _jobs_app().watches["job-backup"]
    lines = watch._backup_lines()
    assert lines == [
        ("default.books", "copy", "150.0 MB / 150.0 MB", "650", "copied"),
        ("default.hello_milvus", "copy", "0 Bytes / 250.0 MB", "3,000", "copying"),
    ]


def test_waiting_on_milvus_is_named_until_the_job_moves() -> None:
    job, watch = _restore_watch({"default.a": 10})
    head = ("job-r", JobKind.RESTORE, "nightly")
    job.tasks[0].state = TaskState.RESTORING
    watch.on_progress(Progress(*head, phase=Phase.IMPORT, collection="default.a_r", objects_total=1, elapsed=1))
    queued = "import queued: Milvus DataNode busy"
    watch.on_progress(
        Progress(*head, phase=Phase.IMPORT, collection="default.a_r", objects_total=1, message=queued, elapsed=2)
    )
    assert watch.waiting == queued
    assert watch.phase_text() == "import (waiting)"
    watch.on_progress(
        Progress(*head, phase=Phase.IMPORT, collection="default.a_r", objects_done=1, objects_total=1, elapsed=3)
    )
    assert watch.waiting == ""


def test_a_cancel_that_came_too_late_says_so() -> None:
    job: Job[None] = Job(JobKind.BACKUP, "b1", lambda r: None)
    job.cancel_event.set()  # asked while the job wrote its last file
    job.progress = replace(job.progress, state=JobState.SUCCESS, phase=Phase.DONE)
    assert JobWatch(job).outcome().startswith("cancel came too late: the job succeeded")


def test_jobs_screen_opens_on_the_running_job_newest_first() -> None:
    """Newest first; the cursor on the running job; a duration column; quick and full verify told apart;
    a long log line wraps instead of running off the screen; at 80x24 the running job is on screen."""
    app = _jobs_app()
    for n, full in enumerate((False, True)):
        verify: Job[None] = Job(JobKind.VERIFY, "before_upgrade", lambda r: None, job_id=f"job-verify-{n}")
        verify.start_time, verify.end_time = int(NOW) - 600 - n, int(NOW) - 590 - n
        verify.progress = replace(verify.progress, state=JobState.SUCCESS, phase=Phase.DONE)
        app.watches[verify.id] = JobWatch(verify, "verify full" if full else "verify quick")
    app.watches["job-backup"].job.lines.append("x" * 150 + " the end of a long line")

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot)
            await pilot.press("j")
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, JobsScreen)
            table = screen.query_one("#job-table", DataTable)
            assert [k.value for k in table.rows] == ["job-backup", "job-restore", "job-verify-0", "job-verify-1"]
            assert screen.selected() is app.watches["job-backup"]
            assert table.cursor_row == 0 and table.region.height > 1  # on screen, no scrolling
            assert [str(c) for c in table.get_row("job-backup")][4:6] == ["39%", "40s"]
            assert str(table.get_row("job-restore")[5]) == "2s"
            assert [str(table.get_row(f"job-verify-{n}")[0]) for n in (0, 1)] == ["verify quick", "verify full"]
            log = screen.query_one("#job-log", RichLog)
            assert max(strip.cell_length for strip in log.lines) <= log.size.width
            assert "the end of a long line" in " ".join(strip.text.strip() for strip in log.lines)
            await pilot.press("G")
            assert table.cursor_row == 3
            await pilot.press("g")
            assert table.cursor_row == 0

    asyncio.run(scenario())


def test_no_jobs_no_empty_bar() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot)
            await pilot.press("j")
            await pilot.pause(0.3)
            assert "No jobs yet" in str(app.screen.query_one("#no-jobs").render())
            assert not app.screen.query_one("#job-detail").display
            assert not app.screen.query_one("#job-table").display

    asyncio.run(scenario())


# -- tables that hold still and fit ---------------------------------------------------------------------


def test_tables_hold_a_fixed_order_and_say_which_count() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot)
            order = [
                "default.books",
                "default.hello_milvus",
                "shop.orders_2026_with_a_long_name",
                "shop.products",
            ]
            assert [k.value for k in app.collections_table.rows] == order
            app._show_data(list(reversed(app.engine.list_collections())), list(reversed(app.engine.list_backups())), {})
            await pilot.pause()
            assert [k.value for k in app.collections_table.rows] == order
            assert [k.value for k in app.backups_table.rows] == ["nightly_2026_11_21", "before_upgrade", "half_written"]
            rows = {str(k.value): str(app.collections_table.get_row(k)[3]) for k in app.collections_table.rows}
            assert rows["default.books"] == "647 live" and rows["shop.products"] == "200 stored"

    asyncio.run(scenario())


def test_after_a_delete_the_cursor_stays_on_the_neighbour() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot)
            table = app.backups_table
            table.move_cursor(row=1)  # before_upgrade
            backups = [b for b in app.engine.list_backups() if b.name != "before_upgrade"]
            app._show_data(None, backups, {})
            await pilot.pause()
            assert table.current_key == "half_written"
            app._show_data(None, [b for b in backups if b.name != "half_written"], {})
            await pilot.pause()
            assert table.current_key == "nightly_2026_11_21"

    asyncio.run(scenario())


def test_widths_follow_the_contents_and_80_columns_keep_the_state() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot)
            table = app.backups_table
            when = table.columns[ColumnKey("When")]
            assert when.content_width == len("3 hours ago")
            app._show_data(None, app.engine.list_backups(), {})  # same rows, cells unchanged
            app.clock = lambda: NOW + 20 * 60  # "3 hours ago" -> "3 hours ago"; nightly -> the same
            newer = [
                replace(b, start_time=int(NOW) - 15 * 60) if b.name == "nightly_2026_11_21" else b
                for b in app.engine.list_backups()
            ]
            app._show_data(None, newer, {})
            await pilot.pause()
            assert str(table.get_row("nightly_2026_11_21")[1]) == "35 minutes ago"
            assert when.content_width == len("35 minutes ago")
            rendered = table.get_row("nightly_2026_11_21")
            assert str(rendered[4]) == "success"
            assert str(rendered[3]).endswith("…")
            widths = sum(c.get_render_width(table) for c in table.columns.values())
            assert widths <= table.scrollable_content_region.width

    asyncio.run(scenario())


def test_empty_tables_say_so() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _loaded(pilot)
            app._show_data(None, [], {})
            await pilot.pause()
            hint = app.backups_table.hint
            assert hint.display and "no backups yet" in str(hint.render())
            await pilot.press("slash", *"zzz")
            await pilot.pause()
            hint = app.collections_table.hint
            assert hint.display and "no match for “zzz”" in str(hint.render())
            await pilot.press("escape")
            await pilot.pause()
            assert not hint.display

    asyncio.run(scenario())


# -- one set of rules for keys -------------------------------------------------------------------------


def test_cursor_keys_and_unmark_all() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)
            table = app.collections_table
            await pilot.press("end")
            assert table.cursor_row == 3
            await pilot.press("home")
            assert table.cursor_row == 0
            await pilot.press("G")
            assert table.cursor_row == 3
            await pilot.press("g", "space", "space")
            assert app.marked == {"default.books", "default.hello_milvus"}
            await pilot.press("u")
            assert app.marked == set()
            assert all(str(table.get_row(k)[0]) == " " for k in table.rows)

    asyncio.run(scenario())


def test_palette_lists_each_action_once() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)
            titles = [command.title for command in app.get_system_commands(app.screen)]
            assert len(titles) == len(set(titles)), titles
            assert {"Cancel job", "Unmark all collections", "Mark or unmark collection", "Quit", "Keys"} <= set(titles)
            assert not {"Screenshot", "Maximize", "Theme"} & set(titles)

    asyncio.run(scenario())


def test_every_way_of_quitting_asks_while_a_job_runs() -> None:
    """q, ctrl+q and the palette's Quit: the same question (a job that has not ended stands in)."""
    app = _jobs_app()

    async def scenario() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)
            for keys in (["q"], ["ctrl+q"], ["ctrl+p", *"Quit"]):
                await pilot.press(*keys)
                await pilot.pause(0.5)
                if keys[0] == "ctrl+p":
                    await pilot.press("enter")
                    await pilot.pause(0.3)
                assert isinstance(app.screen, QuitDialog), keys
                assert app.screen.running, "the question names the running job"
                await pilot.press("n")  # stay
                await pilot.pause()
                assert app.is_running

    asyncio.run(scenario())


def test_restore_dialog_says_why_it_cannot_start_and_flags_a_rename_that_matches_nothing() -> None:
    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await _loaded(pilot)
            await pilot.press("tab", "r")
            await asyncio.sleep(0.3)
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, RestoreDialog)
            await pilot.press("ctrl+s")  # both targets exist: it stays open and says why
            await pilot.pause()
            assert app.screen is dialog
            assert any(
                "Cannot start the restore" in str(n.message) and "exists" in str(n.message) for n in app._notifications
            )
            dialog.query_one("#renames").focus()
            await pilot.press(*"nosuch:x,books:books_r,hello_milvus:h_r")
            await pilot.pause()
            preview = str(dialog.query_one("#preview").render())
            assert "rename nosuch: matches no chosen collection" in preview
            await pilot.press("enter")
            await pilot.pause(0.3)
            assert app.screen is dialog
            # the dialog's buttons stay visible under the notices
            start = dialog.query_one("#start")
            toasts = app.screen.query("Toast")
            assert toasts and all(not t.region.overlaps(start.region) for t in toasts)

    asyncio.run(scenario())


@pytest.mark.parametrize("variable", [("TERM", "vt100"), ("NO_COLOR", "1")], ids=["vt100", "NO_COLOR"])
def test_plain_terminal_gets_no_colour_and_ascii(monkeypatch: pytest.MonkeyPatch, variable: tuple[str, str]) -> None:
    """TERM=vt100 or NO_COLOR: no colour codes, ASCII symbols, the cursor row in reverse video."""
    import io
    import re

    from rich.console import Console

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv(*variable)

    async def scenario() -> None:
        app = _app()
        async with app.run_test(size=(100, 30)) as pilot:
            await _loaded(pilot)
            await pilot.press("space")
            await pilot.pause()
            console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=100)
            console.print(app.screen._compositor.render_update(full=True))
            out = console.file.getvalue()  # type: ignore[attr-defined]
            codes = [int(c) for sgr in re.findall(r"\x1b\[([0-9;]*)m", out) for c in sgr.split(";") if c]
            assert not [c for c in codes if 30 <= c <= 38 or 40 <= c <= 48 or 90 <= c <= 107], "colour codes sent"
            assert 7 in codes, "the cursor row must be in reverse video"
            text = re.sub(r"\x1b\[[0-9;]*m", "", out)
            assert "✓" not in text and "x " in text
            assert all(ord(ch) < 128 for ch in text if ch not in "\n"), {ch for ch in text if ord(ch) >= 128}

    asyncio.run(scenario())


class HeldBackupsEngine(FixedEngine):
    """The backup listing answers only when the test lets it (a slow store with many backups); `polls`
    counts the reads of other processes' jobs."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.asked = threading.Event()
        self.polls = 0
        self.early: list[BackupSummary] | None = None  # the early answer it gives, when asked for one
        self.reading = threading.Event()

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        self.asked.set()
        if early is not None and self.early is not None:
            early(self.early)
        self.reading.set()  # (after the early answer: where the catalog starts reading each backup)
        assert self.release.wait(30), "the test never released the backup listing"
        return super().list_backups()

    def list_backups_now(self) -> list[BackupSummary]:
        return FixedEngine.list_backups(self)

    def list_jobs(self) -> list[Job[Any]]:
        self.polls += 1
        return []


def test_the_screen_fills_each_table_as_its_source_answers() -> None:
    """Each table fills as its source answers; the other processes' jobs are read only once the backup
    store has answered (their records would compete with its listing)."""

    async def scenario() -> None:
        engine = HeldBackupsEngine()
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=60)
        async with app.run_test(size=(120, 40)) as pilot:

            async def collections_shown() -> None:
                while not (engine.asked.is_set() and app.collections_table.row_count == 4):
                    await pilot.pause(0.01)

            try:  # with the tables loaded one after the other, the collections would wait for the backups
                await asyncio.wait_for(collections_shown(), 10)
            except BaseException:
                engine.release.set()  # a failed test must not leave the listing thread waiting
                raise
            assert {str(k.value) for k in app.collections_table.rows} == {
                collection_key(c) for c in engine.list_collections()
            }
            assert app.backups_table.row_count == 0 and "loading" in str(app.backups_table.hint.render())
            assert not app.loaded.is_set() and engine.polls == 0
            engine.release.set()
            await asyncio.wait_for(app.loaded.wait(), 10)
            await pilot.pause()
            assert [str(k.value) for k in app.backups_table.rows] == [b.name for b in engine.list_backups()]
            assert not app.backups_table.hint.display
            await _until(pilot, lambda: engine.polls == 1)

    asyncio.run(scenario())


def test_a_backup_store_that_does_not_answer_holds_the_jobs_poll_one_interval_at_most() -> None:
    async def scenario() -> None:
        engine = HeldBackupsEngine()
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                await _until(pilot, lambda: engine.polls >= 1)
                assert app.backups_table.row_count == 0 and not app.loaded.is_set()  # still held
            finally:
                engine.release.set()
            await asyncio.wait_for(app.loaded.wait(), 10)

    asyncio.run(scenario())


@pytest.mark.parametrize("asked_before_the_app", [True, False])
def test_the_backups_table_shows_the_names_while_each_backup_is_read(asked_before_the_app: bool) -> None:
    """The listing's early answer (the names, with what this machine last saw of each, or "checking")
    fills the table at once; the whole answer replaces it. A later refresh asks for no early answer."""

    async def scenario() -> None:
        engine = HeldBackupsEngine()
        final = FixedEngine.list_backups(engine)
        seen = replace(final[0], size=1, collections=("default.old",))  # what the cache kept of one
        engine.early = [seen, *(BackupSummary(b.name, "", CHECKING, 0, "", 0, 0, ()) for b in final[1:])]
        first = FirstLoad(engine) if asked_before_the_app else None
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=60, first_load=first)
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                await _until(pilot, lambda: app.backups_table.row_count == len(final))
                shown = {str(k.value): app.backups_table.get_row(k) for k in app.backups_table.rows}
                assert sorted(shown) == sorted(b.name for b in final) and not app.backups_table.hint.display
                assert [str(cell) for cell in shown[seen.name][2:]] == ["1 Byte", "default.old", seen.state]
                for b in final[1:]:
                    assert [str(cell) for cell in shown[b.name][1:]] == ["-", "-", "-", CHECKING]
                    assert getattr(shown[b.name][4], "style", None) == "dim"
                assert not app.loaded.is_set() and engine.polls == 0
            finally:
                engine.release.set()
            await asyncio.wait_for(app.loaded.wait(), 10)
            await pilot.pause()
            assert app.backups_table.all_rows == backup_rows(final, lambda: NOW)
            engine.release.clear()
            engine.asked.clear()
            engine.early = [BackupSummary("never_shown", "", CHECKING, 0, "", 0, 0, ())]
            await pilot.press("ctrl+r")
            await _until(pilot, engine.asked.is_set)
            engine.release.set()
            await pilot.pause(0.2)
            assert "never_shown" not in app.backups_table.all_rows

    asyncio.run(scenario())


def test_a_thousand_rows_changing_at_once_are_not_measured_again_cell_by_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The early answer's "checking" rows, then every backup read: DataTable's own width update measured
    every cell of a column again for each cell that got narrower than the column ("checking" to
    "success" beside one "incomplete": a million measures for a thousand backups, 30 s of CPU). The
    widths come from the rows' text; the rows show the new cells, and the table's size follows its
    columns, narrower and wider."""
    measured = 0
    real_measure = data_table_module.measure

    def counting(*args: Any, **kwargs: Any) -> int:
        nonlocal measured
        measured += 1
        return real_measure(*args, **kwargs)

    monkeypatch.setattr(data_table_module, "measure", counting)
    names = [f"backup_{i:04d}" for i in range(1000)]

    def listing(state: str) -> list[BackupSummary]:  # and one half-written backup, wider than the rest
        return [
            BackupSummary(n, str(i), state if i else "incomplete", 10, "2.3.5", int(NOW) - 60, int(NOW), ("default.a",))
            for i, n in enumerate(names)
        ]

    async def scenario() -> None:
        nonlocal measured
        app = _app()
        async with app.run_test(size=(120, 40)) as pilot:
            await _loaded(pilot)
            table = app.backups_table
            app._show_data(None, listing(CHECKING), {})
            await _until(pilot, lambda: table.row_count == len(names))
            await pilot.pause()
            state, size = table.columns[ColumnKey("State")], table.columns[ColumnKey("Size")]
            assert state.content_width == len("incomplete")

            def sized() -> bool:  # the table's width is its columns' (what DataTable recomputes when idle)
                return table.virtual_size.width == sum(c.get_render_width(table) for c in table.ordered_columns)

            measured = 0
            app._show_data(None, listing("success"), {})
            await _until(pilot, sized)
            assert measured < 10, measured  # (it was a million: for each narrower cell, the whole column)
            assert [str(table.get_row(n)[4]) for n in names[1:]] == ["success"] * (len(names) - 1)
            assert (state.content_width, size.content_width) == (len("incomplete"), len("10 Bytes"))
            app._show_data(None, [replace(b, state="interrupted") for b in listing("success")], {})
            await _until(pilot, lambda: state.content_width == len("interrupted"))
            await _until(pilot, sized)
            assert measured < 10, measured

    asyncio.run(scenario())


def test_the_first_listing_reads_each_backup_only_once_the_first_screen_is_drawn() -> None:
    """Asked for before the app, the backups listing gives its early answer, then waits with its reads
    (which would compete with drawing the screen) until both tables show something."""

    class SlowMilvus(HeldBackupsEngine):
        def __init__(self) -> None:
            super().__init__()
            self.milvus_answers = threading.Event()

        def list_collections(
            self, db: str | None = None, early: Callable[[list[CollectionSummary]], None] | None = None
        ) -> list[CollectionSummary]:
            assert self.milvus_answers.wait(30), "the test never let Milvus answer"
            return super().list_collections(db)

    async def scenario() -> None:
        engine = SlowMilvus()
        engine.early = [BackupSummary(b.name, "", CHECKING, 0, "", 0, 0, ()) for b in engine.list_backups_now()]
        first = FirstLoad(engine)
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=60, first_load=first)
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                await _until(pilot, lambda: app.backups_table.row_count == len(engine.early or ()))
                await pilot.pause()
                assert not engine.reading.is_set()  # held: the collections are not there yet
                engine.milvus_answers.set()
                await _until(pilot, engine.reading.is_set)
                assert app.collections_table.row_count == 4
            finally:
                engine.milvus_answers.set()
                engine.release.set()
            await asyncio.wait_for(app.loaded.wait(), 10)

    asyncio.run(scenario())


class HeldCollectionsEngine(HeldBackupsEngine):
    """Milvus lists the collections' names at once (the early answer, when asked for one), and describes
    them only when the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.described = threading.Event()
        self.describing = threading.Event()
        self.early_asked = 0

    def list_collections(
        self, db: str | None = None, early: Callable[[list[CollectionSummary]], None] | None = None
    ) -> list[CollectionSummary]:
        whole = super().list_collections(db)
        if early is not None:
            self.early_asked += 1
            early([CollectionSummary.listed(c.db_name, c.name, c.collection_id) for c in whole])
        self.describing.set()  # (after the early answer: where the engine sends 4 requests a collection)
        assert self.described.wait(30), "the test never let Milvus describe the collections"
        return whole


@pytest.mark.parametrize("asked_before_the_app", [True, False])
def test_the_collections_table_shows_the_names_while_each_collection_is_described(asked_before_the_app: bool) -> None:
    """The collections listing's early answer (the names) fills the table at once, the rest dimmed dashes;
    a collection can be marked then; the whole answer replaces it and keeps the mark. A later refresh
    asks for no early answer."""

    async def scenario() -> None:
        engine = HeldCollectionsEngine()
        engine.release.set()  # the backups answer at once
        whole = FixedEngine.list_collections(engine)
        first = FirstLoad(engine) if asked_before_the_app else None
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=60, first_load=first)
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                await _until(pilot, lambda: app.collections_table.row_count == len(whole))
                table = app.collections_table
                for c in whole:
                    row = table.get_row(collection_key(c))
                    assert [str(cell) for cell in row[1:]] == [c.db_name, c.name, "-", "-", "-", "-"]
                    assert all(getattr(cell, "style", None) == "dim" for cell in row[3:])
                table.move_cursor(row=table.get_row_index("shop.products"))
                await pilot.press("space")
                assert app.marked == {"shop.products"} and not app.loaded.is_set()
            finally:
                engine.described.set()
            await asyncio.wait_for(app.loaded.wait(), 10)
            await pilot.pause()
            assert table.all_rows == collection_rows(whole, {"shop.products"}, app.symbols)
            assert engine.early_asked == 1
            engine.described.clear()
            engine.describing.clear()
            await pilot.press("ctrl+r")
            await _until(pilot, engine.describing.is_set)
            engine.described.set()
            await _until(pilot, lambda: all(w.is_finished for w in app.workers))
            assert engine.early_asked == 1  # the refresh asked for none

    asyncio.run(scenario())


def test_the_first_listing_describes_each_collection_only_once_the_first_screen_is_drawn() -> None:
    """Asked for before the app, the collections listing gives the names, then waits with its 4 requests a
    collection (which would compete with drawing the screen) until both tables show something."""

    async def scenario() -> None:
        engine = HeldCollectionsEngine()  # the backups listing gives no early answer and is held
        engine.described.set()
        first = FirstLoad(engine)
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=60, first_load=first)
        async with app.run_test(size=(120, 40)) as pilot:
            try:
                await _until(pilot, lambda: app.collections_table.row_count == 4)
                await pilot.pause()
                assert not engine.describing.is_set()  # held: the backups are not there yet
                engine.release.set()
                await _until(pilot, engine.describing.is_set)
                await asyncio.wait_for(app.loaded.wait(), 10)
            finally:
                engine.release.set()

    asyncio.run(scenario())


class CountingEngine(FixedEngine):
    """Counts the listings asked for; its collections listing fails while `milvus_down` is set, its backups
    listing while `store_down` is."""

    def __init__(self, milvus_down: bool = False, store_down: bool = False) -> None:
        super().__init__()
        self.asked: Counter[str] = Counter()
        self.milvus_down = milvus_down
        self.store_down = store_down

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        self.asked["backups"] += 1
        if self.store_down:
            raise StorageError("list a-bucket/backup/ failed: cannot reach 127.0.0.1:9000: connection refused")
        return super().list_backups()

    def list_collections(
        self, db: str | None = None, early: Callable[[list[CollectionSummary]], None] | None = None
    ) -> list[CollectionSummary]:
        self.asked["collections"] += 1
        if self.milvus_down:
            raise MilvusError("list databases failed: connection refused; is Milvus up at 127.0.0.1:19530?")
        return super().list_collections(db)


async def _until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not condition():
            await pilot.pause(0.01)

    await asyncio.wait_for(wait(), 10)


def test_the_first_listings_asked_before_the_app_fill_its_first_screen() -> None:
    """`open_app` asks for both listings before it imports Textual: the app shows those answers (a failure
    as a failure) without asking again; a refresh asks the engine anew."""

    async def scenario() -> None:
        engine = CountingEngine(milvus_down=True)
        first = FirstLoad(engine)  # asked for at once, in threads of their own
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=0, first_load=first)
        async with app.run_test(size=(120, 40)) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 10)
            await pilot.pause()
            assert engine.asked == {"backups": 1, "collections": 1}
            assert [str(k.value) for k in app.backups_table.rows] == [b.name for b in engine.list_backups()]
            assert app.collections_table.row_count == 0 and "connection refused" in app.errors["milvus"]
            assert "not loaded" in str(app.collections_table.hint.render())  # not "loading...": it failed
            engine.milvus_down = False
            await pilot.press("ctrl+r")
            await _until(pilot, lambda: app.collections_table.row_count == 4)
            assert engine.asked["collections"] == 2 and app.errors == {}

    asyncio.run(scenario())


def test_a_first_backups_listing_that_failed_shows_the_notice_and_a_refresh_recovers() -> None:
    """The backups listing asked for before the app failed: the app says so as for any listing (a notice
    naming the store, the alert, "not loaded"), shows the collections, and ctrl+r lists the backups."""

    async def scenario() -> None:
        engine = CountingEngine(store_down=True)
        first = FirstLoad(engine)
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=0, first_load=first)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 10)
            await pilot.pause()
            assert engine.asked == {"backups": 1, "collections": 1}
            [notice] = list(app._notifications)
            assert notice.title == "cannot reach the backup store" and notice.severity == "error"
            assert "cannot reach 127.0.0.1:9000: connection refused" in str(notice.message)
            assert "ctrl+r retries" in str(app.query_one("#alert").render()) and app.query_one("#alert").display
            assert app.backups_table.row_count == 0 and "not loaded" in str(app.backups_table.hint.render())
            assert app.collections_table.row_count == 4
            engine.store_down = False
            await pilot.press("ctrl+r")
            listed = sorted(FixedEngine.list_backups(engine), key=lambda b: (-b.start_time, b.name))
            await _until(pilot, lambda: app.backups_table.row_count == len(listed))
            assert [str(k.value) for k in app.backups_table.rows] == [b.name for b in listed]
            assert engine.asked == {"backups": 2, "collections": 2} and app.errors == {}
            assert not app.query_one("#alert").display

    asyncio.run(scenario())


def test_a_hung_up_app_that_cannot_close_ends_its_process_once_its_jobs_end(monkeypatch) -> None:
    """The exit watchdog: Textual may block for good closing a terminal that went away."""
    import logging
    import os
    from types import SimpleNamespace

    ended: list[int] = []
    monkeypatch.setattr(os, "_exit", ended.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    asked, finish = threading.Event(), threading.Event()

    class RunningJob:
        def wait(self, timeout: float | None = None) -> JobState:
            asked.set()
            assert finish.wait(30), "the test never let the job end"
            return JobState.SUCCESS

    app = _app()
    app.close_grace = 0.01  # the app "did not close" at once
    app.watches["j1"] = SimpleNamespace(job=RunningJob())  # type: ignore[assignment]
    watchdog = threading.Thread(target=app._end_if_stuck)
    watchdog.start()
    assert asked.wait(30)  # the watchdog waits for the job ...
    assert ended == []  # ... and does not end the process under it
    finish.set()
    watchdog.join(30)
    assert ended == [0]

    closed = _app()
    closed.closed.set()  # the app closed as it should: the watchdog leaves
    closed._end_if_stuck()
    assert ended == [0]


class KnownRowsEngine(FixedEngine):
    """Records what each backups listing was given as `known` (None: every backup read)."""

    def __init__(self) -> None:
        super().__init__()
        self.known: list[dict[str, str] | None] = []

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        self.known.append(None if known is None else {name: b.state for name, b in known.items()})
        return super().list_backups()


def test_a_timed_refresh_reads_only_what_it_has_not_shown() -> None:
    """Every 15 s the app lists the backups; reading each of them every time (a request each, 1,000 for
    1,000 backups) only for a timed refresh at most FULL_LISTING_EVERY apart, at ctrl+r and after a job."""

    async def scenario() -> None:
        engine = KnownRowsEngine()
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0.05, jobs_poll_seconds=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 10)
            await _until(pilot, lambda: len(engine.known) >= 3)
            shown = {b.name: b.state for b in FixedEngine().list_backups()}
            assert engine.known[0] is None and engine.known[1:3] == [shown, shown]
            app._full_listing -= app_module.FULL_LISTING_EVERY  # as long ago as that
            seen = len(engine.known)
            await _until(pilot, lambda: len(engine.known) > seen + 1)
            assert engine.known[seen] is None and engine.known[seen + 1] == shown
            seen = len(engine.known)
            await pilot.press("ctrl+r")
            await _until(pilot, lambda: None in engine.known[seen:])
            await pilot.press("j")  # timed refreshes go on under another screen
            seen = len(engine.known)
            await _until(pilot, lambda: len(engine.known) > seen + 2)
            assert isinstance(app.screen, JobsScreen) and engine.known[-1] == shown

    asyncio.run(scenario())


class ManyBackupsEngine(FixedEngine):
    """300 backups, an hour apart, listed in no order, the oldest with the longest name; `extra` adds one
    more, newest of all."""

    def __init__(self) -> None:
        super().__init__()
        self.extra = False

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        times = [NOW - 3600 * ((i * 7919) % 300 + 1) for i in range(300)]  # every hour once, shuffled
        oldest = min(times)
        listed = [
            BackupSummary(
                f"b_{int(t)}" + ("_the_longest_name" if t == oldest else ""),
                "",
                "success",
                1024,
                "",
                int(t),
                int(t),
                (),
            )
            for t in times
        ]
        return [*listed, BackupSummary("b_newest", "", "success", 1, "", int(NOW), int(NOW), ())][
            : 301 if self.extra else 300
        ]


def test_a_long_table_shows_its_first_screen_then_holds_every_backup_newest_first() -> None:
    """A table of many rows gets the rows past its first screen a paint later: its columns are as wide as
    the rows to come need from the first, it ends up with every backup, newest first, and a refresh that
    adds one keeps the cursor on its row far down the table."""

    async def scenario() -> None:
        engine = ManyBackupsEngine()
        app = MilvusBackupApp(engine, clock=lambda: NOW, refresh_seconds=0, jobs_poll_seconds=0)
        shown: list[tuple[list[str], list[int]]] = []  # the backups table's rows and widths as each answer left them
        show = app._show_data

        def recorded(*args: Any) -> None:
            show(*args)
            table = app.backups_table
            shown.append(([str(k.value) for k in table.rows], [c.content_width for c in table.columns.values()]))

        app._show_data = recorded  # type: ignore[method-assign,assignment]
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 10)
            table = app.backups_table
            newest_first = sorted(engine.list_backups(), key=lambda b: -b.start_time)
            first, widths = next((rows, widths) for rows, widths in shown if rows)
            assert 0 < len(first) < 300 and first == [b.name for b in newest_first[: len(first)]]
            await _until(pilot, lambda: table.row_count == 300)
            await pilot.pause()
            assert [str(k.value) for k in table.rows] == [b.name for b in newest_first]
            assert [c.content_width for c in table.columns.values()] == widths
            assert widths[0] == len(newest_first[-1].name)  # the longest name, in the last row, sets the width
            assert not table.hint.display
            table.focus()
            await pilot.press("G")
            assert table.current_key == newest_first[-1].name
            table.move_cursor(row=250)
            engine.extra = True
            await pilot.press("ctrl+r")
            await _until(pilot, lambda: table.row_count == 301)
            assert table.current_key == newest_first[250].name and table.cursor_row == 251
            assert [str(k.value) for k in table.rows] == ["b_newest"] + [b.name for b in newest_first]

    asyncio.run(scenario())
