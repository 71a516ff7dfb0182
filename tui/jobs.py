"""Jobs as the operator watches them: live progress (percent, sizes, rate, ETA, phase, per collection),
the log, and cancel.

A `JobWatch` listens to a job's progress events (in the job's thread) and keeps what the screen
needs: when the current step began, so a rate and an ETA can be derived from bytes actually copied,
and the last state of each collection. The screen reads the watches on a timer; the job thread never
touches a widget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import humanize
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, ProgressBar, Static

from milvus_backup.core.service import BackupInfo, Job, JobKind, JobState, Phase, Progress, VerifyReport


@dataclass
class CollectionStep:
    collection: str
    phase: Phase
    bytes_done: int = 0
    bytes_total: int = 0
    rows: int = 0


class JobWatch:
    """What the jobs screen shows of one job, fed by its progress events."""

    def __init__(self, job: Job[Any] | None = None):
        self._job = job  # set by whoever started the job; events may arrive first
        self.latest: Progress | None = job.progress if job else None
        self.step_started = 0.0  # progress.elapsed when the current collection/phase began
        self.collections: dict[str, CollectionStep] = {}

    @property
    def job(self) -> Job[Any]:
        """The watched job; a watch is read only once its job is set (events may come before)."""
        if self._job is None:
            raise RuntimeError("this watch has no job yet")
        return self._job

    @job.setter
    def job(self, job: Job[Any]) -> None:
        self._job = job

    def on_progress(self, p: Progress) -> None:
        previous = self.latest
        if previous is None or p.collection != previous.collection or p.phase != previous.phase:
            self.step_started = p.elapsed
        if p.collection and p.phase is not Phase.DONE:
            step = self.collections.get(p.collection) or CollectionStep(p.collection, p.phase)
            step.phase, step.bytes_done, step.bytes_total = p.phase, p.bytes_done, p.bytes_total
            self.collections[p.collection] = step
        self.latest = p

    @property
    def progress(self) -> Progress:
        return self.job.progress if self.job.state.finished or self.latest is None else self.latest

    def rate(self) -> float:
        """Bytes per second over the current step (0 until something was copied)."""
        p = self.progress
        seconds = p.elapsed - self.step_started
        return p.bytes_done / seconds if p.bytes_done and seconds > 0 else 0.0

    def eta(self) -> float | None:
        p, rate = self.progress, self.rate()
        if not rate or not p.bytes_total or p.state.finished:
            return None
        return max(0.0, (p.bytes_total - p.bytes_done) / rate)

    def percent(self) -> float:
        return round(100 * self.progress.fraction, 1)

    def stats_line(self) -> str:
        p = self.progress
        parts = [f"{self.job.kind} {self.job.name}", p.state.value, f"phase {p.phase}"]
        if p.collection:
            parts.append(p.collection)
        if p.bytes_total:
            parts.append(f"{humanize.naturalsize(p.bytes_done)} / {humanize.naturalsize(p.bytes_total)}")
        rate = self.rate()
        if rate and not p.state.finished:
            parts.append(f"{humanize.naturalsize(rate)}/s")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {humanize.precisedelta(eta, minimum_unit='seconds', format='%0.0f')}")
        if p.rows:
            parts.append(f"{humanize.intcomma(p.rows)} rows")
        parts.append(f"elapsed {humanize.precisedelta(p.elapsed, minimum_unit='seconds', format='%0.0f')}")
        return " · ".join(parts)

    def outcome(self) -> str:
        """What a finished job produced, or why it did not."""
        job = self.job
        if job.state is JobState.SUCCESS:
            result = job.result
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
                report = result
                problems = [f"{p.kind} {p.key}: {p.detail}" for p in report.problems[:5]]
                more = len(report.problems) - len(problems)
                return "\n".join([report.summary(), *problems] + ([f"... and {more} more"] if more > 0 else []))
            return f"{job.kind} {job.name} finished"
        if job.state is JobState.CANCELLED:
            if job.kind is JobKind.VERIFY:
                return f"verify {job.name} cancelled"
            return f"{job.kind} {job.name} cancelled; what it had written was removed"
        if job.state is JobState.FAILED:
            return f"{job.kind} {job.name} failed: {job.error}"
        return ""

    def succeeded(self) -> bool:
        """Finished well: a verify must also have found the backup whole."""
        job = self.job
        if job.state is not JobState.SUCCESS:
            return False
        return not isinstance(job.result, VerifyReport) or job.result.ok

    def collection_table(self) -> Table:
        """One line per collection: a restore reports each on its own; a backup copies them together."""
        table = Table(box=None, expand=True, show_edge=False, pad_edge=False)
        for column in ("collection", "phase", "copied", "rows", "state"):
            table.add_column(column)
        p, finished = self.progress, self.job.state.finished
        if self.job.kind is JobKind.RESTORE:
            for task in self.job.tasks:
                step = self.collections.get(task.target)
                copied = (
                    f"{humanize.naturalsize(step.bytes_done)} / {humanize.naturalsize(step.bytes_total)}"
                    if step and step.phase is Phase.COPY and step.bytes_total
                    else "-"
                )
                table.add_row(
                    f"{task.source} → {task.target}",
                    step.phase.value if step else "-",
                    copied,
                    humanize.intcomma(task.rows) if task.rows else "-",
                    task.state.value,
                )
            return table
        for name in self.collections:
            table.add_row(
                name,
                Phase.DONE.value if finished else p.phase.value,
                "-",
                "-",
                self.job.state.value if finished else "in this backup",
            )
        return table


JOB_COLUMNS = ("Kind", "Backup", "State", "Phase", "Done", "Started")


def state_text(state: JobState) -> Text:
    style = {
        JobState.RUNNING: "bold yellow",
        JobState.SUCCESS: "green",
        JobState.FAILED: "bold red",
        JobState.CANCELLED: "magenta",
        JobState.INTERRUPTED: "bold red",
    }[state]
    return Text(state.value, style=style)


class JobsScreen(Screen[None]):
    """Every job of the session; the selected one's bar, collections and log."""

    BINDINGS = [
        Binding("c", "cancel_job", "Cancel job"),
        Binding("escape,j", "app.pop_screen", "Back"),
        Binding("question_mark", "app.help", "Keys"),
        Binding("q", "app.quit_app", "Quit"),
    ]
    REFRESH_SECONDS = 0.25

    def __init__(self, watches: dict[str, JobWatch]):
        super().__init__()
        self.watches = watches
        self._log_lines: dict[str, int] = {}
        self._shown_job: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str | Text] = DataTable(id="job-table", cursor_type="row", zebra_stripes=True)
        yield table
        with Vertical(id="job-detail"):
            yield Static(id="job-stats")
            yield ProgressBar(total=100, show_eta=False, id="job-bar")
            yield Static(id="job-outcome")
            yield Static(id="job-collections")
            yield Log(id="job-log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[str | Text] = self.query_one("#job-table", DataTable)
        for column in JOB_COLUMNS:
            table.add_column(column, key=column)
        self.sub_title = "jobs"
        self.refresh_jobs()
        self.set_interval(self.REFRESH_SECONDS, self.refresh_jobs)
        table.focus()

    def selected(self) -> JobWatch | None:
        table: DataTable[str | Text] = self.query_one("#job-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.watches.get(key) if key is not None else None

    def refresh_jobs(self) -> None:
        table: DataTable[str | Text] = self.query_one("#job-table", DataTable)
        for job_id, watch in self.watches.items():
            p = watch.progress
            cells: tuple[str | Text, ...] = (
                watch.job.kind.value,
                watch.job.name,
                state_text(p.state),
                p.phase.value,
                f"{watch.percent():.0f}%",
                _clock(watch.job.start_time),
            )
            if job_id in table.rows:
                for column, value in zip(JOB_COLUMNS, cells, strict=False):
                    if table.get_cell(job_id, column) != value:
                        table.update_cell(job_id, column, value)
            else:
                table.add_row(*cells, key=job_id)
        self._show(self.selected())

    def _show(self, watch: JobWatch | None) -> None:
        stats = self.query_one("#job-stats", Static)
        log = self.query_one("#job-log", Log)
        if watch is None:
            stats.update("No jobs yet: mark collections on the main screen and press b to back up.")
            return
        if watch.job.id != self._shown_job:
            log.clear()
            self._log_lines[watch.job.id] = 0
            self._shown_job = watch.job.id
        stats.update(watch.stats_line())
        self.query_one("#job-bar", ProgressBar).update(progress=watch.percent())
        outcome = watch.outcome()
        self.query_one("#job-outcome", Static).update(
            Text(outcome, style="green" if watch.succeeded() else "bold red") if outcome else ""
        )
        self.query_one("#job-collections", Static).update(watch.collection_table())
        lines = list(watch.job.lines)
        start = self._log_lines.get(watch.job.id, 0)
        if len(lines) > start:
            log.write_lines(lines[start:])
            self._log_lines[watch.job.id] = len(lines)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(self.selected())

    def action_cancel_job(self) -> None:
        watch = self.selected()
        if watch is None or watch.job.state.finished:
            self.notify("Select a running job to cancel.", severity="warning")
            return
        watch.job.cancel()
        self.notify(f"Cancelling {watch.job.kind} {watch.job.name}: it stops at its next step and cleans up.")


def _clock(timestamp: int) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "-"
