"""Many copies at once: `copy_objects` runs a list of CopyTasks on a bounded pool of threads, reports
progress after each object, honours a cancel event, and stops starting new copies at the first failure.
`copy_groups` does the same for several groups of copies (a backup's collections), a few groups at a time,
given all at once or, through a `CopyFeed`, one by one while the copies of the first ones run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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


CANCEL_LOOK = 0.2  # seconds between looks at the cancel event while a copy thread waits for work


class CopyFeed:
    """The groups of a copy that starts while they are still being found (a backup copies each collection's
    binlogs as soon as that collection is planned): `add` each group once known, then `close`; or `fail`,
    and no other copy starts and copy_groups raises that error once the copies in flight are done."""

    def __init__(self) -> None:
        self._changed = threading.Condition()  # a group came, the feed ended, or a copy ended
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
        with self._changed:
            self._new.append(group)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._changed:
            self.error = self.error or error
            self._closed = True
            self._changed.notify_all()


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

    def done(self, index: int) -> bool:
        """One copy of group `index` ended; True when that was the group's last: another may open."""
        self._left[index] -= 1
        if self._left[index]:
            return False
        del self._left[index]
        return True

    def started_all(self) -> bool:
        """Every task of every group added has started."""
        return not self._waiting and not self._open


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
    run = _CopyRun(feed, _Groups(groups_at_once), cancel)

    def copy_one(task: CopyTask) -> None:
        copied = dst.copy_from(src, task.src_key, task.dst_key, task.size, server_side=server_side)
        if after_copy is not None:
            after_copy(task, copied)
        if on_progress is not None:
            on_progress(task.size, 1)

    def copy_until_done() -> None:
        while (item := run.next_task()) is not None:
            index, task = item
            try:
                copy_one(task)
            except BaseException as exc:
                run.ended(index, task, exc)
            else:
                run.ended(index, task, None)

    # Each of `parallelism` threads takes the next copy itself as soon as its last one ended: no future, no
    # callback and no wake-up of a coordinating thread per copy (that cost as much CPU as the copy's request).
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="copy") as pool:
        workers = [pool.submit(copy_until_done) for _ in range(parallelism)]
    for worker in workers:
        worker.result()  # a fault of the loop itself, never a copy's
    run.raise_outcome()


class _CopyRun:
    """What the copy threads share, under the feed's lock: the groups' tasks, the first failure, the cancel."""

    def __init__(self, feed: CopyFeed, queue: _Groups, cancel: threading.Event | None):
        self.feed, self.queue, self.cancel = feed, queue, cancel
        self.failure: tuple[CopyTask, BaseException] | None = None  # the first copy that failed, and why
        self.cancelled = False
        self.done = 0

    def next_task(self) -> tuple[int, CopyTask] | None:
        """The next copy to start (checked for a cancel right before), waiting while none may start yet;
        None once no other copy will start: all have started and the feed is closed, or the run stopped."""
        feed = self.feed
        with feed._changed:
            while True:
                for group in feed._new:
                    self.queue.add(group)
                feed._new = []
                self.cancelled = self.cancelled or (self.cancel is not None and self.cancel.is_set())
                if self.failure is not None or self.cancelled or feed.error is not None:
                    return None
                item = self.queue.next()
                if item is not None:
                    return item
                if feed._closed and self.queue.started_all():
                    return None
                feed._changed.wait(CANCEL_LOOK)  # a cancel sets no condition: looked at this often

    def ended(self, index: int, task: CopyTask, error: BaseException | None) -> None:
        with self.feed._changed:
            group_done = self.queue.done(index)
            if error is None:
                self.done += 1
            elif isinstance(error, Cancelled):  # after_copy saw the cancel
                self.cancelled = True
            elif self.failure is None:
                self.failure = task, error
            if group_done or error is not None:  # what a waiting thread waits for: a group to open, or the end
                self.feed._changed.notify_all()

    def raise_outcome(self) -> None:
        """Once every copy thread has ended: the first failure, the feed's, or the cancel."""
        if self.failure is not None:
            failed_task, cause = self.failure
            if isinstance(cause, BackupToolError):  # a StorageError, or after_copy's own verdict (a damaged object)
                raise cause
            raise StorageError(f"copy of {failed_task.src_key} failed: {short(cause)}") from cause
        if self.feed.error is not None:
            raise self.feed.error
        if self.cancelled:
            raise Cancelled(f"copy cancelled after {self.done} of {self.queue.tasks} objects")
