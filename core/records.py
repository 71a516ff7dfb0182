"""Restore records: what a restore did, kept in storage so it can be asked about after a restart.

A backup describes itself (its meta files); a restore leaves only collections behind. So each restore
writes a small JSON record to the Milvus bucket (`<rootPath>/backup_restore_records/<id>.json`, see
`core.paths.restore_record`) when it starts, when it changes (at most once a second, by the job's
`core.job_records.JobRecorder`) and when it ends.
The record is the HTTP API's `get_restore` answer, in the Go tool's field names and state codes.
"""

from __future__ import annotations

import json
from typing import Any

from milvus_backup.core.errors import NotFound, StorageError
from milvus_backup.core.jobs import Job, JobState, Progress, TaskState
from milvus_backup.core.meta import BackupState
from milvus_backup.core.paths import check_restore_id, restore_record
from milvus_backup.core.storage import ObjectNotFound, Storage

_JOB_STATE = {
    JobState.RUNNING: BackupState.EXECUTING,
    JobState.SUCCESS: BackupState.SUCCESS,
    JobState.FAILED: BackupState.FAIL,
    JobState.CANCELLED: BackupState.FAIL,
    JobState.INTERRUPTED: BackupState.FAIL,
}
_TASK_STATE = {
    "pending": BackupState.INITIAL,
    "restoring": BackupState.EXECUTING,
    "success": BackupState.SUCCESS,
    "failed": BackupState.FAIL,
}


def restore_view(job: Job[Any], progress: Progress | None = None) -> dict[str, Any]:
    """A restore job as the Go tool's RestoreBackupResponse data: overall and per-collection state."""
    progress = progress or job.progress
    state = progress.state
    tasks = list(job.tasks)
    views = []
    done_share = 0.0
    for index, task in enumerate(tasks):
        if task.state is TaskState.SUCCESS:
            share = 1.0
        elif task.state is TaskState.RESTORING and progress.collection == task.target:
            share = min(progress.fraction, 0.99)
        else:
            share = 0.0
        done_share += share
        views.append(
            {
                "id": f"{job.id}_{index}",
                "state_code": int(_TASK_STATE.get(task.state, BackupState.INITIAL)),
                "errorMessage": job.error if task.state is TaskState.FAILED else "",
                "progress": int(share * 100),
                "target_db_name": task.target_db,
                "target_collection_name": task.target_name,
                "source_collection_name": task.source,
                "restored_rows": task.rows,
            }
        )
    if state is JobState.SUCCESS:
        overall = 100
    else:
        overall = int(100 * done_share / len(tasks)) if tasks else 0
        overall = min(overall, 99)
    return {
        "id": job.id,
        "state_code": int(_JOB_STATE[state]),
        "errorMessage": job.error if state.finished and state is not JobState.SUCCESS else "",
        "start_time": job.start_time,
        "end_time": job.end_time if state.finished else 0,
        "progress": overall,
        "backup_name": job.name,
        "collection_restore_tasks": views,
    }


class RestoreRecords:
    """Reads and writes restore records in one store (the Milvus bucket)."""

    def __init__(self, storage: Storage, milvus_root: str):
        self.storage = storage
        self.root = milvus_root

    def key(self, restore_id: str) -> str:
        return restore_record(self.root, restore_id)

    def exists(self, restore_id: str) -> bool:
        return self.storage.exists(self.key(restore_id))

    def write(self, view: dict[str, Any]) -> None:
        self.storage.write(self.key(view["id"]), json.dumps(view, ensure_ascii=False).encode("utf-8"))

    def read(self, restore_id: str) -> dict[str, Any]:
        check_restore_id(restore_id)
        try:
            raw = self.storage.read(self.key(restore_id))
        except ObjectNotFound:
            raise NotFound(
                f"restore {restore_id} not found (no record under {self.storage.describe(self.key(restore_id))})"
            ) from None
        try:
            view = json.loads(raw)
        except ValueError as exc:
            raise StorageError(
                f"restore record {self.storage.describe(self.key(restore_id))} is not valid JSON ({exc})"
            ) from None
        if not isinstance(view, dict):
            raise StorageError(
                f"restore record {self.storage.describe(self.key(restore_id))} is not a JSON object, "
                f"but {type(view).__name__}"
            )
        return view
