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
from textual.widgets import Button, Checkbox, Input, Label, Static

from milvus_backup.core.service import (
    BackupInfo,
    BackupRequest,
    BackupToolError,
    RestoreRequest,
    TargetPreview,
    busy_message,
    check_backup_name,
    parse_renames,
    preview_targets,
)


class Tick(Checkbox):
    """A checkbox that reads in a plain terminal too: X when on, blank when off (not only a colour change)."""

    BUTTON_INNER = " "

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


class BackupDialog(ModalScreen[BackupRequest | None]):
    """Name (a default offered, checked as typed) and meta-only; returns the request or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

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
    """Which collections, target names (suffix or renames), drop-existing, index, load — and a preview."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, info: BackupInfo, backup_name: str, existing: set[str], busy_imports: int = 0):
        super().__init__(classes="dialog-screen")
        self.info = info
        self.backup_name = backup_name
        self.existing = existing
        self.busy_imports = busy_imports  # Milvus's import tasks of others: this restore would queue behind them
        self.sources = [f"{c.db_name or 'default'}.{c.collection_name}" for c in info.collection_backups]
        self.preview: list[TargetPreview] = []

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
            yield Tick("Drop existing targets (asks first)", id="drop")
            yield Tick("Restore indexes", id="index")
            yield Tick("Load afterwards", id="load")
            yield Static(id="preview")
            with Horizontal(classes="buttons"):
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
            widget.update(Text(str(exc), style="bold red"))
            start.disabled = True
            return
        lines = Text()
        blocked = False
        for item in self.preview:
            lines.append(f"{item.source} → {item.target}  ")
            if not item.exists:
                lines.append("will be created\n", style="green")
            elif request.drop_exist_collection:
                lines.append("EXISTS: will be dropped and replaced\n", style="bold red")
            else:
                lines.append("EXISTS: choose a suffix or drop existing\n", style="bold yellow")
                blocked = True
        if self.busy_imports:
            lines.append(busy_message(self.busy_imports) + "\n", style="yellow")
        widget.update(lines)
        start.disabled = blocked

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        self._update_preview()
        if self.query_one("#start", Button).disabled:
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


KEYS: list[tuple[str, str]] = [
    ("tab / shift+tab", "move between the collections and the backups"),
    ("space", "mark or unmark the collection under the cursor"),
    ("b", "back up the marked collections (or the one under the cursor)"),
    ("r", "restore the selected backup"),
    ("enter", "details of the selected backup"),
    ("d", "delete the selected backup (asks first)"),
    ("v / V", "verify the selected backup: sizes / every byte re-hashed"),
    ("j", "jobs: live progress and logs"),
    ("c", "cancel the selected job (on the jobs screen)"),
    ("/", "filter the focused table (escape clears)"),
    ("ctrl+r", "refresh now (also retries a failed connection)"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this list"),
    ("q", "quit (asks first while a job runs)"),
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
