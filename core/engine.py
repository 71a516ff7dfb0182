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
from core.integrity import VerifyReport, run_verify
from core.jobs import Job, Listener
from core.meta import BackupInfo
from core.milvus import CollectionSummary
from core.paths import check_backup_name
from core.restore import RestoreRequest, prepare_restore, restore_tasks, run_restore


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

    def get_backup(self, name: str) -> BackupInfo:
        return self.ctx.catalog.get(name)

    def delete_backup(self, name: str) -> int:
        check_backup_name(name)
        return self.ctx.catalog.delete(name)

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

    def start_verify(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> Job:
        """Check a backup's objects against its integrity manifest (or, for a Go tool backup, its meta
        sizes); full=True re-reads and re-hashes everything. The job's result is a VerifyReport; a
        damaged backup is a successful job whose report is not ok."""
        check_backup_name(name)
        if not self.ctx.catalog.is_complete(name):
            self.ctx.catalog.get(name)  # raises the one-line NotFound: absent, or incomplete and how to remove it
        job = Job("verify", name, lambda r: run_verify(self.ctx, name, full, r), listeners)
        self.jobs[job.id] = job
        return job.start()

    def verify_backup(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> VerifyReport:
        """start_verify, waited for: the report, or the error that stopped it (NotFound, Cancelled...)."""
        job = self.start_verify(name, full, listeners)
        job.wait()
        if job.exception is not None:
            raise job.exception
        return job.result

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
