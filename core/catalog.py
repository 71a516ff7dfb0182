"""The backups in a backup store, read from the store itself (never from process memory).

A folder under the backup root is a complete backup when `meta/backup_meta.json` exists; a folder
without it is what an interrupted or failed backup left behind, listed as incomplete so it can be
deleted. Backups written by zilliztech/milvus-backup are read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from milvus_backup.core.errors import NotFound, StorageError
from milvus_backup.core.meta import BackupInfo, BackupState, MetaError, read_backup
from milvus_backup.core.paths import (
    BACKUP_META,
    CHANNEL_CP_META,
    COLLECTION_META,
    META_WRITE_ORDER,
    BackupLayout,
    InvalidName,
    backup_name_of,
    check_backup_name,
)
from milvus_backup.core.storage import Storage


@dataclass(frozen=True)
class BackupSummary:
    name: str
    id: str
    state: str  # "success", "fail", ... or "incomplete" when backup_meta.json is missing
    size: int
    milvus_version: str
    start_time: int
    end_time: int
    collections: tuple[str, ...]  # "db.name"

    @property
    def complete(self) -> bool:
        return self.state == "success"


def _state_name(code: int) -> str:
    try:
        return BackupState(code).name.lower()
    except ValueError:
        return str(code)


class Catalog:
    def __init__(self, storage: Storage, layout: BackupLayout):
        self.storage = storage
        self.layout = layout

    def names(self) -> list[str]:
        root = self.layout.backups_root()
        names = []
        for prefix in self.storage.list_dirs(root):
            name = backup_name_of(prefix, root)
            if name is None:
                continue
            try:
                names.append(check_backup_name(name))
            except InvalidName:
                continue  # not ours (the Go tool's temp folders, stray files)
        return sorted(names)

    def exists(self, name: str) -> bool:
        """True when anything at all is stored under the name: a name is taken even by leftovers."""
        return next(iter(self.storage.list(self.layout.backup(name))), None) is not None

    def is_complete(self, name: str) -> bool:
        return self.storage.exists(self.layout.meta(name, BACKUP_META))

    def list(self) -> list[BackupSummary]:
        summaries = []
        for name in self.names():
            try:
                # the top-level and collection files suffice; full_meta.json can be large
                info = self.get(name, files=(BACKUP_META, COLLECTION_META))
            except NotFound:
                summaries.append(BackupSummary(name, "", "incomplete", 0, "", 0, 0, ()))
                continue
            except MetaError as exc:
                summaries.append(BackupSummary(name, "", f"unreadable ({exc})", 0, "", 0, 0, ()))
                continue
            summaries.append(
                BackupSummary(
                    # the folder's name, which get, restore and delete take (a copied backup's meta keeps its old one)
                    name=name,
                    id=info.id,
                    state=_state_name(info.state_code),
                    size=info.size,
                    milvus_version=info.milvus_version,
                    end_time=info.end_time,
                    # backup_meta.json has no times: the collections' backup time stands in for it
                    start_time=info.start_time
                    or max((c.backup_physical_timestamp for c in info.collection_backups), default=0),
                    collections=tuple(f"{c.db_name or 'default'}.{c.collection_name}" for c in info.collection_backups),
                )
            )
        return summaries

    def get(self, name: str, files: tuple[str, ...] = (*META_WRITE_ORDER, CHANNEL_CP_META)) -> BackupInfo:
        check_backup_name(name)
        found: dict[str, bytes] = {}
        for filename in files:
            key = self.layout.meta(name, filename)
            try:
                found[filename] = self.storage.read(key)
            except StorageError:
                if not self.storage.exists(key):
                    continue
                raise
        if BACKUP_META not in found:
            if self.exists(name):
                raise NotFound(
                    f"backup {name} is incomplete (no meta/backup_meta.json): an interrupted or "
                    f"failed backup left it; remove it with: milvus-backup delete -n {name}"
                )
            raise NotFound(f"backup {name} not found under {self.storage.bucket}/{self.layout.backups_root()}")
        info = read_backup(found)
        if not info.name:
            info.name = name
        return info

    def delete(self, name: str) -> int:
        """Remove every object of the backup, backup_meta.json first so it stops looking complete."""
        if not self.exists(name):
            raise NotFound(f"backup {name} not found under {self.storage.bucket}/{self.layout.backups_root()}")
        marker = self.layout.meta(name, BACKUP_META)
        removed = 0
        if self.storage.exists(marker):
            self.storage.delete(marker)
            removed = 1
        return removed + self.storage.delete_prefix(self.layout.backup(name))
