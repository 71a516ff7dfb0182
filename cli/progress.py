"""Showing a job's progress in a terminal: a redrawn bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

import humanize

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


class ProgressPrinter:
    """A job listener. On a TTY it redraws one bar line at most 10 times a second."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, width: int = 24):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.width = width
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._last_phase = ("", "")
        self._rate_mark: tuple[float, int] | None = None
        self._rate = 0.0
        self._drawn = False

    def __call__(self, p: Progress) -> None:
        with self._lock:
            self._update_rate(p)
            if p.message:
                self._clear()
                print(p.message, file=self.stream, flush=True)
            if not self.tty:
                if (p.phase, p.collection) != self._last_phase and not p.state.finished:
                    print(describe(p), file=self.stream, flush=True)
                self._last_phase = (p.phase, p.collection)
                return
            now = time.monotonic()
            if p.state.finished:
                self._clear()
                return
            if now - self._last_draw >= 0.1 or p.message:
                self._draw(p)
                self._last_draw = now

    def _update_rate(self, p: Progress) -> None:
        now = time.monotonic()
        if self._rate_mark is None or p.bytes_done < self._rate_mark[1]:
            self._rate_mark = (now, p.bytes_done)
            return
        elapsed = now - self._rate_mark[0]
        if elapsed >= 0.5:
            self._rate = (p.bytes_done - self._rate_mark[1]) / elapsed
            self._rate_mark = (now, p.bytes_done)

    def _draw(self, p: Progress) -> None:
        filled = int(p.fraction * self.width)
        bar = "█" * filled + "░" * (self.width - filled)
        line = f"{bar} {p.fraction * 100:5.1f}%  {describe(p, self._rate)}"
        self.stream.write("\r\x1b[2K" + line[:200])
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False
