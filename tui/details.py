"""A backup in detail: its collections, partitions, segments, rows, sizes, schema, indexes, Milvus
version and time — everything `backup_meta.json` says, laid out for reading."""

from __future__ import annotations

import datetime

import humanize
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from milvus_backup.core.service import BackupInfo, BackupState, Collection, Field, data_type_name

_CONSISTENCY = ["Strong", "Session", "Bounded", "Eventually", "Customized"]


def _when(seconds: int) -> str:
    if not seconds:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def load_type_names() -> None:
    """The field types are named from Milvus's generated messages (≈ 0.1 s to load): loaded when a details
    screen is first asked for, not with the app, in the worker that fetches the backup."""
    data_type_name(0)


def _field_type(f: Field) -> str:
    params = {kv.key: kv.value for kv in f.type_params}
    name = data_type_name(f.data_type)
    if "dim" in params:
        name += f"({params['dim']})"
    elif "max_length" in params:
        name += f"({params['max_length']})"
    if f.element_type:
        name += f"<{data_type_name(f.element_type)}>"
    return name


def _field_flags(f: Field) -> str:
    flags = [
        label
        for on, label in (
            (f.is_primary_key, "primary"),
            (f.auto_id, "auto id"),
            (f.is_dynamic, "dynamic"),
            (f.is_partition_key, "partition key"),
            (f.nullable, "nullable"),
        )
        if on
    ]
    return ", ".join(flags)


def collection_view(c: Collection) -> RenderableType:
    rows, segments = c.num_rows, len(c.segments())
    consistency = _CONSISTENCY[c.consistency_level] if 0 <= c.consistency_level < len(_CONSISTENCY) else "?"
    head = Text.assemble(
        (f"{c.db_name or 'default'}.{c.collection_name}", "bold"),
        f"  {humanize.intcomma(rows)} rows · {segments} segments · {humanize.naturalsize(c.size)}"
        f" · {c.shards_num} shards · {consistency} · {c.load_state or 'NotLoad'} at backup"
        + (" · dynamic fields" if c.schema.enable_dynamic_field else ""),
    )

    parts = Table(title="partitions", title_justify="left", box=None, expand=True, pad_edge=False)
    for column in ("partition", "segments", "rows", "size"):
        parts.add_column(column)
    for p in c.partition_backups:
        parts.add_row(
            p.partition_name,
            str(len(p.segment_backups)),
            humanize.intcomma(sum(s.num_of_rows for s in p.segment_backups)),
            humanize.naturalsize(p.size),
        )

    schema = Table(title="schema", title_justify="left", box=None, expand=True, pad_edge=False)
    for column in ("id", "field", "type", ""):
        schema.add_column(column)
    for f in c.schema.fields:
        schema.add_row(str(f.field_id), f.name, _field_type(f), _field_flags(f))

    indexes = Table(title="indexes", title_justify="left", box=None, expand=True, pad_edge=False)
    for column in ("index", "field", "type", "params"):
        indexes.add_column(column)
    for i in c.index_infos:
        params = ", ".join(f"{k}={v}" for k, v in sorted(i.params.items()) if k not in ("index_type",))
        indexes.add_row(i.index_name, i.field_name, i.index_type or i.params.get("index_type", ""), params)
    if not c.index_infos:
        indexes.add_row("-", "", "", "")
    return Group(head, parts, schema, indexes, Text(""))


def rbac_summary(info: BackupInfo) -> str:
    """What the meta's rbac part holds (users, roles, grants), or "none"."""
    meta = info.rbac_meta
    if meta is None:
        return "none"
    counts = [(len(meta.users), "users"), (len(meta.roles), "roles"), (len(meta.grants), "grants")]
    return ", ".join(f"{n} {part}" for n, part in counts if n) or "none"


def backup_view(info: BackupInfo, folder: str) -> RenderableType:
    try:
        state = BackupState(info.state_code).name.lower()
    except ValueError:
        state = str(info.state_code)
    rows = sum(c.num_rows for c in info.collection_backups)
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("backup", folder + (f" (named {info.name} inside)" if info.name and info.name != folder else ""))
    summary.add_row("state", state + (f": {info.error_message}" if info.error_message else ""))
    summary.add_row("id", info.id or "-")
    summary.add_row("milvus", info.milvus_version or "-")
    summary.add_row("started", _when(info.start_time))
    summary.add_row("ended", _when(info.end_time))
    summary.add_row("size", f"{humanize.naturalsize(info.size)} ({humanize.intcomma(info.size)} bytes)")
    summary.add_row("contents", f"{len(info.collection_backups)} collection(s), {humanize.intcomma(rows)} rows")
    summary.add_row("rbac", rbac_summary(info))
    return Group(summary, Text(""), *(collection_view(c) for c in info.collection_backups))


class BackupDetailsScreen(Screen[bool]):
    """Dismissed with True when the operator asks to restore this backup (r), False when going back."""

    BINDINGS = [
        Binding("escape,enter", "dismiss(False)", "Back"),
        Binding("r", "restore", "Restore"),
        Binding("question_mark", "app.help", "Keys"),
    ]

    def __init__(self, info: BackupInfo, folder: str):
        super().__init__()
        self.info = info
        self.folder = folder

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="details"):
            yield Static(backup_view(self.info, self.folder))
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"backup {self.folder}"
        self.query_one("#details").focus()

    def action_restore(self) -> None:
        self.dismiss(True)
