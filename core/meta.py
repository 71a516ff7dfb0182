"""The backup meta model (the BackupInfo tree) and its JSON, as zilliztech/milvus-backup writes it.

A backup's `meta/` folder holds five JSON files (FORMAT.md). They are Go `encoding/json` over the
tool's proto structs, and both tools must read each other's backups, so this module reproduces
that encoding: proto key order, enums as integers, int64 as numbers, empty values left out except a
few keys the Go tool always writes. Reading is lenient (missing keys take defaults) and lossless:
keys this model does not know are kept in each object's `extra` and written back, and an object
read from a file re-encodes to the same set of keys that file had.

One generic encoder/decoder, driven by the dataclass fields and their type hints, serves every class.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
import tempfile
import types
import typing
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, TypeVar

from milvus_backup.core.errors import BackupToolError
from milvus_backup.core.paths import (
    BACKUP_META,
    COLLECTION_META,
    FULL_META,
    META_WRITE_ORDER,
    PARTITION_META,
    SEGMENT_META,
)

T = TypeVar("T")
_META_IN_MEMORY = 1024 * 1024  # a larger meta file is written through a temporary file on disk
_TEXT_BUFFER = 256 * 1024  # characters of JSON text gathered before they are encoded and written
_INT_STRING = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() also accepts '²', which int() refuses


class MetaError(BackupToolError):
    """A meta file that cannot be read: not JSON, or not the shape of a backup's meta."""


class BackupState(enum.IntEnum):
    """A backup's state_code, numbered as the Go tool numbers it (restores use the same numbers)."""

    INITIAL = 0
    EXECUTING = 1
    SUCCESS = 2
    FAIL = 3
    TIMEOUT = 4


def _jfield(
    default: Any = dataclasses.MISSING,
    *,
    json_name: str | None = None,
    always: bool = False,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A JSON-mapped dataclass field: `json_name` when the key differs from the attribute name,
    `always` for the keys the Go tool writes even when empty (its generator strips their omitempty)."""
    return field(default=default, default_factory=factory, metadata={"json": json_name, "always": always})


def _extra() -> Any:
    # Keys the model does not know, in the order read; written back after the known keys.
    return field(default_factory=dict, metadata={"skip": True})


def _source_keys_field() -> Any:
    # The known keys present in the JSON an object was read from (None for objects built here).
    # The reference examples keep some zero values Go would omit (`"fieldID":0`) and leave out
    # some it always writes (`progress`); remembering what was there keeps a rewrite faithful to either.
    return field(default=None, init=False, repr=False, compare=False, metadata={"skip": True})


@dataclass(slots=True)
class KeyValue:
    key: str = ""
    value: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class Binlog:
    log_path: str = ""  # the SOURCE key in the Milvus bucket, not the backup's copy
    log_size: int = _jfield(0, always=True)
    log_id: int = 0
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class FieldBinlog:
    field_id: int = _jfield(0, json_name="fieldID")  # 0 for delta logs
    binlogs: list[Binlog] = _jfield(factory=list)
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()

    @property
    def size(self) -> int:
        return sum(b.log_size for b in self.binlogs)


@dataclass(slots=True)
class Segment:
    segment_id: int = 0
    collection_id: int = 0
    partition_id: int = 0  # -1 for a collection-level L0 segment
    num_of_rows: int = 0
    binlogs: list[FieldBinlog] = _jfield(factory=list)
    deltalogs: list[FieldBinlog] = _jfield(factory=list)
    size: int = _jfield(0, always=True)
    group_id: int = 0
    is_l0: bool = False
    v_channel: str = ""
    storage_version: int = 0
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()

    @property
    def insert_size(self) -> int:
        return sum(fb.size for fb in self.binlogs)

    @property
    def delta_size(self) -> int:
        return sum(fb.size for fb in self.deltalogs)


@dataclass(slots=True)
class Partition:
    partition_id: int = 0
    partition_name: str = ""
    collection_id: int = 0
    segment_backups: list[Segment] = _jfield(factory=list)
    size: int = _jfield(0, always=True)
    load_state: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class IndexInfo:
    field_name: str = ""
    index_name: str = ""
    index_type: str = ""
    params: dict[str, str] = _jfield(factory=dict)
    index_id: int = 0
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class Field:
    field_id: int = _jfield(0, json_name="fieldID")
    name: str = ""
    is_primary_key: bool = False
    description: str = ""
    data_type: int = 0  # schemapb.DataType number (FORMAT.md)
    type_params: list[KeyValue] = _jfield(factory=list)
    index_params: list[KeyValue] = _jfield(factory=list)
    auto_id: bool = _jfield(False, json_name="autoID")
    element_type: int = 0
    default_value: Any = None  # a proto ValueField as Go encodes it; kept opaque
    is_dynamic: bool = False
    is_partition_key: bool = False
    nullable: bool = False
    is_function_output: bool = False
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class Schema:
    name: str = ""
    description: str = ""
    auto_id: bool = _jfield(False, json_name="autoID")
    fields: list[Field] = _jfield(factory=list)
    enable_dynamic_field: bool = False
    properties: list[KeyValue] = _jfield(factory=list)
    functions: list[Any] = _jfield(factory=list)  # Milvus FunctionSchema objects, kept opaque
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class Collection:
    id: str = ""  # the backup's id
    collection_id: int = 0
    db_name: str = ""
    collection_name: str = ""
    schema: Schema = _jfield(factory=Schema)
    shards_num: int = 0
    consistency_level: int = 0  # 0 Strong, 1 Session, 2 Bounded, 3 Eventually, 4 Customized
    partition_backups: list[Partition] = _jfield(factory=list)
    backup_timestamp: int = 0  # TSO
    size: int = _jfield(0, always=True)
    has_index: bool = _jfield(False, always=True)
    index_infos: list[IndexInfo] = _jfield(factory=list)
    load_state: str = ""  # "NotLoad" | "Loading" | "Loaded"
    backup_physical_timestamp: int = 0
    channel_checkpoints: dict[str, str] = _jfield(factory=dict)  # vchannel -> base64 MsgPosition
    l0_segments: list[Segment] = _jfield(factory=list)
    properties: list[KeyValue] = _jfield(factory=list)
    db_id: int = 0
    virtual_channel_names: list[str] = _jfield(factory=list)
    physical_channel_names: list[str] = _jfield(factory=list)
    aliases: list[str] = _jfield(factory=list)
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()

    def segments(self) -> list[Segment]:
        """The partition segments (not the collection-level L0 ones)."""
        return [s for p in self.partition_backups for s in p.segment_backups]

    @property
    def num_rows(self) -> int:
        return sum(s.num_of_rows for s in self.segments())


@dataclass(slots=True)
class Database:
    db_name: str = ""
    db_id: int = 0
    properties: list[KeyValue] = _jfield(factory=list)
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


# --- RBAC (BackupInfo.rbac_meta), the upstream's RBACMeta: Milvus's own RBAC messages, by name ---------


@dataclass(slots=True)
class RoleEntity:
    name: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class UserEntity:
    name: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class ObjectEntity:
    name: str = ""  # the object type: Global, Collection, User
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class PrivilegeEntity:
    name: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class GrantorEntity:
    user: UserEntity | None = None
    privilege: PrivilegeEntity | None = None
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class GrantEntity:
    role: RoleEntity | None = None
    object: ObjectEntity | None = None
    object_name: str = ""  # a collection name, or "*"
    grantor: GrantorEntity | None = None
    db_name: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()

    def key(self) -> tuple[str, str, str, str, str]:
        """What makes a grant itself (role, object type, object, database, privilege), not who granted it."""
        return (
            self.role.name if self.role else "",
            self.object.name if self.object else "",
            self.object_name,
            self.db_name or "default",
            self.grantor.privilege.name if self.grantor and self.grantor.privilege else "",
        )


@dataclass(slots=True)
class UserInfo:
    user: str = ""
    password: str = ""  # never written by this tool (nor by the Go tool with Milvus 2.3); read if present
    roles: list[RoleEntity] = _jfield(factory=list)
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class PrivilegeGroupInfo:
    group_name: str = ""
    privileges: list[PrivilegeEntity] = _jfield(factory=list)
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class RBACMeta:
    users: list[UserInfo] = _jfield(factory=list)
    roles: list[RoleEntity] = _jfield(factory=list)
    grants: list[GrantEntity] = _jfield(factory=list)
    privilege_groups: list[PrivilegeGroupInfo] = _jfield(factory=list)  # Milvus ≥2.5; none on 2.3
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()


@dataclass(slots=True)
class BackupInfo:
    id: str = ""
    state_code: BackupState = _jfield(BackupState.INITIAL, always=True)
    error_message: str = _jfield("", json_name="errorMessage")
    start_time: int = 0
    end_time: int = 0
    progress: int = _jfield(0, always=True)
    name: str = ""
    backup_timestamp: int = 0
    collection_backups: list[Collection] = _jfield(factory=list)
    size: int = _jfield(0, always=True)
    milvus_version: str = ""
    rbac_meta: RBACMeta | None = None  # only in backups made with rbac (core.rbac)
    database_backups: list[Database] = _jfield(factory=list)
    meta_size: int = _jfield(0, always=True)
    format: str = ""
    extra: dict[str, Any] = _extra()
    _source_keys: frozenset[str] | None = _source_keys_field()

    def collection(self, db: str, name: str) -> Collection | None:
        """The backed-up collection `db.name`; old backups leave db_name empty for "default"."""
        db = db or "default"
        for c in self.collection_backups:
            if (c.db_name or "default") == db and c.collection_name == name:
                return c
        return None


# --- the generic encoding -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    attr: str
    json: str
    hint: Any
    always: bool
    item: Any  # for a list of meta objects, their class (such a list can be written an item at a time)


_KEYS: dict[type, tuple[_Key, ...]] = {}


def _keys(cls: type) -> tuple[_Key, ...]:
    """A meta dataclass's JSON keys, worked out once per class (a race computes the same tuple twice)."""
    found = _KEYS.get(cls)
    if found is not None:
        return found
    hints = typing.get_type_hints(cls)
    _KEYS[cls] = found = tuple(
        _Key(
            f.name,
            f.metadata.get("json") or f.name,
            hints[f.name],
            f.metadata.get("always", False),
            _item(hints[f.name]),
        )
        for f in dataclasses.fields(cls)
        if not f.metadata.get("skip")
    )
    return found


def _item(hint: Any) -> Any:
    args = typing.get_args(hint)
    return args[0] if typing.get_origin(hint) is list and dataclasses.is_dataclass(args[0]) else None


def _is_empty(value: Any) -> bool:
    # Go's omitempty: false, 0, "", nil, and empty slices/maps; a struct is empty when nothing of it is written.
    return value is None or (isinstance(value, (bool, int, float, str, list, dict)) and not value)


def _encode_value(tp: Any, value: Any) -> Any:
    if tp is Any or value is None:  # opaque values go back out exactly as read
        return value
    if dataclasses.is_dataclass(value):
        return encode(value)
    if isinstance(value, enum.IntEnum):
        return int(value)
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return _encode_value(_non_none(tp), value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_encode_value(item, v) for v in value]
    if origin is dict:
        _, item = typing.get_args(tp)
        # Go's encoding/json writes map keys sorted.
        return {k: _encode_value(item, value[k]) for k in sorted(value)}
    return value


def encode(obj: Any) -> dict[str, Any]:
    """One meta object as the JSON object the Go tool writes (keys in proto order, then `extra`)."""
    out: dict[str, Any] = {}
    source = obj._source_keys
    for key in _keys(type(obj)):
        value = _encode_value(key.hint, getattr(obj, key.attr))
        if not _omitted(key, value, source):
            out[key.json] = value
    for k, v in obj.extra.items():
        out.setdefault(k, v)
    return out


def _omitted(key: _Key, value: Any, source: frozenset[str] | None) -> bool:
    """Go's omitempty, except for a key the object was read with (or, built here, one Go always writes)."""
    return _is_empty(value) and not (key.json in source if source is not None else key.always)


def _fields(obj: Any) -> Iterator[tuple[str, Any, Any]]:
    """(JSON key, value, item class) of each key `encode` writes for `obj`, in order: the value encoded,
    except a list of meta objects, given as it is with the class of its items (None for other values),
    so that `_write_object` can write a large list an item at a time. (`encode` does the same in one
    loop: it runs for every segment and binlog.)"""
    source = obj._source_keys
    written = set()
    for key in _keys(type(obj)):
        raw = getattr(obj, key.attr)
        item = key.item if raw is not None else None
        value = raw if item is not None else _encode_value(key.hint, raw)
        if _omitted(key, value, source):
            continue
        written.add(key.json)
        yield key.json, value, item
    for k, v in obj.extra.items():
        if k not in written:
            yield k, v, None


def _non_none(tp: Any) -> Any:
    return next(a for a in typing.get_args(tp) if a is not type(None))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _decode_value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (types.UnionType, typing.Union):  # `X | None`
        return _decode_value(_non_none(tp), value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise MetaError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_decode_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise MetaError(f"{where}: expected an object, got {type(value).__name__}")
        _, item = typing.get_args(tp)
        return {k: _decode_value(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise MetaError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int or (isinstance(tp, type) and issubclass(tp, enum.IntEnum)):
        # Protobuf's canonical JSON writes int64 as strings; accept them too.
        if isinstance(value, str) and _INT_STRING.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MetaError(f"{where}: expected an integer, got {value!r}")
        if tp is not int:
            try:
                return tp(value)
            except ValueError:  # a state this version does not know: keep the number
                return value
        return value
    if tp is str:
        if not isinstance(value, str):
            raise MetaError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"no JSON decoding for {tp!r}")  # a model bug, not a bad file


def _decode(cls: type[T], data: Any, where: str) -> T:
    if isinstance(data, cls):  # a segment of full_meta.json, decoded as the stream passed it (read_full_meta)
        return data
    if not isinstance(data, dict):
        raise MetaError(f"{where}: expected an object for {_type_name(cls)}, got {type(data).__name__}")
    known = {k.json: k for k in _keys(cls)}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    present: set[str] = set()
    for name, value in data.items():
        key = known.get(name)
        if key is None:
            extra[name] = value
        elif value is not None:  # null reads as "not set", as Go does
            values[key.attr] = _decode_value(key.hint, value, f"{where}.{name}" if where else name)
            present.add(name)
    factory: Any = cls  # a meta dataclass: every one has `extra` and `_source_keys`
    obj = factory(**values, extra=extra)
    obj._source_keys = _shared(frozenset(present))
    return typing.cast(T, obj)


_KEY_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared(keys: frozenset[str]) -> frozenset[str]:
    """One frozenset for each set of keys read: a backup's 100,000 binlogs have a few sets among them,
    and one each would take 20 MB. (At most 1,024 kept: a hostile meta cannot grow it further.)"""
    if len(_KEY_SETS) < 1024:
        return _KEY_SETS.setdefault(keys, keys)
    return _KEY_SETS.get(keys, keys)


def decode(cls: type[T], data: dict[str, Any]) -> T:
    """A meta object from its JSON object; missing keys take defaults, unknown keys go to `extra`."""
    return _decode(cls, data, "")


# --- the five meta files --------------------------------------------------------------------------


_BACKUP_META_KEYS = ("id", "state_code", "name", "size", "milvus_version", "format")


def meta_files(info: BackupInfo) -> dict[str, bytes]:
    """The five meta files of a backup, keyed by file name, in the order they must be written."""
    with rendered_meta(info) as rendered:
        return {name: meta.file.read() for name, meta in rendered.items()}


@contextmanager
def rendered_meta(info: BackupInfo, names: tuple[str, ...] = META_WRITE_ORDER) -> Iterator[dict[str, MetaFile]]:
    """render_meta's files, closed when the block ends."""
    rendered = render_meta(info, names)
    try:
        yield rendered
    finally:
        for meta in rendered.values():
            meta.file.close()


@dataclass
class MetaFile:
    """One meta file, written into a temporary file (in memory while small) at its start; close it."""

    file: BinaryIO
    length: int
    sha256: str


def render_meta(info: BackupInfo, names: tuple[str, ...] = META_WRITE_ORDER) -> dict[str, MetaFile]:
    """The five meta files of a backup (or those `names` picks), keyed by file name, in the order they must
    be written: the same bytes one json.dumps of each file's whole tree gives, written a binlog at a time
    (a backup of 100,000 binlogs held its meta's JSON trees and texts at once: 50 MB more than the
    BackupInfo; a backup being made reads its binlog lists back from disk as they are written)."""
    partitions = [part for coll in info.collection_backups for part in coll.partition_backups]
    write: dict[str, Callable[[_JsonOut], None]] = {
        BACKUP_META: lambda out: out.value(_backup_meta(info)),
        COLLECTION_META: lambda out: _write_infos(out, info.collection_backups, _COLLECTION_LEVEL),
        PARTITION_META: lambda out: _write_infos(out, partitions, _COLLECTION_LEVEL),
        SEGMENT_META: lambda out: _write_infos(out, [s for part in partitions for s in part.segment_backups], {}),
        FULL_META: lambda out: _write_object(out, info, {}),
    }
    rendered: dict[str, MetaFile] = {}
    try:
        for name in names:
            out = _JsonOut()
            rendered[name] = out.meta_file  # closed below should the writing fail
            write[name](out)
            rendered[name] = out.finish()
    except BaseException:
        for meta in rendered.values():
            meta.file.close()
        raise
    return rendered


# collection_meta.json and partition_meta.json: the same objects, less what the level below holds
_COLLECTION_LEVEL: dict[type, frozenset[str]] = {
    Collection: frozenset({"l0_segments"}),
    Partition: frozenset({"segment_backups"}),
}
# what holds a backup's many binlogs: a backup being made reads its binlog lists back from disk
_STREAMED = (BackupInfo, Collection, Partition, Segment, FieldBinlog)


def _backup_meta(info: BackupInfo) -> dict[str, Any]:
    top = {k: value for k, value, item in _fields(info) if item is None and k in _BACKUP_META_KEYS}
    return {k: top[k] for k in _BACKUP_META_KEYS if k in top}


def _write_infos(out: _JsonOut, objects: list[Any], skip: dict[type, frozenset[str]]) -> None:
    out.text('{"infos":')
    _write_list(out, objects, skip)
    out.text("}")


def _write_object(out: _JsonOut, obj: Any, skip: dict[type, frozenset[str]]) -> None:
    """`encode(obj)` less the keys `skip` names for its class, written in pieces: the lists of meta
    objects an item at a time."""
    left_out = skip.get(type(obj), frozenset())
    sep = "{"
    for k, value, item in _fields(obj):
        if k in left_out:
            continue
        out.text(sep + _text(k) + ":")
        sep = ","
        if item is None:
            out.value(value)
        else:
            _write_list(out, value, skip)
    out.text("}" if sep == "," else "{}")


def _write_list(out: _JsonOut, objects: list[Any], skip: dict[type, frozenset[str]]) -> None:
    """A list of meta objects: those that hold binlogs written in pieces, anything else (a binlog)
    encoded whole, one at a time."""
    sep = "["
    for obj in objects:
        out.text(sep)
        sep = ","
        if isinstance(obj, _STREAMED):
            _write_object(out, obj, skip)
        else:
            out.value(encode(obj))
    out.text("]" if sep == "," else "[]")


def _text(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


# --- a backup's meta as one JSON document (get, the API's backup views), a segment at a time -----------


class RenderedSegments:
    """The JSON text of each segment (json.dumps of encode(segment), as deep as the top of a document),
    made as a stream reads the segment whole, before its binlog lists are dropped (`keep`), and kept in
    a temporary file (in memory while small): what render_backup_json writes for the segment once the
    tree is read, indented to where it sits. One read of the file, and one segment held at a time."""

    def __init__(self, indent: int | None):
        self.indent = indent
        self._file = tempfile.SpooledTemporaryFile(_META_IN_MEMORY)  # noqa: SIM115 (closed by close())
        # id() of each segment kept -> it (held, so that no other object takes its id()) and its text's place
        self._at: dict[int, tuple[Segment, int, int]] = {}

    def keep(self, segment: Segment) -> Segment:
        """The segment without its binlog lists, its text written first: the `keep` of a stream read."""
        data = _dumped(encode(segment), self.indent).encode("utf-8")
        self._at[id(segment)] = (segment, self._file.tell(), len(data))
        self._file.write(data)
        return _without_binlogs(segment)

    def text(self, segment: Segment) -> str | None:
        """The text of a segment `keep` returned (None for another: one read whole, say)."""
        kept = self._at.get(id(segment))
        if kept is None or kept[0] is not segment:
            return None
        self._file.seek(kept[1])
        text: str = self._file.read(kept[2]).decode("utf-8")
        self._file.seek(0, 2)
        return text

    def close(self) -> None:
        self._file.close()
        self._at.clear()


def render_backup_json(
    info: BackupInfo,
    rendered: RenderedSegments | None = None,
    *,
    indent: int | None = None,
    last_word: dict[str, Any] | None = None,
) -> MetaFile:
    """The text of json.dumps(encode(info) updated with `last_word`, ensure_ascii=False), indented by
    `indent` (None: compact, separators "," and ":", as the API's answers are written), in a temporary
    file (in memory while small) written a segment at a time: a backup of 100,000 binlogs never has its
    binlog lists decoded or encoded at once. A segment `rendered` has the text of (`info` was read
    without binlog lists, through its `keep`) is written as that text; any other is encoded then (a
    backup job's tree, whose binlog lists are read back from its spill)."""
    fields = list(_fields(info))
    for key, value in (last_word or {}).items():  # as dict.update: in place, else at the end
        at = next((i for i, (k, _v, _item) in enumerate(fields) if k == key), len(fields))
        fields[at : at + 1] = [(key, value, None)]
    out = _JsonOut()
    try:
        _JsonView(out, indent, rendered).object(fields, 0)
        return out.finish()
    except BaseException:
        out.meta_file.file.close()
        raise


def _dumped(value: Any, indent: int | None) -> str:
    if indent is None:
        return _text(value)
    return json.dumps(value, indent=indent, ensure_ascii=False)


class _JsonView:
    """json.dumps's layout (indented or compact) written in pieces: the objects that hold segments key by
    key, each segment whole, one at a time, anything else by json.dumps itself."""

    def __init__(self, out: _JsonOut, indent: int | None, rendered: RenderedSegments | None):
        self.out, self.indent, self.rendered = out, indent, rendered
        self.colon = ":" if indent is None else ": "

    def _line(self, level: int) -> str:
        return "" if self.indent is None else "\n" + " " * (self.indent * level)

    def _indented(self, text: str, level: int) -> None:
        # a JSON text has no newline but those of its layout: each is indented as deep as the value sits
        self.out.text(text if self.indent is None else text.replace("\n", self._line(level)))

    def object(self, fields: list[tuple[str, Any, Any]], level: int) -> None:
        sep = "{"
        for key, value, item in fields:
            self.out.text(sep + self._line(level + 1) + _text(key) + self.colon)
            sep = ","
            if item is None:
                self._indented(_dumped(value, self.indent), level + 1)
            else:
                self.items(value, level + 1)
        self.out.text("{}" if sep == "{" else self._line(level) + "}")

    def items(self, objects: Iterable[Any], level: int) -> None:
        sep = "["
        for obj in objects:
            self.out.text(sep + self._line(level + 1))
            sep = ","
            if isinstance(obj, (Collection, Partition)):
                self.object(list(_fields(obj)), level + 1)
                continue
            text = self.rendered.text(obj) if self.rendered is not None and isinstance(obj, Segment) else None
            self._indented(text if text is not None else _dumped(encode(obj), self.indent), level + 1)
        self.out.text("[]" if sep == "[" else self._line(level) + "]")


class _JsonOut:
    """JSON text written in pieces into a temporary file that stays in memory while small, hashed on the
    way (a backup's manifest records each meta file's SHA-256)."""

    def __init__(self) -> None:
        self.meta_file = MetaFile(typing.cast(BinaryIO, tempfile.SpooledTemporaryFile(_META_IN_MEMORY)), 0, "")  # noqa: SIM115 (closed by its owner)
        self._sha256 = hashlib.sha256()
        self._parts: list[str] = []
        self._buffered = 0

    def text(self, piece: str) -> None:
        self._parts.append(piece)
        self._buffered += len(piece)
        if self._buffered > _TEXT_BUFFER:
            self._flush()

    def value(self, data: Any) -> None:
        self.text(_text(data))

    def finish(self) -> MetaFile:
        self._flush()
        self.meta_file.sha256 = self._sha256.hexdigest()
        self.meta_file.file.seek(0)
        return self.meta_file

    def _flush(self) -> None:
        data = "".join(self._parts).encode("utf-8")
        self.meta_file.file.write(data)
        self._sha256.update(data)
        self.meta_file.length += len(data)
        self._parts, self._buffered = [], 0


def _load(name: str, raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise MetaError(f"meta file {name} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # bytes that are not UTF-8
        raise MetaError(f"meta file {name} is not valid JSON: {e}") from None
    except RecursionError:
        raise MetaError(f"meta file {name} is nested too deeply to be a backup's meta") from None
    if not isinstance(data, dict):
        raise MetaError(f"meta file {name} should hold a JSON object, found {type(data).__name__}")
    return data


def _read(name: str, raw: bytes | str, cls: type[T]) -> T:
    data = _load(name, raw)
    try:
        return _decode(cls, data, "")
    except MetaError as e:
        raise MetaError(f"meta file {name}: {e}") from None
    except RecursionError:
        raise MetaError(f"meta file {name} is nested too deeply to be a backup's meta") from None


def _read_infos(name: str, raw: bytes | str, cls: type[T]) -> list[T]:
    data = _load(name, raw)
    try:
        infos: list[T] = _decode_value(list[cls], data.get("infos") or [], "infos")  # type: ignore[valid-type]
        return infos
    except MetaError as e:
        raise MetaError(f"meta file {name}: {e}") from None
    except RecursionError:
        raise MetaError(f"meta file {name} is nested too deeply to be a backup's meta") from None


def read_backup(files: dict[str, bytes], segments: list[Segment] | None = None) -> BackupInfo:
    """The BackupInfo tree from a backup's meta files (keyed by file name, `meta/` prefix optional).

    full_meta.json is preferred; without it the tree is rebuilt from the four level files, which
    hold no L0 segments (unless a segment_meta.json carries them) and no database list: `segments`, when
    given, stands for segment_meta.json's (read_segment_meta: read as a stream, without binlog lists).
    backup_meta.json, the file that marks a backup complete, has the last word on id, state, name, size.
    """
    files = {k.rsplit("/", 1)[-1]: v for k, v in files.items()}
    top = _read(BACKUP_META, files[BACKUP_META], BackupInfo) if BACKUP_META in files else None
    if FULL_META in files:
        info = _read(FULL_META, files[FULL_META], BackupInfo)
    elif top is not None:
        info = top
        info.collection_backups = _rebuild(files, segments)
    else:
        raise MetaError(f"no {BACKUP_META} or {FULL_META} among the meta files: not a complete backup")
    if top is not None and top is not info:
        info.id, info.state_code, info.name, info.size = top.id, top.state_code, top.name, top.size
    return info


def _rebuild(files: dict[str, bytes], segments: list[Segment] | None) -> list[Collection]:
    def infos(name: str, cls: type[T]) -> list[T]:
        return _read_infos(name, files[name], cls) if name in files else []

    collections = infos(COLLECTION_META, Collection)
    partitions = infos(PARTITION_META, Partition)
    if segments is None:
        segments = infos(SEGMENT_META, Segment)

    by_partition: dict[tuple[int, int], list[Segment]] = {}
    l0_by_collection: dict[int, list[Segment]] = {}
    for s in segments:
        if s.is_l0 or s.partition_id == -1:
            l0_by_collection.setdefault(s.collection_id, []).append(s)
        else:
            by_partition.setdefault((s.collection_id, s.partition_id), []).append(s)

    by_collection: dict[int, list[Partition]] = {}
    for p in partitions:
        by_collection.setdefault(p.collection_id, []).append(p)

    for c in collections:
        # partition_meta.json is the partition list the Go tool reads; the copies inside
        # collection_meta.json stand in when it is missing.
        c.partition_backups = by_collection.get(c.collection_id, c.partition_backups)
        for p in c.partition_backups:
            p.segment_backups = by_partition.get((c.collection_id, p.partition_id), [])
        c.l0_segments = l0_by_collection.get(c.collection_id, c.l0_segments)
    return collections


# --- full_meta.json read as a stream ---------------------------------------------------------------
#
# full_meta.json grows with the backup's binlogs (about 100 bytes each in the file, 0.7 KB each as
# decoded objects), yet a restore plans from its collections and segments alone. So it can be read as a
# stream of JSON events: every segment is decoded (and checked) as soon as its object ends, and what the
# rest of the tree keeps in its place is up to the reader: the segment without its binlog lists (the
# plan), or nothing (a second pass that hands out each segment's binlogs, one segment at a time).

_MAX_DEPTH = 512  # a backup's meta nests about 10 deep; json.loads gives up near 1,000
_CONTAINERS = {"start_map": dict, "start_array": list}
_ENDS = frozenset(("end_map", "end_array"))
# What a list or object holds, by what holds it and under which key (None: a list's items). Only the
# segments are decoded as they end; the other roles lead to them.
_ROLES: dict[tuple[str, str | None], str] = {
    ("backup", "collection_backups"): "collections",
    ("collections", None): "collection",
    ("collection", "partition_backups"): "partitions",
    ("collection", "l0_segments"): "l0_segments",
    ("partitions", None): "partition",
    ("partition", "segment_backups"): "segments",
    ("segments", None): "segment",
    ("l0_segments", None): "segment",
    ("segment_infos", "infos"): "infos",  # segment_meta.json: {"infos": [segment, ...]}
    ("infos", None): "segment",
}


@dataclass(frozen=True, slots=True)
class SegmentPlace:
    """Where a segment sits in full_meta.json's tree: collection_backups[collection], then either
    partition_backups[partition].segment_backups[index] or, partition None, l0_segments[index]."""

    collection: int
    partition: int | None
    index: int

    def where(self) -> str:
        within = f"partition_backups[{self.partition}].segment_backups" if self.partition is not None else "l0_segments"
        return f"collection_backups[{self.collection}].{within}[{self.index}]"


def read_full_meta(
    stream: Any, top: bytes | None = None, keep: Callable[[Segment], Segment] | None = None
) -> BackupInfo:
    """The BackupInfo tree of full_meta.json (a file-like object, or bytes) read as a stream, as
    read_backup reads it (same checks, same errors; backup_meta.json's raw `top`, when given, has the
    last word on id, state, name, size), except that every segment comes WITHOUT its binlog lists: they
    are checked as they are read, then dropped (`full_meta_segments` gives them back, a segment at a
    time). What a restore plans from: memory grows with the segments, not with their binlogs.
    `keep`: what each segment is, whole, turned into (RenderedSegments.keep; default: dropping the lists)."""
    head = _read(BACKUP_META, top, BackupInfo) if top is not None else None
    tree = _drain(_streamed_tree(stream, keep or _without_binlogs))
    if not isinstance(tree, dict):
        raise MetaError(f"meta file {FULL_META} should hold a JSON object, found {type(tree).__name__}")
    try:
        info = _decode(BackupInfo, tree, "")
    except MetaError as e:
        raise MetaError(f"meta file {FULL_META}: {e}") from None
    if head is not None:
        info.id, info.state_code, info.name, info.size = head.id, head.state_code, head.name, head.size
    return info


def full_meta_segments(stream: Any) -> Iterator[tuple[SegmentPlace, Segment]]:
    """Every segment of full_meta.json (a file-like object, or bytes), whole, with where it sits, as
    the stream reaches it: one segment held at a time. Raises MetaError as read_full_meta does."""
    return _streamed_tree(stream, lambda _segment: None)


def read_segment_meta(stream: Any, keep: Callable[[Segment], Segment] | None = None) -> list[Segment]:
    """segment_meta.json's segments (a file-like object, or bytes) read as a stream, as read_backup reads
    them (same checks, same errors), except that each comes WITHOUT its binlog lists: the file a backup
    without full_meta.json grows in (`segment_meta_segments` gives them back, a segment at a time).
    `keep` as read_full_meta's."""
    tree = _drain(_streamed_tree(stream, keep or _without_binlogs, SEGMENT_META))
    return _segment_infos(tree)


def segment_meta_segments(stream: Any) -> Iterator[tuple[int, Segment]]:
    """Every segment of segment_meta.json, whole, with its index in the file's `infos`, as the stream
    reaches it: one segment held at a time. Raises MetaError on what the stream cannot parse; the file's
    shape around the segments is read_segment_meta's to check."""
    return _streamed_tree(stream, lambda _segment: None, SEGMENT_META)


def _segment_infos(tree: Any) -> list[Segment]:
    if not isinstance(tree, dict):
        raise MetaError(f"meta file {SEGMENT_META} should hold a JSON object, found {type(tree).__name__}")
    try:
        infos: list[Segment] = _decode_value(list[Segment], tree.get("infos") or [], "infos")
        return infos
    except MetaError as e:
        raise MetaError(f"meta file {SEGMENT_META}: {e}") from None


def _drain(items: Iterator[Any]) -> Any:
    """Run a generator to its end, dropping what it yields: its return value."""
    while True:
        try:
            next(items)
        except StopIteration as end:
            return end.value


def placed_segments(
    info: BackupInfo, streamed: Iterable[tuple[SegmentPlace, Segment]] | None = None
) -> Iterator[tuple[Collection, Partition | None, Segment]]:
    """Every segment of `info` with the collection and partition holding it (None: an L0 segment of the
    collection). `streamed`: full_meta_segments of the file `info` was read from by read_full_meta, whose
    segments hold their binlogs; one that is not where `info` has it (the file changed between the two
    reads, or names a list twice) is left out, so its binlogs are unexpected, which every check refuses."""
    if streamed is None:
        for coll in info.collection_backups:
            for part in coll.partition_backups:
                for seg in part.segment_backups:
                    yield coll, part, seg
            for seg in coll.l0_segments:
                yield coll, None, seg
        return
    for place, seg in streamed:
        found = _placed(info, place)
        if found is not None and _without_binlogs(replace(found[2])) == _without_binlogs(replace(seg)):
            yield found[0], found[1], seg


def _same_but_binlogs(bare: Segment, whole: Segment) -> bool:
    """Whether `whole` is the segment `bare` stands for: equal once its binlog lists are left out."""
    return _without_binlogs(replace(whole)) == _without_binlogs(replace(bare))


def placed_level_segments(
    info: BackupInfo, streamed: Iterable[tuple[int, Segment]]
) -> Iterator[tuple[Collection, Partition | None, Segment]]:
    """placed_segments for a tree rebuilt from the level files (read_backup with read_segment_meta's
    segments): `streamed` is segment_meta_segments of the file those segments came from. The rebuild put
    each segment by its own collection_id and partition_id, so each is matched there (the first segment
    of the tree it stands for, in every place that holds that one); a tree segment no streamed one
    stands for (one collection_meta.json held, or one gone from the file since) comes last, as it is."""
    waiting: dict[tuple[int, int, int], list[tuple[Collection, Partition | None, Segment]]] = {}
    for coll, part, seg in placed_segments(info):
        waiting.setdefault((seg.collection_id, seg.partition_id, seg.segment_id), []).append((coll, part, seg))
    for _index, whole in streamed:
        holders = waiting.get((whole.collection_id, whole.partition_id, whole.segment_id), [])
        match = next((seg for _c, _p, seg in holders if _same_but_binlogs(seg, whole)), None)
        if match is None:
            continue
        for coll, part, _seg in [h for h in holders if h[2] is match]:
            yield coll, part, whole
        holders[:] = [h for h in holders if h[2] is not match]
    for holders in waiting.values():
        yield from holders


def _placed(info: BackupInfo, place: SegmentPlace) -> tuple[Collection, Partition | None, Segment] | None:
    try:
        coll = info.collection_backups[place.collection]
        if place.partition is None:
            return coll, None, coll.l0_segments[place.index]
        part = coll.partition_backups[place.partition]
        return coll, part, part.segment_backups[place.index]
    except IndexError:
        return None


def _without_binlogs(segment: Segment) -> Segment:
    segment.binlogs, segment.deltalogs = [], []
    return segment


def _streamed_tree(
    stream: Any, keep: Callable[[Segment], Any], file: str = FULL_META
) -> Generator[tuple[Any, Segment], None, Any]:
    """The JSON events of full_meta.json (or segment_meta.json) built into plain values as json.loads
    builds them, except that each segment's object is decoded as it ends, yielded (with its place: a
    SegmentPlace, or for segment_meta.json its index in `infos`), and replaced by `keep(segment)`.
    Returns the tree (a dict when the file is a meta file). Raises MetaError on anything malformed."""
    import ijson  # C parser; loaded by the readers of large files only

    root = "backup" if file == FULL_META else "segment_infos"
    try:
        return (yield from _build(ijson.basic_parse(stream, use_float=True), keep, root))
    except ijson.JSONError as e:
        raise MetaError(f"meta file {file} is not valid JSON: {json_error_line(e)}") from None
    except UnicodeDecodeError as e:
        raise MetaError(f"meta file {file} is not valid JSON: {str(e)[:120]}") from None
    except MetaError as e:
        raise MetaError(f"meta file {file}: {e}") from None


def json_error_line(e: Exception) -> str:
    """The first line of an ijson parse error, at most 120 characters (its message may come as bytes)."""
    text = e.args[0] if e.args else ""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return text.strip().splitlines()[0][:120] if text.strip() else type(e).__name__


def _build(
    events: Iterator[tuple[str, Any]], keep: Callable[[Segment], Any], root_role: str
) -> Generator[tuple[Any, Segment], None, Any]:
    # a frame: [container, its current key, its role, its index in the list holding it]
    stack: list[list[Any]] = []
    root: Any = None
    for event, value in events:
        if event == "map_key":
            stack[-1][1] = value
            continue
        if event in _CONTAINERS:
            if len(stack) >= _MAX_DEPTH:
                raise MetaError("nested too deeply to be a backup's meta")
            if not stack:
                stack.append([_CONTAINERS[event](), None, root_role, 0])
                continue
            parent = stack[-1]
            within = parent[0]
            role = parent[2] and _ROLES.get((parent[2], parent[1] if type(within) is dict else None))
            stack.append([_CONTAINERS[event](), None, role, len(within) if type(within) is list else 0])
            continue
        if event in _ENDS:
            frame = stack.pop()
            value = frame[0]
            if frame[2] == "segment" and type(value) is dict:
                place = _place(stack, frame[3])
                segment = _decode(
                    Segment, value, place.where() if isinstance(place, SegmentPlace) else f"infos[{place}]"
                )
                yield place, segment
                value = keep(segment)
        if not stack:
            root = value
            continue
        parent = stack[-1]
        if type(parent[0]) is list:
            parent[0].append(value)
        else:
            parent[0][parent[1]] = value
    return root


def _place(stack: list[list[Any]], index: int) -> SegmentPlace | int:
    """The place of the segment just ended: its index, and those of the collection and partition holding it
    (in segment_meta.json, which has neither, its index alone)."""
    if stack[0][2] == "segment_infos":
        return index
    collection = next(f[3] for f in stack if f[2] == "collection")
    partition = next((f[3] for f in stack if f[2] == "partition"), None)
    return SegmentPlace(collection, partition, index)
