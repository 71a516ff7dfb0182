"""The HTTP API's request bodies and answer envelope, with the Go tool's field names (INTERFACES.md).

Types are strict (a string where a list is expected is an error, not a guess) and unknown fields are
refused, so a misspelt `collection_name` cannot silently back up every collection.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_GO_ONLY = "the Go tool's; not supported here: accepted only when empty or false"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    requestId: str = Field("", description="echoed in the answer")
    # Fields of the Go tool's requests that this tool does not carry out. Clients that send them empty
    # (as generated clients do) are served; a real value is refused with code 1 rather than ignored.
    bucket_name: Any = Field(None, description=_GO_ONLY)
    path: Any = Field(None, description=_GO_ONLY)
    rbac: Any = Field(None, description=_GO_ONLY)

    def unsupported(self) -> list[str]:
        """The Go-only fields given a real value."""
        names = [n for n, f in type(self).model_fields.items() if f.description == _GO_ONLY]
        return [n for n in names if getattr(self, n) not in (None, "", False, 0, [], {})]


class CreateBackupRequest(_Body):
    backup_name: str = Field("", description="default backup_<UTC yyyy_mm_dd_hh_mm_ss>_<nanos>")
    collection_names: list[str] = Field(default_factory=list, description='"name" or "db.name"; empty: all')
    db_collections: dict[str, list[str]] | str | None = Field(
        None, description='{"db": ["coll", ...], "db2": []} (an empty list: the whole database), or its JSON text'
    )
    async_: bool = Field(False, alias="async", description="answer at once; poll get_backup")
    meta_only: bool = False
    gc_pause_enable: bool | None = Field(None, description="pause Milvus GC during the copy (default: the config)")
    force: Any = Field(None, description=_GO_ONLY)
    gc_pause_address: Any = Field(None, description=_GO_ONLY)


class RestoreBackupRequest(_Body):
    backup_name: str
    collection_names: list[str] = Field(default_factory=list, description='"name" or "db.name"; empty: all')
    db_collections: dict[str, list[str]] | str | None = Field(
        None, description="restore only these databases' collections"
    )
    collection_suffix: str = ""
    collection_renames: dict[str, str] = Field(
        default_factory=dict, description='{"old": "new", "db1.c": "db2.c", "db1.*": "db2.*"}'
    )
    async_: bool = Field(False, alias="async", description="answer at once; poll get_restore")
    metaOnly: bool = False
    restoreIndex: bool = False
    dropExistCollection: bool = False
    load: bool = Field(False, description="load the restored collections (this tool's addition)")
    id: str = Field("", description="the restore's id (default: a new UUID)")
    skipCreateCollection: Any = Field(None, description=_GO_ONLY)
    dropExistIndex: Any = Field(None, description=_GO_ONLY)
    useAutoIndex: Any = Field(None, description=_GO_ONLY)
    maxShardNum: Any = Field(None, description=_GO_ONLY)


class Envelope(BaseModel):
    requestId: str
    code: int = Field(
        description="0 success, 1 not supported, 2 no permission, 3 fail, 400 parameter error, 404 not found"
    )
    msg: str
    data: Any = None
