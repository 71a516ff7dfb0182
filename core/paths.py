"""Every object key the tool reads or writes is built here, and every key it takes apart is parsed here.

Two layouts exist: the Milvus bucket's own (`<rootPath>/insert_log/<coll>/<part>/<seg>/<field>/<log>`)
and a backup's (`<backupRootPath>/<name>/binlogs/insert_log/<coll>/<part>/<group>/<seg>/<field>/<log>`),
as in zilliztech/milvus-backup. Backup names are checked before they become part of any key; keys read
from files are checked before they are joined to a backup's folder (`check_relative_key`). A parser
raises MalformedKey, naming the key and the shape it expected, on a key of another shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from milvus_backup.core.errors import BackupToolError, InvalidRequest

META_DIR = "meta"
BINLOG_DIR = "binlogs"  # a backup's copies of the binlogs
INSERT_LOG = "insert_log"
DELTA_LOG = "delta_log"
BACKUP_META = "backup_meta.json"
COLLECTION_META = "collection_meta.json"
PARTITION_META = "partition_meta.json"
SEGMENT_META = "segment_meta.json"
FULL_META = "full_meta.json"
CHANNEL_CP_META = "channel_cp_meta.json"  # written by the Go tool before v0.5.9; read, never required
# Ours only (the Go tool reads its files by name and ignores this one): the size and SHA-256 of every
# object of the backup, written after the other meta and before backup_meta.json.
MANIFEST = "integrity_manifest.json"
# The order a backup's meta is written in: backup_meta.json marks a complete backup, so it goes last.
META_WRITE_ORDER = (COLLECTION_META, PARTITION_META, SEGMENT_META, FULL_META, BACKUP_META)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class InvalidName(InvalidRequest):
    """A backup name that may not be used."""


class UnsafeKey(BackupToolError):
    """A key taken from a meta file that would leave its backup's folder."""


class MalformedKey(BackupToolError):
    """A key that does not have the shape its parser expects (another kind of object, or not under the root)."""


def check_backup_name(name: str) -> str:
    """Return `name` if it is a valid backup name (the Go tool's rule), else raise InvalidName."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidName(
            f"invalid backup name {name!r}: use a letter or '_' first, then letters, digits or '_', "
            "at most 128 characters"
        )
    return name


def join(*parts: str | int) -> str:
    """Join key parts with '/', ignoring empty parts and stray slashes at the joins."""
    cleaned = [str(p).strip("/") for p in parts]
    return "/".join(p for p in cleaned if p)


def as_prefix(key: str) -> str:
    """A key that names a folder: ends with exactly one '/', or is '' for the bucket root."""
    key = key.strip("/")
    return key + "/" if key else ""


def relative_to(prefix: str, key: str) -> str:
    """`key` without `prefix`, for a key a listing of `prefix` gave; raises MalformedKey when `key` is not
    under it. The rest is not checked: a key read from a file goes through check_relative_key instead."""
    if not key.startswith(prefix):
        raise MalformedKey(f"key {key[:200]!r} is not under {prefix!r}")
    return key[len(prefix) :]


@dataclass(frozen=True)
class InsertLogKey:
    """The IDs an insert log's key in the Milvus bucket names."""

    collection_id: int
    partition_id: int
    segment_id: int
    field_id: int
    log_id: int


@dataclass(frozen=True)
class DeltaLogKey:
    """The IDs a delta log's key in the Milvus bucket names (partition -1: a collection-level L0 log)."""

    collection_id: int
    partition_id: int
    segment_id: int
    log_id: int


@dataclass(frozen=True)
class MilvusLayout:
    """Where Milvus 2.3 keeps a collection's binlogs in its own bucket."""

    root: str  # minio.rootPath

    def insert_segment(self, collection_id: int, partition_id: int, segment_id: int) -> str:
        return as_prefix(join(self.root, INSERT_LOG, collection_id, partition_id, segment_id))

    def delta_segment(self, collection_id: int, partition_id: int, segment_id: int) -> str:
        return as_prefix(join(self.root, DELTA_LOG, collection_id, partition_id, segment_id))

    def insert_log(self, collection_id: int, partition_id: int, segment_id: int, field_id: int, log_id: int) -> str:
        return join(self.insert_segment(collection_id, partition_id, segment_id), *_ids(field_id, log_id))

    def delta_log(self, collection_id: int, partition_id: int, segment_id: int, log_id: int) -> str:
        return join(self.delta_segment(collection_id, partition_id, segment_id), *_ids(log_id))

    def parse_insert_log(self, key: str) -> InsertLogKey:
        """The inverse of insert_log: `<root>/insert_log/<coll>/<part>/<seg>/<field>/<log>`, else MalformedKey."""
        c, p, s, f, n = self._parse(key, INSERT_LOG, ("collection", "partition", "segment", "field", "log"))
        return InsertLogKey(c, p, s, f, n)

    def parse_delta_log(self, key: str) -> DeltaLogKey:
        """The inverse of delta_log: `<root>/delta_log/<coll>/<part>/<seg>/<log>`, else MalformedKey."""
        c, p, s, n = self._parse(key, DELTA_LOG, ("collection", "partition", "segment", "log"))
        return DeltaLogKey(c, p, s, n)

    def _parse(self, key: str, kind: str, names: tuple[str, ...]) -> list[int]:
        shape = join(self.root, kind, *(f"<{n}>" for n in names))
        folder = as_prefix(join(self.root, kind))
        parts = key[len(folder) :].split("/") if key.startswith(folder) else []
        if len(parts) != len(names):
            raise MalformedKey(f"key {key[:200]!r} is not a Milvus {kind.replace('_', ' ')} ({shape})")
        # Milvus numbers a collection-level L0 segment's partition -1; every other ID is non-negative.
        return [_parse_id(part, name, key, signed=name == "partition") for part, name in zip(parts, names, strict=True)]


@dataclass(frozen=True)
class BackupLayout:
    """Where a backup's meta and binlogs live under the backup root (FORMAT.md).

    The same layout, rooted under a temporary prefix of the Milvus bucket, holds the binlogs a
    restore copies there when the backup sits in another bucket or store.
    """

    root: str  # minio.backupRootPath ('' when the storage itself is rooted there)

    def backups_root(self) -> str:
        return as_prefix(self.root)

    def backup(self, name: str) -> str:
        return as_prefix(join(self.root, check_backup_name(name)))

    def meta(self, name: str, filename: str) -> str:
        return join(self.backup(name), META_DIR, filename)

    def insert_group(self, name: str, collection_id: int, partition_id: int, group_id: int | None) -> str:
        """The folder handed to Milvus's import: one group of segments (or the partition, old layout)."""
        return self._group(INSERT_LOG, name, collection_id, partition_id, group_id)

    def delta_group(self, name: str, collection_id: int, partition_id: int, group_id: int | None) -> str:
        return self._group(DELTA_LOG, name, collection_id, partition_id, group_id)

    def _group(self, kind: str, name: str, collection_id: int, partition_id: int, group_id: int | None) -> str:
        group = () if group_id is None else _ids(group_id)
        return as_prefix(join(self.backup(name), BINLOG_DIR, kind, *_ids(collection_id, partition_id), *group))

    def insert_segment(self, name: str, collection_id: int, partition_id: int, segment_id: int) -> str:
        """One segment's folder in the oldest layout, which has no group level: imported by itself."""
        return as_prefix(join(self.insert_group(name, collection_id, partition_id, None), *_ids(segment_id)))

    def delta_segment(self, name: str, collection_id: int, partition_id: int, segment_id: int) -> str:
        return as_prefix(join(self.delta_group(name, collection_id, partition_id, None), *_ids(segment_id)))

    def insert_binlog(
        self,
        name: str,
        collection_id: int,
        partition_id: int,
        group_id: int | None,
        segment_id: int,
        field_id: int,
        log_id: int,
    ) -> str:
        return join(self.insert_group(name, collection_id, partition_id, group_id), *_ids(segment_id, field_id, log_id))

    def delta_binlog(
        self, name: str, collection_id: int, partition_id: int, group_id: int | None, segment_id: int, log_id: int
    ) -> str:
        return join(self.delta_group(name, collection_id, partition_id, group_id), *_ids(segment_id, log_id))

    def l0_delta_binlog(self, name: str, collection_id: int, segment_id: int, log_id: int) -> str:
        """A collection-level L0 delete log (Milvus >= 2.5): partition -1, no group level."""
        return join(self.backup(name), BINLOG_DIR, DELTA_LOG, *_ids(collection_id, -1, segment_id, log_id))

    def object_key(self, name: str, relative: str) -> str:
        """The key of `relative` (a key inside the backup's folder, as a manifest records it).

        This is where every key read from a file is checked: it must stay inside the backup's folder,
        whatever the file says (no '..', '.', empty or absolute parts, backslashes or control characters).
        """
        return join(self.backup(name), check_relative_key(relative))

    def relative_key(self, name: str, key: str) -> str:
        """The inverse of object_key: `key` relative to the backup's folder."""
        prefix = self.backup(name)
        if not key.startswith(prefix):
            raise UnsafeKey(f"key {key!r} is not inside backup {name} ({prefix})")
        return check_relative_key(key[len(prefix) :])

    def rebase(self, key: str, onto: BackupLayout) -> str:
        """The key (or folder prefix) `key` of this layout moved to the same place under `onto`'s root:
        where a restore stages a backup's binlogs in the Milvus bucket."""
        moved = join(onto.backups_root(), relative_to(self.backups_root(), key))
        return moved + ("/" if key.endswith("/") else "")


def is_binlog(relative: str) -> bool:
    """True when `relative`, a key relative to a backup's folder, is among the backup's binlog copies."""
    return relative.startswith(BINLOG_DIR + "/")


_UNSAFE_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


def check_relative_key(relative: str) -> str:
    """`relative` if it names an object inside a folder without ever leaving it, else raise UnsafeKey."""
    if not isinstance(relative, str) or not relative:
        raise UnsafeKey(f"invalid object key {relative!r}: expected a non-empty key inside the backup")
    parts = relative.split("/")
    if (
        relative.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or _UNSAFE_CHARS.search(relative)
        or len(relative) > 1024
    ):
        raise UnsafeKey(
            f"refusing object key {relative[:200]!r}: it would leave the backup's folder "
            "(absolute, '.', '..' or empty parts, backslashes or control characters)"
        )
    return relative


def check_backup_root(root: str, taken: dict[str, str]) -> str:
    """`root` (a backup root asked for per request) without its outer slashes, if it is a safe key prefix
    (as check_relative_key) that neither lies inside nor holds any of the `taken` roots ({what: root}):
    a listing of either would take the other's folders for backups, or binlogs for backup folders."""
    cleaned = root.strip("/") if isinstance(root, str) else root
    try:
        check_relative_key(cleaned)
    except UnsafeKey:
        raise InvalidRequest(
            f"invalid backup root {root!r}: use a path such as backups/team_a (no '.', '..' or empty parts, "
            "no backslashes or control characters)"
        ) from None
    for what, other in taken.items():
        other = other.strip("/")
        if not other or cleaned == other or cleaned.startswith(other + "/") or other.startswith(cleaned + "/"):
            raise InvalidRequest(
                f"backup root {cleaned!r} overlaps {what} {other or '(the bucket root)'!r}: choose a root beside it"
            )
    return cleaned


def _ids(*values: int) -> tuple[int, ...]:
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnsafeKey(f"invalid ID {value!r} in a backup's meta: expected an integer")
    return values


def log_id_of(log_path: str) -> int:
    """The log ID a binlog's key ends in, whatever its root and layout (a meta may leave log_id out)."""
    last = log_path.rsplit("/", 1)[-1]
    if last.isascii() and last.isdigit():
        return int(last)
    raise MalformedKey(f"binlog key {log_path[:200]!r} does not end in a log ID")


_ID = re.compile(r"[0-9]{1,20}")
_SIGNED_ID = re.compile(r"-?[0-9]{1,20}")


def _parse_id(text: str, what: str, key: str, *, signed: bool = False) -> int:
    if not (_SIGNED_ID if signed else _ID).fullmatch(text):
        raise MalformedKey(f"key {key[:200]!r} has {text[:40]!r} where its {what} ID should be")
    return int(text)


def restore_temp_root(milvus_root: str, restore_id: str) -> str:
    """Where a restore stages binlogs inside the Milvus bucket when the backup lives elsewhere."""
    return join(milvus_root, "backup_restore_temp", restore_id)


_RESTORE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_restore_id(restore_id: str) -> str:
    """Return `restore_id` if it may name a restore record, else raise InvalidRequest."""
    if not isinstance(restore_id, str) or not _RESTORE_ID.fullmatch(restore_id):
        raise InvalidRequest(f"invalid restore id {restore_id!r}: use 1 to 64 letters, digits, '_' or '-'")
    return restore_id


def restore_record(milvus_root: str, restore_id: str) -> str:
    """A restore's record (state, times, per-collection tasks) in the Milvus bucket, beside the staging
    prefix: never under the backup root, where every folder is taken for a backup (by us and the Go tool)."""
    return join(milvus_root, "backup_restore_records", check_restore_id(restore_id) + ".json")


JOB_RECORDS = "backup_job_records"


def job_records_root(milvus_root: str) -> str:
    """Where every job's record (and a request to cancel it) lives in the Milvus bucket, beside the restore
    records: every process on the same config finds them there, and nothing goes under the backup root."""
    return as_prefix(join(milvus_root, JOB_RECORDS))


def job_record(milvus_root: str, job_id: str) -> str:
    return join(job_records_root(milvus_root), check_job_id(job_id) + ".json")


def job_cancel_request(milvus_root: str, job_id: str) -> str:
    """An empty object asking the job's own process to cancel it: not a field of the record, which only
    its owner writes (a field would be overwritten by the owner's next write)."""
    return join(job_records_root(milvus_root), check_job_id(job_id) + ".cancel")


def job_id_of(key: str, milvus_root: str) -> str | None:
    """The id of a job record's key, or None for any other key (a cancel request, a stray object)."""
    name = key[len(job_records_root(milvus_root)) :] if key.startswith(job_records_root(milvus_root)) else ""
    job_id = name.removesuffix(".json")
    return job_id if name.endswith(".json") and _RESTORE_ID.fullmatch(job_id) else None


def check_job_id(job_id: str) -> str:
    """Return `job_id` if it may name a job record (restore ids are job ids), else raise InvalidRequest."""
    if not isinstance(job_id, str) or not _RESTORE_ID.fullmatch(job_id):
        raise InvalidRequest(f"invalid job id {job_id!r}: use 1 to 64 letters, digits, '_' or '-'")
    return job_id


def swap_intents_root(milvus_root: str) -> str:
    """Where a drop-existing restore writes what it is about to swap, before the first step (see core.swap)."""
    return join(milvus_root, "backup_restore_swaps")


def swap_intent(milvus_root: str, restore_id: str) -> str:
    return join(swap_intents_root(milvus_root), check_restore_id(restore_id) + ".json")


def probe_key(root: str, probe_id: str) -> str:
    """A short-lived object `check` writes, copies and deletes: a file directly under the root, never a
    folder, so it can never be listed as a backup."""
    return join(root, f".milvus_backup_probe_{probe_id}")
