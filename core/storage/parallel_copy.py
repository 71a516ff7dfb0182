"""Many copies at once: `copy_objects` runs a list of CopyTasks on a bounded pool of threads, reports
progress after each object, honours a cancel event, and stops starting new copies at the first failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

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
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")

    def copy_one(task: CopyTask) -> None:
        copied = dst.copy_from(src, task.src_key, task.dst_key, task.size, server_side=server_side)
        if after_copy is not None:
            after_copy(task, copied)
        if on_progress is not None:
            on_progress(task.size, 1)

    failure: tuple[CopyTask, BaseException] | None = None  # the first copy that failed, and why
    cancelled = False
    done_count = 0
    pending: dict[Future[None], CopyTask] = {}
    queue = iter(tasks)
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="copy") as pool:
        while True:
            # Submit only as many as can run: the cancel check then happens right before each copy starts.
            while failure is None and not cancelled and len(pending) < parallelism:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                task = next(queue, None)
                if task is None:
                    break
                pending[pool.submit(copy_one, task)] = task
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                task = pending.pop(future)
                error = future.exception()
                if error is None:
                    done_count += 1
                elif isinstance(error, Cancelled):  # after_copy saw the cancel
                    cancelled = True
                elif failure is None:
                    failure = task, error
    if failure is not None:
        failed_task, cause = failure
        if isinstance(cause, BackupToolError):  # a StorageError, or after_copy's own verdict (a damaged object)
            raise cause
        raise StorageError(f"copy of {failed_task.src_key} failed: {short(cause)}") from cause
    if cancelled:
        raise Cancelled(f"copy cancelled after {done_count} of {len(tasks)} objects")
