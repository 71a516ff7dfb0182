"""The object stores the tool reads and writes (being split into modules; for now all of it is in s3.py)."""

from milvus_backup.core.storage.s3 import *  # noqa: F403
from milvus_backup.core.storage.s3 import CHUNK_SIZE, RETRY_ATTEMPTS, RETRY_WAIT_INITIAL, RETRY_WAIT_MAX  # noqa: F401
