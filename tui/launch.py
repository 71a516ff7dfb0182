"""Opening the terminal app: what runs before the app is there, and after it has closed.

This module imports no Textual. `open_app` asks the engine for the backups and the collections in two
threads first and imports the app (Textual, ≈ 0.3 s) while they are answered: the backup store's listing
and Milvus's answers take as long as that or longer, and the app's first screen shows them as soon as it
is drawn. `run_tui` is what `milvus-backup` (no command) runs.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from milvus_backup.core.service import BackupService, BackupSummary, CollectionSummary, Config, Job
    from milvus_backup.tui.app import MilvusBackupApp

T = TypeVar("T")
log = logging.getLogger("milvus_backup")
READS_HELD = 2.0  # seconds the first backups listing waits with its reads for the first screen
STUCK_GRACE = 2.0  # seconds a quitting app gives threads still waiting on a request


class FirstLoad:
    """The first listing of each table, asked for at once in a thread of its own. The app takes each answer
    (or its failure) once, for its first refresh; later refreshes ask the engine again."""

    def __init__(self, engine: BackupService):
        # each listing's early answer: the backups' names with what was last seen of them, the collections' names
        self._early: dict[str, Future[Any]] = {"backups": Future(), "collections": Future()}
        self._shown = threading.Event()
        self._answers: dict[str, Future[Any]] = {
            "backups": _in_thread(functools.partial(engine.list_backups, early=self._hold("backups")), "list_backups"),
            "collections": _in_thread(
                functools.partial(engine.list_collections, early=self._hold("collections")), "list_collections"
            ),
        }

    def _hold(self, source: str) -> Callable[[list[Any]], None]:
        """What a listing calls with its early answer: it then waits with its requests for each backup or
        collection (a thousand reads, or four requests a collection, in the one CPU Python has) until the
        first screen is drawn with both early answers, or READS_HELD seconds."""

        def early(rows: list[Any]) -> None:
            self._early[source].set_result(rows)
            self._shown.wait(READS_HELD)

        return early

    def first_screen_shown(self) -> None:
        self._shown.set()

    def backups(self) -> Callable[[Callable[[list[BackupSummary]], None]], list[BackupSummary]] | None:
        """What waits for the first backups listing, or None once it was taken: called with a function
        that gets the listing's early answer (the names, with what was last seen of them), if it comes
        before the whole answer."""
        return self._take("backups")

    def collections(self) -> Callable[[Callable[[list[CollectionSummary]], None]], list[CollectionSummary]] | None:
        """The same for the first collections listing: its early answer is the names."""
        return self._take("collections")

    def _take(self, source: str) -> Callable[[Callable[[list[Any]], None]], list[Any]] | None:
        answer = self._answers.pop(source, None)
        if answer is None:
            return None
        early_answer = self._early[source]

        def take(early: Callable[[list[Any]], None]) -> list[Any]:
            wait([early_answer, answer], return_when=FIRST_COMPLETED)
            if early_answer.done() and not answer.done():
                early(early_answer.result())
            return answer.result()

        return take


def _in_thread(call: Callable[[], T], name: str) -> Future[T]:
    """`call()` in a daemon thread (a hung request must not hold up the process's exit), as a Future."""
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(call())
        except BaseException as exc:
            answer.set_exception(exc)

    threading.Thread(target=run, name=f"first-{name}", daemon=True).start()
    return answer


def _log_to_file_only(config: Config) -> None:
    """Nothing may write log lines onto the screen: libraries' warnings go to the log file too, or nowhere."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    target: logging.Handler = logging.NullHandler()
    if config.log.filename:
        try:
            Path(config.log.filename).parent.mkdir(parents=True, exist_ok=True)  # the default is a per-user folder
            target = logging.FileHandler(config.log.filename)
            target.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        except OSError:
            pass
    root.addHandler(target)
    ours = logging.getLogger("milvus_backup")
    if not ours.handlers:
        ours.addHandler(logging.NullHandler())


def open_app(config: Config) -> MilvusBackupApp:
    """The app on `config`, with its tables' first listings already under way: they are asked for before
    Textual is imported, so the store and Milvus answer while the app loads and draws its screen."""
    from milvus_backup.core.service import open_service

    engine = open_service(config)
    first = FirstLoad(engine)
    from milvus_backup.tui.app import MilvusBackupApp  # Textual: ≈ 0.3 s of imports

    return MilvusBackupApp(engine, first_load=first)


def run_tui(config: Config) -> int:
    """Open the app on `config`. On the way out, jobs still running go on to their end in this process
    (quit with "leave running", or a hang-up) or are cancelled and cleaned up (quit with "cancel jobs",
    Ctrl-C afterwards, or the app crashing)."""
    _log_to_file_only(config)
    app = open_app(config)
    engine = app.engine
    ended_well = False
    try:
        try:
            app.run()
        except OSError:  # restoring a terminal that has gone away (EIO): nothing is left to restore
            if not app.hung_up:
                raise
        finally:
            app.closed.set()
        ended_well = True
        if app.hung_up:
            detach_from_terminal()
        _see_through(app.running_jobs(), app.hung_up)
    finally:
        if not ended_well:
            for job in app.cancel_jobs():
                job.wait(120)
        for job in app.running_jobs():  # cancelled by the quit question or by Ctrl-C: let them clean up
            job.wait(120)
        engine.close()
    _end_unless_all_threads_end()
    return 0


def _end_unless_all_threads_end(grace: float = STUCK_GRACE) -> None:
    """Python waits at exit for every thread that is not a daemon. The app's jobs have ended by now; a
    thread still running is a listing's request to a store or Milvus that stopped answering, which
    would hold the exit until its timeouts (minutes, with retries). Give them `grace` seconds, then end
    the process without them."""
    deadline = time.monotonic() + grace
    for thread in _other_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in _other_threads()]
    if stuck:
        log.warning("quitting without %d thread(s) still waiting on a request: %s", len(stuck), ", ".join(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _other_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: the terminal is gone, and writing to it would fail."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _see_through(jobs: list[Job[Any]], hung_up: bool) -> None:
    """Keep this process alive until `jobs` end: their threads live here, and their records keep being
    written, so any app, `milvus-backup jobs` or the API follows them. Ctrl-C cancels them; a hang-up
    only silences this process."""
    if not jobs:
        return
    if not hung_up:
        print(
            f"{len(jobs)} job(s) go on in this process (pid {os.getpid()}) until they end: "
            + ", ".join(f"{j.kind} {j.name} ({j.id})" for j in jobs)
            + ".\nClosing this terminal does not stop them; `milvus-backup jobs` shows them from anywhere, "
            "`milvus-backup cancel ID` stops one. Ctrl-C here cancels them.",
            flush=True,
        )

    def on_interrupt(signum: int, frame: object) -> None:
        print("cancelling (each job stops at its next step and cleans up)...", flush=True)
        for job in jobs:
            job.cancel()

    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGHUP, lambda signum, frame: detach_from_terminal())
    for job in jobs:
        while not job.wait(0.5).finished:
            pass
        print(f"{job.kind} {job.name}: {job.state}" + (f" ({job.error})" if job.error else ""), flush=True)
