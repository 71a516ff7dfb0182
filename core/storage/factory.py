"""The store a config names, and the root to build keys on inside it."""

from __future__ import annotations

from milvus_backup.core.config import S3_STORAGE_TYPES, StorageConfig
from milvus_backup.core.errors import StorageError
from milvus_backup.core.storage.base import Storage
from milvus_backup.core.storage.local import LocalStorage
from milvus_backup.core.storage.s3 import MinioStorage


def open_storage(cfg: StorageConfig, multipart_copy_threshold_mib: int = 500) -> Storage:
    """The store a config names. For storage_type local, the LocalStorage is rooted at cfg.root_path and
    keys are relative to that folder: build them on layout_root(cfg), not on cfg.root_path."""
    if cfg.storage_type == "local":
        return LocalStorage(cfg.root_path)
    if cfg.storage_type in S3_STORAGE_TYPES:
        return MinioStorage(cfg, multipart_copy_threshold_mib)
    raise StorageError(f"storage type {cfg.storage_type!r} is not supported (use minio, s3 or local)")


def layout_root(cfg: StorageConfig) -> str:
    """The root to build keys on inside the store open_storage(cfg) returns: '' for a local folder
    (the store is already rooted at root_path), root_path inside an S3 bucket."""
    return "" if cfg.storage_type == "local" else cfg.root_path
