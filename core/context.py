"""The resources a job works with, opened once from the config: Milvus, both stores, their layouts."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from functools import cached_property

from milvus_backup.core.catalog import Catalog
from milvus_backup.core.config import Config
from milvus_backup.core.errors import InvalidRequest
from milvus_backup.core.jobs import Reporter
from milvus_backup.core.milvus import Milvus
from milvus_backup.core.paths import BackupLayout, MilvusLayout, check_backup_root
from milvus_backup.core.storage import Copied, CopyTask, Storage, copy_objects, layout_root, open_storage


class Context:
    def __init__(self, config: Config):
        self.config = config
        self._lock = threading.Lock()

    @cached_property
    def milvus(self) -> Milvus:
        with self._lock:
            return Milvus(self.config.milvus)

    @cached_property
    def milvus_reads(self) -> Milvus:
        """A second connection, for the collections table: its reads never wait behind a job's requests."""
        with self._lock:
            return Milvus(self.config.milvus)

    @cached_property
    def milvus_storage(self) -> Storage:
        return open_storage(self.config.storage, self.config.multipart_copy_threshold_mib)

    @cached_property
    def backup_storage(self) -> Storage:
        if self._same_store_config():
            return self.milvus_storage
        return open_storage(self.config.backup_storage, self.config.multipart_copy_threshold_mib)

    def _same_store_config(self) -> bool:
        a, b = self.config.storage, self.config.backup_storage
        return (
            not self.config.cross_storage
            and a.storage_type == b.storage_type
            and not a.is_local
            and a.endpoint == b.endpoint
            and a.bucket_name == b.bucket_name
            and a.access_key_id == b.access_key_id
        )

    @cached_property
    def milvus_layout(self) -> MilvusLayout:
        return MilvusLayout(layout_root(self.config.storage))  # a local Milvus store: keys from its folder

    @cached_property
    def backup_layout(self) -> BackupLayout:
        return BackupLayout(layout_root(self.config.backup_storage))

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.backup_storage, self.backup_layout)

    def with_backup_root(self, root: str) -> Context:
        """The same connections, with backups under another root of the same backup store (the API's
        backup_root_path). The root may not overlap the configured backup root nor Milvus's own files."""
        if self.config.backup_storage.is_local:
            raise InvalidRequest(
                "another backup root works with an S3 backup store; this one is a local folder "
                "(set minio.backupRootPath in a config of its own instead)"
            )
        taken = {"the configured backup root": self.config.backup_storage.root_path}
        if self.backup_storage is self.milvus_storage:  # one bucket: Milvus's files are beside the backups
            taken["Milvus's root path"] = self.config.storage.root_path
        root = check_backup_root(root, taken)
        _ = self.milvus  # opened now, so that the copy shares it
        other = copy.copy(self)  # shares Milvus and both stores
        other.config = self.config.model_copy(
            update={"backup_storage": self.config.backup_storage.model_copy(update={"root_path": root})}
        )
        for derived in ("backup_layout", "catalog"):
            other.__dict__.pop(derived, None)
        return other

    def copy(
        self,
        src: Storage,
        dst: Storage,
        tasks: Sequence[CopyTask],
        reporter: Reporter,
        after_copy: Callable[[CopyTask, Copied], None] | None = None,
    ) -> None:
        """Copy objects with the configured parallelism, reporting bytes and objects, stopping on cancel."""
        copy_objects(
            src,
            dst,
            tasks,
            self.config.backup.copydata,
            on_progress=lambda b, o: reporter.add(bytes_done=b, objects_done=o),
            cancel=reporter.cancel_event,
            server_side=not self.config.cross_storage,
            after_copy=after_copy,
        )

    def close(self) -> None:
        for connection in ("milvus", "milvus_reads"):
            if connection in self.__dict__:
                self.__dict__[connection].close()
