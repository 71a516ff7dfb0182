"""Many copies at once: `copy_objects` runs a list of CopyTasks on a bounded pool of threads, reports
progress after each object, honours a cancel event, and stops starting new copies at the first failure.
`copy_groups` does the same for several groups of copies (a backup's collections), a few groups at a time,
given all at once or, through a `CopyFeed`, one by one while the copies of the first ones run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from milvus_backup.core.errors import BackupToolError, Cancelled, StorageError
from milvus_backup.core.storage.base import Copied, Storage
from milvus_backup.core.storage.errors import short


@dataclass(frozen=True)
class CopyTask:
    src_key: str
    dst_key: str
    size: int
    etag: str = ""  # the source's ETag as listed, when the store gives one: a same-store copy must keep it


def copy_objects(
    src: Storage,
    dst: Storage,
    tasks: Sequence[CopyTask],
    parallelism: int,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    server_side: bool = True,
    after_copy: Callable[[CopyTask, Copied], None] | None = None,
) -> None:
    """Copy every task's object from `src` to `dst` with at most `parallelism` copies at a time.

    on_progress(bytes_done_delta, objects_done_delta) is called from worker threads after each object.
    When `cancel` is set, copies in flight finish, no new one starts, and Cancelled is raised. The first
    failure stops new copies too and is raised as a StorageError once the copies in flight are done.
    server_side=False forces streaming copies (`minio.crossStorage`).
    after_copy(task, copied), when given, runs in the worker right after each copy (before its progress
    is reported) with what the copy vouches for (`Copied`); its failure fails the copy (a BackupToolError
    it raises is raised as it is: a restore's DamagedBackup stays one).
    """
    copy_groups(
        src,
        dst,
        [tasks],
        parallelism,
        1,
        on_progress,
        cancel,
        server_side=server_side,
        after_copy=after_copy,
    )


class CopyGroup(Protocol):
    """Copies handed over together: counted, then read once, in order (a list, or copies read from disk)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[CopyTask]: ...


class CopyFeed:
    """The groups of a copy that starts while they are still being found (a backup copies each collection's
    binlogs as soon as that collection is planned): `add` each group once known, then `close`; or `fail`,
    and no other copy starts and copy_groups raises that error once the copies in flight are done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Event()  # a group came, the feed ended, or a copy finished
        self._new: list[CopyGroup] = []
        self._closed = False
        self.error: BaseException | None = None

    @classmethod
    def of(cls, groups: Sequence[Sequence[CopyTask]]) -> CopyFeed:
        feed = cls()
        for group in groups:
            feed.add(group)
        feed.close()
        return feed

    def add(self, group: CopyGroup) -> None:
        with self._lock:
            self._new.append(group)
        self._changed.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.error = self.error or error
            self._closed = True
        self._changed.set()

    def _take(self) -> tuple[list[CopyGroup], bool]:
        """The groups added since the last call, and whether no more will come."""
        with self._lock:
            self._changed.clear()
            new, self._new = self._new, []
            return new, self._closed


class _Groups:
    """Hands out the tasks of at most `at_once` groups at a time, one task of each open group in turn;
    a group closes when all its copies are done, and the next group opens then."""

    def __init__(self, at_once: int):
        self._waiting: deque[tuple[int, CopyGroup]] = deque()
        self._open: deque[tuple[int, Iterator[CopyTask]]] = deque()
        self._left: dict[int, int] = {}
        self._at_once = at_once
        self.count = 0  # groups added
        self.tasks = 0  # their tasks

    def add(self, group: CopyGroup) -> None:
        if group:
            self._waiting.append((self.count, group))
        self.count += 1
        self.tasks += len(group)

    def next(self) -> tuple[int, CopyTask] | None:
        """The next task to start, with its group; None when every open group's tasks have started and
        no other group may open yet (or none is left)."""
        while self._waiting and len(self._left) < self._at_once:
            index, group = self._waiting.popleft()
            self._open.append((index, iter(group)))
            self._left[index] = len(group)
        while self._open:
            index, tasks = self._open.popleft()
            task = next(tasks, None)
            if task is not None:
                self._open.append((index, tasks))
                return index, task
        return None

    def done(self, index: int) -> None:
        """One copy of group `index` ended."""
        self._left[index] -= 1
        if not self._left[index]:
            del self._left[index]


def copy_groups(
    src: Storage,
    dst: Storage,
    groups: Sequence[Sequence[CopyTask]] | CopyFeed,
    parallelism: int,
    groups_at_once: int,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    server_side: bool = True,
    after_copy: Callable[[CopyTask, Copied], None] | None = None,
) -> None:
    """copy_objects of several groups (a backup's collections), on one pool of `parallelism` copies:
    the copies of at most `groups_at_once` groups are under way at a time, taken from each in turn; the
    next group starts when one is fully copied (so 1 copies the groups one after the other). A CopyFeed
    hands the groups over as they are found: each is copied as soon as it comes and a group may open."""
    if parallelism < 1 or groups_at_once < 1:
        raise ValueError("parallelism and groups_at_once must be at least 1")
    feed = groups if isinstance(groups, CopyFeed) else CopyFeed.of(groups)

    def copy_one(task: CopyTask) -> None:
        copied = dst.copy_from(src, task.src_key, task.dst_key, task.size, server_side=server_side)
        if after_copy is not None:
            after_copy(task, copied)
        if on_progress is not None:
            on_progress(task.size, 1)

    failure: tuple[CopyTask, BaseException] | None = None  # the first copy that failed, and why
    cancelled = False
    done_count = 0
    pending: dict[Future[None], tuple[int, CopyTask]] = {}
    queue = _Groups(groups_at_once)
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="copy") as pool:
        while True:
            new, closed = feed._take()
            for group in new:
                queue.add(group)
            for future in [f for f in pending if f.done()]:
                index, task = pending.pop(future)
                queue.done(index)
                error = future.exception()
                if error is None:
                    done_count += 1
                elif isinstance(error, Cancelled):  # after_copy saw the cancel
                    cancelled = True
                elif failure is None:
                    failure = task, error
            cancelled = cancelled or (cancel is not None and cancel.is_set())
            stopped = failure is not None or cancelled or feed.error is not None
            # Submit only as many as can run: the cancel check then happens right before each copy starts.
            while not stopped and len(pending) < parallelism:
                if cancel is not None and cancel.is_set():
                    cancelled = stopped = True
                    break
                item = queue.next()
                if item is None:
                    break
                future = pool.submit(copy_one, item[1])
                pending[future] = item
                future.add_done_callback(lambda _: feed._changed.set())
            if not pending and (closed or stopped):
                break
            feed._changed.wait()
    if failure is not None:
        failed_task, cause = failure
        if isinstance(cause, BackupToolError):  # a StorageError, or after_copy's own verdict (a damaged object)
            raise cause
        raise StorageError(f"copy of {failed_task.src_key} failed: {short(cause)}") from cause
    if feed.error is not None:
        raise feed.error
    if cancelled:
        raise Cancelled(f"copy cancelled after {done_count} of {queue.tasks} objects")
