"""The engine as its faces see it: the `BackupService` protocol and every value it takes and returns.

The terminal app, the CLI and the HTTP API import this module and nothing else of `core` (an
import-linter contract in pyproject.toml holds them to it), so the engine's insides can change
without touching a face. `open_service` builds the real engine; the TUI's snapshot tests build an
in-memory one that mypy checks against the same protocol.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from milvus_backup.core.backup import BackupRequest, Strategy, default_backup_name
    from milvus_backup.core.catalog import CHECKING, BackupSummary
    from milvus_backup.core.check import CheckReport, CheckStep
    from milvus_backup.core.config import DEFAULT_CONFIG_PATH, Config, load_config
    from milvus_backup.core.errors import (
        AlreadyExists,
        BackupToolError,
        Cancelled,
        ConfigError,
        InvalidRequest,
        MilvusError,
        NotFound,
        StorageError,
    )
    from milvus_backup.core.integrity import Problem, VerifyReport
    from milvus_backup.core.job_records import CancelOutcome, RecordedJob, job_view
    from milvus_backup.core.jobs import (
        CollectionShare,
        CollectionTask,
        Job,
        JobKind,
        JobState,
        Listener,
        Phase,
        Progress,
        TaskState,
    )
    from milvus_backup.core.meta import BackupInfo, BackupState, Collection, Field, MetaFile, encode, render_backup_json
    from milvus_backup.core.milvus import CollectionSummary, data_type_name
    from milvus_backup.core.paths import check_backup_name
    from milvus_backup.core.requests import CollFilter, filter_from_map, parse_db_collections, parse_filter
    from milvus_backup.core.restore import (
        CollectionMapping,
        CollectionOverride,
        DatabaseMapping,
        RestorePlan,
        RestoreRequest,
        SkipParams,
        TargetPreview,
        busy_message,
        parse_renames,
        preview_targets,
    )

_HOMES = {  # each name re-exported here -> the core module it lives in
    "BackupRequest": "backup",
    "Strategy": "backup",
    "default_backup_name": "backup",
    "BackupSummary": "catalog",
    "CHECKING": "catalog",
    "CheckReport": "check",
    "CheckStep": "check",
    "Config": "config",
    "DEFAULT_CONFIG_PATH": "config",
    "load_config": "config",
    "AlreadyExists": "errors",
    "BackupToolError": "errors",
    "Cancelled": "errors",
    "ConfigError": "errors",
    "InvalidRequest": "errors",
    "MilvusError": "errors",
    "NotFound": "errors",
    "StorageError": "errors",
    "Problem": "integrity",
    "VerifyReport": "integrity",
    "CancelOutcome": "job_records",
    "RecordedJob": "job_records",
    "job_view": "job_records",
    "CollectionShare": "jobs",
    "CollectionTask": "jobs",
    "Job": "jobs",
    "JobKind": "jobs",
    "JobState": "jobs",
    "Listener": "jobs",
    "Phase": "jobs",
    "Progress": "jobs",
    "TaskState": "jobs",
    "BackupInfo": "meta",
    "BackupState": "meta",
    "Collection": "meta",
    "Field": "meta",
    "MetaFile": "meta",
    "encode": "meta",
    "render_backup_json": "meta",
    "CollectionSummary": "milvus",
    "data_type_name": "milvus",
    "check_backup_name": "paths",
    "CollFilter": "requests",
    "filter_from_map": "requests",
    "parse_db_collections": "requests",
    "parse_filter": "requests",
    "CollectionMapping": "restore",
    "CollectionOverride": "restore",
    "DatabaseMapping": "restore",
    "RestorePlan": "restore",
    "RestoreRequest": "restore",
    "SkipParams": "restore",
    "TargetPreview": "restore",
    "busy_message": "restore",
    "parse_renames": "restore",
    "preview_targets": "restore",
}


# mypy reads the names from the imports above; a `__getattr__` it could see would type any misspelt
# name as Any.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        """A re-exported name is imported on first use (PEP 562): a command that only reads backups must not
        pay at start for the backup, restore and verify modules (and what they import) it never runs."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"milvus_backup.core.{home}"), name)
        globals()[name] = value  # later uses are plain module attributes
        return value


__all__ = [
    "CHECKING",
    "DEFAULT_CONFIG_PATH",
    "AlreadyExists",
    "BackupInfo",
    "BackupRequest",
    "BackupService",
    "BackupState",
    "BackupSummary",
    "BackupToolError",
    "CancelOutcome",
    "Cancelled",
    "CheckReport",
    "CheckStep",
    "CollFilter",
    "Collection",
    "CollectionMapping",
    "CollectionOverride",
    "CollectionShare",
    "CollectionSummary",
    "CollectionTask",
    "Config",
    "ConfigError",
    "DatabaseMapping",
    "Field",
    "InvalidRequest",
    "Job",
    "JobKind",
    "JobState",
    "Listener",
    "MetaFile",
    "MilvusError",
    "NotFound",
    "Phase",
    "Problem",
    "Progress",
    "RecordedJob",
    "RestorePlan",
    "RestoreRequest",
    "SkipParams",
    "StorageError",
    "Strategy",
    "TargetPreview",
    "TaskState",
    "VerifyReport",
    "busy_message",
    "check_backup_name",
    "data_type_name",
    "default_backup_name",
    "encode",
    "filter_from_map",
    "job_view",
    "load_config",
    "open_service",
    "parse_db_collections",
    "parse_filter",
    "parse_renames",
    "preview_targets",
    "render_backup_json",
]


class BackupService(Protocol):
    """Everything a face may ask of the engine. Reads are plain calls; backups, restores and verifies
    start as `Job`s in worker threads, after every check that would refuse them has passed."""

    @property
    def config(self) -> Config: ...

    def close(self) -> None: ...

    def open_stores(self) -> None:
        """Connect both stores now (not Milvus), so a first request does not pay for it."""
        ...

    # -- reads
    def list_collections(
        self, db: str | None = None, early: Callable[[list[CollectionSummary]], None] | None = None
    ) -> list[CollectionSummary]:
        """Every collection (of `db`) with its rows, load state, partitions and indexes. `early` gets, once
        the names are listed and before each collection is described, the names alone (`described`
        False): what a screen can show at once."""
        ...

    def existing_collections(self) -> set[str]:
        """Every collection in Milvus as "db.name"."""
        ...

    def list_backups(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        """Every backup's summary. `early` gets, before anything is read, the names with what this
        machine last saw of each (or state "checking"): what a screen can show at once. `known`: what
        the caller listed a moment ago, taken as it is for finished backups still listed (not read)."""

    def backup_name_of_id(self, backup_id: str) -> str | None:
        """The name of the backup with that id (None if no backup has it): one read when this machine
        listed it before, else a whole listing."""
        ...

    def get_backup(self, name: str) -> BackupInfo:
        """The backup's meta, its segments without their binlog lists: memory grows with its segments."""
        ...

    def backup_json(
        self,
        name: str,
        *,
        indent: int | None = None,
        last_word: Callable[[BackupInfo], dict[str, Any]] | None = None,
    ) -> MetaFile:
        """The backup's whole meta, binlog lists included, as the JSON text of encode() (updated with
        last_word(the meta)), written a segment at a time into a temporary file: close it."""
        ...

    def busy_imports(self) -> int:
        """Import tasks queued or running in Milvus now: a restore's preview says "this restore will queue"."""
        ...

    def backup_exists(self, name: str) -> bool: ...

    def delete_backup(self, name: str) -> int: ...

    def check(self) -> CheckReport: ...

    def get_restore(self, restore_id: str) -> dict[str, Any]:
        """A restore's state as the Go tool's RestoreBackupResponse data."""
        ...

    # -- jobs
    def jobs(self) -> list[Job[Any]]:
        """The jobs of this process, newest first."""
        ...

    def job(self, job_id: str) -> Job[Any] | None: ...

    def list_jobs(self) -> list[Job[Any]]:
        """Every job of every process on this config (from their records), newest first; jobs of other
        processes are `RecordedJob`s, `interrupted` when their process went away mid-job."""
        ...

    def cancel_job(self, job_id: str) -> CancelOutcome:
        """Stop a job wherever it runs (another process sees the request within a few seconds); for an
        interrupted job, remove what it left. NotFound for an unknown id, InvalidRequest for an ended job."""
        ...

    def backup_job(self, name: str = "", job_id: str = "") -> Job[BackupInfo] | None: ...

    def running_backup(self, name: str) -> Job[BackupInfo] | None: ...

    def start_backup(self, request: BackupRequest, listeners: list[Listener] | None = None) -> Job[BackupInfo]: ...

    def start_restore(
        self, request: RestoreRequest, listeners: list[Listener] | None = None, restore_id: str | None = None
    ) -> Job[list[CollectionTask]]: ...

    def start_verify(
        self, name: str, full: bool = False, listeners: list[Listener] | None = None
    ) -> Job[VerifyReport]: ...

    def verify_backup(self, name: str, full: bool = False, listeners: list[Listener] | None = None) -> VerifyReport: ...


def open_service(config: Config) -> BackupService:
    """The real engine on `config`: nothing is connected until it is first used."""
    from milvus_backup.core.engine import Engine

    engine: BackupService = Engine(config)  # mypy holds the engine to the protocol here
    return engine
