"""Reading the Go tool's `db_collections` map, as the API and scripts send it; the engine resolves it."""

from __future__ import annotations

import json
from typing import Any

from milvus_backup.core.errors import InvalidRequest
from milvus_backup.core.milvus import DEFAULT_DB


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
