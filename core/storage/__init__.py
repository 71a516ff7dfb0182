"""The object stores the tool reads and writes: S3-compatible buckets (through `minio`) and a local folder.

Both look the same to callers (`Storage`): bucket-relative keys with '/' separators, listing by string
prefix as in S3, and copies that run server-side when two stores can see each other's objects (same S3
endpoint and credentials, or two local folders) and otherwise stream through this process in constant
memory. `copy_objects` runs many copies on a bounded pool, reports progress and honours a cancel event.

Transient failures (connection errors, timeouts, S3 5xx, SlowDown) are retried with exponential backoff
(`retry`, whose knobs tests patch there); everything else becomes a one-line StorageError saying what
failed and what to check (`errors`). Credentials never appear in a message, a log line or a repr.

    base.py           the Storage interface and what every backend shares
    s3.py             MinioStorage: one bucket of an S3-compatible server
    local.py          LocalStorage: a folder on this machine
    factory.py        open_storage and layout_root: the store a config names
    parallel_copy.py  CopyTask and copy_objects: many copies on a bounded pool
    retry.py          which failures are retried, how often, how long to wait
    errors.py         ObjectNotFound and the one-line messages of minio's and the OS's failures
    _lazy_minio_crypto.py  keeps minio's admin-API crypto from loading with minio (start-up time)
"""

from milvus_backup.core.errors import StorageError
from milvus_backup.core.storage import _lazy_minio_crypto  # noqa: F401 - before minio is first imported
from milvus_backup.core.storage.base import CHUNK_SIZE, Copied, ObjectInfo, Readable, Storage
from milvus_backup.core.storage.errors import ObjectNotFound
from milvus_backup.core.storage.factory import layout_root, open_storage
from milvus_backup.core.storage.local import LocalStorage
from milvus_backup.core.storage.parallel_copy import CopyTask, copy_groups, copy_objects
from milvus_backup.core.storage.s3 import MinioStorage

__all__ = [
    "CHUNK_SIZE",
    "Copied",
    "CopyTask",
    "LocalStorage",
    "MinioStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "Readable",
    "Storage",
    "StorageError",
    "copy_groups",
    "copy_objects",
    "layout_root",
    "open_storage",
]
