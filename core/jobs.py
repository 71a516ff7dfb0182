"""Background jobs (a backup, a restore or a verify) and the typed progress they report.

A job runs its work in a worker thread. The work receives a `Reporter`: it announces phases and
totals, adds bytes/objects/rows as they are done, and calls `check_cancelled()` between units of
work. Every change becomes an immutable `Progress` event handed to the job's listeners (a CLI bar,
the TUI, the API's task table), which must be quick and must not raise.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Generic, TypeVar

from milvus_backup.core.errors import BackupToolError, Cancelled

log = logging.getLogger("milvus_backup")


T = TypeVar("T")


class JobKind(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"


class JobState(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process went away mid-job (read from a record whose heartbeat stopped)

    @property
    def finished(self) -> bool:
        return self is not JobState.RUNNING


class Phase(StrEnum):
    """The step a job is in; DONE once it has ended, whatever its state."""

    PREPARE = "prepare"
    COPY = "copy"
    META = "meta"
    CREATE = "create"
    IMPORT = "import"
    VERIFY = "verify"
    INDEX = "index"
    LOAD = "load"
    SWAP = "swap"  # a drop-existing restore puts the restored collections in place of the old ones
    CLEANUP = "cleanup"
    DONE = "done"


class TaskState(StrEnum):
    """Where one collection of a job is."""

    PENDING = "pending"
    RESTORING = "restoring"
    SUCCESS = "success"
    FAILED = "failed"


@dataclass
class CollectionTask:
    """One collection of a restore: where it comes from, where it goes, how far it got (the job updates it)."""

    source: str  # "db.name" in the backup
    target_db: str
    target_name: str
    rows: int = 0
    state: TaskState = TaskState.PENDING
    bytes_total: int = 0  # the collection's size in the backup, so a face can weigh it against the others
    rows_total: int = 0  # the rows the backup holds for it
    created: bool = False  # the restore created the target: undoing it (or an interrupted job's clean-up) drops it

    @property
    def target(self) -> str:
        return f"{self.target_db}.{self.target_name}"


@dataclass
class CollectionShare:
    """One collection's part of a backup, whose copy phase moves every collection's binlogs together:
    what it has to copy, what of it is copied, and its rows."""

    bytes_total: int = 0
    bytes_done: int = 0
    rows: int = 0


@dataclass(frozen=True)
class Progress:
    """Where a job is: an immutable event handed to listeners."""

    job_id: str
    kind: JobKind
    name: str  # the backup's name
    state: JobState = JobState.RUNNING
    phase: Phase = Phase.PREPARE
    collection: str = ""  # "db.collection" being worked on
    bytes_done: int = 0
    bytes_total: int = 0
    objects_done: int = 0
    objects_total: int = 0
    rows: int = 0
    message: str = ""  # a log line, when this event carries one
    elapsed: float = 0.0

    @property
    def fraction(self) -> float:
        if self.state is JobState.SUCCESS:
            return 1.0
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.objects_total:
            return min(1.0, self.objects_done / self.objects_total)
        return 0.0


Listener = Callable[[Progress], None]


class Reporter:
    """The running work's side of a job: progress out, cancellation in. Safe to use from many threads."""

    def __init__(self, job: Job[Any]):
        self._job = job
        self._lock = threading.Lock()
        self.cancel_event = job.cancel_event

    def _emit(self, added: tuple[int, int, int] = (0, 0, 0), unless: Phase | None = None, **changes: Any) -> bool:
        """False, and no event, when the job is in phase `unless` (checked under the lock, with the change)."""
        with self._lock:  # counts are added under the lock: workers in parallel never lose an update
            p = self._job.progress
            if p.phase is unless:
                return False
            if any(added):
                changes.update(
                    bytes_done=p.bytes_done + added[0], objects_done=p.objects_done + added[1], rows=p.rows + added[2]
                )
            progress = replace(p, elapsed=time.monotonic() - self._job.started, **changes)
            self._job.progress = replace(progress, message="")
        self._job._notify(progress)
        return True

    def phase(
        self,
        phase: Phase,
        collection: str | None = None,
        *,
        bytes_total: int | None = None,
        objects_total: int | None = None,
        message: str = "",
        unless: Phase | None = None,
    ) -> None:
        """Enter `phase` (for `collection`); `unless` the job is in that phase already: a backup plans later
        collections while the first ones copy, and their planning must not reset the copy's counts."""
        changes: dict[str, Any] = {"phase": phase}
        if collection is not None and collection != self._job.progress.collection:
            # counts belong to one collection's step; rows stay a job total
            changes.update(collection=collection, bytes_done=0, bytes_total=0, objects_done=0, objects_total=0)
        if bytes_total is not None:
            changes.update(bytes_total=bytes_total, bytes_done=0)
        if objects_total is not None:
            changes.update(objects_total=objects_total, objects_done=0)
        if self._emit(unless=unless, **changes, message=message) and message:
            self._job._log(message)

    def totals(self, bytes_total: int, objects_total: int, message: str = "") -> None:
        """The current step's totals, once known after its work began (a backup copies its first collections
        while it plans the others): what is done stays counted, so the step's fraction only moves on."""
        self._emit(bytes_total=bytes_total, objects_total=objects_total, message=message)
        if message:
            self._job._log(message)

    def add(self, bytes_done: int = 0, objects_done: int = 0, rows: int = 0) -> None:
        self._emit((bytes_done, objects_done, rows))

    def log(self, message: str) -> None:
        self._job._log(message)
        self._emit(message=message)

    def step(
        self,
        phase: Phase,
        collection: str,
        *,
        bytes_done: int = 0,
        bytes_total: int = 0,
        objects_done: int = 0,
        objects_total: int = 0,
        rows: int = 0,
        message: str = "",
    ) -> None:
        """Where one of several collections worked on at once is: its phase with that phase's own counts
        (whole, not added: events of the collections interleave); `rows` are added to the job's total."""
        with self._lock:
            p = self._job.progress
            progress = replace(
                p,
                phase=phase,
                collection=collection,
                bytes_done=bytes_done,
                bytes_total=bytes_total,
                objects_done=objects_done,
                objects_total=objects_total,
                rows=p.rows + rows,
                message=message,
                elapsed=time.monotonic() - self._job.started,
            )
            self._job.progress = replace(progress, message="")
        self._job._notify(progress)
        if message:
            self._job._log(message)

    def plan_collection(self, collection: str, bytes_total: int, rows: int) -> None:
        """Declare one collection's share of a job that copies several collections at once."""
        with self._lock:
            self._job.shares[collection] = CollectionShare(bytes_total=bytes_total, rows=rows)

    def collection_copied(self, collection: str, nbytes: int) -> None:
        """Count `nbytes` copied for `collection` (the job-wide count is `add`'s)."""
        with self._lock:
            share = self._job.shares.setdefault(collection, CollectionShare())
            share.bytes_done += nbytes

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled(f"{self._job.kind} {self._job.name} was cancelled")


class Job(Generic[T]):
    """A backup, restore or verify running in its own thread; `result` is what its work returned."""

    def __init__(
        self,
        kind: JobKind,
        name: str,
        work: Callable[[Reporter], T],
        listeners: list[Listener] | None = None,
        job_id: str | None = None,
        tasks: list[CollectionTask] | None = None,
    ):
        self.id = job_id or str(uuid.uuid4())
        self.kind = kind
        self.name = name
        self.cancel_event = threading.Event()
        self.listeners: list[Listener] = list(listeners or [])
        self.progress = Progress(job_id=self.id, kind=kind, name=name)
        self.started = time.monotonic()
        self.start_time = int(time.time())
        self.end_time = 0
        self.result: T | None = None
        self.tasks: list[CollectionTask] = tasks or []  # per collection, updated by the work as it goes
        self.shares: dict[str, CollectionShare] = {}  # per collection of a backup, as `plan_collection` declared
        self.targets: list[str] = []  # "db.name" of a backup's collections, for its record
        self.error: str = ""
        self.exception: BaseException | None = None  # what stopped the job, for callers that re-raise it
        self.lines: list[str] = []
        self._work = work
        self._on_end: list[Callable[[], None]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{kind}-{name}", daemon=True)

    @property
    def state(self) -> JobState:
        return self.progress.state

    def start(self) -> Job[T]:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next unit of work; it cleans up after itself."""
        if not self.state.finished and not self.cancel_event.is_set():
            self.cancel_event.set()
            self._log(f"cancel requested for {self.kind} {self.name}")

    def on_end(self, hook: Callable[[], None]) -> None:
        """Run `hook` in the job's thread once it has finished, before `wait` returns (a record's last write)."""
        self._on_end.append(hook)

    def wait(self, timeout: float | None = None) -> JobState:
        self._done.wait(timeout)
        return self.state

    def _log(self, message: str) -> None:
        self.lines.append(message)
        log.info("%s %s: %s", self.kind, self.name, message)

    def _notify(self, progress: Progress) -> None:
        for listener in list(self.listeners):
            try:
                listener(progress)
            except Exception:  # a broken display must not break the job
                log.exception("progress listener failed")

    def _finish(self, state: JobState, message: str) -> None:
        self.end_time = int(time.time())
        self._log(message)
        self.progress = replace(
            self.progress, state=state, phase=Phase.DONE, message=message, elapsed=time.monotonic() - self.started
        )
        self._notify(self.progress)
        self.progress = replace(self.progress, message="")

    def _run(self) -> None:
        reporter = Reporter(self)
        try:
            self.result = self._work(reporter)
        except Cancelled as exc:
            self.exception = exc
            self.error = str(exc)
            self._finish(JobState.CANCELLED, self.error)
        except BackupToolError as exc:
            self.exception = exc
            self.error = str(exc)
            self._finish(JobState.FAILED, f"failed: {self.error}")
        except Exception as exc:  # a bug: keep the traceback in the log, one line for the user
            log.exception("%s %s crashed", self.kind, self.name)
            self.exception = exc
            self.error = f"unexpected error: {type(exc).__name__}: {exc}"
            self._finish(JobState.FAILED, f"failed: {self.error}")
        else:
            self._finish(JobState.SUCCESS, f"{self.kind} {self.name} finished")
        finally:
            for hook in self._on_end:
                try:
                    hook()
                except Exception:  # the job's outcome stands whatever a hook does
                    log.exception("end of job hook failed")
            self._done.set()
