"""The upstream's ways of naming collections, as the API, the CLI and scripts send them; the engine resolves them:
`db_collections` maps and CollFilter maps (`filter` on create, `restorePlan.filter` on restore)."""

from __future__ import annotations

import json
import re
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


# -- CollFilter: which databases and collections ----------------------------------------------------
#
# The upstream's filter maps a database to a CollFilter {"colls": [...]}: its named collections, "*" for
# every collection of it, or none for the database alone. Here it is a dict db -> names, with ["*"] for
# every collection and [] for the database alone. The CLI writes it as `coll,db1.coll,db1.*,db1.`.

ALL = "*"
CollFilter = dict[str, list[str]]
_WORD = r"[A-Za-z0-9_]+"
_RULES = (
    (re.compile(rf"({_WORD})\.\*"), lambda m: (m[1], ALL)),  # db1.*  every collection of db1
    (re.compile(rf"({_WORD})\.({_WORD})"), lambda m: (m[1], m[2])),  # db1.coll
    (re.compile(rf"({_WORD})"), lambda m: (DEFAULT_DB, m[1])),  # coll, in the default database
    (re.compile(rf"({_WORD})\."), lambda m: (m[1], "")),  # db1.  the database alone
)
_FILTER_HELP = "write coll, db1.coll, db1.* (every collection of db1) or db1. (the database alone), comma-separated"


def parse_filter(text: str) -> CollFilter:
    """The CLI's `--filter coll,db1.coll,db1.*,db1.` as a CollFilter; one clear line when a rule is malformed."""
    result: CollFilter = {}
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InvalidRequest(f"the filter is empty: {_FILTER_HELP}")
    for item in items:
        match = next(((m, read) for rule, read in _RULES if (m := rule.fullmatch(item))), None)
        if match is None:
            raise InvalidRequest(f"bad filter rule {item!r}: {_FILTER_HELP}")
        db, name = match[1](match[0])
        _add(result, db, name)
    return result


def _add(result: CollFilter, db: str, name: str) -> None:
    names = result.setdefault(db, [])
    if name == ALL or names == [ALL]:
        result[db] = [ALL]
    elif name and name not in names:
        names.append(name)


def filter_from_map(value: dict[str, list[str]], field_name: str = "filter") -> CollFilter:
    """The upstream's map (database -> its CollFilter's colls) checked: names are words, "*" stands alone."""
    result: CollFilter = {}
    for db, names in value.items():
        db = db or DEFAULT_DB
        if not re.fullmatch(_WORD, db):
            raise InvalidRequest(f"{field_name}: bad database name {db!r}")
        if ALL in names and len(names) > 1:
            raise InvalidRequest(f'{field_name}.{db}.colls: "*" (every collection) cannot be listed with names')
        bad = [n for n in names if n != ALL and not re.fullmatch(_WORD, n)]
        if bad:
            raise InvalidRequest(f"{field_name}.{db}.colls: bad collection name {bad[0]!r}")
        result[db] = []
        for name in names:
            _add(result, db, name)
    return result


def filter_allows(collection_filter: CollFilter, db: str, name: str) -> bool:
    names = collection_filter.get(db or DEFAULT_DB)
    return names is not None and (names == [ALL] or name in names)


def describe_filter(collection_filter: CollFilter) -> str:
    """The filter as the CLI writes it, for messages."""
    rules = [f"{db}.{name}" for db, names in collection_filter.items() for name in names or [""]]
    return ",".join(rule.removeprefix(f"{DEFAULT_DB}.") if not rule.endswith(".") else rule for rule in rules)
