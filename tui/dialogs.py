"""The dialogs: confirm, back up, restore, and the key list.

Each is a `ModalScreen` that dismisses with what the operator chose (a request, True/False, or
None for "cancelled"); the app, not the dialog, starts the job. Names are checked as they are typed
and a restore shows what it will create before anything starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Static

from milvus_backup.core.service import (
    BackupInfo,
    BackupRequest,
    BackupToolError,
    RestoreRequest,
    TargetPreview,
    busy_message,
    check_backup_name,
    parse_filter,
    parse_renames,
    preview_targets,
)
from milvus_backup.tui.details import rbac_summary
from milvus_backup.tui.tables import FANCY, PLAIN, Symbols


def symbols_of(widget: Widget) -> Symbols:
    """The app marks a plain terminal (vt100, NO_COLOR) with the class -plain: ASCII symbols there."""
    return PLAIN if widget.app.has_class("-plain") else FANCY


class Tick(Checkbox):
    """A checkbox that reads in a plain terminal too: X when on, blank when off (not only a colour change),
    in [ ] there instead of half blocks."""

    BUTTON_INNER = " "

    def on_mount(self) -> None:
        if symbols_of(self) is PLAIN:
            self.BUTTON_LEFT, self.BUTTON_RIGHT = "[", "]"

    def watch_value(self) -> None:
        self.BUTTON_INNER = "X" if self.value else " "
        super().watch_value()


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; `n` or escape says no."""

    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Yes", danger: bool = False):
        super().__init__(classes="dialog-screen")
        self.question = question
        self.yes = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Static(self.question, classes="question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error" if self.danger else "primary", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # the safe answer is the default

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class BackupNameValidator(Validator):
    def __init__(self, taken: set[str]):
        super().__init__()
        self.taken = taken

    def validate(self, value: str) -> ValidationResult:
        try:
            check_backup_name(value)
        except BackupToolError as exc:
            return self.failure(str(exc))
        if value in self.taken:
            return self.failure(f"backup {value} already exists: choose another name")
        return self.success()


START_KEYS = "enter in a field or ctrl+s starts"


def rename_matches(old: str, source: str) -> bool:
    """Whether the rename rule `old` (name, db.name or db.*) applies to `source` ("db.name"), as a restore reads it."""
    db, _, name = source.partition(".")
    return old in (name, source) or old == f"{db}.*"


class BackupDialog(ModalScreen[BackupRequest | None]):
    """Name (a default offered, checked as typed) and meta-only; returns the request or None.
    Enter in the name or ctrl+s starts, as the Start button does."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "start", "Start", priority=True),
    ]

    def __init__(self, collections: list[str], default_name: str, taken: set[str]):
        super().__init__(classes="dialog-screen")
        self.collections = collections
        self.default_name = default_name
        self.taken = taken

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="backup-dialog"):
            yield Label(f"Back up {len(self.collections)} collection(s)", classes="title")
            yield Static(", ".join(self.collections), classes="subject")
            yield Label("Backup name")
            yield Input(self.default_name, id="name", validators=[BackupNameValidator(self.taken)], valid_empty=False)
            yield Static("", id="name-error", classes="error")
            yield Tick("Meta only (schemas and indexes, no data)", id="meta-only")
            with Horizontal(classes="buttons"):
                yield Static(START_KEYS, classes="hint")
                yield Button("Start backup", id="start", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    @on(Input.Changed, "#name")
    def _name_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        problem = "" if result is None or result.is_valid else result.failure_descriptions[0]
        self.query_one("#name-error", Static).update(problem)
        self.query_one("#start", Button).disabled = bool(problem)

    def action_start(self) -> None:
        self._start()

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        name_input = self.query_one("#name", Input)
        result = name_input.validate(name_input.value)
        if result is not None and not result.is_valid:
            self.notify(result.failure_descriptions[0], severity="error")
            return
        self.dismiss(
            BackupRequest(
                name=name_input.value,
                collections=list(self.collections),
                meta_only=self.query_one("#meta-only", Checkbox).value,
            )
        )

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class RestoreDialog(ModalScreen[RestoreRequest | None]):
    """Which collections, target names (suffix or renames), which targets (a filter over the new names),
    drop-existing, index, load, RBAC (when the backup holds some) — and a preview.
    Enter in a field or ctrl+s starts; when it cannot start, it says why and stays open."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("ctrl+s", "start", "Start", priority=True),
    ]

    def __init__(self, info: BackupInfo, backup_name: str, existing: set[str], busy_imports: int = 0):
        super().__init__(classes="dialog-screen")
        self.info = info
        self.backup_name = backup_name
        self.existing = existing
        self.busy_imports = busy_imports  # Milvus's import tasks of others: this restore would queue behind them
        self.sources = [f"{c.db_name or 'default'}.{c.collection_name}" for c in info.collection_backups]
        self.preview: list[TargetPreview] = []
        self.blocked = ""  # why it cannot start now, or ""

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="restore-dialog"):
            yield Label(f"Restore from {self.backup_name}", classes="title")
            with VerticalScroll(id="sources"):
                for number, source in enumerate(self.sources):
                    yield Tick(source, True, id=f"source-{number}", classes="source")
            with Horizontal(classes="field"):
                yield Label("Suffix ")
                yield Input(placeholder="e.g. _recover", id="suffix", compact=True)
            with Horizontal(classes="field"):
                yield Label("Rename ")
                yield Input(placeholder="old:new,db1.*:db2.*", id="renames", compact=True)
            with Horizontal(classes="field"):
                yield Label("Only   ")
                yield Input(placeholder="new names: coll,db1.coll,db1.*", id="only", compact=True)
            yield Tick("Drop existing targets (asks first)", id="drop")
            yield Tick("Restore indexes", id="index")
            yield Tick("Load afterwards", id="load")
            rbac = rbac_summary(self.info)
            yield Tick(f"Restore RBAC ({rbac})", id="rbac", disabled=rbac == "none")
            yield Static(id="preview")
            with Horizontal(classes="buttons"):
                yield Static(START_KEYS, classes="hint")
                yield Button("Start restore", id="start", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#source-0", Tick).focus()
        self._update_preview()

    def request(self) -> RestoreRequest:
        chosen = [s for n, s in enumerate(self.sources) if self.query_one(f"#source-{n}", Tick).value]
        return RestoreRequest(
            backup_name=self.backup_name,
            collections=chosen if len(chosen) != len(self.sources) else [],
            suffix=self.query_one("#suffix", Input).value.strip(),
            renames=parse_renames(self.query_one("#renames", Input).value),
            drop_exist_collection=self.query_one("#drop", Checkbox).value,
            restore_index=self.query_one("#index", Checkbox).value,
            load=self.query_one("#load", Checkbox).value,
            filter=parse_filter(only) if (only := self.query_one("#only", Input).value).strip() else None,
            rbac=self.query_one("#rbac", Checkbox).value,
        )

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _update_preview(self) -> None:
        start = self.query_one("#start", Button)
        widget = self.query_one("#preview", Static)
        try:
            request = self.request()
            if not any(self.query_one(f"#source-{n}", Tick).value for n in range(len(self.sources))):
                raise BackupToolError("choose at least one collection")
            self.preview = preview_targets(self.info, request, self.existing)
        except BackupToolError as exc:
            self.preview = []
            self.blocked = str(exc)
            widget.update(Text(self.blocked, style="bold red"))
            start.disabled = True
            return
        lines = Text()
        blockers = []
        arrow = symbols_of(self).arrow
        for item in self.preview:
            lines.append(f"{item.source} {arrow} {item.target}  ")
            if not item.exists:
                lines.append("will be created\n", style="green")
            elif request.drop_exist_collection:
                lines.append("EXISTS: will be dropped and replaced\n", style="bold red")
            else:
                lines.append("EXISTS: choose a suffix or drop existing\n", style="bold yellow")
                blockers.append(f"{item.target} exists: choose a suffix or renames, or tick drop existing")
        chosen = [p.source for p in self.preview]
        for old in request.renames:
            if not any(rename_matches(old, source) for source in chosen):
                lines.append(f"rename {old}: matches no chosen collection\n", style="bold yellow")
                blockers.append(f"the rename rule {old} matches no chosen collection: fix or remove it")
        if self.busy_imports:
            lines.append(busy_message(self.busy_imports) + "\n", style="yellow")
        widget.update(lines)
        self.blocked = blockers[0] if blockers else ""
        start.disabled = bool(blockers)

    def action_start(self) -> None:
        self._start()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        self._update_preview()
        if self.blocked:
            self.notify(f"Cannot start the restore: {self.blocked}.", severity="error")
            return
        request = self.request()
        doomed = [p.target for p in self.preview if p.exists]
        request.confirmed_existing = doomed  # the job replaces these and refuses any other it finds
        if not doomed:
            self.dismiss(request)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.dismiss(request)

        self.app.push_screen(
            ConfirmDialog(
                f"Drop {', '.join(doomed)} and replace with the backup's data? What is in them now is lost.",
                yes="Drop and restore",
                danger=True,
            ),
            answered,
        )

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


KEYS: list[tuple[str, str]] = [  # one line each, so the list fits 80x24
    ("tab", "move between the collections and the backups"),
    ("g / G, home / end", "first / last row"),
    ("space", "mark or unmark the collection under the cursor"),
    ("u", "unmark all (marks also clear once a backup starts)"),
    ("b", "back up the marked collections (or the current one)"),
    ("r", "restore the selected backup"),
    ("enter", "details of the selected backup"),
    ("d", "delete the selected backup (asks first)"),
    ("v / V", "verify the selected backup: sizes / every byte"),
    ("j", "jobs: progress, collections, log"),
    ("c", "on the jobs screen: cancel the selected job (asks)"),
    ("/", "filter the focused table (escape clears)"),
    ("ctrl+r", "refresh now; retries a failed connection"),
    ("ctrl+s", "in a dialog: start (as enter in a field does)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this list"),
    ("q / ctrl+q", "quit (asks first while a job runs)"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "Close")]

    def __init__(self, keys: Iterable[tuple[str, str]] = KEYS):
        super().__init__(classes="dialog-screen")
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(justify="right", style="bold", no_wrap=True)
        keys.add_column()
        for key, what in self.keys:
            keys.add_row(key, what)
        with Vertical(classes="dialog", id="help"):
            yield Label("Keys", classes="title")
            yield Static(keys)
            yield Static("escape closes", classes="hint")


class QuitDialog(ModalScreen[str | None]):
    """Quitting while jobs of this app run: leave them running (the default: they go on in this process,
    without the app, to their end), cancel them, or stay. Dismisses with "leave", "cancel" or None."""

    BINDINGS = [
        Binding("l", "answer('leave')", "Leave running"),
        Binding("c", "answer('cancel')", "Cancel jobs"),
        Binding("escape,s,n", "answer(None)", "Stay"),
    ]

    def __init__(self, running: list[str]):
        super().__init__(classes="dialog-screen")
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="quit"):
            yield Static(
                f"{len(self.running)} job(s) running: {', '.join(self.running)}.\n"
                "Leave them running: they go on to their end without the app (a new app, `milvus-backup jobs` "
                "or the API shows them). Or cancel them: each stops and removes what it wrote.",
                classes="question",
            )
            with Horizontal(classes="buttons"):
                yield Button("Leave running (l)", id="leave", variant="primary", compact=True)
                yield Button("Cancel jobs (c)", id="cancel", variant="error", compact=True)
                yield Button("Stay (s)", id="stay", compact=True)

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()  # the default: a quit never throws work away

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in ("leave", "cancel") else None)
