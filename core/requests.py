"""Turning what users type (the Go tool's `db_collections` maps, `-d db1,db2`) into engine requests."""

from __future__ import annotations

import json
from typing import Any

from milvus_backup.core.errors import InvalidRequest, NotFound
from milvus_backup.core.meta import BackupInfo
from milvus_backup.core.milvus import DEFAULT_DB, Milvus


def parse_db_collections(value: Any) -> dict[str, list[str]]:
    """`{"db1": ["c1", "c2"], "db2": []}`, given as an object or as its JSON text (as the Go tool takes it)."""
    if value in (None, "", {}):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidRequest('db_collections is not valid JSON: write {"db": ["coll", ...], "db2": []}') from None
    if not isinstance(value, dict) or not all(
        isinstance(db, str) and isinstance(names, list) and all(isinstance(n, str) for n in names)
        for db, names in value.items()
    ):
        raise InvalidRequest(
            "db_collections must map database names to lists of collection names, "
            'e.g. {"default": ["hello_milvus"], "db2": []}'
        )
    return {db or DEFAULT_DB: list(names) for db, names in value.items()}


def collections_in_milvus(milvus: Milvus, db_collections: dict[str, list[str]]) -> list[str]:
    """`db.name` items for a backup; an empty list stands for every collection of that database."""
    names: list[str] = []
    known = milvus.list_databases()
    for db, colls in db_collections.items():
        if db not in known:
            raise NotFound(f"database {db} not found in Milvus (it has: {', '.join(known)})")
        for name in colls or milvus.list_collections(db):
            names.append(name if "." in name else f"{db}.{name}")
    if not names:
        raise NotFound("there are no collections to back up in database(s) " + ", ".join(db_collections))
    return names


def collections_in_backup(info: BackupInfo, db_collections: dict[str, list[str]]) -> list[str]:
    """`db.name` items for a restore; an empty list stands for every collection of that database in the backup."""
    names: list[str] = []
    for db, colls in db_collections.items():
        in_db = [c.collection_name for c in info.collection_backups if (c.db_name or DEFAULT_DB) == db]
        if not in_db:
            raise NotFound(f"backup {info.name} holds no collection of database {db}")
        names += [f"{db}.{name}" for name in (colls or in_db)]
    return names
