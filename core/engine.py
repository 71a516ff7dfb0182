"""The engine's front door: what the CLI, the TUI and the HTTP API call.

Reads (collections, backups) are plain calls. Backups and restores start as `Job`s in worker
threads; everything a job would refuse (a taken name, an existing target) is checked before it
starts, so a caller gets the error at once and nothing has been written.
"""

from __future__ import annotations

import uuid

from core.backup import BackupRequest, default_backup_name, resolve_collections, run_backup
from core.catalog import BackupSummary
from core.config import Config
from core.context import Context
from core.errors import AlreadyExists
from core.jobs import Job, Listener
from core.meta import BackupInfo
from core.milvus import CollectionSummary
from core.paths import check_backup_name
from core.restore import (RestoreRequest, TargetPreview, prepare_restore, preview_targets, restore_tasks,
                          run_restore)


class Engine:
    def __init__(self, config: Config):
        self.config = config
        self.ctx = Context(config)
        self.jobs: dict[str, Job] = {}

    def close(self) -> None:
        self.ctx.close()

    # -- reads -----------------------------------------------------------------------------------
    def list_collections(self, db: str | None = None) -> list[CollectionSummary]:
        milvus = self.ctx.milvus
        dbs = [db] if db else milvus.list_databases()
        return [c for name in dbs for c in milvus.collection_summaries(name)]

    def list_backups(self) -> list[BackupSummary]:
        return self.ctx.catalog.list()

    def existing_collections(self) -> set[str]:
        """Every collection in Milvus as "db.name"."""
        milvus = self.ctx.milvus
        return {f"{db}.{name}" for db in milvus.list_databases() for name in milvus.list_collections(db)}

    def get_backup(self, name: str) -> BackupInfo:
        return self.ctx.catalog.get(name)

    def delete_backup(self, name: str) -> int:
        check_backup_name(name)
        return self.ctx.catalog.delete(name)

    def preview_restore(self, request: RestoreRequest, info: BackupInfo | None = None,
                        existing: set[str] | None = None) -> list[TargetPreview]:
        """The collections a restore would create, and which of them exist already; changes nothing."""
        info = info or self.get_backup(request.backup_name)
        return preview_targets(info, request, self.existing_collections() if existing is None else existing)

    def running_jobs(self) -> list[Job]:
        return [job for job in self.jobs.values() if not job.state.finished]

    # -- jobs ------------------------------------------------------------------------------------
    def start_backup(self, request: BackupRequest, listeners: list[Listener] | None = None) -> Job:
        request.name = check_backup_name(request.name or default_backup_name())
        if self.ctx.catalog.exists(request.name):
            raise AlreadyExists(f"backup {request.name} already exists; choose another name or delete it first")
        resolve_collections(self.ctx, request)  # unknown collections fail here, before the job
        job_id = str(uuid.uuid4())
        job = Job("backup", request.name, lambda r: run_backup(self.ctx, request, r, backup_id=job_id),
                  listeners, job_id=job_id)
        self.jobs[job.id] = job
        return job.start()

    def start_restore(self, request: RestoreRequest, listeners: list[Listener] | None = None) -> Job:
        prepared = prepare_restore(self.ctx, request)
        tasks = restore_tasks(prepared[1])
        job_id = str(uuid.uuid4())
        job = Job("restore", request.backup_name,
                  lambda r: run_restore(self.ctx, request, r, job_id, prepared=prepared, tasks=tasks),
                  listeners, job_id=job_id)
        job.restore_tasks = tasks  # the per-collection states, for whoever shows them while it runs
        self.jobs[job.id] = job
        return job.start()
