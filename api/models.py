"""The HTTP API's request bodies and answer envelope, in the upstream's JSON spelling (its `backup.proto`).

`UPSTREAM_FIELDS` is the one table of every field the upstream's request messages define and what this
tool does with it: IMPLEMENTED, HINT (accepted and logged: it changes nothing here) or UNSUPPORTED (it
would change the result and is not carried out: answered code 1 "not supported: <field>" when set, never
silently ignored). The models below take their fields' descriptions from it, the server refuses and logs
by it, and the closing note of issue 12 is printed from it (`python -m milvus_backup.api.models`).

Types are strict (a string where a list is expected is an error, not a guess) and a name the upstream
does not define is refused, so a misspelt `collection_name` cannot silently back up every collection.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class Support(StrEnum):
    IMPLEMENTED = "implemented"
    HINT = "hint"  # accepted and logged; no effect with Milvus 2.3.5
    UNSUPPORTED = "not supported"  # refused with code 1 when given a value


IMPL, HINT, UNSUP = Support.IMPLEMENTED, Support.HINT, Support.UNSUPPORTED
_GC = "Milvus 2.3.5 has no GC pause endpoint (it answers 404): the pause is asked for, and a warning logged"

# message -> field (the upstream's JSON name) -> (what we do, how)
UPSTREAM_FIELDS: dict[str, dict[str, tuple[Support, str]]] = {
    "CreateBackupRequest": {
        "requestId": (IMPL, "echoed in the answer"),
        "backup_name": (IMPL, "default backup_<UTC yyyy_mm_dd_hh_mm_ss>_<nanos>"),
        "collection_names": (IMPL, '"name" or "db.name"; empty: every collection (deprecated upstream: use filter)'),
        "async": (IMPL, "answer at once; poll get_backup"),
        "db_collections": (IMPL, '{"db": ["coll"], "db2": []} (an empty list: the whole database), or its JSON text'),
        "force": (IMPL, "deprecated spelling of strategy skip_flush"),
        "meta_only": (IMPL, "deprecated spelling of strategy meta_only"),
        "gc_pause_enable": (IMPL, f"pause Milvus GC during the copy, resumed after (default: the config); {_GC}"),
        "gc_pause_seconds": (IMPL, f"how long the GC pause lasts at most (default 3600); {_GC}"),
        "gc_pause_address": (
            IMPL,
            "Milvus's management URL, http(s)://host:9091 (default: backup.gcPause.address)",
        ),
        "rbac": (IMPL, "also back up users, roles and grants (never passwords)"),
        "backup_root_path": (IMPL, "another root in the same S3 backup store; may not overlap the configured one"),
        "filter": (IMPL, '{"db": {"colls": ["c1"]}, "db2": {"colls": ["*"]}}: the collections to back up'),
        "strategy": (
            IMPL,
            "meta_only, skip_flush (copy what is persisted), bulk_flush (one flush per database), "
            "serial_flush (default: one collection after another)",
        ),
        "with_index_extra": (HINT, "extra index files of Milvus 2.5+; a 2.3.5 index has none"),
        "format": (
            IMPL,
            '"", "auto" or "binlog": a binlog backup; "snapshot" is refused (no snapshots in Milvus 2.3.5)',
        ),
    },
    "RestoreBackupRequest": {
        "requestId": (IMPL, "echoed in the answer"),
        "backup_name": (IMPL, "the backup to restore"),
        "collection_names": (IMPL, '"name" or "db.name"; empty: all of the backup'),
        "collection_suffix": (IMPL, "restore as <name><suffix>"),
        "collection_renames": (IMPL, '{"old": "new", "db1.c": "db2.c", "db1.*": "db2.*"}'),
        "async": (IMPL, "answer at once; poll get_restore"),
        "bucket_name": (UNSUP, "backups are read from the config's backup bucket (minio.backupBucketName)"),
        "path": (IMPL, "the backup's root in the backup store, as backup_root_path on create (default: the config's)"),
        "db_collections": (IMPL, "restore only these databases' collections"),
        "metaOnly": (IMPL, "create the collections, import no data"),
        "restoreIndex": (IMPL, "recreate the indexes"),
        "useAutoIndex": (IMPL, "with restoreIndex: vector indexes are recreated as AUTOINDEX, same metric"),
        "dropExistCollection": (IMPL, "drop a target collection that exists"),
        "dropExistIndex": (UNSUP, "only with skipCreateCollection, which is not supported"),
        "skipCreateCollection": (UNSUP, "a restore always creates its collections"),
        "id": (IMPL, "the restore's id (default: a new UUID)"),
        "skipImportDiskQuotaCheck": (HINT, "deprecated upstream; Milvus 2.3.5's import has no such check to skip"),
        "rbac": (IMPL, "also restore users, roles and grants; users get no password"),
        "maxShardNum": (IMPL, "at most this many shards per restored collection"),
        "skipParams": (IMPL, "keys left out when collections and indexes are recreated"),
        "useV2Restore": (HINT, "the upstream's newer import path; here always Milvus 2.3.5's backup-mode import"),
        "truncateBinlogByTs": (UNSUP, "for CDC: binlogs are imported whole"),
        "db_collections_after_rename": (IMPL, "keep only these targets, named after the suffix or renames"),
        "restorePlan": (IMPL, "database and collection mapping, a filter over the targets, per-collection overrides"),
        "ezkMapping": (UNSUP, "encryption keys: Milvus 2.3.5 has no encrypted collections"),
    },
    "RestorePlan": {
        "mapping": (IMPL, "a backed-up database's collections go to each target database"),
        "filter": (IMPL, "keep only these targets (CollFilter map over the target names)"),
    },
    "RestoreMapping": {
        "source": (IMPL, "a database in the backup"),
        "target": (IMPL, "the database to restore into"),
        "withProp": (HINT, "database properties: Milvus 2.3.5 databases have none"),
        "colls": (IMPL, "collections restored under another name, with overrides"),
    },
    "RestoreCollectionMapping": {
        "source": (IMPL, "a collection of the source database"),
        "target": (IMPL, "its name in the target database"),
        "override": (IMPL, "what the restored collection changes"),
    },
    "RestoreCollectionOverride": {
        "shardNum": (IMPL, "the restored collection's shard number (also read as shard_num)"),
        "description": (IMPL, "the restored collection's description"),
    },
    "CollFilter": {
        "colls": (IMPL, 'collection names, or ["*"] for every collection of the database, or [] for none'),
    },
    "SkipParams": {
        "collectionProperties": (IMPL, "collection property keys left out"),
        "fieldIndexParams": (IMPL, "keys left out of each field's index_params"),
        "fieldTypeParams": (IMPL, "keys left out of each field's type_params"),
        "indexParams": (IMPL, "keys left out of each recreated index's params"),
    },
    "GetBackupRequest": {
        "requestId": (IMPL, "echoed in the answer"),
        "backup_name": (IMPL, "the backup's name"),
        "backup_id": (IMPL, "or its id"),
        "bucket_name": (UNSUP, "backups are read from the config's backup bucket"),
        "path": (UNSUP, "backups are read from the config's backup root"),
        "without_detail": (HINT, "deprecated upstream; the answer is the whole BackupInfo"),
    },
    "ListBackupsRequest": {
        "requestId": (IMPL, "echoed in the answer"),
        "collection_name": (IMPL, 'only backups holding it ("name" or "db.name")'),
    },
    "DeleteBackupRequest": {
        "requestId": (IMPL, "echoed in the answer"),
        "backup_name": (IMPL, "the backup to delete"),
    },
    "GetRestoreStateRequest": {
        "requestId": (IMPL, "echoed in the answer"),
        "id": (IMPL, "the restore's id"),
    },
}

# Fields of ours that the upstream does not define.
OWN_FIELDS = {"RestoreBackupRequest": {"load": "load the restored collections (this tool's addition)"}}


def _f(message: str, name: str, default: Any = None, **kwargs: Any) -> Any:
    """A model field described by the table."""
    support, how = UPSTREAM_FIELDS[message][name]
    if "default_factory" in kwargs:
        return Field(description=f"[{support}] {how}", **kwargs)
    return Field(default, description=f"[{support}] {how}", **kwargs)


def _empty(value: Any) -> bool:
    return value in (None, "", False, 0, [], {})


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    def given(self, support: Support) -> list[str]:
        """The fields of that support that were given a value, nested ones as "restorePlan.mapping.withProp"."""
        found: list[str] = []
        message = UPSTREAM_FIELDS.get(type(self).__name__.removesuffix("Body"), {})
        for attr, info in type(self).model_fields.items():
            name, value = info.alias or attr, getattr(self, attr)
            if message.get(name, (None,))[0] is support and not _empty(value):
                found.append(name)
            for child in value if isinstance(value, list) else value.values() if isinstance(value, dict) else [value]:
                if isinstance(child, _Message):
                    found += [f"{name}.{inner}" for inner in child.given(support) if f"{name}.{inner}" not in found]
        return found


class CollFilterBody(_Message):
    colls: list[str] = _f("CollFilter", "colls", default_factory=list)


class RestoreCollectionOverrideBody(_Message):
    shardNum: int = _f(
        "RestoreCollectionOverride", "shardNum", 0, validation_alias=AliasChoices("shardNum", "shard_num")
    )
    description: str = _f("RestoreCollectionOverride", "description", "")


class RestoreCollectionMappingBody(_Message):
    source: str = _f("RestoreCollectionMapping", "source", "")
    target: str = _f("RestoreCollectionMapping", "target", "")
    override: RestoreCollectionOverrideBody | None = _f("RestoreCollectionMapping", "override")


class RestoreMappingBody(_Message):
    source: str = _f("RestoreMapping", "source", "")
    target: str = _f("RestoreMapping", "target", "")
    withProp: bool = _f("RestoreMapping", "withProp", False)
    colls: list[RestoreCollectionMappingBody] = _f("RestoreMapping", "colls", default_factory=list)


class RestorePlanBody(_Message):
    mapping: list[RestoreMappingBody] = _f("RestorePlan", "mapping", default_factory=list)
    filter: dict[str, CollFilterBody] | None = _f("RestorePlan", "filter")


class SkipParamsBody(_Message):
    collectionProperties: list[str] = _f("SkipParams", "collectionProperties", default_factory=list)
    fieldIndexParams: list[str] = _f("SkipParams", "fieldIndexParams", default_factory=list)
    fieldTypeParams: list[str] = _f("SkipParams", "fieldTypeParams", default_factory=list)
    indexParams: list[str] = _f("SkipParams", "indexParams", default_factory=list)


_DbCollections = dict[str, list[str]] | str | None


class CreateBackupRequest(_Message):
    requestId: str = _f("CreateBackupRequest", "requestId", "")
    backup_name: str = _f("CreateBackupRequest", "backup_name", "")
    collection_names: list[str] = _f("CreateBackupRequest", "collection_names", default_factory=list)
    async_: bool = _f("CreateBackupRequest", "async", False, alias="async")
    db_collections: _DbCollections = _f("CreateBackupRequest", "db_collections")
    force: bool = _f("CreateBackupRequest", "force", False)
    meta_only: bool = _f("CreateBackupRequest", "meta_only", False)
    gc_pause_enable: bool | None = _f("CreateBackupRequest", "gc_pause_enable")
    gc_pause_seconds: int = _f("CreateBackupRequest", "gc_pause_seconds", 0)
    gc_pause_address: str = _f("CreateBackupRequest", "gc_pause_address", "")
    rbac: bool = _f("CreateBackupRequest", "rbac", False)
    backup_root_path: str = _f("CreateBackupRequest", "backup_root_path", "")
    filter: dict[str, CollFilterBody] | None = _f("CreateBackupRequest", "filter")
    strategy: str = _f("CreateBackupRequest", "strategy", "")
    with_index_extra: bool = _f("CreateBackupRequest", "with_index_extra", False)
    format: str = _f("CreateBackupRequest", "format", "")


class RestoreBackupRequest(_Message):
    requestId: str = _f("RestoreBackupRequest", "requestId", "")
    backup_name: str = _f("RestoreBackupRequest", "backup_name", ...)
    collection_names: list[str] = _f("RestoreBackupRequest", "collection_names", default_factory=list)
    collection_suffix: str = _f("RestoreBackupRequest", "collection_suffix", "")
    collection_renames: dict[str, str] = _f("RestoreBackupRequest", "collection_renames", default_factory=dict)
    async_: bool = _f("RestoreBackupRequest", "async", False, alias="async")
    bucket_name: Any = _f("RestoreBackupRequest", "bucket_name")
    path: str = _f("RestoreBackupRequest", "path", "")
    db_collections: _DbCollections = _f("RestoreBackupRequest", "db_collections")
    metaOnly: bool = _f("RestoreBackupRequest", "metaOnly", False)
    restoreIndex: bool = _f("RestoreBackupRequest", "restoreIndex", False)
    useAutoIndex: bool = _f("RestoreBackupRequest", "useAutoIndex", False)
    dropExistCollection: bool = _f("RestoreBackupRequest", "dropExistCollection", False)
    dropExistIndex: Any = _f("RestoreBackupRequest", "dropExistIndex")
    skipCreateCollection: Any = _f("RestoreBackupRequest", "skipCreateCollection")
    id: str = _f("RestoreBackupRequest", "id", "")
    skipImportDiskQuotaCheck: bool = _f("RestoreBackupRequest", "skipImportDiskQuotaCheck", False)
    rbac: bool = _f("RestoreBackupRequest", "rbac", False)
    maxShardNum: int = _f("RestoreBackupRequest", "maxShardNum", 0)
    skipParams: SkipParamsBody | None = _f("RestoreBackupRequest", "skipParams")
    useV2Restore: bool = _f("RestoreBackupRequest", "useV2Restore", False)
    truncateBinlogByTs: Any = _f("RestoreBackupRequest", "truncateBinlogByTs")
    db_collections_after_rename: _DbCollections = _f("RestoreBackupRequest", "db_collections_after_rename")
    restorePlan: RestorePlanBody | None = _f("RestoreBackupRequest", "restorePlan")
    ezkMapping: Any = _f("RestoreBackupRequest", "ezkMapping")
    load: bool = Field(False, description=OWN_FIELDS["RestoreBackupRequest"]["load"])


class Envelope(BaseModel):
    requestId: str
    code: int = Field(
        description="0 success, 1 not supported, 2 no permission, 3 fail, 400 parameter error, 404 not found"
    )
    msg: str
    data: Any = None


def support_table() -> str:
    """Every field of the upstream's request messages and what this tool does with it, as a Markdown table."""
    lines = ["| message | field | here | how |", "|---|---|---|---|"]
    for message, fields in UPSTREAM_FIELDS.items():
        lines += [f"| {message} | `{name}` | {support} | {how} |" for name, (support, how) in fields.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(support_table())
