"""The terminal application: collections and backups side by side, backup and restore dialogs, and
jobs that keep running while the operator browses.

Everything that talks to Milvus or a bucket runs in a thread worker (Textual's `@work`) and comes
back through `call_from_thread`/`post_message`; a failure becomes a notice (one line, which address
failed), never a traceback. Workers that only read are exclusive in their group, so a newer refresh
or dialog load replaces an older one; workers that start jobs or delete never are. The app adds no
backup logic: it calls a `BackupService` (core.service) and watches its `Job`s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.filter import Monochrome, NoColor
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.widgets import DataTable, Footer, Header, Input, Label, Static
from textual.worker import Worker, get_current_worker

from milvus_backup.core.service import (
    BackupService,
    BackupSummary,
    BackupToolError,
    CollectionSummary,
    Config,
    Job,
    JobKind,
    JobState,
    Listener,
    Progress,
    RecordedJob,
)
from milvus_backup.tui.jobs import JobsScreen, JobWatch
from milvus_backup.tui.launch import STUCK_GRACE, FirstLoad
from milvus_backup.tui.tables import (
    BACKUP_COLUMNS,
    COLLECTION_COLUMNS,
    FANCY,
    PLAIN,
    SyncTable,
    backup_rows,
    collection_key,
    collection_rows,
)

# The dialogs, the details screen and the backup and restore code behind them load when first opened:
# ≈ 0.07 s of CPU the first screen does not wait for.
if TYPE_CHECKING:
    from milvus_backup.core.service import BackupInfo, BackupRequest, RestoreRequest

log = logging.getLogger("milvus_backup")

T = TypeVar("T")
# A timed refresh lists the backups (one request) and reads only the new and unfinished ones; at most this
# many seconds apart it reads every backup again (about 1,000 requests for 1,000 backups, where a store may
# bill each), to catch one made again under the same name elsewhere. ctrl+r and a job's end read them all.
FULL_LISTING_EVERY = 300.0


class _BoundedWait(ThreadPoolExecutor):
    """An executor whose shutdown waits STUCK_GRACE seconds at most for what runs (a worker that ends
    meanwhile still shows its answer: the loop runs on while it waits); run_tui ends the process
    without a thread that is still waiting on a request after that."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=cancel_futures)
        if wait:
            deadline = time.monotonic() + STUCK_GRACE
            for thread in list(self._threads):
                thread.join(max(0.0, deadline - time.monotonic()))


class JobFinished(Message):
    def __init__(self, job_id: str):
        super().__init__()
        self.job_id = job_id


class OtherJobs(Message):
    """Jobs of other processes, read from their records by a poll."""

    def __init__(self, jobs: list[RecordedJob]):
        super().__init__()
        self.jobs = jobs


PLAIN_TERMS = {"vt100", "vt102", "vt220", "dumb"}


def plain_terminal(environ: Mapping[str, str]) -> bool:
    """A terminal that should get no colour and only ASCII: NO_COLOR set (no-color.org), or an old TERM."""
    return "NO_COLOR" in environ or environ.get("TERM", "") in PLAIN_TERMS


class PlainScrollBarRender(ScrollBarRender):
    """Scrollbars without the eighth-block glyphs at the thumb's ends: only spaces, the thumb in reverse video."""

    VERTICAL_BARS = [" "] * 8
    HORIZONTAL_BARS = [" "] * 8


def describe_targets(config: Config, arrow: str = "→") -> str:
    """Which Milvus and which bucket, for the header: "Milvus host:port → endpoint/bucket/root"."""
    milvus = f"Milvus {config.milvus.address}:{config.milvus.port}"
    b = config.backup_storage
    if b.is_local:
        return f"{milvus} {arrow} {b.root_path}"
    return f"{milvus} {arrow} {b.endpoint}/{b.bucket_name}/{b.root_path.strip('/')}"


class MilvusBackupApp(App[None]):
    """`engine` is the engine's service surface: `open_service(config)`, or an in-memory one in tests."""

    CSS_PATH = "app.tcss"
    TITLE = "milvus-backup"
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark"),
        Binding("u", "unmark_all", "Unmark all", show=False),
        Binding("b", "backup", "Back up"),
        Binding("r", "restore", "Restore"),
        Binding("enter", "details", "Details"),
        Binding("d", "delete", "Delete"),
        Binding("v", "verify(False)", "Verify"),
        Binding("V", "verify(True)", "Verify all bytes", show=False),
        Binding("j", "jobs", "Jobs"),
        Binding("slash", "filter", "Filter"),
        Binding("ctrl+r", "refresh", "Refresh"),
        Binding("question_mark", "help", "Keys"),
        Binding("q", "quit_app", "Quit"),
        Binding("ctrl+q", "quit_app", "Quit", show=False, priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        engine: BackupService,
        *,
        clock: Callable[[], float] = time.time,
        refresh_seconds: float = 15.0,
        default_name: Callable[[], str] | None = None,
        plain: bool | None = None,
        jobs_poll_seconds: float = 2.0,
        first_load: FirstLoad | None = None,
    ):
        super().__init__()
        self.plain = plain_terminal(os.environ) if plain is None else plain
        self.symbols = PLAIN if self.plain else FANCY
        if self.plain:  # Textual's NO_COLOR turns colours grey; a plain terminal gets none at all
            self._filters = [f for f in self._filters if not isinstance(f, Monochrome)] + [NoColor()]
        self.engine = engine
        self.first_load = first_load  # the tables' first listings, when asked for before the app was made
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self.default_name = default_name or _default_backup_name
        self.marked: set[str] = set()
        self.collections: list[CollectionSummary] = []
        self.backups: dict[str, BackupSummary] = {}
        self.watches: dict[str, JobWatch] = {}  # jobs this app started; changed on the UI thread only
        self.other_watches: dict[str, JobWatch] = {}  # jobs of other processes, from their records
        self.all_watches: dict[str, JobWatch] = {}  # both, this app's first: what the jobs screen lists
        self.jobs_poll_seconds = jobs_poll_seconds
        self.quit_choice = ""  # "leave" or "cancel" when quitting while jobs ran
        self.hung_up = False  # the terminal went away (SIGHUP): the app closed, its jobs go on
        self.closed = threading.Event()  # app.run() returned (set by run_tui)
        self.close_grace = 10.0  # seconds the app has to close after a hang-up before the process ends anyway
        self._announced: set[str] = set()  # jobs whose end was notified
        self.errors: dict[str, str] = {}  # "milvus"/"backups" -> the last failure
        self._filter_target: SyncTable | None = None
        self._answered: set[str] = set()  # "milvus"/"backups": the sources that answered (or failed) once
        self._filled: set[str] = set()  # "milvus"/"backups": the sources whose table has had rows (early or whole)
        self._polling_jobs = False  # the other processes' jobs are read every jobs_poll_seconds
        self.loaded = asyncio.Event()  # set once both have (tests wait on it)
        self._full_listing = 0.0  # time.monotonic() when a listing last read every backup
        self._keys_shown: tuple[object, ...] = ()  # what `_refresh_keys` last had the footer drawn from
        # a backup started here, and the row the backups cursor was on then: the cursor goes to the new
        # backup once it is listed, unless the operator has moved it since
        self._follow: tuple[str, str | None] | None = None

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="*" if self.plain else None)
        yield Static(id="alert")
        yield Label("Collections  (space marks, b backs up)", classes="section")
        collections = SyncTable(
            COLLECTION_COLUMNS,
            id="collections",
            squeeze=("Index", "Collection"),
            empty="no collections in Milvus yet",
            symbols=self.symbols,
        )
        yield collections
        yield collections.hint
        yield Label("Backups  (enter details, r restores, v verifies, d deletes)", classes="section")
        backups = SyncTable(
            BACKUP_COLUMNS,
            id="backups",
            squeeze=("Collections", "Backup"),
            empty="no backups yet: mark collections above and press b",
            symbols=self.symbols,
        )
        yield backups
        yield backups.hint
        yield Input(placeholder="filter: type to narrow the table, enter keeps, escape clears", id="filter")
        yield Static(id="jobline")
        yield Footer()

    def on_mount(self) -> None:
        # the thread workers (listings, polls) run on an executor that closing the app waits for only a
        # little: one stuck on a request to a store that stopped answering would hold the quit for minutes
        asyncio.get_running_loop().set_default_executor(_BoundedWait(thread_name_prefix="app-worker"))
        if self.plain:
            self.add_class("-plain")
            ScrollBar.renderer = PlainScrollBarRender  # a class setting: put back when the app ends
        self.title = describe_targets(self.engine.config, self.symbols.arrow)
        self.query_one("#collections", SyncTable).focus()
        self.action_refresh()
        if self.refresh_seconds:
            self.set_interval(self.refresh_seconds, self._timed_refresh)
        self.set_interval(0.5, self._update_jobline)
        if self.jobs_poll_seconds:  # at the latest: a backup store that does not answer holds no one's jobs
            self.set_timer(self.jobs_poll_seconds, self._start_polling_jobs)
        try:  # the SSH session or the tmux session went away: close the app, let the jobs finish
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._terminal_gone)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def on_unmount(self) -> None:
        ScrollBar.renderer = ScrollBarRender

    def collections_table_present(self) -> bool:
        try:
            self.query_one("#collections", SyncTable)
        except NoMatches:
            return False
        return True

    @property
    def collections_table(self) -> SyncTable:
        return self.query_one("#collections", SyncTable)

    @property
    def backups_table(self) -> SyncTable:
        return self.query_one("#backups", SyncTable)

    def focused_table(self) -> SyncTable | None:
        return self.focused if isinstance(self.focused, SyncTable) else None

    # -- data ------------------------------------------------------------------------------------
    def action_refresh(self) -> None:
        # Two workers, so each table fills as soon as its source answers: the backup store often answers
        # long before a first Milvus connection does (and the other way round with many backups).
        self._load_collections()
        self._load_backups()

    def _timed_refresh(self) -> None:
        self._load_collections()
        known = self.backups if time.monotonic() - self._full_listing < FULL_LISTING_EVERY else {}
        self._load_backups(known=dict(known) or None)  # (no widget asked: the timer may fire as the app closes)

    @work(thread=True, exclusive=True, group="refresh-collections", exit_on_error=False)
    def _load_collections(self) -> None:
        """List the collections (a worker thread); a newer refresh replaces this one. Until the table has
        had rows, it shows the names first, while each collection is described (4 requests each)."""
        errors: dict[str, str] = {}

        def early(collections: list[CollectionSummary]) -> None:
            self._show_unless_replaced(lambda: self._show_early(collections=collections))

        first = self.first_load.collections() if self.first_load else None

        def listing() -> list[CollectionSummary]:
            if first is not None:
                return first(early)
            return self.engine.list_collections(early=None if "milvus" in self._filled else early)

        collections = self._listed("milvus", listing, errors)
        self._show_unless_replaced(lambda: self._show_data(collections, None, errors))

    @work(thread=True, exclusive=True, group="refresh-backups", exit_on_error=False)
    def _load_backups(self, known: Mapping[str, BackupSummary] | None = None) -> None:
        """List the backups (a worker thread); a newer refresh replaces this one. Until the table has had
        rows, it shows the listing's early answer first: the names, with what this machine last saw of
        each, while each backup is read (a second or more with a thousand backups). `known`: the rows
        shown, taken as they are for the finished backups still listed (a timed refresh's)."""
        errors: dict[str, str] = {}
        if known is None:
            self._full_listing = time.monotonic()

        def early(backups: list[BackupSummary]) -> None:
            self._show_unless_replaced(lambda: self._show_early(backups=backups))

        first = self.first_load.backups() if self.first_load else None

        def listing() -> list[BackupSummary]:
            if first is not None:
                return first(early)
            return self.engine.list_backups(early=None if "backups" in self._filled else early, known=known)

        backups = self._listed("backups", listing, errors)
        self._show_unless_replaced(lambda: self._show_data(None, backups, errors))

    def _show_early(
        self, collections: list[CollectionSummary] | None = None, backups: list[BackupSummary] | None = None
    ) -> None:
        """A listing's early answer (the names, before each is read), unless its table had rows already."""
        if not self.collections_table_present():
            return
        if collections is not None and "milvus" not in self._filled:
            self._fill_collections(collections)
        if backups is not None and "backups" not in self._filled:
            self._fill_backups(backups)
        self._refresh_keys()
        self._check_first_screen()

    def _fill_collections(self, collections: list[CollectionSummary]) -> None:
        self.collections = collections
        self.marked &= {collection_key(c) for c in collections}
        self.collections_table.sync(collection_rows(collections, self.marked, self.symbols))
        self._filled.add("milvus")

    def _fill_backups(self, backups: list[BackupSummary]) -> None:
        self.backups = {b.name: b for b in backups}
        self.backups_table.sync(backup_rows(backups, self.clock))
        self._filled.add("backups")
        if self._follow is not None and self._follow[0] in self.backups:
            name, was_on = self._follow
            self._follow = None
            if self.backups_table.current_key == was_on:  # (d or enter then means the new backup)
                self.backups_table.move_to(name)

    def _check_first_screen(self) -> None:
        """Once both tables show something (or their failure), the first listings may read each backup and
        describe each collection."""
        if self.first_load is not None and all(s in self._filled | self._answered for s in ("milvus", "backups")):
            self.first_load.first_screen_shown()

    def _listed(self, source: str, call: Callable[[], list[T]], errors: dict[str, str]) -> list[T] | None:
        """What `call` lists, or None with the failure put in `errors[source]`."""
        try:
            return call()
        except BackupToolError as exc:
            errors[source] = str(exc)
        except Exception as exc:
            log.exception("listing %s failed", source)
            errors[source] = f"unexpected error: {type(exc).__name__}: {exc}"
        return None

    def _show_data(
        self, collections: list[CollectionSummary] | None, backups: list[BackupSummary] | None, errors: dict[str, str]
    ) -> None:
        """Show what a listing answered: the tables it brought, and the failures of the sources it asked."""
        if not self.collections_table_present():  # a refresh that ends after the app began to close
            return
        answered = set(errors)
        if collections is not None:
            answered.add("milvus")
            self._fill_collections(collections)
        if backups is not None:
            answered.add("backups")
            self._fill_backups(backups)
        for source in answered:
            table = self.collections_table if source == "milvus" else self.backups_table
            table.set_failed(source in errors)
        for source, message in errors.items():
            if self.errors.get(source) != message:
                self.notify(
                    message,
                    title="cannot reach " + ("Milvus" if source == "milvus" else "the backup store"),
                    severity="error",
                    timeout=10,
                )
        self.errors = {source: m for source, m in self.errors.items() if source not in answered} | errors
        alert = self.query_one("#alert", Static)
        alert.update("\n".join(f"{self.symbols.cross} {m}  - ctrl+r retries" for m in self.errors.values()))
        alert.display = bool(self.errors)
        self._refresh_keys()
        if "backups" in answered:
            self._start_polling_jobs()
        self._answered |= answered
        self._check_first_screen()
        if self._answered >= {"milvus", "backups"}:
            self.loaded.set()

    def _start_polling_jobs(self) -> None:
        """Read the other processes' jobs from now on (once started, this does nothing). Not before the
        backup store's first answer, or one poll interval: a store that kept a record of every job ever
        run answers the first poll with one read each, and the first screen waits for its listing."""
        if self.jobs_poll_seconds and not self._polling_jobs:
            self._polling_jobs = True
            self._poll_jobs()
            self.set_interval(self.jobs_poll_seconds, self._poll_jobs)

    # -- worker plumbing: these run in a worker thread and reach the UI through call_from_thread ---
    def _show_unless_replaced(self, show: Callable[[], object]) -> None:
        """Run `show` on the UI thread, unless a newer worker of this one's exclusive group has replaced it.

        The check runs on the UI thread, where a replacement cancels the older worker, so an older
        answer can never land after a newer one was asked for."""
        worker: Worker[Any] = get_current_worker()

        def run() -> None:
            if not worker.is_cancelled:
                show()

        self.call_from_thread(run)

    def _attempt(self, what: str, call: Callable[[], T]) -> T | None:
        """`call()`, or None after a notice saying why it failed (one line, no traceback)."""
        try:
            return call()
        except BackupToolError as exc:
            self.call_from_thread(self.notify, str(exc), title=f"{what} refused", severity="error", timeout=10)
        except Exception as exc:
            log.exception("%s failed", what)
            self.call_from_thread(
                self.notify,
                f"unexpected error: {type(exc).__name__}: {exc}",
                title=f"{what} failed",
                severity="error",
                timeout=10,
            )
        return None

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open_restore(self, name: str) -> None:
        """The backup and Milvus's collections for the restore dialog; a newer dialog or screen asked for wins."""
        found = self._attempt(
            f"restore from {name}",
            lambda: (self.engine.get_backup(name), self.engine.existing_collections(), self.engine.busy_imports()),
        )
        if found is not None:
            info, existing, busy = found
            from milvus_backup.tui.dialogs import RestoreDialog

            self._show_unless_replaced(
                lambda: self.push_screen(RestoreDialog(info, name, existing, busy), self._start_restore)
            )

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open_details(self, name: str) -> None:
        info = self._attempt(f"details of {name}", lambda: self.engine.get_backup(name))
        if info is not None:
            from milvus_backup.tui.details import load_type_names

            load_type_names()  # the generated messages load here rather than on the UI thread
            self._show_unless_replaced(lambda: self._show_details(info, name))

    def _show_details(self, info: BackupInfo, name: str) -> None:
        from milvus_backup.tui.details import BackupDetailsScreen

        def answered(restore: bool | None) -> None:
            if restore:
                self.action_restore()

        self.push_screen(BackupDetailsScreen(info, name), answered)

    # Never exclusive: a second job started (or a delete) must not cancel the worker starting the first.
    @work(thread=True, group="actions", exit_on_error=False)
    def _launch(self, what: str, start: Callable[[list[Listener]], Job[Any]], label: str = "") -> None:
        """Start a job through the engine, watched from its first event; the UI thread then adds it to `watches`."""
        watch = JobWatch(label=label)

        def on_progress(p: Progress) -> None:  # in the job's thread
            watch.on_progress(p)
            if p.state.finished:
                self.post_message(JobFinished(p.job_id))

        job = self._attempt(what, lambda: start([on_progress]))
        if job is not None:
            watch.job = job
            self.call_from_thread(self._job_started, watch)

    @work(thread=True, group="actions", exit_on_error=False)
    def _delete(self, name: str) -> None:
        removed = self._attempt(f"delete {name}", lambda: self.engine.delete_backup(name))
        if removed is not None:
            self.call_from_thread(self._deleted, name, removed)

    # -- which keys apply ------------------------------------------------------------------------
    _MAIN_ONLY = {
        "toggle_mark",
        "backup",
        "restore",
        "details",
        "delete",
        "verify",
        "jobs",
        "filter",
        "clear_filter",
        "refresh",
        "mark_all",
        "unmark_all",
    }

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.screen is not self.screen_stack[0]:  # a dialog or another screen is on top
            return action not in self._MAIN_ONLY
        table = self.focused_table()
        if action == "toggle_mark":
            return table is not None and table.id == "collections"
        if action == "backup":
            return bool(self.marked) or (table is not None and table.id == "collections" and table.row_count > 0)
        if action in ("restore", "details", "delete", "verify"):
            return table is not None and table.id == "backups" and table.row_count > 0
        return True

    def _refresh_keys(self) -> None:
        """Have the footer show which keys apply after the tables or the marks changed, when that changed.

        Textual rebuilds the whole footer on each refresh of the bindings (≈ 50 ms of CPU), and the tables
        refresh every 15 s. Focus and screen changes refresh it on their own (Textual's Screen watches
        both); they are part of what is compared, so a footer drawn by them is never taken for one drawn
        from an older state. (`check_action` answers other than True only for the main screen's actions.)"""
        applying = frozenset(action for action in self._MAIN_ONLY if self.check_action(action, ()))
        state = (self.screen, self.focused, applying)
        if state != self._keys_shown:
            self._keys_shown = state
            self.refresh_bindings()

    # -- actions: collections --------------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        table = self.collections_table
        key = table.current_key
        if key is None:
            return
        self.marked ^= {key}
        self._show_marks()
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def _show_marks(self) -> None:
        self.collections_table.sync(collection_rows(self.collections, self.marked, self.symbols))
        self._refresh_keys()

    def action_backup(self) -> None:
        names = sorted(self.marked)
        if not names and self.focused_table() is self.collections_table and self.collections_table.current_key:
            names = [self.collections_table.current_key]
        if not names:
            self.notify("Mark collections with space first (or put the cursor on one).", severity="warning")
            return
        from milvus_backup.tui.dialogs import BackupDialog

        self.push_screen(BackupDialog(names, self.default_name(), set(self.backups)), self._start_backup)

    def _start_backup(self, request: BackupRequest | None) -> None:
        if request is None:
            return
        self._launch(f"backup {request.name}", lambda listeners: self.engine.start_backup(request, listeners))

    # -- actions: backups ------------------------------------------------------------------------
    def _selected_backup(self) -> BackupSummary | None:
        key = self.backups_table.current_key
        return self.backups.get(key) if key else None

    def action_restore(self) -> None:
        backup = self._selected_backup()
        if backup is None:
            self.notify("Select a backup in the backups table first.", severity="warning")
            return
        if not backup.complete:
            self.notify(
                f"Backup {backup.name} is {backup.state}: it cannot be restored. Delete it with d.", severity="error"
            )
            return
        self._open_restore(backup.name)

    def _start_restore(self, request: RestoreRequest | None) -> None:
        if request is None:
            return
        self._launch(
            f"restore from {request.backup_name}", lambda listeners: self.engine.start_restore(request, listeners)
        )

    def action_details(self) -> None:
        backup = self._selected_backup()
        if backup is None:
            return
        self._open_details(backup.name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "backups":
            self.action_details()
        elif event.data_table.id == "collections":
            self.action_toggle_mark()

    def action_delete(self) -> None:
        backup = self._selected_backup()
        if backup is None:
            return
        busy = [w for w in self.watches.values() if w.job.name == backup.name and not w.job.state.finished]
        if busy:
            self.notify(
                f"A {busy[0].job.kind} of {backup.name} is running; cancel it first (j, then c).", severity="error"
            )
            return
        question = (
            f"Delete backup {backup.name} ({', '.join(backup.collections) or 'no collections'}, "
            f"{backup.state})? All its files are removed."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(backup.name)

        from milvus_backup.tui.dialogs import ConfirmDialog

        self.push_screen(ConfirmDialog(question, yes="Delete", danger=True), answered)

    def action_verify(self, full: bool = False) -> None:
        """Check the selected backup: sizes (v), or every byte re-hashed (V); the jobs screen shows the report."""
        backup = self._selected_backup()
        if backup is None:
            return
        if not backup.complete:
            self.notify(
                f"Backup {backup.name} is {backup.state}: there is nothing whole to verify. Delete it with d.",
                severity="error",
            )
            return
        self._launch(
            f"verify {backup.name}",
            lambda listeners: self.engine.start_verify(backup.name, full=full, listeners=listeners),
            label="verify full" if full else "verify quick",
        )

    def _deleted(self, name: str, removed: int) -> None:
        self.notify(f"Deleted backup {name} ({removed} objects).")
        self.action_refresh()

    # -- jobs ------------------------------------------------------------------------------------
    def _job_started(self, watch: JobWatch) -> None:
        """A job the app started joins `watches`, here on the UI thread, the only one that changes it."""
        job = watch.job
        self.watches[job.id] = watch
        self.other_watches.pop(job.id, None)  # a poll may have read its record first
        self._list_watches()
        self.notify(f"{watch.kind_label.capitalize()} {job.name} started; j shows its progress.")
        if job.kind is JobKind.BACKUP:  # the marks were for this backup: a next one starts from none
            self.action_unmark_all()
            self._follow = (job.name, self.backups_table.current_key)
        self._update_jobline()
        if job.state.finished:  # it ended before it was watched: its JobFinished may have found nothing
            self._announce(watch)

    def on_job_finished(self, message: JobFinished) -> None:
        watch = self.watches.get(message.job_id)
        if watch is not None:
            self._announce(watch)

    def _announce(self, watch: JobWatch) -> None:
        """Say once how a job ended, and show what it changed."""
        if watch.job.id in self._announced:
            return
        self._announced.add(watch.job.id)
        severity: SeverityLevel = (
            "information" if watch.succeeded() else "warning" if watch.job.state is JobState.CANCELLED else "error"
        )
        self.notify(watch.outcome(), severity=severity, timeout=10)
        self.action_refresh()

    def _update_jobline(self) -> None:
        running = [w for w in self.watches.values() if not w.job.state.finished]
        try:
            line = self.query_one("#jobline", Static)
        except NoMatches:  # the app is shutting down and its widgets are gone; a last tick has nothing to show
            return
        if not running:
            done = len(self.watches)
            line.update(f"{done} job(s) finished this session - j shows them" if done else "")
            return
        line.update(
            f" {self.symbols.dot} ".join(
                f"{w.kind_label} {w.job.name} {w.percent():.0f}% {w.phase_text()}" for w in running
            )
            + "  - j for details"
        )

    def action_jobs(self) -> None:
        self.push_screen(
            JobsScreen(self.all_watches, clock=self.clock, ask_cancel=self.ask_cancel, symbols=self.symbols)
        )

    def action_cancel_job(self) -> None:
        """Cancel a running job: the one selected on the jobs screen, else the newest running one."""
        screen = self.screen
        if isinstance(screen, JobsScreen):
            screen.action_cancel_job()
            return
        running = [w for w in self.watches.values() if not w.job.state.finished]
        if not running:
            self.notify("No job is running.", severity="warning")
            return
        self.ask_cancel(max(running, key=lambda w: w.job.start_time))

    def ask_cancel(self, watch: JobWatch) -> None:
        """Ask before cancelling, as delete and quit do; a job that ended meanwhile is said to have ended."""
        job = watch.job
        question = f"Cancel {watch.kind_label} {job.name}? It stops at its next step" + (
            " and removes what it wrote." if job.kind is not JobKind.VERIFY else "."
        )

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if job.state is JobState.SUCCESS:
                self.notify(f"The cancel came too late: {watch.kind_label} {job.name} succeeded.", severity="warning")
            elif job.state.finished:
                self.notify(f"{watch.kind_label.capitalize()} {job.name} had already ended ({job.state}).")
            else:
                job.cancel()
                self.notify(f"Cancelling {watch.kind_label} {job.name}: it stops at its next step and cleans up.")

        from milvus_backup.tui.dialogs import ConfirmDialog

        self.push_screen(ConfirmDialog(question, yes="Cancel the job", danger=True), answered)

    @work(thread=True, exclusive=True, group="jobs", exit_on_error=False)
    def _poll_jobs(self) -> None:
        """Read every process's jobs from their records (the engine re-reads only those still running)."""
        try:
            jobs = self.engine.list_jobs()
        except BackupToolError as exc:  # the store is down: the refresh's alert says so; try again later
            log.warning("could not list the jobs of other processes: %s", exc)
            return
        if not get_current_worker().is_cancelled:
            # posted, not call_from_thread: a poll that ends while the app shuts down (a hang-up) must not
            # wait forever for an event loop that has stopped, holding the process up at exit
            self.post_message(OtherJobs([j for j in jobs if isinstance(j, RecordedJob)]))

    def on_other_jobs(self, message: OtherJobs) -> None:
        """Other processes' jobs join the jobs screen; one that ends while the app watches is announced."""
        for job in message.jobs:
            if job.id in self.watches:
                continue
            job.request_cancel = self._cancel_elsewhere
            watch = self.other_watches.get(job.id)
            if watch is None:
                watch = self.other_watches[job.id] = JobWatch(job)
                if job.state.finished:  # it ended before this app saw it: nothing to announce
                    self._announced.add(job.id)
            was_running = not watch.job.state.finished
            watch.job = job
            watch.on_progress(job.progress)
            if was_running and job.state.finished:
                self._announce(watch)
        self._list_watches()
        self._update_jobline()

    def _list_watches(self) -> None:
        """What the jobs screen lists, in place (the screen holds this dict): this app's jobs first."""
        merged = {**self.watches, **{k: w for k, w in self.other_watches.items() if k not in self.watches}}
        if list(merged) != list(self.all_watches):
            self.all_watches.clear()
        self.all_watches.update(merged)

    def _cancel_elsewhere(self, job_id: str) -> None:
        """`c` on another process's job: the request goes through storage, off the UI thread."""
        self._request_cancel(job_id)

    @work(thread=True, group="actions", exit_on_error=False)
    def _request_cancel(self, job_id: str) -> None:
        outcome = self._attempt("cancel", lambda: self.engine.cancel_job(job_id))
        if outcome is not None:
            self.call_from_thread(self.notify, outcome.message, timeout=10)

    # -- filter, help, quit ----------------------------------------------------------------------
    def action_filter(self) -> None:
        table = self.focused_table() or self.collections_table
        self._filter_target = table
        box = self.query_one("#filter", Input)
        box.value = table.filter_text
        box.placeholder = f"filter {table.id}: type to narrow, enter keeps, escape clears"
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_target is not None:
            self._filter_target.set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)
        if self._filter_target is not None:
            self._filter_target.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.display:
            return
        box.value = ""
        box.display = False
        if self._filter_target is not None:
            self._filter_target.set_filter("")
            self._filter_target.focus()

    def action_help(self) -> None:
        from milvus_backup.tui.dialogs import HelpScreen

        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Textual's own quit (its ctrl+q, its palette entry) asks the same question as q."""
        self.action_quit_app()

    def action_quit_app(self) -> None:
        """The one way out: q, ctrl+q and the palette's Quit all come here, and ask while a job runs."""
        running = self.running_jobs()
        if not running:
            self.exit()
            return
        from milvus_backup.tui.dialogs import QuitDialog

        if isinstance(self.screen, QuitDialog):
            return

        def answered(choice: str | None) -> None:
            if choice is None:
                return
            self.quit_choice = choice
            if choice == "cancel":
                self.cancel_jobs()
            self.exit()

        self.push_screen(QuitDialog([f"{j.kind} {j.name}" for j in running]), answered)

    def running_jobs(self) -> list[Job[Any]]:
        """This app's jobs that have not ended (other processes' are theirs to finish)."""
        return [w.job for w in self.watches.values() if not w.job.state.finished]

    def cancel_jobs(self) -> list[Job[Any]]:
        running = self.running_jobs()
        for job in running:
            job.cancel()
        return running

    def _terminal_gone(self) -> None:
        self.hung_up = True
        log.warning("terminal hung up: the app closes; %d running job(s) go on to their end", len(self.running_jobs()))
        self.exit()
        threading.Thread(target=self._end_if_stuck, name="exit-watchdog", daemon=True).start()

    def _end_if_stuck(self) -> None:
        """After a hang-up, end the process if the app has not closed within `close_grace` seconds, once
        this app's jobs have ended (their records are final when they do). Textual can block for good
        while closing a terminal that is gone (its writer thread waits on the dead tty, and the app's
        shutdown waits on a full queue to it): seen under tmux."""
        if self.closed.wait(self.close_grace):
            return
        log.warning("the app did not close after the hang-up: this process ends once its jobs have")
        for job in [w.job for w in list(self.watches.values())]:
            job.wait()
        logging.shutdown()
        os._exit(0)

    # -- command palette -------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Each of the app's actions once, by name (Textual's theme, maximize and screenshot entries left out:
        a theme does not survive a restart here, and the tables fill the screen already)."""
        yield SystemCommand("Back up", "Back up the marked collections", self.action_backup)
        yield SystemCommand("Restore", "Restore the selected backup", self.action_restore)
        yield SystemCommand(
            "Backup details", "Collections, partitions, schema and indexes of the selected backup", self.action_details
        )
        yield SystemCommand("Delete backup", "Delete the selected backup (asks first)", self.action_delete)
        yield SystemCommand(
            "Verify backup", "Check that every object of the selected backup exists with its size", self.action_verify
        )
        yield SystemCommand(
            "Verify backup, every byte",
            "Re-read and re-hash every object of the selected backup",
            lambda: self.action_verify(True),
        )
        yield SystemCommand("Jobs", "Live progress and logs of this session's jobs", self.action_jobs)
        yield SystemCommand(
            "Cancel job", "Cancel the selected or newest running job (asks first)", self.action_cancel_job
        )
        yield SystemCommand("Refresh", "Reload collections and backups", self.action_refresh)
        yield SystemCommand("Filter", "Filter the focused table", self.action_filter)
        yield SystemCommand("Clear filter", "Show every row again", self.action_clear_filter)
        yield SystemCommand(
            "Mark or unmark collection", "Mark the collection under the cursor for backup", self.action_toggle_mark
        )
        yield SystemCommand("Mark all collections", "Mark every collection for backup", self.action_mark_all)
        yield SystemCommand("Unmark all collections", "Clear every mark", self.action_unmark_all)
        yield SystemCommand("Keys", "List the keys", self.action_help)
        yield SystemCommand("Quit", "Quit (asks first while a job runs)", self.action_quit_app)

    def action_mark_all(self) -> None:
        self.marked = {collection_key(c) for c in self.collections}
        self._show_marks()

    def action_unmark_all(self) -> None:
        self.marked = set()
        if self.collections_table_present():
            self._show_marks()


def _default_backup_name() -> str:
    from milvus_backup.core.service import default_backup_name

    return default_backup_name()
