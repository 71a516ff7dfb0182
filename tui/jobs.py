"""Jobs as the operator watches them: one bar for the whole job, bytes, rate, ETA, phase, each
collection, what the job waits on, the log, and cancel.

A `JobWatch` listens to a job's progress events (in the job's thread) and keeps what the screen
needs: where each collection got to, when the restore's work began (for a rate over the whole job),
and the last message that says the job is waiting on Milvus. The job's own events count per step
(a restore's copy restarts at 0 for each collection); the watch turns them into one fraction for the
whole job that never goes back. The screen reads the watches on a timer; the job thread never
touches a widget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import humanize
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, RichLog, Static

from milvus_backup.core.service import (
    BackupInfo,
    CollectionTask,
    Job,
    JobKind,
    JobState,
    Phase,
    Progress,
    TaskState,
    VerifyReport,
)
from milvus_backup.tui.tables import FANCY, Symbols, SyncTable

# Where each step of one restored collection sits in that collection's share of the bar.
RESTORE_SPANS: dict[Phase, tuple[float, float]] = {
    Phase.CREATE: (0.0, 0.02),
    Phase.COPY: (0.02, 0.5),
    Phase.IMPORT: (0.5, 0.95),
    Phase.VERIFY: (0.95, 0.96),
    Phase.INDEX: (0.96, 0.98),
    Phase.LOAD: (0.98, 1.0),
}
BACKUP_SPANS: dict[Phase, tuple[float, float]] = {
    Phase.PREPARE: (0.0, 0.05),
    Phase.COPY: (0.05, 0.95),
    Phase.META: (0.95, 1.0),
}
PRECHECK = 0.1  # a restore that first re-hashes its backup (verify full) gives that check this much of the bar
WAITING = re.compile(r"\b(wait|waits|waiting|queued|queue|busy)\b", re.IGNORECASE)


def _step_fraction(done: int, total: int) -> float:
    return min(1.0, done / total) if total else 0.0


@dataclass
class CollectionStep:
    """Where one collection of a restore is: its current phase and that phase's counts."""

    collection: str
    phase: Phase
    bytes_done: int = 0
    bytes_total: int = 0
    objects_done: int = 0
    objects_total: int = 0
    copied: bool = False  # its binlogs were staged (a copy phase happened)

    def fraction(self) -> float:
        """How far this collection is, 0..1, by its phase and that phase's counts."""
        start, end = RESTORE_SPANS.get(self.phase, (0.0, 0.0))
        if self.phase is Phase.IMPORT and not self.copied:  # no staging: the import is the whole data step
            start = RESTORE_SPANS[Phase.CREATE][1]
        if self.phase is Phase.COPY:
            within = _step_fraction(self.bytes_done, self.bytes_total)
        elif self.phase is Phase.IMPORT:
            within = _step_fraction(self.objects_done, self.objects_total)
        else:
            within = 0.0
        return start + (end - start) * within


def duration_text(seconds: float) -> str:
    """12s, 4m05s, 2h03m: short enough for a column."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class JobWatch:
    """What the jobs screen shows of one job, fed by its progress events. `label` names the job's kind
    more precisely than `JobKind` (a quick or a full verify)."""

    def __init__(self, job: Job[Any] | None = None, label: str = ""):
        self._job = job  # set by whoever started the job; events may arrive first
        self.label = label
        self.latest: Progress | None = job.progress if job else None
        self.step_started = 0.0  # progress.elapsed when the current collection/phase began
        self.work_started: float | None = None  # progress.elapsed when a restore began its first collection
        self.collections: dict[str, CollectionStep] = {}
        self.prechecked = False  # a restore that verified its backup before restoring
        self.waiting = ""  # the last message saying the job waits (on Milvus), until it moves again
        self._best = 0.0

    @property
    def job(self) -> Job[Any]:
        """The watched job; a watch is read only once its job is set (events may come before)."""
        if self._job is None:
            raise RuntimeError("this watch has no job yet")
        return self._job

    @job.setter
    def job(self, job: Job[Any]) -> None:
        self._job = job

    @property
    def kind_label(self) -> str:
        return self.label or self.job.kind.value

    def on_progress(self, p: Progress) -> None:
        previous = self.latest
        moved = previous is None or (p.collection, p.phase, p.bytes_done, p.objects_done, p.rows) != (
            previous.collection,
            previous.phase,
            previous.bytes_done,
            previous.objects_done,
            previous.rows,
        )
        if previous is None or p.collection != previous.collection or p.phase != previous.phase:
            self.step_started = p.elapsed
        if p.kind is JobKind.RESTORE and p.phase is Phase.VERIFY and not p.collection and not self.collections:
            self.prechecked = True
        if p.collection and p.phase is not Phase.DONE:
            step = self.collections.get(p.collection) or CollectionStep(p.collection, p.phase)
            step.phase, step.bytes_done, step.bytes_total = p.phase, p.bytes_done, p.bytes_total
            step.objects_done, step.objects_total = p.objects_done, p.objects_total
            step.copied = step.copied or p.phase is Phase.COPY
            self.collections[p.collection] = step
            if self.work_started is None and p.phase is not Phase.PREPARE:
                self.work_started = p.elapsed
        if p.message and WAITING.search(p.message):
            self.waiting = p.message
        elif moved or p.message:
            self.waiting = ""
        self.latest = p

    @property
    def progress(self) -> Progress:
        return self.job.progress if self.job.state.finished or self.latest is None else self.latest

    # -- how far the whole job is ----------------------------------------------------------------
    def fraction(self) -> float:
        """The whole job, 0..1; it never goes back while the job runs (phases restart their own counts)."""
        if self.job.state is JobState.SUCCESS:
            return 1.0
        self._best = max(self._best, self._raw_fraction())
        return self._best

    def percent(self) -> float:
        return round(100 * self.fraction(), 1)

    def _raw_fraction(self) -> float:
        p = self.progress
        if self.job.kind is JobKind.BACKUP:
            start, end = BACKUP_SPANS.get(p.phase, (0.0, 0.0))
            return start + (end - start) * (p.fraction if p.phase is Phase.COPY else 0.0)
        if self.job.kind is JobKind.RESTORE and self.job.tasks:
            before = PRECHECK if self.prechecked else 0.0
            if self.prechecked and not self.collections:
                return PRECHECK * p.fraction
            return before + (1 - before) * self._restore_fraction()
        return p.fraction

    @staticmethod
    def _weight(task: CollectionTask) -> int:
        return max(task.bytes_total, 1)

    def _step_of(self, task: CollectionTask) -> CollectionStep | None:
        """Where `task`'s collection is. Events name the collection being worked on; a restore that works
        under another name (a temporary collection, swapped in at the end) is the one restoring now."""
        step = self.collections.get(task.target)
        if step is None and task.state is TaskState.RESTORING and self.latest is not None:
            step = self.collections.get(self.latest.collection)
        return step

    def _task_fraction(self, task: CollectionTask) -> float:
        if task.state is TaskState.SUCCESS:
            return 1.0
        step = self._step_of(task)
        return step.fraction() if step is not None and task.state is not TaskState.PENDING else 0.0

    def _restore_fraction(self) -> float:
        tasks = self.job.tasks
        total = sum(self._weight(t) for t in tasks)
        return sum(self._weight(t) * self._task_fraction(t) for t in tasks) / total if total else 0.0

    def bytes_pair(self) -> tuple[int, int]:
        """Bytes done and to do for the whole job (a restore: its collections' sizes, by how far each is)."""
        p = self.progress
        if self.job.kind is JobKind.RESTORE and self.job.tasks:
            total = sum(t.bytes_total for t in self.job.tasks)
            done = sum(t.bytes_total * self._task_fraction(t) for t in self.job.tasks)
            return (total if self.job.state is JobState.SUCCESS else int(done)), total
        return p.bytes_done, p.bytes_total

    def rate(self) -> float:
        """Bytes per second: over a backup's or a verify's current step, over a restore's whole work."""
        p = self.progress
        done, _ = self.bytes_pair()
        if self.job.kind is JobKind.RESTORE:
            seconds = p.elapsed - (self.work_started if self.work_started is not None else p.elapsed)
        else:
            seconds = p.elapsed - self.step_started
        return done / seconds if done and seconds > 0 else 0.0

    def eta(self) -> float | None:
        done, total = self.bytes_pair()
        rate = self.rate()
        if not rate or not total or self.job.state.finished:
            return None
        return max(0.0, (total - done) / rate)

    def duration(self, now: float) -> float:
        """Seconds since the job started, up to its end once it has ended."""
        job = self.job
        if not job.start_time:
            return self.progress.elapsed
        if job.state.finished:  # the job's own clock first: whole seconds of wall time round it off
            return self.progress.elapsed or max(0, job.end_time - job.start_time)
        return now - job.start_time

    # -- what to say -----------------------------------------------------------------------------
    def phase_text(self) -> str:
        p = self.progress
        if p.state.finished:
            return Phase.DONE.value
        return f"{p.phase.value} (waiting)" if self.waiting else p.phase.value

    def stats_line(self, now: float | None = None, dot: str = FANCY.dot) -> str:
        """One line of numbers; `now` (the wall clock) keeps "elapsed" going while no event comes."""
        p = self.progress
        parts = [f"{self.kind_label} {self.job.name}", p.state.value, f"phase {self.phase_text()}"]
        if p.collection and not p.state.finished:
            parts.append(p.collection)
        done, total = self.bytes_pair()
        if total:
            parts.append(f"{humanize.naturalsize(done)} / {humanize.naturalsize(total)}")
        rate = self.rate()
        if rate and not p.state.finished:
            parts.append(f"{humanize.naturalsize(rate)}/s")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {humanize.precisedelta(eta, minimum_unit='seconds', format='%0.0f')}")
        if p.rows:
            parts.append(f"{humanize.intcomma(p.rows)} rows")
        elapsed = p.elapsed if now is None else self.duration(now)
        parts.append(f"elapsed {humanize.precisedelta(elapsed, minimum_unit='seconds', format='%0.0f')}")
        return f" {dot} ".join(parts)

    def outcome(self) -> str:
        """What a finished job produced, or why it did not."""
        job = self.job
        if job.state is JobState.SUCCESS:
            late = "cancel came too late: the job succeeded. " if job.cancel_event.is_set() else ""
            return late + self._success()
        if job.state is JobState.CANCELLED:
            if job.kind is JobKind.VERIFY:
                return f"verify {job.name} cancelled"
            return f"{job.kind} {job.name} cancelled; what it had written was removed"
        if job.state is JobState.FAILED:
            return f"{job.kind} {job.name} failed: {job.error}"
        return ""

    def _success(self) -> str:
        job, result = self.job, self.job.result
        if job.kind is JobKind.BACKUP and isinstance(result, BackupInfo):
            return (
                f"backup {result.name} created: {len(result.collection_backups)} collection(s), "
                f"{humanize.naturalsize(result.size)}"
            )
        if job.kind is JobKind.RESTORE and result is not None:
            return "restored " + ", ".join(
                f"{t.source} as {t.target} ({humanize.intcomma(t.rows)} rows)" for t in job.tasks
            )
        if job.kind is JobKind.VERIFY and isinstance(result, VerifyReport):
            problems = [f"{p.kind} {p.key}: {p.detail}" for p in result.problems[:5]]
            more = len(result.problems) - len(problems)
            return "\n".join([result.summary(), *problems] + ([f"... and {more} more"] if more > 0 else []))
        return f"{job.kind} {job.name} finished"

    def succeeded(self) -> bool:
        """Finished well: a verify must also have found the backup whole."""
        job = self.job
        if job.state is not JobState.SUCCESS:
            return False
        return not isinstance(job.result, VerifyReport) or job.result.ok

    def collection_table(self, symbols: Symbols = FANCY) -> Table:
        """One line per collection: a restore reports each on its own; a backup copies them together."""
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False)
        for column in ("collection", "phase", "bytes", "rows", "state"):
            table.add_column(column)
        rows = self._restore_lines(symbols) if self.job.kind is JobKind.RESTORE else self._backup_lines()
        for row in rows:
            table.add_row(*row)
        return table

    def _restore_lines(self, symbols: Symbols) -> list[tuple[str, ...]]:
        finished = self.job.state.finished
        lines: list[tuple[str, ...]] = []
        for task in self.job.tasks:
            step = self._step_of(task)
            # a backup in Milvus's own bucket is imported where it is: then only its size is shown
            copied = humanize.naturalsize(task.bytes_total) if task.bytes_total else "-"
            if step is not None and step.copied:
                done = task.bytes_total if step.phase is not Phase.COPY else step.bytes_done
                copied = _size_pair(done, task.bytes_total)
            if task.state is TaskState.SUCCESS:
                phase = Phase.DONE.value
            else:
                phase = step.phase.value if step and task.state is not TaskState.PENDING else "-"
            if task.state is TaskState.PENDING:
                state = "not started" if finished else "waiting its turn"
            elif task.state is TaskState.FAILED and self.job.state is JobState.CANCELLED:
                state = "cancelled"
            elif task.state is TaskState.SUCCESS and finished and self.job.state is not JobState.SUCCESS:
                state = "rolled back"  # a restore that fails or is cancelled drops what it created
            else:
                state = task.state.value
            rows = task.rows or self._rows_in_flight(task)
            if task.state is TaskState.SUCCESS and rows != task.rows_total:  # deletes applied on import
                counted = f"{humanize.intcomma(rows)} ({humanize.intcomma(task.rows_total)} stored)"
            else:
                counted = _count_pair(rows, task.rows_total)
            lines.append((f"{task.source} {symbols.arrow} {task.target}", phase, copied, counted, state))
        return lines

    def _rows_in_flight(self, task: CollectionTask) -> int:
        """Rows imported so far into the collection being restored (the job counts rows for all)."""
        if task.state is not TaskState.RESTORING:
            return 0
        return max(0, self.progress.rows - sum(t.rows for t in self.job.tasks if t is not task))

    def _backup_lines(self) -> list[tuple[str, ...]]:
        job, p = self.job, self.progress
        names = list(dict.fromkeys([*self.collections, *job.shares]))
        lines: list[tuple[str, ...]] = []
        for name in names:
            share = job.shares.get(name)
            if share is None:  # never planned: the job stopped before it reached this collection
                phase = Phase.PREPARE.value if not job.state.finished else "-"
                state = "planning" if not job.state.finished else "not started"
                lines.append((name, phase, "-", "-", state))
                continue
            if job.state is JobState.SUCCESS:
                phase, state = Phase.DONE.value, "done"
            elif job.state.finished:
                phase, state = "-", job.state.value
            else:
                phase = p.phase.value
                copied_all = share.bytes_done >= share.bytes_total
                state = {Phase.PREPARE: "planned", Phase.COPY: "copied" if copied_all else "copying"}.get(
                    p.phase, "writing meta"
                )
            lines.append(
                (name, phase, _size_pair(share.bytes_done, share.bytes_total), humanize.intcomma(share.rows), state)
            )
        return lines


def _size_pair(done: int, total: int) -> str:
    return f"{humanize.naturalsize(done)} / {humanize.naturalsize(total)}" if total else "-"


def _count_pair(done: int, total: int) -> str:
    if not total:
        return humanize.intcomma(done) if done else "-"
    return f"{humanize.intcomma(done)} / {humanize.intcomma(total)}"


JOB_COLUMNS = ("Kind", "Backup", "State", "Phase", "Done", "Took", "Started (UTC)")


def state_text(state: JobState) -> Text:
    style = {
        JobState.RUNNING: "bold yellow",
        JobState.SUCCESS: "green",
        JobState.FAILED: "bold red",
        JobState.CANCELLED: "magenta",
        JobState.INTERRUPTED: "bold red",
    }.get(state, "")
    return Text(state.value, style=style)


class JobBar(Widget):
    """One bar for the whole job, drawn with `symbols` so a plain terminal gets ASCII; `percentage` is 0..1."""

    DEFAULT_CSS = "JobBar { height: 1; }"

    def __init__(self, symbols: Symbols = FANCY, **kwargs: Any):
        super().__init__(**kwargs)
        self.symbols = symbols
        self.percentage: float | None = None

    def show(self, fraction: float | None) -> None:
        if fraction != self.percentage:
            self.percentage = fraction
            self.refresh()

    def render(self) -> Text:
        if self.percentage is None:
            return Text("")
        label = f" {100 * self.percentage:3.0f}%"
        width = max(0, self.content_region.width - len(label))
        done = round(width * self.percentage)
        return Text.assemble(
            (self.symbols.bar_done * done, "bold"), (self.symbols.bar_todo * (width - done), "dim"), label
        )


class JobsScreen(Screen[None]):
    """Every job of the session, newest first; the selected one's bar, collections and log.

    It opens on the newest running job (else the newest), so the job the operator came for is on screen."""

    BINDINGS = [
        Binding("c", "cancel_job", "Cancel job"),
        Binding("escape,j", "app.pop_screen", "Back"),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit_app", "Quit"),
    ]
    REFRESH_SECONDS = 0.25

    def __init__(
        self,
        watches: dict[str, JobWatch],
        *,
        clock: Callable[[], float],
        ask_cancel: Callable[[JobWatch], None],
        symbols: Symbols = FANCY,
    ):
        super().__init__()
        self.watches = watches
        self.clock = clock
        self.ask_cancel = ask_cancel
        self.symbols = symbols
        self._log_lines: dict[str, int] = {}
        self._shown_job: str | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="*" if self.symbols is not FANCY else None)
        yield SyncTable(JOB_COLUMNS, id="job-table", squeeze=("Backup",), symbols=self.symbols)
        yield Static(id="no-jobs")
        with Vertical(id="job-detail"):
            yield Static(id="job-stats")
            yield JobBar(self.symbols, id="job-bar")
            yield Static(id="job-waiting")
            yield Static(id="job-outcome")
            yield Static(id="job-collections")
            yield RichLog(id="job-log", wrap=True, markup=False, highlight=False, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#job-table", SyncTable)
        self.sub_title = "jobs" if self.symbols is FANCY else ""  # the header joins them with an em dash
        self.refresh_jobs()
        first = self._first_to_show()
        if first is not None:
            table.move_to(first)
        self.set_interval(self.REFRESH_SECONDS, self.refresh_jobs)
        table.focus()

    def ordered(self) -> list[JobWatch]:
        """Newest first; among jobs started in the same second, the later started first."""
        watches = list(self.watches.values())
        order = {id(w): n for n, w in enumerate(watches)}
        return sorted(watches, key=lambda w: (-w.job.start_time, -order[id(w)]))

    def _first_to_show(self) -> str | None:
        ordered = self.ordered()
        running = [w for w in ordered if not w.job.state.finished]
        chosen = running[0] if running else ordered[0] if ordered else None
        return chosen.job.id if chosen else None

    def selected(self) -> JobWatch | None:
        key = self.query_one("#job-table", SyncTable).current_key
        return self.watches.get(key) if key is not None else None

    def _cells(self, watch: JobWatch) -> tuple[str | Text, ...]:
        p = watch.progress
        return (
            watch.kind_label,
            watch.job.name,
            state_text(p.state),
            watch.phase_text(),
            f"{watch.percent():.0f}%",
            duration_text(watch.duration(self.clock())),
            _clock(watch.job.start_time),
        )

    def refresh_jobs(self) -> None:
        """The table keeps the cursor on its job while rows change and new jobs come on top."""
        self.query_one("#job-table", SyncTable).sync({w.job.id: self._cells(w) for w in self.ordered()})
        self._show(self.selected())

    def _show(self, watch: JobWatch | None) -> None:
        self.query_one("#no-jobs", Static).display = watch is None
        self.query_one("#job-table").display = watch is not None
        self.query_one("#job-detail").display = watch is not None
        if watch is None:
            self.query_one("#no-jobs", Static).update(
                "No jobs yet: mark collections on the main screen and press b to back up."
            )
            return
        log = self.query_one("#job-log", RichLog)
        if watch.job.id != self._shown_job:
            log.clear()
            self._log_lines[watch.job.id] = 0
            self._shown_job = watch.job.id
        self.query_one("#job-stats", Static).update(watch.stats_line(self.clock(), self.symbols.dot))
        self.query_one("#job-bar", JobBar).show(watch.fraction())
        waiting = self.query_one("#job-waiting", Static)
        waiting.update(Text(f"waiting: {watch.waiting}", style="bold yellow") if watch.waiting else "")
        waiting.display = bool(watch.waiting) and not watch.job.state.finished
        outcome, shown = watch.outcome(), self.query_one("#job-outcome", Static)
        shown.update(Text(outcome, style="green" if watch.succeeded() else "bold red") if outcome else "")
        shown.display = bool(outcome)
        collections = watch.collection_table(self.symbols)
        shown_collections = self.query_one("#job-collections", Static)
        shown_collections.update(collections)
        shown_collections.display = collections.row_count > 0  # a verify has none
        lines = list(watch.job.lines)
        start = self._log_lines.get(watch.job.id, 0)
        for line in lines[start:]:
            log.write(Text(line))
        self._log_lines[watch.job.id] = len(lines)

    def on_resize(self) -> None:
        """The log wraps its lines as they are written: at a new width, write them again."""
        self._shown_job = None
        self.call_after_refresh(self._show_selected)

    def _show_selected(self) -> None:
        self._show(self.selected())

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(self.selected())

    def action_cancel_job(self) -> None:
        watch = self.selected()
        if watch is None or watch.job.state.finished:
            self.notify("Select a running job to cancel.", severity="warning")
            return
        self.ask_cancel(watch)


def _clock(timestamp: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(timestamp)) if timestamp else "-"
