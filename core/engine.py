"""The engine: the one implementation of `core.service.BackupService`, the surface the CLI, the TUI and
the HTTP API call (they import only core.service; see its docstring).

Reads (collections, backups) are plain calls. Backups and restores start as `Job`s in worker
threads; everything a job would refuse (a taken name, an existing target) is checked before it
starts, so a caller gets the error at once and nothing has been written.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from milvus_backup.core.config import Config
from milvus_backup.core.context import Context
from milvus_backup.core.errors import AlreadyExists, InvalidRequest, NotFound
from milvus_backup.core.job_records import (
    CancelOutcome,
    JobRecorder,
    JobRecords,
    RecordedJob,
    record_is_final,
    record_state,
)
from milvus_backup.core.jobs import CollectionTask, Job, JobKind, JobState, Listener
from milvus_backup.core.meta import BackupInfo, BackupState, MetaFile
from milvus_backup.core.milvus import CollectionSummary
from milvus_backup.core.paths import check_backup_name, check_job_id, check_restore_id, restore_temp_root
from milvus_backup.core.records import RestoreRecords, restore_view

# The backup, restore, verify and check modules load when a job of theirs starts: `get`, `list` and
# `delete` start in a fraction of a second without them (tests/test_catalog.py holds the line).
if TYPE_CHECKING:
    from milvus_backup.core.backup import BackupRequest
    from milvus_backup.core.catalog import BackupSummary
    from milvus_backup.core.check import CheckReport
    from milvus_backup.core.integrity import VerifyReport
    from milvus_backup.core.restore import RestoreRequest

KEEP_FINISHED_JOBS = 200  # a long-running server forgets older finished jobs (storage still has their state)


class Engine:
    def __init__(self, config: Config):
        self.config = config
        self.ctx = Context(config)
        self._jobs: dict[str, Job[Any]] = {}
        self._final_records: dict[str, dict[str, Any]] = {}  # records no process writes again: read once
        self._lock = threading.Lock()  # one backup job per name: the check and the registration are one step

    def close(self) -> None:
        self.ctx.close()

    def open_stores(self) -> None:
        """Connect both stores now (not Milvus), so a first request does not pay for it."""
        _ = self.ctx.backup_storage, self.ctx.catalog, self.ctx.milvus_layout, self.ctx.backup_layout

    # -- reads -----------------------------------------------------------------------------------
    def list_collections(
        self, db: str | None = None, early: Callable[[list[CollectionSummary]], None] | None = None
    ) -> list[CollectionSummary]:
        milvus = self.ctx.milvus_reads
        dbs = [db] if db else sorted(milvus.list_databases())
        listed = {name: milvus.collection_ids(name) for name in dbs}
        if early is not None:
            early([CollectionSummary.listed(name, *pair) for name in dbs for pair in listed[name]])
        return [c for name in dbs for c in milvus.collection_summaries(name, listed[name])]

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        return self.ctx.catalog.list(early, known)

    def backup_name_of_id(self, backup_id: str) -> str | None:
        return self.ctx.catalog.name_of_id(backup_id)

    def existing_collections(self) -> set[str]:
        """Every collection in Milvus as "db.name"."""
        milvus = self.ctx.milvus
        return {f"{db}.{name}" for db in milvus.list_databases() for name in milvus.list_collections(db)}

    def get_backup(self, name: str) -> BackupInfo:
        """The backup's meta, its segments without their binlog lists (backup_json writes them)."""
        return self.ctx.catalog.get(name)

    def backup_json(
        self,
        name: str,
        *,
        indent: int | None = None,
        last_word: Callable[[BackupInfo], dict[str, Any]] | None = None,
    ) -> MetaFile:
        return self.ctx.catalog.backup_json(name, indent=indent, last_word=last_word)

    def busy_imports(self) -> int:
        """Import tasks queued or running in Milvus now (anyone's): a restore started now queues behind them."""
        return self.ctx.milvus.busy_imports()

    def backup_exists(self, name: str) -> bool:
        """Anything stored under that name, complete or not (an interrupted backup's leftovers count)."""
        return self.ctx.catalog.exists(name)

    def delete_backup(self, name: str) -> int:
        check_backup_name(name)
        if self.running_backup(name):
            raise InvalidRequest(f"backup {name} is being created right now; wait for it to finish, then delete it")
        return self.ctx.catalog.delete(name)

    def check(self) -> CheckReport:
        """Milvus answers; both stores take a probe write, copy, read-back and delete."""
        from milvus_backup.core.check import run_check

        return run_check(self.ctx)

    def jobs(self) -> list[Job[Any]]:
        """The jobs of this process, running or finished, newest first."""
        return sorted(self._jobs.values(), key=lambda j: j.started, reverse=True)

    @property
    def job_records(self) -> JobRecords:
        return JobRecords(
            self.ctx.milvus_storage, self.ctx.milvus_layout.root, self.ctx.config.backup.job_records_keep_days
        )

    def list_jobs(self) -> list[Job[Any]]:
        """Every job any process on this config ran or runs, newest first: this process's live, the
        others' from their records (`RecordedJob`s, interrupted when their process is gone)."""
        local = self.jobs()
        records = self.job_records
        ids = [i for i in records.ids() if i not in self._jobs]
        fresh = {r["id"]: r for r in records.list([i for i in ids if i not in self._final_records])}
        self._final_records.update({i: r for i, r in fresh.items() if record_is_final(r)})
        others = [RecordedJob(r, self.cancel_job) for i in ids if (r := fresh.get(i) or self._final_records.get(i))]
        return sorted([*local, *others], key=lambda j: j.start_time, reverse=True)

    def cancel_job(self, job_id: str) -> CancelOutcome:
        """Stop a running job, whichever process runs it; for an interrupted one, remove what it left."""
        check_job_id(job_id)
        job = self._jobs.get(job_id)
        if job is not None:
            return self._cancel_here(job)
        record = self.job_records.read(job_id)
        state = record_state(record)
        what = f"{record.get('kind')} {record.get('backup_name')}"
        if state is JobState.RUNNING:
            self.job_records.request_cancel(job_id)
            return CancelOutcome(
                job_id,
                "cancelling",
                f"cancel requested: {what} (on {record.get('host')}, pid {record.get('pid')}) stops at its next "
                "step, within a few seconds, and cleans up",
            )
        if state is JobState.INTERRUPTED:
            return CancelOutcome(job_id, state.value, self._clean_interrupted(record))
        raise InvalidRequest(f"{what} has already ended ({state.value}); there is nothing to cancel")

    @staticmethod
    def _cancel_here(job: Job[Any]) -> CancelOutcome:
        if job.state.finished:
            raise InvalidRequest(f"{job.kind} {job.name} has already ended ({job.state}); there is nothing to cancel")
        job.cancel()
        return CancelOutcome(job.id, "cancelling", f"cancelling {job.kind} {job.name}: it stops at its next step")

    def _clean_interrupted(self, record: dict[str, Any]) -> str:
        """Remove what an interrupted job left, as its own clean-up would have: a backup's incomplete
        folder; a restore's staged binlogs and the collections it had created. Said in its record."""
        if record.get("cleaned"):
            return f"{record['kind']} {record['backup_name']} was interrupted; its leftovers were already removed"
        done = []
        name = str(record["backup_name"])
        if (
            record["kind"] == JobKind.BACKUP
            and self.ctx.catalog.exists(name)
            and not self.ctx.catalog.is_complete(name)
        ):
            done.append(f"removed the incomplete backup {name} ({self.ctx.catalog.delete(name)} objects)")
        if record["kind"] == JobKind.RESTORE:
            for c in record.get("collections") or []:
                db, _, collection = str(c.get("target", "")).rpartition(".")
                if c.get("created") and self.ctx.milvus.has_collection(db, collection):
                    self.ctx.milvus.drop_collection(db, collection)
                    done.append(f"dropped {db}.{collection}, which it had created")
            self.ctx.milvus_storage.delete_prefix(restore_temp_root(self.ctx.milvus_layout.root, record["id"]))
            done.append("removed its staged binlogs")
        said = "; ".join(done) or "it had left nothing to remove"
        lines = [*record.get("log", []), f"interrupted; clean-up: {said}"]
        ended = record.get("end_time") or int(float(record.get("heartbeat") or time.time()))
        self.job_records.write(
            {**record, "state": JobState.INTERRUPTED.value, "end_time": ended, "cleaned": True, "log": lines}
        )
        if record["kind"] == JobKind.RESTORE:
            self._fail_restore_record(record["id"], f"interrupted: {said}")
        return f"{record['kind']} {name} was interrupted: {said}"

    def _fail_restore_record(self, restore_id: str, error: str) -> None:
        try:
            view = self.restore_records.read(restore_id)
        except NotFound:
            return
        view.update(
            state_code=int(BackupState.FAIL), errorMessage=error, end_time=view.get("end_time") or int(time.time())
        )
        self.restore_records.write(view)

    def job(self, job_id: str) -> Job[Any] | None:
        return self._jobs.get(job_id)

    def backup_job(self, name: str = "", job_id: str = "") -> Job[BackupInfo] | None:
        """The latest backup job of this process with that name (or id), running or finished."""
        found = [
            j
            for j in list(self._jobs.values())
            if j.kind is JobKind.BACKUP and ((name and j.name == name) or (job_id and j.id == job_id))
        ]
        return max(found, key=lambda j: j.started, default=None)

    def running_backup(self, name: str) -> Job[BackupInfo] | None:
        job = self.backup_job(name)
        return job if job is not None and not job.state.finished else None

    @property
    def restore_records(self) -> RestoreRecords:
        return RestoreRecords(self.ctx.milvus_storage, self.ctx.milvus_layout.root)

    def get_restore(self, restore_id: str) -> dict[str, Any]:
        """A restore's state (the Go tool's RestoreBackupResponse data): live from this process, else its record."""
        check_restore_id(restore_id)
        job = self._jobs.get(restore_id)
        if job is not None and job.kind is JobKind.RESTORE:
            return restore_view(job)
        view = self.restore_records.read(restore_id)
        if view.get("state_code") == BackupState.EXECUTING:  # its process may be gone: its job record says
            try:
                record = self.job_records.read(restore_id)
            except NotFound:  # a restore recorded before job records existed
                return view
            if record_state(record) is JobState.INTERRUPTED:
                view.update(state_code=int(BackupState.FAIL), errorMessage=RecordedJob(record, self.cancel_job).error)
        return view

    # -- jobs ------------------------------------------------------------------------------------
    def start_backup(self, request: BackupRequest, listeners: list[Listener] | None = None) -> Job[BackupInfo]:
        from milvus_backup.core.backup import check_request, default_backup_name, resolve_collections, run_backup
        from milvus_backup.core.versions import check_backup_source

        request.name = check_backup_name(request.name or default_backup_name())
        check_request(request)
        ctx = self.ctx.with_backup_root(request.root_path) if request.root_path else self.ctx
        pairs = resolve_collections(ctx.milvus, request)  # unknown collections fail here, before the job
        check_backup_source(ctx.milvus.version(), self.config.backup.allow_untested_milvus)
        with self._lock:
            if self.running_backup(request.name):
                raise AlreadyExists(f"backup {request.name} is being created right now; choose another name")
            if ctx.catalog.exists(request.name):
                raise AlreadyExists(f"backup {request.name} already exists; choose another name or delete it first")
            job_id = str(uuid.uuid4())
            job = Job(
                JobKind.BACKUP,
                request.name,
                lambda r: run_backup(ctx, request, r, backup_id=job_id, pairs=pairs),
                listeners,
                job_id=job_id,
            )
            self._register(job)
        job.targets = [f"{db}.{name}" for db, name in pairs]
        JobRecorder(job, self.job_records).start()
        return job.start()

    def _register(self, job: Job[Any]) -> None:
        finished = [j for j in list(self._jobs.values()) if j.state.finished]
        for old in sorted(finished, key=lambda j: j.started)[: max(0, len(finished) - KEEP_FINISHED_JOBS)]:
            self._jobs.pop(old.id, None)
        self._jobs[job.id] = job

    def start_verify(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> Job[VerifyReport]:
        """Check a backup's objects against its integrity manifest (or, for a Go tool backup, its meta
        sizes); full=True re-reads and re-hashes everything. The job's result is a VerifyReport; a
        damaged backup is a successful job whose report is not ok."""
        from milvus_backup.core.integrity import run_verify

        check_backup_name(name)
        if not self.ctx.catalog.is_complete(name):
            self.ctx.catalog.get(name)  # raises the one-line NotFound: absent, or incomplete and how to remove it
        job = Job(JobKind.VERIFY, name, lambda r: run_verify(self.ctx, name, full, r), listeners)
        with self._lock:
            self._register(job)
        JobRecorder(job, self.job_records).start()
        return job.start()

    def verify_backup(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> VerifyReport:
        """start_verify, waited for: the report, or the error that stopped it (NotFound, Cancelled...)."""
        job = self.start_verify(name, full, listeners)
        job.wait()
        if job.exception is not None:
            raise job.exception
        assert job.result is not None  # a job that raised nothing returned its report
        return job.result

    def start_restore(
        self, request: RestoreRequest, listeners: list[Listener] | None = None, restore_id: str | None = None
    ) -> Job[list[CollectionTask]]:
        """Start a restore; its records (get_restore's, and its job record) are kept in the Milvus bucket
        from start to end."""
        from milvus_backup.core.restore import prepare_restore, restore_tasks, run_restore

        records = self.restore_records
        if restore_id is not None:
            check_restore_id(restore_id)
        ctx = self.ctx.with_backup_root(request.root_path) if request.root_path else self.ctx
        prepared = prepare_restore(ctx, request)
        tasks = restore_tasks(prepared[1])
        job_id = restore_id or str(uuid.uuid4())
        job = Job(
            JobKind.RESTORE,
            request.backup_name,
            lambda r: run_restore(ctx, request, r, job_id, prepared=prepared, tasks=tasks),
            listeners,
            job_id=job_id,
            tasks=tasks,
        )
        with self._lock:  # an id is taken by a job of this process or by any record in storage
            if restore_id is not None and (
                restore_id in self._jobs or records.exists(restore_id) or self.job_records.exists(restore_id)
            ):
                raise AlreadyExists(f"restore id {restore_id} is taken; give another id or none")
            records.write(restore_view(job))
            self._register(job)
        JobRecorder(job, self.job_records, restore_records=records).start()
        return job.start()
