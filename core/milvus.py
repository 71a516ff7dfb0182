"""What the engine asks of a Milvus server, over gRPC with pymilvus's generated messages and stub.

The raw requests are used rather than the ORM helpers because a physical backup needs the exact
proto schema (field order and IDs, type params, dynamic field) and options no helper passes
(`backup=true` on import). Every call names its database. Milvus 2.3 returns no binlog paths, so
the segments' files are found by listing the Milvus bucket (see core.backup).
"""

from __future__ import annotations

import base64
import importlib.util
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from milvus_backup.core.config import MilvusConfig
from milvus_backup.core.errors import ConfigError, MilvusError, NotFound

if TYPE_CHECKING:
    import grpc
    from google.protobuf import json_format
    from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

_LOAD_STATES: dict[int, str] = {}
_IMPORT_DONE: set[int] = set()
_IMPORT_FAILED: set[int] = set()
# Pending: queued for a DataNode. Started: a DataNode is reading the files (Milvus 2.3 runs one import per
# DataNode at a time and cannot stop it). Persisted and Flushed: the DataNode has written the segments
# and is free again; only the index/flush wait of the coordinator remains.
_IMPORT_HOLDS_DATANODE: set[int] = set()
DEFAULT_DB = "default"
SUMMARY_REQUESTS = 16  # requests in flight while the collections table is read
_PROTOS = "milvus_backup.core._pymilvus_protos"  # pymilvus's generated modules, when loaded without pymilvus
_protos_lock = threading.Lock()


def _load_protos() -> None:
    """pymilvus's generated gRPC messages and stub, without running pymilvus's package: its `__init__` loads
    its ORM, and pandas and numpy with it (≈ 0.6 s of CPU), which requests sent on the raw stub never use.
    The generated files are loaded from pymilvus's own folder under a name of ours. protobuf's descriptor
    pool holds each .proto file once, so these are the very classes `pymilvus.grpc_gen` has once pymilvus
    is imported (before or after), and its stub takes our requests."""
    global json_format, common_pb2, milvus_pb2, schema_pb2, milvus_pb2_grpc
    with _protos_lock:
        if _LOAD_STATES:
            return
        from google.protobuf import json_format

        protos = sys.modules.get(_PROTOS) or _load_generated()
        common_pb2, milvus_pb2, schema_pb2 = protos.common_pb2, protos.milvus_pb2, protos.schema_pb2
        milvus_pb2_grpc = protos.milvus_pb2_grpc
        _IMPORT_DONE.add(common_pb2.ImportCompleted)
        _IMPORT_HOLDS_DATANODE.update({common_pb2.ImportPending, common_pb2.ImportStarted})
        _IMPORT_FAILED.update({common_pb2.ImportFailed, common_pb2.ImportFailedAndCleaned})
        _LOAD_STATES.update(
            {
                common_pb2.LoadStateNotExist: "NotExist",
                common_pb2.LoadStateNotLoad: "NotLoad",
                common_pb2.LoadStateLoading: "Loading",
                common_pb2.LoadStateLoaded: "Loaded",
            }
        )


def _load_generated() -> Any:
    """pymilvus/grpc_gen as the package `_PROTOS`: its modules import each other relatively."""
    pymilvus = importlib.util.find_spec("pymilvus")  # finds the package without running it
    if pymilvus is None or pymilvus.origin is None:
        raise ImportError("pymilvus is not installed")
    folder = Path(pymilvus.origin).parent / "grpc_gen"
    spec = importlib.util.spec_from_file_location(
        _PROTOS, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load pymilvus's generated modules from {folder}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PROTOS] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules[_PROTOS]
        raise
    return package


@dataclass(frozen=True)
class CollectionSummary:
    db_name: str
    name: str
    collection_id: int
    row_count: int
    load_state: str
    partitions: int = 0
    indexes: tuple[str, ...] = ()  # "field:INDEX_TYPE"
    live_rows: int | None = None  # count(*) when the collection is loaded (row_count is the segments' stored rows)
    described: bool = True  # False: only listed so far (a listing's early answer), the other fields unknown

    @classmethod
    def listed(cls, db_name: str, name: str, collection_id: int) -> CollectionSummary:
        """A collection known by its name only, not described yet."""
        return cls(db_name, name, collection_id, 0, "", described=False)


@dataclass(frozen=True)
class SegmentInfo:
    segment_id: int
    collection_id: int
    partition_id: int
    num_rows: int


@dataclass(frozen=True)
class ImportProgress:
    state: str  # "pending" | "running" | "completed" | "failed"
    row_count: int
    reason: str
    holds_datanode: bool = False  # pending or started: it occupies (or waits for) Milvus's import slot

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed")


@dataclass(frozen=True)
class ImportTask:
    """An import task Milvus knows of (ours or anyone's), as ListImportTasks reports it."""

    task_id: int
    collection_id: int
    progress: ImportProgress


def data_type_name(number: int) -> str:
    """A field's data type as Milvus's own messages name it ("Int64", "VarChar", "FloatVector"), or the number
    itself when this Milvus version has no such type. The first call loads the generated messages."""
    _load_protos()
    try:
        return str(schema_pb2.DataType.Name(number))
    except ValueError:
        return str(number)


def _check(resp: Any, what: str) -> Any:
    """Raise MilvusError (one line) when a response's status is not success."""
    status = resp if isinstance(resp, common_pb2.Status) else getattr(resp, "status", None)
    if status is not None and (status.error_code != 0 or getattr(status, "code", 0) != 0):
        reason = (status.reason or common_pb2.ErrorCode.Name(status.error_code)).strip().splitlines()[0]
        if "not found" in reason.lower() or "can't find" in reason.lower():
            raise NotFound(f"{what}: {reason}")
        raise MilvusError(f"{what} failed: {reason}")
    return resp


def proto_to_dict(message: Any) -> dict[str, Any]:
    """A proto message as the JSON the Go tool writes: proto field names, enums as numbers.

    int64 values come out as strings here; core.meta reads them back as numbers.
    """
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, use_integers_for_enums=True
    )
    return data


def _still_there(*answers: Future[Any]) -> bool:
    """False when one of a collection's answers says it is gone (dropped after it was listed)."""
    return not any(isinstance(answer.exception(), NotFound) for answer in answers)


def _live_rows(answer: Future[int] | None) -> int | None:
    return answer.result() if answer is not None else None


class Milvus:
    """One connection to a Milvus server: a gRPC channel of its own, set up as pymilvus sets up its own
    (unbounded messages, keepalive, TLS or mutual TLS, the credentials in an `authorization` header), with
    pymilvus's generated stub. pymilvus's package itself is never imported: with pandas and numpy it costs
    about 0.6 s of CPU and 55 MiB of memory in every process, and its connection would only hand over
    this same stub."""

    _metadata: tuple[tuple[str, str], ...] = ()  # headers sent with every request: the credentials

    def __init__(self, cfg: MilvusConfig, timeout: float = 30):
        _load_protos()
        self.cfg = cfg
        self.timeout = timeout
        self._channel = _open_channel(cfg)
        self._stub = milvus_pb2_grpc.MilvusServiceStub(self._channel)
        if cfg.user:
            token = f"{cfg.user}:{cfg.password.get_secret_value()}"
            self._metadata = (("authorization", base64.b64encode(token.encode()).decode()),)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Milvus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, request: Any, what: str) -> Any:
        try:
            resp = getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata or None)
        except Exception as exc:  # grpc.RpcError and friends: keep one line
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            first = str(detail).splitlines()[0] if detail else type(exc).__name__
            raise MilvusError(f"{what} failed: {first}; is Milvus up at {self.cfg.address}:{self.cfg.port}?") from None
        return _check(resp, what)

    # -- reading ---------------------------------------------------------------------------------
    def version(self) -> str:
        return str(self._call("GetVersion", milvus_pb2.GetVersionRequest(), "get Milvus version").version)

    def list_databases(self) -> list[str]:
        return list(self._call("ListDatabases", milvus_pb2.ListDatabasesRequest(), "list databases").db_names)

    def list_collections(self, db: str = DEFAULT_DB) -> list[str]:
        return sorted(name for name, _ in self.collection_ids(db))

    def collection_ids(self, db: str = DEFAULT_DB) -> list[tuple[str, int]]:
        """Each collection of `db` as (name, id), in one request."""
        resp = self._call(
            "ShowCollections", milvus_pb2.ShowCollectionsRequest(db_name=db), f"list collections of database {db}"
        )
        return list(zip(resp.collection_names, resp.collection_ids, strict=False))

    def collection_summaries(
        self, db: str = DEFAULT_DB, pairs: list[tuple[str, int]] | None = None
    ) -> list[CollectionSummary]:
        """Every collection of `db` (or those of `pairs`, from `collection_ids`) with its rows, load state,
        partitions and indexes: three requests per collection and one for every load state of the
        database, all sent at once (SUMMARY_REQUESTS in flight), not one after another."""
        if pairs is None:
            pairs = self.collection_ids(db)
        if not pairs:
            return []
        with ThreadPoolExecutor(min(SUMMARY_REQUESTS, 3 * len(pairs) + 1), thread_name_prefix="summaries") as pool:
            states = pool.submit(self.load_states, db)
            asked = [
                (
                    name,
                    cid,
                    pool.submit(self.row_count, db, name),
                    pool.submit(self.partitions, db, name),
                    pool.submit(self._index_labels, db, name),
                )
                for name, cid in pairs
            ]
            # a collection dropped while it is being described is left out, not an error of the listing
            asked = [a for a in asked if _still_there(*a[2:])]
            loaded = states.result()
            # count(*) only where the collection is loaded
            live = {name: pool.submit(self.count_rows, db, name) for name, *_ in asked if loaded.get(name) == "Loaded"}
            summaries = [
                CollectionSummary(
                    db,
                    name,
                    cid,
                    rows.result(),
                    loaded.get(name, "NotLoad"),
                    len(parts.result()),
                    labels.result(),
                    _live_rows(live.get(name)),
                )
                for name, cid, rows, parts, labels in asked
                if name not in live or _still_there(live[name])
            ]
        return sorted(summaries, key=lambda c: c.name)

    def count_rows(self, db: str, name: str) -> int:
        """count(*) of a loaded collection: the rows a query sees, deletes applied (unlike `row_count`).
        Bounded consistency (guarantee timestamp 2): a few seconds stale at most, and it does not wait
        for the newest writes as a Strong query does (about 15 ms instead of about 200 ms each)."""
        resp = self._call(
            "Query",
            milvus_pb2.QueryRequest(
                db_name=db,
                collection_name=name,
                expr="",
                output_fields=["count(*)"],
                use_default_consistency=False,
                consistency_level=common_pb2.ConsistencyLevel.Bounded,
                guarantee_timestamp=2,
            ),
            f"count the rows of {db}.{name}",
        )
        return int(resp.fields_data[0].scalars.long_data.data[0]) if resp.fields_data else 0

    def _index_labels(self, db: str, name: str) -> tuple[str, ...]:
        labels = []
        for index in self.indexes(db, name):
            params = {kv.key: kv.value for kv in index.params}
            labels.append(f"{index.field_name}:{params.get('index_type', 'INDEX')}")
        return tuple(labels)

    def has_collection(self, db: str, name: str) -> bool:
        return db in self.list_databases() and name in self.list_collections(db)

    def describe(self, db: str, name: str) -> milvus_pb2.DescribeCollectionResponse:
        return self._call(
            "DescribeCollection",
            milvus_pb2.DescribeCollectionRequest(db_name=db, collection_name=name),
            f"describe collection {db}.{name}",
        )

    def partitions(self, db: str, name: str) -> list[tuple[str, int]]:
        resp = self._call(
            "ShowPartitions",
            milvus_pb2.ShowPartitionsRequest(db_name=db, collection_name=name),
            f"list partitions of {db}.{name}",
        )
        return list(zip(resp.partition_names, resp.partitionIDs, strict=False))

    def indexes(self, db: str, name: str) -> list[milvus_pb2.IndexDescription]:
        try:
            resp = self._call(
                "DescribeIndex",
                milvus_pb2.DescribeIndexRequest(db_name=db, collection_name=name),
                f"describe indexes of {db}.{name}",
            )
        except NotFound:
            return []  # "index not found": the collection has none
        return list(resp.index_descriptions)

    def load_state(self, db: str, name: str) -> str:
        resp = self._call(
            "GetLoadState",
            milvus_pb2.GetLoadStateRequest(db_name=db, collection_name=name),
            f"get load state of {db}.{name}",
        )
        return _LOAD_STATES.get(resp.state, "NotLoad")

    def load_states(self, db: str) -> dict[str, str]:
        """The load state of each collection of `db` that is loaded or loading, in one request (a backup
        needs every collection's: one GetLoadState each cost Milvus more). A collection absent from the
        answer is not loaded: "NotLoad", as GetLoadState says of it."""
        resp = self._call(
            "ShowCollections",
            milvus_pb2.ShowCollectionsRequest(db_name=db, type=milvus_pb2.ShowType.InMemory),
            f"list the loaded collections of database {db}",
        )
        loaded = zip(resp.collection_names, resp.inMemory_percentages, strict=False)
        return {name: "Loaded" if percent >= 100 else "Loading" for name, percent in loaded}

    def row_count(self, db: str, name: str) -> int:
        resp = self._call(
            "GetCollectionStatistics",
            milvus_pb2.GetCollectionStatisticsRequest(db_name=db, collection_name=name),
            f"get statistics of {db}.{name}",
        )
        stats = {kv.key: kv.value for kv in resp.stats}
        return int(stats.get("row_count", 0))

    def flush(self, db: str, name: str, timeout: float = 300) -> int:
        """Seal and persist the collection's growing segments; returns the flush timestamp (TSO)."""
        return self.flush_many(db, [name], timeout)[name]

    def flush_many(self, db: str, names: list[str], timeout: float = 300) -> dict[str, int]:
        """Flush several collections of one database in one call, then wait for all; their flush timestamps."""
        what = f"flush {db}.{','.join(names)}"
        resp = self._call("Flush", milvus_pb2.FlushRequest(db_name=db, collection_names=names), what)
        deadline = time.monotonic() + timeout
        stamps = {}
        for name in names:
            seg_ids = list(resp.coll_segIDs[name].data) if name in resp.coll_segIDs else []
            stamps[name] = flush_ts = int(resp.coll_flush_ts.get(name, 0))
            while seg_ids:
                state = self._call(
                    "GetFlushState",
                    milvus_pb2.GetFlushStateRequest(
                        segmentIDs=seg_ids, flush_ts=flush_ts, db_name=db, collection_name=name
                    ),
                    f"flush {db}.{name}",
                )
                if state.flushed:
                    break
                if time.monotonic() > deadline:
                    raise MilvusError(f"flush of {db}.{name} did not finish within {timeout:.0f} s")
                time.sleep(0.5)
        return stamps

    def segments(self, db: str, name: str) -> list[SegmentInfo]:
        """The persistent (flushed) segments: the only ones whose binlogs make up the collection now."""
        resp = self._call(
            "GetPersistentSegmentInfo",
            milvus_pb2.GetPersistentSegmentInfoRequest(dbName=db, collectionName=name),
            f"list segments of {db}.{name}",
        )
        return [
            SegmentInfo(s.segmentID, s.collectionID, s.partitionID, s.num_rows)
            for s in resp.infos
            if s.state == common_pb2.Flushed
        ]

    # -- writing ---------------------------------------------------------------------------------
    def create_collection(
        self,
        db: str,
        name: str,
        schema: dict[str, Any],
        shards_num: int,
        consistency_level: int,
        properties: Iterable[tuple[str, str]] = (),
        num_partitions: int = 0,
    ) -> None:
        """Create from a schema in the backup's JSON form. Field IDs are assigned by Milvus in field order.

        `num_partitions` (partition-key collections): Milvus makes that many partitions `_default_0`...,
        and hashes each key to one of them, so the same count gives the same names and the same rows in each."""
        proto = schema_pb2.CollectionSchema()
        json_format.ParseDict(schema, proto, ignore_unknown_fields=True)
        proto.name = name
        dynamic = [f for f in proto.fields if f.is_dynamic]
        for field in dynamic:  # Milvus adds $meta itself when enable_dynamic_field is set
            proto.fields.remove(field)
        if dynamic:
            proto.enable_dynamic_field = True
        for field in proto.fields:
            field.ClearField("fieldID")
        self._call(
            "CreateCollection",
            milvus_pb2.CreateCollectionRequest(
                db_name=db,
                collection_name=name,
                schema=proto.SerializeToString(),
                shards_num=shards_num or 1,
                consistency_level=consistency_level,
                properties=[common_pb2.KeyValuePair(key=k, value=v) for k, v in properties],
                num_partitions=num_partitions,
            ),
            f"create collection {db}.{name}",
        )

    def create_database(self, db: str) -> None:
        if db not in self.list_databases():
            self._call("CreateDatabase", milvus_pb2.CreateDatabaseRequest(db_name=db), f"create database {db}")

    def create_partition(self, db: str, collection: str, partition: str) -> None:
        self._call(
            "CreatePartition",
            milvus_pb2.CreatePartitionRequest(db_name=db, collection_name=collection, partition_name=partition),
            f"create partition {partition} of {db}.{collection}",
        )

    def drop_collection(self, db: str, name: str) -> None:
        self._call(
            "DropCollection",
            milvus_pb2.DropCollectionRequest(db_name=db, collection_name=name),
            f"drop collection {db}.{name}",
        )

    def create_index(self, db: str, collection: str, field_name: str, index_name: str, params: dict[str, str]) -> None:
        self._call(
            "CreateIndex",
            milvus_pb2.CreateIndexRequest(
                db_name=db,
                collection_name=collection,
                field_name=field_name,
                index_name=index_name,
                extra_params=[common_pb2.KeyValuePair(key=k, value=str(v)) for k, v in params.items()],
            ),
            f"create index {index_name} on {db}.{collection}.{field_name}",
        )

    def load(self, db: str, collection: str, timeout: float = 600) -> None:
        self._call(
            "LoadCollection",
            milvus_pb2.LoadCollectionRequest(db_name=db, collection_name=collection),
            f"load {db}.{collection}",
        )
        deadline = time.monotonic() + timeout
        while self.load_state(db, collection) != "Loaded":
            if time.monotonic() > deadline:
                raise MilvusError(f"load of {db}.{collection} did not finish within {timeout:.0f} s")
            time.sleep(0.5)

    def start_import(
        self, db: str, collection: str, partition: str | None, files: list[str], end_ts: int | None = None
    ) -> list[int]:
        """Start a bulk import in backup mode of [insert_log prefix, delta_log prefix or ""]."""
        options = [common_pb2.KeyValuePair(key="backup", value="true")]
        if end_ts:
            options.append(common_pb2.KeyValuePair(key="end_ts", value=str(end_ts)))
        resp = self._call(
            "Import",
            milvus_pb2.ImportRequest(
                db_name=db, collection_name=collection, partition_name=partition or "", files=files, options=options
            ),
            f"import into {db}.{collection}",
        )
        return list(resp.tasks)

    def import_progress(self, task_id: int) -> ImportProgress:
        resp = self._call(
            "GetImportState", milvus_pb2.GetImportStateRequest(task=task_id), f"get state of import task {task_id}"
        )
        return _import_progress(resp)

    # -- RBAC (core.rbac) ------------------------------------------------------------------------
    # Milvus 2.3 has no BackupRBAC/RestoreRBAC call (2.4.10 added them): users, roles and grants are
    # read and recreated one by one. Passwords cannot be read back at all.
    def list_users(self) -> list[str]:
        return sorted(self._call("ListCredUsers", milvus_pb2.ListCredUsersRequest(), "list users").usernames)

    def user_roles(self, user: str) -> list[str]:
        resp = self._call(
            "SelectUser",
            milvus_pb2.SelectUserRequest(user=milvus_pb2.UserEntity(name=user), include_role_info=True),
            f"list the roles of user {user}",
        )
        return sorted({role.name for result in resp.results for role in result.roles})

    def list_roles(self) -> list[str]:
        resp = self._call("SelectRole", milvus_pb2.SelectRoleRequest(), "list roles")
        return sorted(result.role.name for result in resp.results)

    def role_grants(self, role: str, db: str) -> list[milvus_pb2.GrantEntity]:
        """The grants of `role` in database `db` (Milvus answers one database at a time)."""
        resp = self._call(
            "SelectGrant",
            milvus_pb2.SelectGrantRequest(
                entity=milvus_pb2.GrantEntity(role=milvus_pb2.RoleEntity(name=role), db_name=db)
            ),
            f"list the grants of role {role} in database {db}",
        )
        return list(resp.entities)

    def create_role(self, role: str) -> None:
        self._call(
            "CreateRole",
            milvus_pb2.CreateRoleRequest(entity=milvus_pb2.RoleEntity(name=role)),
            f"create role {role}",
        )

    def create_user(self, user: str, password: str) -> None:
        # the wire carries the password base64-encoded, as every Milvus client sends it
        self._call(
            "CreateCredential",
            milvus_pb2.CreateCredentialRequest(username=user, password=base64.b64encode(password.encode()).decode()),
            f"create user {user}",
        )

    def add_user_to_role(self, user: str, role: str) -> None:
        self._call(
            "OperateUserRole",
            milvus_pb2.OperateUserRoleRequest(
                username=user, role_name=role, type=milvus_pb2.OperateUserRoleType.AddUserToRole
            ),
            f"bind user {user} to role {role}",
        )

    def grant(self, role: str, object_type: str, object_name: str, db: str, privilege: str) -> None:
        self._call(
            "OperatePrivilege",
            milvus_pb2.OperatePrivilegeRequest(
                entity=milvus_pb2.GrantEntity(
                    role=milvus_pb2.RoleEntity(name=role),
                    object=milvus_pb2.ObjectEntity(name=object_type),
                    object_name=object_name,
                    db_name=db,
                    grantor=milvus_pb2.GrantorEntity(privilege=milvus_pb2.PrivilegeEntity(name=privilege)),
                ),
                type=milvus_pb2.OperatePrivilegeType.Grant,
            ),
            f"grant {privilege} on {object_type} {db}.{object_name} to role {role}",
        )

    def import_tasks(self, limit: int = 0) -> list[ImportTask]:
        """Every import task Milvus still remembers (it forgets them after its ImportTaskRetention)."""
        resp = self._call("ListImportTasks", milvus_pb2.ListImportTasksRequest(limit=limit), "list import tasks")
        return [ImportTask(t.id, t.collection_id, _import_progress(t)) for t in resp.tasks]

    def busy_imports(self) -> int:
        """How many import tasks are queued or running in Milvus now: a new import waits behind them."""
        return sum(1 for t in self.import_tasks() if t.progress.holds_datanode)

    # -- names -----------------------------------------------------------------------------------
    def collection_id(self, db: str, name: str) -> int:
        return int(self.describe(db, name).collectionID)

    def rename_collection(self, db: str, old: str, new: str) -> None:
        self._call(
            "RenameCollection",
            milvus_pb2.RenameCollectionRequest(db_name=db, oldName=old, newName=new),
            f"rename collection {db}.{old} to {new}",
        )

    def aliases(self, db: str, name: str) -> list[str]:
        return sorted(self.describe(db, name).aliases)

    def create_alias(self, db: str, collection: str, alias: str) -> None:
        self._call(
            "CreateAlias",
            milvus_pb2.CreateAliasRequest(db_name=db, collection_name=collection, alias=alias),
            f"create alias {alias} of {db}.{collection}",
        )

    def alter_alias(self, db: str, collection: str, alias: str) -> None:
        """Point an existing alias at another collection (one step: readers never find it missing)."""
        self._call(
            "AlterAlias",
            milvus_pb2.AlterAliasRequest(db_name=db, collection_name=collection, alias=alias),
            f"point alias {alias} at {db}.{collection}",
        )


_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 10000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", True),
]


def _open_channel(cfg: MilvusConfig) -> grpc.Channel:
    """A channel to `cfg`'s Milvus: plain, server TLS (tlsMode 1) or mutual TLS (tlsMode 2). Nothing is sent
    until the first request, which fails at once, in one line, when nothing listens there."""
    import grpc

    target = f"{cfg.address}:{cfg.port}"
    if not cfg.tls_mode:
        return grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
    mutual = cfg.tls_mode == 2
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read_pem(cfg.ca_cert_path, "milvus.caCertPath"),
        private_key=_read_pem(cfg.mtls_key_path, "milvus.mtlsKeyPath") if mutual else None,
        certificate_chain=_read_pem(cfg.mtls_cert_path, "milvus.mtlsCertPath") if mutual else None,
    )
    options = list(_CHANNEL_OPTIONS)
    if cfg.server_name:
        options.append(("grpc.ssl_target_name_override", cfg.server_name))
    return grpc.secure_channel(target, credentials, options=options)


def _read_pem(path: str, key: str) -> bytes | None:
    """A certificate or key file named in the config; none named: None (the system's roots, no client key)."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {key} {path}: {exc.strerror}; check the path in the config") from None


def _import_progress(resp: Any) -> ImportProgress:
    infos = {kv.key: kv.value for kv in resp.infos}
    if resp.state in _IMPORT_DONE:
        state = "completed"
    elif resp.state in _IMPORT_FAILED:
        state = "failed"
    elif resp.state == common_pb2.ImportPending:
        state = "pending"
    else:
        state = "running"
    return ImportProgress(state, resp.row_count, infos.get("failed_reason", ""), resp.state in _IMPORT_HOLDS_DATANODE)
