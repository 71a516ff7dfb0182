"""The two tables of the main screen: keyed rows that refresh in place, a filter, marks.

A refresh hands the table every row it should show, keyed and already in its fixed order; the table
updates the cells that changed, adds and removes rows, and keeps the cursor on the same key (or, when
that row went away, on its neighbour), so a periodic refresh never moves the operator's place. Column
widths follow the cells on every refresh, and when the row is wider than the screen one column (the
"squeeze" column) is shortened with "…" so the others stay whole. An empty table says why it is empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import humanize
from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable, Static

from milvus_backup.core.service import CHECKING, BackupSummary, CollectionSummary

Row = tuple[str | Text, ...]


@dataclass(frozen=True)
class Symbols:
    """The few non-letters the screens draw; a plain terminal (vt100, NO_COLOR) gets ASCII ones."""

    mark: str = "✓"
    arrow: str = "→"
    ellipsis: str = "…"
    bar_done: str = "█"
    bar_todo: str = "░"
    cross: str = "✗"
    dot: str = "·"  # between the numbers of a stats line


FANCY = Symbols()
PLAIN = Symbols(mark="x", arrow="->", ellipsis="~", bar_done="#", bar_todo="-", cross="X", dot="|")


def shorten(cell: str | Text, width: int, ellipsis: str) -> Text:
    """`cell` cut to `width` cells, ending in `ellipsis` when something was cut."""
    text = cell.copy() if isinstance(cell, Text) else Text(cell)
    if cell_len(text.plain) <= width:
        return text
    text.truncate(max(0, width - cell_len(ellipsis)))
    text.append(ellipsis)
    return text


class CursorTable(DataTable[str | Text]):
    """A row table whose cursor also jumps to the first and last row: home/g and end/G."""

    BINDINGS = [
        Binding("home,g", "first_row", "First row", show=False),
        Binding("end,G", "last_row", "Last row", show=False),
    ]

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class SyncTable(CursorTable):
    """A DataTable fed whole row sets by key: `sync(rows)`; `filter` narrows what it shows; `hint` is the
    line that says why it is empty (the app places it under the table)."""

    DEFAULT_CSS = "SyncTable { height: 1fr; }"

    def __init__(
        self,
        columns: Sequence[str],
        *,
        squeeze: Sequence[str] = (),
        empty: str = "nothing here",
        symbols: Symbols = FANCY,
        **kwargs: Any,
    ):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._columns = list(columns)
        self.squeeze = squeeze
        self.empty = empty
        self.symbols = symbols
        self.all_rows: dict[str, Row] = {}
        self.synced = False  # rows came at least once: before that, empty means "not loaded yet"
        self.failed = False  # its source did not answer the last listing (the app's alert says why)
        self.filter_text = ""
        self.hint = Static(classes="empty-hint")
        self.hint.display = False
        self._rest: dict[str, Row] = {}  # the rows past the first screenful of the last rebuild, still to add

    def on_mount(self) -> None:
        for label in self._columns:
            self.add_column(label, key=label)

    def on_resize(self) -> None:
        self._apply()

    @property
    def current_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def sync(self, rows: dict[str, Row]) -> None:
        self.all_rows = dict(rows)
        self.synced = True
        self._apply()

    def set_failed(self, failed: bool) -> None:
        """Whether the last listing failed: a table that never got rows then says so, not "loading...";
        one that did keeps them (the alert above says they are the last that came)."""
        self.failed = failed
        if self.is_mounted:
            self._show_hint(bool(self.row_count))

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self._apply()

    def _visible(self) -> dict[str, Row]:
        if not self.filter_text:
            return self.all_rows
        return {k: r for k, r in self.all_rows.items() if any(self.filter_text in str(cell).lower() for cell in r)}

    def _widths(self, rows: dict[str, Row]) -> list[int]:
        """Each column's width: its widest cell or its label (what DataTable measures, counted from the text)."""
        return [
            max([cell_len(label), *(cell_len(str(r[n])) for r in rows.values())])
            for n, label in enumerate(self._columns)
        ]

    def _fitted(self, rows: dict[str, Row], widths: list[int]) -> dict[str, Row]:
        """The rows as shown: when the whole row would not fit the width, the squeeze columns are shortened,
        the first as far as its label, then the next. `widths` are the columns' widths; cut ones shrink."""
        available = self.scrollable_content_region.width
        if not self.squeeze or not rows or available <= 0:
            return rows
        # one column to spare: a row exactly as wide as the table still gets a horizontal scrollbar
        over = sum(widths) + 2 * self.cell_padding * len(self._columns) - (available - 1)
        cut: dict[int, int] = {}  # column -> its width now
        for name in self.squeeze:
            if over <= 0:
                break
            n = self._columns.index(name)
            trim = min(over, widths[n] - cell_len(name))
            if trim > 0:
                cut[n], over = widths[n] - trim, over - trim
        if not cut:
            return rows
        for n, width in cut.items():
            widths[n] = width
        return {
            key: tuple(shorten(cell, cut[n], self.symbols.ellipsis) if n in cut else cell for n, cell in enumerate(row))
            for key, row in rows.items()
        }

    def _apply(self) -> None:
        if not self.is_mounted or not self.columns:
            return
        visible = self._visible()
        widths = self._widths(visible)
        wanted = self._fitted(visible, widths)
        keep, place = self.current_key, self.cursor_row
        if [key.value for key in self.rows] != list(wanted):  # rows came or went: rebuild
            self._rebuild(wanted, widths, keep, place)
        else:
            for key, row in wanted.items():
                current = self.get_row(key)
                for column, (old, new) in enumerate(zip(current, row, strict=False)):
                    if old != new:
                        self.update_cell(key, self._columns[column], new)
            self._set_widths(widths)
        self._place_cursor(wanted, keep, place)
        self._show_hint(bool(wanted))

    def _set_widths(self, widths: list[int]) -> None:
        """Give the columns the widths counted from every row's text. Not DataTable's `update_width`: for
        each cell that gets narrower it measures every cell of the column again, so a thousand backups
        going from "checking" to "success" cost a million measures (30 s of CPU with the app frozen)."""
        for column, width in zip(self.columns.values(), widths, strict=True):
            if column.content_width != width:
                column.content_width = width
                self._require_update_dimensions = True  # DataTable recomputes its size when idle
                self.refresh()

    def _rebuild(self, wanted: dict[str, Row], widths: list[int], keep: str | None, place: int) -> None:
        """Show `wanted` anew: the rows as far as a screenful past the cursor now, the rest after this paint.

        DataTable measures every cell it is given before it paints (≈ 0.15 ms a row): with a thousand
        backups, the first screen would wait for rows nobody sees yet. The columns get their widths from
        every row at once (counted from the text, as DataTable does), so the rest changes no width."""
        self.clear()
        self._set_widths(widths)
        keys = list(wanted)
        at = max(place, keys.index(keep) if keep in wanted else 0)
        first = at + max(self.app.size.height, 1)
        for key in keys[:first]:
            self.add_row(*wanted[key], key=key)
        self._rest = {key: wanted[key] for key in keys[first:]}  # an older rebuild's rest is dropped
        if self._rest:
            self.call_after_refresh(self._add_rest)

    def _add_rest(self) -> None:
        rest, self._rest = self._rest, {}
        if self.is_mounted:
            for key, row in rest.items():
                self.add_row(*row, key=key)

    def move_to(self, key: str) -> None:
        """Put the cursor on row `key`, if the table shows it; a row still to come is added first, with the rest."""
        if key in self._rest:
            self._add_rest()
        if key in self.rows:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    def _place_cursor(self, wanted: dict[str, Row], keep: str | None, place: int) -> None:
        if keep in wanted:
            self.move_cursor(row=self.get_row_index(keep), animate=False)
        elif wanted:  # the row under the cursor went away (deleted): stay at its place, on a neighbour
            self.move_cursor(row=min(place, len(wanted) - 1), animate=False)

    def _show_hint(self, has_rows: bool) -> None:
        self.set_class(not has_rows, "-empty")  # an empty table shrinks to its header; the hint sits under it
        if has_rows:
            self.hint.display = False
            return
        if not self.synced:
            self.hint.update("not loaded: see the error above (ctrl+r retries)" if self.failed else "loading...")
        elif self.filter_text and self.all_rows:
            self.hint.update(f"no match for “{self.filter_text}” (escape clears the filter)")
        else:
            self.hint.update(self.empty)
        self.hint.display = True


def collection_key(c: CollectionSummary) -> str:
    return f"{c.db_name}.{c.name}"


def row_count_cell(c: CollectionSummary) -> str:
    """Which count it is: `live` is count(*) of a loaded collection (deletes applied); `stored` is the rows
    its segments hold (deleted rows included until compaction), the number a backup copies."""
    if c.live_rows is not None:
        return f"{humanize.intcomma(c.live_rows)} live"
    return f"{humanize.intcomma(c.row_count)} stored"


def collection_rows(
    collections: Iterable[CollectionSummary], marked: set[str], symbols: Symbols = FANCY
) -> dict[str, Row]:
    """Rows sorted by database, then name: Milvus lists databases in no fixed order."""
    rows: dict[str, Row] = {}
    for c in sorted(collections, key=lambda c: (c.db_name, c.name)):
        key = collection_key(c)
        if not c.described:  # listed, not described yet: the rest is dimmed dashes
            mark = symbols.mark if key in marked else " "
            rows[key] = (Text(mark), Text(c.db_name), Text(c.name), *(Text("-", style="dim") for _ in range(4)))
            continue
        loaded = {"Loaded": "yes", "Loading": "loading"}.get(c.load_state, "no")
        cells = (
            symbols.mark if key in marked else " ",
            c.db_name,
            c.name,
            row_count_cell(c),
            str(c.partitions),
            ", ".join(c.indexes) or "-",
            loaded,
        )
        rows[key] = tuple(Text(cell) for cell in cells)
    return rows


COLLECTION_COLUMNS = (" ", "Database", "Collection", "Rows", "Parts", "Index", "Loaded")
BACKUP_COLUMNS = ("Backup", "When", "Size", "Collections", "State")


def backup_rows(backups: Iterable[BackupSummary], now: Callable[[], float] = time.time) -> dict[str, Row]:
    """Rows newest first (a backup with no start time last), then by name."""
    rows: dict[str, Row] = {}
    moment = now()
    for b in sorted(backups, key=lambda b: (-b.start_time, b.name)):
        when = humanize.naturaltime(moment - b.start_time) if b.start_time else "-"
        checking = b.state == CHECKING  # listed, not read yet
        state = Text(b.state, style="dim" if checking else "green" if b.complete else "bold red")
        rows[b.name] = (
            Text(b.name),
            Text(when),
            Text("-" if checking else humanize.naturalsize(b.size)),
            Text(", ".join(b.collections) or "-"),
            state,
        )
    return rows
