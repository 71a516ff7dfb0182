"""Job records: every backup, restore and verify, as any process on the same config can see it.

A job's process writes a small JSON record to the Milvus bucket (`<rootPath>/backup_job_records/<id>.json`,
see `core.paths.job_record`): kind, backup name, targets, state, phase, bytes/objects/rows done and total,
each collection's state, host and pid, start and end time, a heartbeat and the last lines of its log. A
`JobRecorder` thread writes it, at most once a second and only when something changed (or every few
seconds as a heartbeat), never from the copy and import workers; the job's end writes it once more before
`Job.wait` returns. A restore's Go-tool record (`core.records`) is kept current by the same thread.

Another process reads these records to list every job (`Engine.list_jobs`) and asks a job to stop by
writing `<id>.cancel`; the owner's recorder sees it at its next beat and cancels the job, which then
cleans up as any cancel does. A record left "running" by a process that is gone (killed, machine down)
reads as `interrupted`: its heartbeat is older than STALE_SECONDS, or, on the same host, its pid is dead.

Records do not pile up: each job's start removes, in the background, the records of jobs that ended more
than `backup.jobRecordsKeepDays` ago (found by the listing's times, so only those are read), a restore's
Go-tool record with its job's, and cancel requests as old; listing jobs thus costs what the recent ones
cost, however long the tool has been used.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from milvus_backup.core.errors import BackupToolError, NotFound, StorageError
from milvus_backup.core.jobs import CollectionTask, Job, JobKind, JobState, Phase, Progress, TaskState
from milvus_backup.core.paths import (
    check_job_id,
    job_cancel_request,
    job_id_of,
    job_record,
    job_records_root,
    restore_record,
)
from milvus_backup.core.records import RestoreRecords, restore_view
from milvus_backup.core.storage import ObjectNotFound, Storage

log = logging.getLogger("milvus_backup")

BEAT_SECONDS = 1.0  # how often the recorder looks at its job (and for a cancel request)
REWRITE_SECONDS = 5.0  # an unchanged record is rewritten this often: the heartbeat
STALE_SECONDS = 30.0  # a running record not rewritten for this long belongs to a process that is gone
LOG_LINES = 20
DAY = 86400.0
HOST = socket.gethostname()


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: `state` is the job's state now ("cancelling" while it stops), `message` says so."""

    job_id: str
    state: str
    message: str


def overall_percent(job: Job[Any]) -> int:
    """0-100 for the whole job: a restore by its collections, a backup or verify by its bytes or objects."""
    if job.state is JobState.SUCCESS:
        return 100
    if job.kind is JobKind.RESTORE and job.tasks:
        return int(restore_view(job)["progress"])
    return min(99, int(100 * job.progress.fraction))


def record_of(job: Job[Any]) -> dict[str, Any]:
    """The job as its record holds it (without the heartbeat, added when written)."""
    p, targets = job.progress, list(job.targets)
    if job.kind is JobKind.RESTORE:
        collections = [
            {
                "source": t.source,
                "target": t.target,
                "state": t.state.value,
                "rows": t.rows,
                "rows_total": t.rows_total,
                "created": t.created,
            }
            for t in job.tasks
        ]
        targets = [t.target for t in job.tasks]
    else:
        collections = [{"source": name, "target": "", "state": p.state.value} for name in targets]
    return {
        "id": job.id,
        "kind": job.kind.value,
        "backup_name": job.name,
        "targets": targets,
        "state": p.state.value,
        "phase": p.phase.value,
        "collection": p.collection,
        "progress": overall_percent(job),
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "objects_done": p.objects_done,
        "objects_total": p.objects_total,
        "rows_done": p.rows,
        "rows_total": sum(t.rows_total for t in job.tasks),
        "collections": collections,
        "host": HOST,
        "pid": os.getpid(),
        "start_time": job.start_time,
        "end_time": job.end_time if p.state.finished else 0,
        "error": job.error,
        "cancel_requested": job.cancel_event.is_set(),
        "log": list(job.lines[-LOG_LINES:]),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def record_state(record: dict[str, Any], now: float | None = None) -> JobState:
    """The state a record stands for: a running one whose process is gone is interrupted."""
    try:
        state = JobState(str(record.get("state")))
    except ValueError:
        return JobState.FAILED
    if state is not JobState.RUNNING:
        return state
    now = time.time() if now is None else now
    if now - float(record.get("heartbeat") or 0) > STALE_SECONDS:
        return JobState.INTERRUPTED
    pid = record.get("pid")
    if record.get("host") == HOST and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid):
        return JobState.INTERRUPTED
    return JobState.RUNNING


def job_view(job: Job[Any]) -> dict[str, Any]:
    """Any job, of this process or another, as `jobs --json` and `GET /api/v1/jobs` list it."""
    return listing_view(job.record if isinstance(job, RecordedJob) else {**record_of(job), "heartbeat": time.time()})


def record_is_final(record: dict[str, Any]) -> bool:
    """A record no process will write again: ended in its process, or interrupted and cleaned up."""
    state = str(record.get("state"))
    return state in ("success", "failed", "cancelled") or (state == "interrupted" and bool(record.get("cleaned")))


def listing_view(record: dict[str, Any]) -> dict[str, Any]:
    """A record as `jobs --json` and `GET /api/v1/jobs` list it: its state as read now, no log."""
    state = record_state(record)
    view = {k: v for k, v in record.items() if k != "log"}
    view["state"] = state.value
    if state is JobState.INTERRUPTED and not view.get("end_time"):
        view["end_time"] = int(float(record.get("heartbeat") or 0))
    return view


class JobRecords:
    """Reads and writes job records, and cancel requests, in one store (the Milvus bucket)."""

    def __init__(self, storage: Storage, milvus_root: str, keep_days: float = 30):
        self.storage = storage
        self.root = milvus_root
        self.keep_seconds = keep_days * DAY

    def write(self, record: dict[str, Any]) -> None:
        key = job_record(self.root, record["id"])
        self.storage.write(key, json.dumps(record, ensure_ascii=False).encode("utf-8"))

    def read(self, job_id: str) -> dict[str, Any]:
        """The job's record. One that says "running" while its process is gone is read once more: the
        process may have written its last state and exited between the first read and the liveness check
        (a job that just succeeded must never read as interrupted: `cancel` would remove what it restored)."""
        record = self._read(job_id)
        if record.get("state") == JobState.RUNNING.value and record_state(record) is JobState.INTERRUPTED:
            record = self._read(job_id)
        return record

    def _read(self, job_id: str) -> dict[str, Any]:
        key = job_record(self.root, check_job_id(job_id))
        try:
            raw = self.storage.read(key)
        except ObjectNotFound:
            raise NotFound(f"job {job_id} not found (`milvus-backup jobs` lists them)") from None
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise StorageError(f"job record {self.storage.describe(key)} is not valid JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise StorageError(f"job record {self.storage.describe(key)} is not a job record")
        return record

    def ids(self) -> list[str]:
        return [i for o in self.storage.list(job_records_root(self.root)) if (i := job_id_of(o.key, self.root))]

    def list(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """The records of `ids` (default: all) that can be read; one that cannot is logged and skipped, so
        it never hides the others."""
        ids = self.ids() if ids is None else ids

        def read(job_id: str) -> dict[str, Any] | None:
            try:
                return self.read(job_id)
            except NotFound:  # removed since it was listed
                return None
            except StorageError as exc:
                log.warning("skipping job record %s: %s", job_id, exc)
                return None

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="job-records") as pool:
            return [r for r in pool.map(read, ids) if r is not None]

    def prune(self, now: float | None = None) -> int:
        """Delete the records of jobs that ended more than the kept days ago (a restore's Go-tool record
        with its job's), and cancel requests as old; returns how many job records and requests went.
        Only objects nothing wrote for that long are read (a running job rewrites its record every
        REWRITE_SECONDS). An interrupted job's record stays, however old, until `cancel ID` has cleaned
        up after it: it is how the user finds what that job left."""
        now = time.time() if now is None else now
        listed = self.storage.list(job_records_root(self.root))
        old = [o.key for o in listed if o.modified and now - o.modified > self.keep_seconds]  # 0: time unknown
        gone = 0
        for key in old:
            job_id = job_id_of(key, self.root)
            if job_id is None and not key.endswith(".cancel"):
                continue  # not ours to remove
            try:
                if job_id is not None and not record_is_final(self._read(job_id)):
                    continue
            except NotFound:
                continue
            except StorageError as exc:
                log.warning("keeping job record %s: %s", job_id, exc)
                continue
            if job_id is not None:  # a restore's id is its job's: its get_restore record goes too
                self.storage.delete(restore_record(self.root, job_id))
            self.storage.delete(key)
            gone += 1
        return gone

    def exists(self, job_id: str) -> bool:
        return self.storage.exists(job_record(self.root, job_id))

    def request_cancel(self, job_id: str) -> None:
        self.storage.write(job_cancel_request(self.root, job_id), b"")

    def cancel_requested(self, job_id: str) -> bool:
        return self.storage.exists(job_cancel_request(self.root, job_id))


class RecordedJob(Job[None]):
    """A job of another process, or of one that is gone, as its record tells it. It never runs here;
    `cancel` asks its owner to stop it (the engine's cancel_job does, through its record)."""

    def __init__(self, record: dict[str, Any], cancel: Callable[[str], object]):
        tasks = [
            CollectionTask(
                c.get("source", ""),
                *_split_target(c.get("target", "")),
                rows=int(c.get("rows") or 0),
                state=_task_state(c.get("state")),
                rows_total=int(c.get("rows_total") or 0),
                created=bool(c.get("created")),
            )
            for c in record.get("collections") or []
            if record.get("kind") == JobKind.RESTORE.value
        ]
        super().__init__(JobKind(record["kind"]), record["backup_name"], _never_run, job_id=record["id"], tasks=tasks)
        self.record = record
        self.host = str(record.get("host", ""))
        self.pid = int(record.get("pid") or 0)
        self.start_time = int(record.get("start_time") or 0)
        state = record_state(record)
        self.end_time = int(record.get("end_time") or 0) or (
            int(float(record.get("heartbeat") or 0)) if state is JobState.INTERRUPTED else 0
        )
        self.error = str(record.get("error") or "")
        if state is JobState.INTERRUPTED and not self.error:
            self.error = f"interrupted: its process ({self.host} pid {self.pid}) went away mid-job"
        self.lines = [str(line) for line in record.get("log") or []]
        self.progress = Progress(
            job_id=self.id,
            kind=self.kind,
            name=self.name,
            state=state,
            phase=_phase(record.get("phase")),
            collection=str(record.get("collection") or ""),
            bytes_done=int(record.get("bytes_done") or 0),
            bytes_total=int(record.get("bytes_total") or 0),
            objects_done=int(record.get("objects_done") or 0),
            objects_total=int(record.get("objects_total") or 0),
            rows=int(record.get("rows_done") or 0),
            elapsed=max(0.0, (self.end_time or time.time()) - self.start_time),
        )
        self.request_cancel = cancel  # a face may route it (the app sends it from a worker thread)
        if state.finished:
            self._done.set()

    def start(self) -> RecordedJob:
        raise RuntimeError("a recorded job runs in its own process")

    def cancel(self) -> None:
        self.request_cancel(self.id)


def _never_run(reporter: object) -> None:
    raise RuntimeError("a recorded job runs in its own process")


def _split_target(target: str) -> tuple[str, str]:
    db, _, name = target.rpartition(".")
    return db, name


def _task_state(value: object) -> TaskState:
    try:
        return TaskState(str(value))
    except ValueError:
        return TaskState.PENDING


def _phase(value: object) -> Phase:
    try:
        return Phase(str(value))
    except ValueError:
        return Phase.PREPARE


class JobRecorder:
    """Keeps a job's record (and a restore's Go-tool record) current from its own thread, and turns a
    cancel request found in storage into a cancel of the job. A store that fails is logged, never fatal."""

    def __init__(
        self,
        job: Job[Any],
        records: JobRecords,
        restore_records: RestoreRecords | None = None,
        beat: float = BEAT_SECONDS,
    ):
        self.job = job
        self.records = records
        self.restore_records = restore_records
        self.beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"record-{job.id}", daemon=True)
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0
        self._last_view: dict[str, Any] | None = None
        self._complaint = ""

    def start(self) -> JobRecorder:
        """Write the first record now (a caller listing jobs sees it at once), then keep it current; old
        records of other jobs are removed in the background meanwhile."""
        self._write()
        self.job.on_end(self.finish)
        self._thread.start()
        threading.Thread(target=self._prune, name=f"prune-{self.job.id}", daemon=True).start()
        return self

    def finish(self) -> None:
        """The job ended: stop beating and write its last state (before `Job.wait` returns)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self._write(force=True)

    def _prune(self) -> None:
        try:
            gone = self.records.prune()
        except (BackupToolError, OSError) as exc:  # never the job's concern: the next job's start tries again
            log.warning("could not remove old job records: %s", exc)
            return
        if gone:
            log.info("removed %d job records older than %g days", gone, self.records.keep_seconds / DAY)

    def _loop(self) -> None:
        while not self._stop.wait(self.beat):
            self._guarded(self._look_for_cancel)
            self._write()

    def _look_for_cancel(self) -> None:
        job = self.job
        if not job.cancel_event.is_set() and not job.state.finished and self.records.cancel_requested(job.id):
            job._log("cancel requested from another process")
            job.cancel()

    def _write(self, force: bool = False) -> None:
        record = record_of(self.job)
        now = time.time()
        due = force or record != self._last or now - self._last_at >= REWRITE_SECONDS
        if due and self._guarded(lambda: self.records.write({**record, "heartbeat": now})):
            self._last, self._last_at = record, now
        if self.restore_records is not None:
            view = restore_view(self.job)
            records = self.restore_records
            if (force or view != self._last_view) and self._guarded(lambda: records.write(view)):
                self._last_view = view

    def _guarded(self, step: Callable[[], None]) -> bool:
        """Run a storage step; a failure is logged once per distinct message and the job goes on."""
        try:
            step()
        except (BackupToolError, OSError) as exc:
            if str(exc) != self._complaint:
                self._complaint = str(exc)
                log.warning("%s %s: could not update its job record: %s", self.job.kind, self.job.name, exc)
            return False
        return True
