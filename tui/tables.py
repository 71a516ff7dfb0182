"""The two tables of the main screen: keyed rows that refresh in place, a filter, marks.

A refresh hands the table every row it should show, keyed; the table updates the cells that
changed, adds and removes rows, and keeps the cursor on the same key, so a periodic refresh never
moves the operator's place. The filter hides rows whose text does not contain it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import humanize
from rich.text import Text
from textual.widgets import DataTable

from milvus_backup.core.service import BackupSummary, CollectionSummary

Row = tuple[str | Text, ...]
MARK = "✓"


class SyncTable(DataTable[str | Text]):
    """A DataTable fed whole row sets by key: `sync(rows)`; `filter` narrows what it shows."""

    DEFAULT_CSS = "SyncTable { height: 1fr; }"

    def __init__(self, columns: Sequence[str], **kwargs: Any):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns = list(columns)
        self.all_rows: dict[str, Row] = {}
        self.filter_text = ""

    def on_mount(self) -> None:
        for label in self._columns:
            self.add_column(label, key=label)

    @property
    def current_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def sync(self, rows: dict[str, Row]) -> None:
        self.all_rows = dict(rows)
        self._apply()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self._apply()

    def _visible(self) -> dict[str, Row]:
        if not self.filter_text:
            return self.all_rows
        return {k: r for k, r in self.all_rows.items() if any(self.filter_text in str(cell).lower() for cell in r)}

    def _apply(self) -> None:
        wanted = self._visible()
        keep = self.current_key
        if [key.value for key in self.rows] != list(wanted):  # rows came or went: rebuild
            self.clear()
            for key, row in wanted.items():
                self.add_row(*row, key=key)
        for key, row in wanted.items():
            current = self.get_row(key)
            for column, (old, new) in enumerate(zip(current, row, strict=False)):
                if old != new:
                    self.update_cell(key, self._columns[column], new)
        if keep in wanted:
            self.move_cursor(row=self.get_row_index(keep), animate=False)


def collection_key(c: CollectionSummary) -> str:
    return f"{c.db_name}.{c.name}"


def collection_rows(collections: Iterable[CollectionSummary], marked: set[str]) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for c in collections:
        key = collection_key(c)
        loaded = {"Loaded": "yes", "Loading": "loading"}.get(c.load_state, "no")
        cells = (
            MARK if key in marked else " ",
            c.db_name,
            c.name,
            humanize.intcomma(c.row_count),
            str(c.partitions),
            ", ".join(c.indexes) or "-",
            loaded,
        )
        rows[key] = tuple(Text(cell) for cell in cells)
    return rows


COLLECTION_COLUMNS = (" ", "Database", "Collection", "Rows", "Parts", "Index", "Loaded")
BACKUP_COLUMNS = ("Backup", "When", "Size", "Collections", "State")


def backup_rows(backups: Iterable[BackupSummary], now: Callable[[], float] = time.time) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    moment = now()
    for b in backups:
        when = humanize.naturaltime(moment - b.start_time) if b.start_time else "-"
        state = Text(b.state, style="green" if b.complete else "bold red")
        rows[b.name] = (
            Text(b.name),
            Text(when),
            Text(humanize.naturalsize(b.size)),
            Text(", ".join(b.collections) or "-"),
            state,
        )
    return rows
