"""Showing a job's progress: a rich progress bar when stderr is a terminal, plain lines otherwise.

On a terminal: the phase and collection, a bar, the percentage, bytes (or objects) done of the total,
the transfer rate and the time left, redrawn ten times a second by rich; the job's log lines scroll
above it, and it disappears when the job ends. Elsewhere (a pipe, a file, the tests): one plain line
per phase and collection, then the log lines, which scripts read.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

import humanize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as Bar
from rich.text import Text

if TYPE_CHECKING:
    from milvus_backup.core.service import Progress


def describe(p: Progress, rate: float | None = None) -> str:
    """One line: phase, collection, bytes (with rate), objects, rows."""
    parts: list[str] = [p.phase]
    if p.collection:
        parts.append(p.collection)
    if p.bytes_total:
        size = f"{humanize.naturalsize(p.bytes_done)} / {humanize.naturalsize(p.bytes_total)}"
        if rate:
            size += f" at {humanize.naturalsize(rate)}/s"
        parts.append(size)
    if p.objects_total:
        parts.append(f"{p.objects_done}/{p.objects_total} objects")
    if p.rows:
        parts.append(f"{humanize.intcomma(p.rows)} rows")
    return "  ".join(parts)


class _Amount(ProgressColumn):
    """Bytes done of the total (and the objects), or the objects alone when a step counts no bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        objects = task.fields.get("objects", "")
        if task.fields.get("unit") != "bytes":
            return Text(objects, style="progress.download")
        amount = self._bytes.render(task)
        if objects:
            amount.append(f"  {objects}", style="progress.download")
        return amount


class _Rate(ProgressColumn):
    """The transfer rate, for a step that moves bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        return self._speed.render(task) if task.fields.get("unit") == "bytes" else Text("")


_BARS = 4  # bars on screen at most: the collections most recently reported


class ProgressPrinter:
    """A job listener (called from the job's threads); `close()` removes the bar if the job left it up."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._lock = threading.Lock()
        self._last_phase: dict[str, str] = {}  # collection -> the phase last printed for it
        self._bar: Bar | None = None
        # one bar per collection in flight (a restore works on several at once), newest last:
        # collection -> (its task, the step it shows: phase, unit, total)
        self._tasks: dict[str, tuple[TaskID, tuple[str, str, int]]] = {}
        self._closed = False

    def __call__(self, p: Progress) -> None:
        with self._lock:
            if not self.tty:
                self._plain(p)
            elif self._closed:
                if p.message:
                    print(p.message, file=self.stream, flush=True)
            else:
                self._draw(p)

    def close(self) -> None:
        with self._lock:
            self._stop()

    # -- not a terminal: plain lines ---------------------------------------------------------------
    def _plain(self, p: Progress) -> None:
        if p.message:
            print(p.message, file=self.stream, flush=True)
        if self._last_phase.get(p.collection) != p.phase and not p.state.finished:
            print(describe(p), file=self.stream, flush=True)
        self._last_phase[p.collection] = str(p.phase)

    # -- a terminal: rich's bar --------------------------------------------------------------------
    def _draw(self, p: Progress) -> None:
        bar = self._bar
        if bar is None:
            bar = self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                _Amount(),
                _Rate(),
                TimeRemainingColumn(),
                console=Console(file=self.stream, force_terminal=True),
                transient=True,  # gone when the job ends: the answer follows on stdout
                redirect_stdout=False,  # stdout is the answer, never drawn over
            )
            bar.start()
        if p.message:
            bar.console.print(p.message, markup=False, highlight=False)
        if p.state.finished:
            self._stop()
            return
        if p.bytes_total:
            unit, total, done = "bytes", p.bytes_total, p.bytes_done
        elif p.objects_total:
            unit, total, done = "objects", p.objects_total, p.objects_done
        else:
            unit, total, done = "", 0, 0  # a step without a count: the bar pulses
        description = " ".join(filter(None, [str(p.phase), p.collection]))
        if p.rows:
            description += f"  {humanize.intcomma(p.rows)} rows"
        objects = f"{p.objects_done}/{p.objects_total} objects" if p.objects_total else ""
        step = (str(p.phase), unit, total)
        shown = self._tasks.pop(p.collection, None)  # popped and put back: the dict stays newest last
        if shown is None or shown[1] != step:
            # a new step: a new task, so the rate and the time left are measured afresh
            if shown is not None:
                bar.remove_task(shown[0])
            task = bar.add_task(description, total=total or None, completed=done, unit=unit, objects=objects)
            while len(self._tasks) >= _BARS:  # collections that moved on long ago make room
                bar.remove_task(self._tasks.pop(next(iter(self._tasks)))[0])
            self._tasks[p.collection] = (task, step)
        else:
            bar.update(shown[0], completed=done, description=description, objects=objects)
            self._tasks[p.collection] = shown

    def _stop(self) -> None:
        self._closed = True
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
