"""The TUI's screens as pictures (pytest-textual-snapshot) at 80x24 and 120x40, plus its pure parts.

These are unit tests of the TUI alone, so the engine is a fixed in-memory stand-in: the same
collections, backups and job progress every run, a fixed clock, no Milvus. The round trip through
the real Milvus and S3 is tests/test_tui.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from milvus_backup.core.meta import IndexInfo, KeyValue, Partition, Schema, Segment
from milvus_backup.core.service import (
    BackupInfo,
    BackupRequest,
    BackupService,
    BackupState,
    BackupSummary,
    CheckReport,
    Collection,
    CollectionSummary,
    CollectionTask,
    Config,
    Field,
    InvalidRequest,
    Job,
    JobKind,
    JobState,
    Listener,
    NotFound,
    Phase,
    Progress,
    RestoreRequest,
    TaskState,
    VerifyReport,
    load_config,
    preview_targets,
)
from milvus_backup.tui.app import MilvusBackupApp
from milvus_backup.tui.jobs import JobsScreen, JobWatch
from milvus_backup.tui.tables import SyncTable, backup_rows

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
    def list_collections(self, db: str | None = None) -> list[CollectionSummary]:
        return [
            CollectionSummary("default", "books", 1, 650, "Loaded", 3, ("embedding:IVF_FLAT",)),
            CollectionSummary("default", "hello_milvus", 2, 3000, "Loaded", 1, ("embeddings:HNSW",)),
            CollectionSummary("shop", "products", 3, 200, "NotLoad", 1, ()),
            CollectionSummary("shop", "orders_2026_with_a_long_name", 4, 1_234_567, "Loaded", 12, ("vec:DISKANN",)),
        ]

    def list_backups(self) -> list[BackupSummary]:
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

    def backup_exists(self, name: str) -> bool:
        return any(b.name == name for b in self.list_backups())

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
    assert watch.percent() == 37.5
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
            assert str(table.get_row("shop.products")[3]) == "201"
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
