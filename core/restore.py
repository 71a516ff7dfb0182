"""Restore a backup: recreate each collection, re-import its binlogs in backup mode, check the rows.

Milvus reads import files from its own bucket only, so when the backup lives elsewhere (another
bucket, another store, a local folder) each collection's binlogs are first staged under a temporary
prefix of the Milvus bucket and removed afterwards. An import of a missing prefix "succeeds" with
0 rows, so the restore checks the rows itself. Before the first change a target that exists is
refused unless the user asked to replace it, and the backup must pass the quick `verify` (one listing:
sizes and ETags). Milvus 2.3.5 panics on a corrupt binlog, so nothing unchecked is imported, yet the
backup is never read whole up front: each import group (a partition's insert and delta folders) is
checked just before its import, while the previous group imports. Its folders are listed again and
compared with the manifest (sizes, ETags; a binlog nobody recorded is refused, since an import takes
whole folders); objects known by SHA-256 alone are re-hashed then, or, when they are staged anyway,
checked with the hash the copy made (`check_staged`): each byte is read once.

Up to `restoreCollection` collections are restored at once, with at most `importJob` Milvus import
tasks in flight between them all; the first failure stops the others.

Every collection kind of Milvus 2.3.5 comes back: a partition-key collection is created with the same
number of partitions (so Milvus names them `_default_0`... as before and hashes each key to the same
one), and every import names its partition, which a backup-mode import requires.

An existing target (`drop_exist_collection`) is never dropped up front: the restore fills a temporary
collection, checks it (rows, indexes, load), and only then swaps it in (core.swap: old renamed aside,
new renamed to the target, aliases moved, old dropped; a durable intent lets a later restore finish a
swap that a kill interrupted). A target that appears after the plan was checked is refused, never
replaced. Aliases recorded in the backup are not recreated: they would take the name from whatever
collection serves it now; the replaced collection's aliases move to the restored one.

A failed or cancelled restore drops the collections it created itself and nothing else, after Milvus
has finished with the import tasks it started (Milvus 2.3 cannot stop an import, and a running one holds
its only DataNode: the next restore would otherwise queue behind an orphan for its 15 minutes). The
backup is only ever read.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any

from milvus_backup.core.context import Context
from milvus_backup.core.errors import AlreadyExists, BackupToolError, Cancelled, InvalidRequest, MilvusError, NotFound
from milvus_backup.core.integrity import (
    UNEXPECTED,
    DamagedBackup,
    Entry,
    ExpectedObjects,
    Problem,
    VerifyReport,
    check_objects,
    check_staged,
    meta_binlogs,
    refuse_damaged,
    verify_backup,
)
from milvus_backup.core.jobs import CollectionTask, Phase, Reporter, TaskState
from milvus_backup.core.meta import BackupInfo, BackupState, Collection, IndexInfo, Segment, encode
from milvus_backup.core.milvus import DEFAULT_DB
from milvus_backup.core.paths import MANIFEST, META_DIR, BackupLayout, is_binlog, restore_temp_root
from milvus_backup.core.pause import pause_point
from milvus_backup.core.rbac import restore_rbac
from milvus_backup.core.requests import describe_filter, filter_allows
from milvus_backup.core.storage import Copied, CopyTask, ObjectInfo, copy_objects
from milvus_backup.core.swap import RESTORING, SWAPPING, Swap, SwapIntents, finish, finish_interrupted
from milvus_backup.core.versions import check_restore_target

log = logging.getLogger("milvus_backup")
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_DB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VECTOR_TYPES = {100, 101, 102, 103, 104}  # Milvus's binary, float, float16, bfloat16 and sparse vectors


@dataclass(frozen=True)
class CollectionOverride:
    """What a restorePlan changes in one restored collection (0 / "": as backed up)."""

    shard_num: int = 0
    description: str = ""


@dataclass(frozen=True)
class CollectionMapping:
    source: str  # a collection of the mapping's source database in the backup
    target: str  # its name in the target database
    override: CollectionOverride = CollectionOverride()


@dataclass(frozen=True)
class DatabaseMapping:
    """Every chosen collection of `source` goes to `target`; those named in `colls` under their new name."""

    source: str
    target: str
    colls: tuple[CollectionMapping, ...] = ()


@dataclass(frozen=True)
class RestorePlan:
    """The upstream's restorePlan: where each collection goes (a database may go to several), and which
    targets to keep (a CollFilter over the target names; None keeps all)."""

    mapping: tuple[DatabaseMapping, ...] = ()
    filter: dict[str, list[str]] | None = None


@dataclass(frozen=True)
class SkipParams:
    """Keys left out when a collection is recreated (the upstream's skipParams)."""

    collection_properties: tuple[str, ...] = ()
    field_type_params: tuple[str, ...] = ()
    field_index_params: tuple[str, ...] = ()
    index_params: tuple[str, ...] = ()


# Milvus expires an import task after ImportTaskExpiration (900 s by default): waiting longer is pointless
_IMPORT_END_TIMEOUT = 960.0


@dataclass
class RestoreRequest:
    backup_name: str
    collections: list[str] = field(default_factory=list)  # "name" or "db.name"; empty: all of the backup
    # the Go tool's map, {"db1": ["c1"], "db2": []}: an empty list stands for every collection of db2 in the backup
    db_collections: dict[str, list[str]] = field(default_factory=dict)
    suffix: str = ""
    renames: dict[str, str] = field(default_factory=dict)  # "c1": "c2", "db1.c1": "db2.c2", "db1.*": "db2.*"
    plan: RestorePlan | None = None  # the upstream's restorePlan: not with a suffix or renames
    # keep only the targets it allows, matched after the suffix, the renames or the plan (core.requests' CollFilter)
    filter: dict[str, list[str]] | None = None
    skip_params: SkipParams = SkipParams()
    max_shard_num: int = 0  # at most this many shards per restored collection (0: as backed up)
    use_auto_index: bool = False  # recreate vector indexes as AUTOINDEX (same metric), as the upstream's useAutoIndex
    root_path: str = ""  # the backup is under another root of the backup store (the API's path); "": the config's
    drop_exist_collection: bool = False
    meta_only: bool = False
    restore_index: bool = False
    load: bool = False
    # each import group is checked just before its import (sizes and ETags); "full" also re-hashes what the
    # store does not vouch for (objects known by SHA-256 alone, the meta files), "quick" only what it stages
    verify: str = "full"
    rbac: bool = False  # also restore the backup's users, roles and grants, after the collections (core.rbac)
    # the targets ("db.name") the user saw existing when confirming (a face's preview); None: not asked.
    # A target that exists at the start but is not in it is refused, never replaced.
    confirmed_existing: list[str] | None = None


@dataclass
class _Target:
    source: Collection
    db: str
    name: str
    override: CollectionOverride = CollectionOverride()
    skip: SkipParams = SkipParams()
    max_shard_num: int = 0
    auto_index: bool = False
    existed: bool = False  # the target was there when the plan was checked: only then may it be replaced

    @property
    def schema(self) -> dict[str, Any]:
        """The backed-up schema as the new collection gets it: skipped field params left out, description overridden."""
        schema = encode(self.source.schema)
        for f in schema.get("fields", []):
            for key, skipped in (
                ("type_params", self.skip.field_type_params),
                ("index_params", self.skip.field_index_params),
            ):
                f[key] = [kv for kv in f.get(key, []) if kv.get("key") not in skipped]
        if self.override.description:
            schema["description"] = self.override.description
        return schema

    @property
    def shards_num(self) -> int:
        shards = self.override.shard_num or self.source.shards_num
        return min(shards, self.max_shard_num) if self.max_shard_num and shards else shards

    @property
    def properties(self) -> list[tuple[str, str]]:
        skipped = self.skip.collection_properties
        return [(p.key, p.value) for p in self.source.properties if p.key not in skipped]

    def index_params(self, index: IndexInfo) -> dict[str, str]:
        """The index as recreated: skipped keys left out; a vector index as AUTOINDEX when asked."""
        params = {k: v for k, v in index.params.items() if k not in self.skip.index_params}
        vector = any(f.name == index.field_name and f.data_type in _VECTOR_TYPES for f in self.source.schema.fields)
        if self.auto_index and vector:
            return {"index_type": "AUTOINDEX"} | ({"metric_type": m} if (m := params.get("metric_type")) else {})
        return params


@dataclass
class _ImportUnit:
    """One bulk import: a group of segments of one partition. Its folders' objects are counted when
    planned and listed again when staged: a collection's listing, held whole, grew with its binlogs."""

    partition: str
    insert_prefix: str
    delta_prefix: str  # "" when the group has no deletes
    expected_rows: int
    objects: int  # in its folders, when planned
    size: int  # their bytes


def _counted(objects: Iterable[ObjectInfo]) -> tuple[int, int]:
    """How many objects a listing gives, and their bytes, none of them kept."""
    count = size = 0
    for o in objects:
        count, size = count + 1, size + o.size
    return count, size


def parse_renames(text: str) -> dict[str, str]:
    """`old:new,db1.c1:db2.c2,db1.*:db2.*` as a dict; one clear line when malformed."""
    renames: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        old, sep, new = item.partition(":")
        if not sep or not old or not new:
            raise InvalidRequest(f"bad rename {item!r}: write old:new, db1.old:db2.new or db1.*:db2.*")
        renames[old.strip()] = new.strip()
    return renames


def _source_db(c: Collection) -> str:
    return c.db_name or DEFAULT_DB


def plan_targets(info: BackupInfo, request: RestoreRequest) -> list[_Target]:
    """Where each chosen collection of the backup goes, as the upstream plans it: choose (collection
    names, db_collections), name the targets (a suffix, renames or a restorePlan), then keep the targets
    a filter allows (matched against the new names). Anything malformed or matching nothing is refused."""
    if request.suffix and request.renames:
        raise InvalidRequest("give either a suffix or a rename map, not both")
    if request.plan is not None and (request.suffix or request.renames):
        raise InvalidRequest("give either restorePlan or a suffix / rename map (collection_suffix, collection_renames)")
    if request.plan is not None and request.plan.filter is not None and request.filter is not None:
        raise InvalidRequest("give the filter of the targets once: restorePlan.filter or db_collections_after_rename")
    if request.max_shard_num < 0:
        raise InvalidRequest(f"maxShardNum must be 0 or more, not {request.max_shard_num}")
    chosen = _chosen(info, request)
    if request.plan is not None:
        targets = _planned(info, chosen, request.plan)
    else:
        targets = [_renamed(c, request) for c in chosen]
    targets = _kept(targets, request.filter if request.filter is not None else getattr(request.plan, "filter", None))
    for t in targets:
        if not _DB_NAME.fullmatch(t.db) or not _COLLECTION_NAME.fullmatch(t.name):
            raise InvalidRequest(
                f"invalid target name {t.db}.{t.name}: use a letter or '_' first, then letters, digits or '_'"
            )
        t.skip, t.max_shard_num, t.auto_index = request.skip_params, request.max_shard_num, request.use_auto_index
    if request.load:  # Milvus loads only indexed collections: refuse now rather than after the import
        if not request.restore_index:
            raise InvalidRequest(
                "loading a restored collection needs its index: add restore_index (--restore_index) or leave out load"
            )
        bare = [f"{_source_db(t.source)}.{t.source.collection_name}" for t in targets if not t.source.index_infos]
        if bare:
            raise InvalidRequest(f"{', '.join(bare)} had no index when backed up, so cannot be loaded; leave out load")
    seen = [(t.db, t.name) for t in targets]
    duplicates = {f"{d}.{n}" for d, n in seen if seen.count((d, n)) > 1}
    if duplicates:
        raise InvalidRequest(
            f"two collections would be restored to {', '.join(sorted(duplicates))}; use a suffix or a rename map"
        )
    return targets


def _chosen(info: BackupInfo, request: RestoreRequest) -> list[Collection]:
    """The backup's collections the request names (collection names, db_collections), or all of them."""
    named = list(request.collections)
    for db, colls in request.db_collections.items():
        in_db = [c.collection_name for c in info.collection_backups if _source_db(c) == db]
        if not in_db:
            raise NotFound(f"backup {info.name} holds no collection of database {db}")
        named += [name if "." in name else f"{db}.{name}" for name in (colls or in_db)]
    if not named:
        return list(info.collection_backups)
    chosen: list[Collection] = []
    for item in named:
        db, _, name = item.strip().rpartition(".")
        matches = [c for c in info.collection_backups if c.collection_name == name and (not db or _source_db(c) == db)]
        if not matches:
            raise NotFound(
                f"collection {item} is not in backup {info.name}; it holds: "
                + ", ".join(f"{_source_db(c)}.{c.collection_name}" for c in info.collection_backups)
            )
        chosen += [c for c in matches if c not in chosen]
    return chosen


def _renamed(c: Collection, request: RestoreRequest) -> _Target:
    db, name = _source_db(c), c.collection_name
    new_db, new_name = db, name + request.suffix
    for old, new in request.renames.items():
        if old in (name, f"{db}.{name}") or old == f"{db}.*":
            if old.endswith(".*"):
                new_db = new[:-2] if new.endswith(".*") else new
                new_name = name
            else:
                new_db, _, new_name = new.rpartition(".") if "." in new else (db, "", new)
            break
    return _Target(c, new_db, new_name)


def _planned(info: BackupInfo, chosen: list[Collection], plan: RestorePlan) -> list[_Target]:
    """Targets by a restorePlan: a collection of a mapped database goes to each of its target databases,
    under the name its mapping gives (with that mapping's overrides), else its own; others stay where they were."""
    held = {(_source_db(c), c.collection_name) for c in info.collection_backups}
    for i, m in enumerate(plan.mapping):
        where = f"restorePlan.mapping[{i}]"
        if not m.source or not m.target:
            raise InvalidRequest(f"{where}: give both the source and the target database")
        if not any(db == m.source for db, _ in held):
            raise NotFound(f"{where}: backup {info.name} holds no collection of database {m.source}")
        for j, cm in enumerate(m.colls):
            if not cm.source or not cm.target:
                raise InvalidRequest(f"{where}.colls[{j}]: give both the source and the target collection")
            if (m.source, cm.source) not in held:
                raise NotFound(f"{where}.colls[{j}]: collection {m.source}.{cm.source} is not in backup {info.name}")
            if cm.override.shard_num < 0:
                raise InvalidRequest(f"{where}.colls[{j}].override.shardNum must be 0 or more")
    targets = []
    for c in chosen:
        db, name = _source_db(c), c.collection_name
        mappings = [m for m in plan.mapping if m.source == db]
        if not mappings:
            targets.append(_Target(c, db, name))
        for m in mappings:
            named = next((x for x in m.colls if x.source == name), None)
            if named is None:
                targets.append(_Target(c, m.target, name))
            else:
                targets.append(_Target(c, m.target, named.target, named.override))
    return targets


def _kept(targets: list[_Target], collection_filter: dict[str, list[str]] | None) -> list[_Target]:
    if collection_filter is None:
        return targets
    kept = [t for t in targets if filter_allows(collection_filter, t.db, t.name)]
    if not kept:
        raise NotFound(
            f"the filter {describe_filter(collection_filter)} matches none of the restore's targets "
            f"({', '.join(f'{t.db}.{t.name}' for t in targets)}); it is matched against the names after "
            "the suffix, renames or plan"
        )
    return kept


class _Stopped(BackupToolError):
    """Another collection of the same restore failed: this one stops too (the first failure is raised)."""


@dataclass
class _Entries:
    """What the backup records about each of its binlogs (the manifest, else the meta's sizes), kept out
    of memory by ExpectedObjects; one import group's entries are found by their folders."""

    prefix: str  # the backup's folder
    expected: ExpectedObjects

    def under(self, folders: list[str]) -> dict[str, Entry]:
        # "": a group without deletes has no delta folder
        return self.expected.under(folder[len(self.prefix) :] for folder in folders if folder)


@dataclass
class _Step:
    """One collection's place in its data step, for its progress events: bytes staged, groups imported."""

    label: str
    bytes_total: int = 0
    bytes_done: int = 0
    units_total: int = 0
    units_done: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def phase(self) -> Phase:
        # staging and importing overlap (group n+1 is staged while group n imports): COPY until the last
        # byte is staged, then IMPORT; the event carries both counts
        return Phase.COPY if self.bytes_done < self.bytes_total else Phase.IMPORT


class _Restore:
    def __init__(
        self,
        ctx: Context,
        request: RestoreRequest,
        reporter: Reporter,
        restore_id: str,
        tasks: list[CollectionTask],
        entries: _Entries | None = None,
    ):
        self.ctx = ctx
        self.request = request
        self.reporter = reporter
        self.id = restore_id
        self.tasks = tasks
        self.entries = entries
        self.tag = uuid.uuid4().hex[:8]  # names this restore's temporary collections
        self.created: list[tuple[str, str]] = []
        self.swaps: list[Swap] = []
        self.swapping = False  # the intent is written: from here on the next restore finishes the swap
        self.imports: dict[int, str] = {}  # Milvus import task id -> the collection it imports into
        self.staged_prefixes: list[str] = []
        # Milvus imports from its own bucket: stage the binlogs there unless the backup already is there.
        self.staging = ctx.backup_storage is not ctx.milvus_storage
        self.temp_layout = BackupLayout(restore_temp_root(ctx.config.storage.root_path, restore_id))
        self.intents = SwapIntents(ctx.milvus_storage, ctx.milvus_layout.root)
        self.lock = threading.Lock()  # the lists above, shared by the collections restored at once
        self.stop = threading.Event()  # one collection failed: the others stop at their next step
        # at most importJob Milvus import tasks in flight, all collections of the restore together
        self.import_slots = threading.Semaphore(max(1, ctx.config.backup.import_job))

    def run(self, info: BackupInfo, targets: list[_Target]) -> list[CollectionTask]:
        try:
            self._restore_all(info, targets)
            self.reporter.check_cancelled()  # the last moment a cancel leaves every existing collection as it was
            self._swap_all()
            return self.tasks
        except BaseException:
            undone = not self.swapping  # _undo drops every collection this restore made, finished ones too
            for task in self.tasks:
                if task.state is TaskState.RESTORING or (undone and task.state is TaskState.SUCCESS):
                    task.state = TaskState.FAILED
            self._wait_for_imports()
            self._undo()
            raise
        finally:
            self._remove_staged()

    def _restore_all(self, info: BackupInfo, targets: list[_Target]) -> None:
        """Up to restoreCollection collections at once. The first failure (or a cancel) stops the others
        at their next step; it is raised once every collection's worker has ended, so the clean-up that
        follows sees every collection and every import task this restore made."""
        work = list(zip(targets, self.tasks, strict=False))
        width = max(1, min(self.ctx.config.backup.restore_collection, len(work)))
        for db in dict.fromkeys(t.db for t in targets):  # before the workers: two would race to create one
            self.reporter.check_cancelled()
            self.ctx.milvus.create_database(db)
        if width == 1:
            for target, task in work:
                self._restore_one(info, target, task)
            return
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="restore") as pool:
            futures = [pool.submit(self._restore_one, info, target, task) for target, task in work]
            for future in as_completed(futures):
                if future.exception() is not None:
                    self.stop.set()
        errors = [f.exception() for f in futures if f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, _Stopped | Cancelled)), None) or next(iter(errors), None)
        if first is not None:
            raise first

    def _restore_one(self, info: BackupInfo, target: _Target, task: CollectionTask) -> None:
        self._check_stop()
        task.state = TaskState.RESTORING
        self._restore_collection(info, target, task)
        task.state = TaskState.SUCCESS  # restored and checked (a replacement is swapped in at the end)

    def _check_stop(self) -> None:
        self.reporter.check_cancelled()
        if self.stop.is_set():
            raise _Stopped("stopped: another collection of this restore failed")

    # -- one collection --------------------------------------------------------------------------
    def _restore_collection(self, info: BackupInfo, target: _Target, task: CollectionTask) -> None:
        milvus, src, label = self.ctx.milvus, target.source, f"{target.db}.{target.name}"
        self.reporter.step(Phase.CREATE, label, message=f"restoring {task.source} as {label}")
        work = self._work_name(target)
        partition_key = any(f.is_partition_key for f in src.schema.fields)
        swap = self._plan_swap(target, work) if work != target.name else None  # a kill from here on finds it
        milvus.create_collection(
            target.db,
            work,
            target.schema,
            target.shards_num,
            src.consistency_level,
            target.properties,
            num_partitions=len(src.partition_backups) if partition_key else 0,
        )
        with self.lock:
            self.created.append((target.db, work))
        # only a collection made under the target's own name is the record's to drop after a kill; a
        # temporary one (drop-existing) is found again through the swap record (core.swap)
        task.created = work == target.name
        if swap is not None:
            swap.new_id = milvus.collection_id(target.db, work)
            with self.lock:
                self.intents.write(self.id, self.swaps, RESTORING)
        self._check_field_ids(target, work)
        self._create_partitions(target, work, partition_key)
        if not self.request.meta_only:
            # the folder the user named, not the name inside the meta: a copied backup keeps its old one
            units = self._import_units(self.request.backup_name, src)
            self._import(target.db, work, units, label, task)
        if self.request.restore_index:
            self.reporter.step(Phase.INDEX, label)
            for index in src.index_infos:
                milvus.create_index(target.db, work, index.field_name, index.index_name, target.index_params(index))
                self.reporter.log(f"{label}: index {index.index_name} ({index.index_type}) on {index.field_name}")
            if len(milvus.indexes(target.db, work)) < len(src.index_infos):
                raise MilvusError(f"{label}: Milvus lists fewer indexes than the backup holds; the restore stopped")
        if self.request.load:
            self.reporter.step(Phase.LOAD, label, message=f"loading {label}")
            milvus.load(target.db, work)
        self.reporter.log(f"{label}: restored {task.rows} row(s)")

    def _work_name(self, target: _Target) -> str:
        """The name to restore into: the target's own, or a temporary one when an existing target is replaced.

        A target that exists now but did not when the user confirmed the plan is somebody else's: refused."""
        label = f"{target.db}.{target.name}"
        if not self.ctx.milvus.has_collection(target.db, target.name):
            return target.name
        if not target.existed:
            raise AlreadyExists(
                f"{label} was created after this restore was planned; it is left alone. "
                "Restore again to see it in the plan (and replace it with --drop_exist_collection)"
            )
        return f"{target.name[:200]}_restoring_{self.tag}"

    def _create_partitions(self, target: _Target, work: str, partition_key: bool) -> None:
        milvus, src = self.ctx.milvus, target.source
        existing = {name for name, _ in milvus.partitions(target.db, work)}
        if partition_key:  # Milvus made them from num_partitions; the imports name them
            missing = [p.partition_name for p in src.partition_backups if p.partition_name not in existing]
            if missing:
                raise MilvusError(
                    f"{target.db}.{target.name}: Milvus made partitions {sorted(existing)} for the partition key, "
                    f"the backup has {missing} too; its binlogs cannot be imported"
                )
            return
        for part in src.partition_backups:
            if part.partition_name not in existing:
                milvus.create_partition(target.db, work, part.partition_name)

    def _check_field_ids(self, target: _Target, work: str) -> None:
        """Binlog folders are named by field ID: the new collection must number its fields the same way."""
        backed_up = {f.name: f.field_id for f in target.source.schema.fields if not f.is_dynamic and f.field_id}
        created = {f.name: f.fieldID for f in self.ctx.milvus.describe(target.db, work).schema.fields}
        wrong = [n for n, fid in backed_up.items() if created.get(n) != fid]
        if wrong:
            raise MilvusError(
                f"the restored collection numbers fields {wrong} differently from the backup; "
                "its binlogs cannot be imported"
            )

    def _import_units(self, name: str, src: Collection) -> list[_ImportUnit]:
        storage, layout = self.ctx.backup_storage, self.ctx.backup_layout
        units = []
        for part in src.partition_backups:
            groups: dict[int, list[Segment]] = {}
            for seg in part.segment_backups:
                groups.setdefault(seg.group_id, []).append(seg)
            for group_id, segs in sorted(groups.items()):
                cid, pid = src.collection_id, part.partition_id
                rows = sum(s.num_of_rows for s in segs)
                insert = layout.insert_group(name, cid, pid, group_id or None)
                delta = layout.delta_group(name, cid, pid, group_id or None)
                objects = _counted(storage.list(insert)) if group_id else (0, 0)
                if objects[0]:
                    units.append(self._unit(part.partition_name, insert, delta, rows, objects))
                    continue
                # The oldest layout has no group folder: import each segment's folder by itself.
                for seg in segs:
                    seg_insert = layout.insert_segment(name, cid, pid, seg.segment_id)
                    seg_delta = layout.delta_segment(name, cid, pid, seg.segment_id)
                    seg_objects = _counted(storage.list(seg_insert))
                    if seg.num_of_rows and not seg_objects[0]:
                        raise NotFound(
                            f"backup {name} has no binlogs for segment {seg.segment_id} of "
                            f"{_source_db(src)}.{src.collection_name}: the backup is damaged"
                        )
                    units.append(self._unit(part.partition_name, seg_insert, seg_delta, seg.num_of_rows, seg_objects))
        return [u for u in units if u.expected_rows or u.objects]

    def _unit(self, partition: str, insert: str, delta: str, rows: int, objects: tuple[int, int]) -> _ImportUnit:
        # Every unit names its partition: Milvus 2.3.5 refuses a backup-mode import without one, also for
        # partition-key collections (whose partitions _default_0... the new collection has by the same names).
        deltas = _counted(self.ctx.backup_storage.list(delta))
        count, size = objects[0] + deltas[0], objects[1] + deltas[1]
        return _ImportUnit(partition, insert, delta if deltas[0] else "", rows, count, size)

    # -- checking and importing, group by group --------------------------------------------------
    def _import(self, db: str, work: str, units: list[_ImportUnit], label: str, task: CollectionTask) -> None:
        """Import the groups in order, each checked (and staged) just before its import: the check of
        the next group runs while earlier ones import, so a damaged object fails the restore before its
        own group is submitted (Milvus 2.3.5 panics on a corrupt binlog), never after."""
        step = _Step(label, bytes_total=sum(u.size for u in units) if self.staging else 0)
        step.units_total = len(units)
        self._report(step)
        milvus = self.ctx.milvus
        pending = deque(units)
        ready: deque[_ImportUnit] = deque()  # checked (and staged), waiting for an import slot
        running: dict[int, _ImportUnit] = {}
        slots: dict[int, int] = {}  # one import slot per group: its first task holds it
        checking: Future[_ImportUnit] | None = None
        imported, started, any_started, told_queued = 0, time.monotonic(), False, False
        checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-check")
        try:
            while pending or checking or ready or running:
                self._check_stop()
                if checking is None and pending and not ready:
                    if running:
                        pause_point("restore:check", self.reporter.cancel_event)  # a later group, while one imports
                    checking = checker.submit(self._checked, pending.popleft(), step)
                if checking is not None and checking.done():
                    ready.append(checking.result())  # a damaged group raises here: it is never submitted
                    checking = None
                while ready and self.import_slots.acquire(blocking=False):
                    unit = ready.popleft()
                    task_ids = milvus.start_import(db, work, unit.partition, [unit.insert_prefix, unit.delta_prefix])
                    with self.lock:
                        self.imports.update((task_id, label) for task_id in task_ids)
                    running.update((task_id, unit) for task_id in task_ids)
                    if task_ids:
                        slots[task_ids[0]] = 1
                    else:
                        self.import_slots.release()
                time.sleep(0.3 if running else 0.05)
                for task_id, unit in list(running.items()):
                    progress = milvus.import_progress(task_id)
                    any_started = any_started or progress.state != "pending"
                    if progress.state == "failed":
                        raise MilvusError(f"import of {unit.insert_prefix} into {label} failed: {progress.reason}")
                    if progress.state == "completed":
                        del running[task_id]
                        with self.lock:
                            del self.imports[task_id]
                        if slots.pop(task_id, 0):
                            self.import_slots.release()
                        self._check_unit_rows(unit, progress.row_count, label)
                        imported += progress.row_count
                        task.rows = imported
                        with step.lock:
                            step.units_done += 1
                        self._report(step, rows=progress.row_count)
                        pause_point("restore:import", self.reporter.cancel_event)
                        self._check_stop()
                if running and not any_started and not told_queued and time.monotonic() - started > self._queued_notice:
                    told_queued = True
                    self._report(
                        step,
                        message=f"{label}: import queued: Milvus DataNode busy with {self._others_busy()} other "
                        f"import(s); Milvus starts this one when they end",
                    )
        finally:
            for _ in slots:  # groups still in Milvus when this collection stops: their slots are free again
                self.import_slots.release()
            checker.shutdown(wait=True, cancel_futures=True)
        self.reporter.step(Phase.VERIFY, label)
        count = milvus.row_count(db, work)
        if count != imported:
            raise MilvusError(f"{label} holds {count} rows after import but {imported} were imported")

    @property
    def _queued_notice(self) -> int:
        return self.ctx.config.backup.import_queued_notice

    def _report(self, step: _Step, rows: int = 0, message: str = "") -> None:
        with step.lock:
            counts = (step.phase, step.bytes_done, step.bytes_total, step.units_done, step.units_total)
        phase, bytes_done, bytes_total, units_done, units_total = counts
        self.reporter.step(
            phase,
            step.label,
            bytes_done=bytes_done,
            bytes_total=bytes_total,
            objects_done=units_done,
            objects_total=units_total,
            rows=rows,
            message=message,
        )

    def _checked(self, unit: _ImportUnit, step: _Step) -> _ImportUnit:
        """The group ready to import: its folders listed and compared with what the backup records
        (sizes, ETags; SHA-256 re-read only for objects nothing else vouches for), then, when Milvus
        imports from elsewhere, staged in the Milvus bucket and checked on the way (`check_staged`)."""
        if self.entries is not None:
            folders = [f for f in (unit.insert_prefix, unit.delta_prefix) if f]
            hash_here = self.request.verify == "full" and not self.staging  # staged bytes are hashed as copied
            problems = check_objects(
                self.ctx.backup_storage,
                self.entries.prefix,
                self.entries.under(folders),
                folders=folders,
                hash_unvouched=hash_here,
                cancel=self.reporter.cancel_event,
            )
            self._refuse(problems)
        return self._stage(unit, step) if self.staging else unit

    def _refuse(self, problems: list[Problem]) -> None:
        if not problems:
            return
        name = self.request.backup_name
        shown = "; ".join(f"{p.kind} {p.key}" for p in problems[:3])
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise DamagedBackup(
            f"backup {name} is damaged ({shown}{more}); the restore stopped before importing it. "
            f"See: milvus-backup verify -n {name} --full",
            VerifyReport(name=name, full=False, problems=problems),
        )

    def _stage(self, unit: _ImportUnit, step: _Step) -> _ImportUnit:
        """Copy one group's binlogs into a temporary prefix of the Milvus bucket, each checked with what
        its copy vouches for (the SHA-256 of streamed bytes, a server-side copy's ETag): read once."""

        def staged(key: str) -> str:
            return self.ctx.backup_layout.rebase(key, self.temp_layout)

        with self.lock:
            if not self.staged_prefixes:
                self.staged_prefixes.append(self.temp_layout.backups_root())
        entries = self.entries.under([unit.insert_prefix, unit.delta_prefix]) if self.entries else {}
        prefix = self.entries.prefix if self.entries else ""

        def after_copy(copy: CopyTask, copied: Copied) -> None:
            want = entries.get(copy.src_key[len(prefix) :])
            if want is not None:  # every staged binlog has one (below)
                self._refuse([p for p in [check_staged(copy.src_key, want, copied, copy.size)] if p])

        # listed again (a listing held for every group of a collection grew with its binlogs): a binlog
        # that came in since the check was never checked, and is refused
        storage = self.ctx.backup_storage
        objects = [o for folder in (unit.insert_prefix, unit.delta_prefix) if folder for o in storage.list(folder)]
        unnamed = [o for o in objects if is_binlog(o.key[len(prefix) :]) and o.key[len(prefix) :] not in entries]
        if self.entries is not None:
            self._refuse(
                [
                    Problem(o.key, UNEXPECTED, f"{o.size} bytes that neither the manifest nor the meta names")
                    for o in unnamed
                ]
            )

        def on_progress(nbytes: int, _objects: int) -> None:
            with step.lock:
                step.bytes_done += nbytes
            self._report(step)

        copy_objects(
            self.ctx.backup_storage,
            self.ctx.milvus_storage,
            [CopyTask(o.key, staged(o.key), o.size) for o in objects],
            self.ctx.config.backup.copydata,
            on_progress=on_progress,
            cancel=self.reporter.cancel_event,
            server_side=not self.ctx.config.cross_storage,
            after_copy=after_copy,
        )
        return replace(
            unit,
            insert_prefix=staged(unit.insert_prefix),
            delta_prefix=staged(unit.delta_prefix) if unit.delta_prefix else "",
        )

    def _others_busy(self) -> int:
        return max(0, self.ctx.milvus.busy_imports() - len(self.imports))

    @staticmethod
    def _check_unit_rows(unit: _ImportUnit, imported: int, label: str) -> None:
        # A segment's row count includes rows its delta log deletes, so only a group without deletes
        # must match exactly; any group with rows must bring some back (an empty prefix imports 0).
        if imported > unit.expected_rows or (not unit.delta_prefix and imported != unit.expected_rows):
            raise MilvusError(
                f"{label}: {unit.insert_prefix} imported {imported} rows, the backup holds "
                f"{unit.expected_rows}; the restore is incomplete"
            )

    # -- replacing existing collections ----------------------------------------------------------
    def _plan_swap(self, target: _Target, work: str) -> Swap:
        milvus = self.ctx.milvus
        swap = Swap(
            db=target.db,
            target=target.name,
            restored=work,
            aside=f"{target.name[:200]}_replaced_{self.tag}",
            old_id=milvus.collection_id(target.db, target.name),
            new_id=0,  # until the temporary collection exists
            aliases=milvus.aliases(target.db, target.name),
        )
        with self.lock:  # the record holds every swap of the restore: written whole, one writer at a time
            self.swaps.append(swap)
            self.intents.write(self.id, self.swaps, RESTORING)
        return swap

    def _swap_all(self) -> None:
        """Every restored collection is whole and checked: now replace the existing ones (see core.swap)."""
        if not self.swaps:
            return
        self.reporter.phase(Phase.SWAP, message=f"replacing {len(self.swaps)} existing collection(s)")
        for swap in self.swaps:  # their aliases may have changed while the restore ran
            swap.aliases = self.ctx.milvus.aliases(swap.db, swap.target)
        self.intents.write(self.id, self.swaps, SWAPPING)
        self.swapping = True
        pause_point("restore:swap:intent")
        for swap in self.swaps:
            finish(self.ctx.milvus, swap, self.reporter.log)
            self.created.remove((swap.db, swap.restored))  # it is the target now: a later failure keeps it
        self.intents.remove(self.id)

    # -- cleanup ---------------------------------------------------------------------------------
    def _wait_for_imports(self) -> None:
        """Milvus 2.3 cannot stop an import, and a running one holds its only DataNode: dropping the
        collection under it leaves it running to its timeout (15 min) while every later import queues.
        So wait until this restore's tasks are done with the DataNode, then clean up."""
        milvus, waiting = self.ctx.milvus, dict(self.imports)
        deadline = time.monotonic() + _IMPORT_END_TIMEOUT
        told = 0
        while waiting and time.monotonic() < deadline:
            for task_id in list(waiting):
                try:
                    progress = milvus.import_progress(task_id)
                except BackupToolError:
                    continue  # Milvus does not answer: try again until the deadline
                if progress.finished or not progress.holds_datanode:
                    del waiting[task_id]
            if waiting and len(waiting) != told:
                told = len(waiting)
                self.reporter.phase(
                    Phase.CLEANUP,
                    message=f"waiting for {told} Milvus import task(s) to end; Milvus 2.3 cannot stop them",
                )
            if waiting:
                time.sleep(0.5)
        if waiting:
            self.reporter.log(f"import task(s) {sorted(waiting)} still hold Milvus's DataNode; cleaning up anyway")
        self.imports.clear()

    def _undo(self) -> None:
        if self.swapping:  # never drop what an interrupted swap will need: the intent names it
            self.reporter.log(
                "the swap of the restored collections stopped half-way; restoring again finishes it "
                "(each target holds either its old or its restored collection)"
            )
            return
        if self.created:
            self.reporter.phase(Phase.CLEANUP, message=f"removing {len(self.created)} collection(s) this restore made")
        left = []
        for db, name in reversed(self.created):
            try:
                self.ctx.milvus.drop_collection(db, name)
                self.reporter.log(f"dropped {db}.{name}, which this restore had created")
            except BackupToolError as exc:
                left.append(name)
                self.reporter.log(f"could not drop {db}.{name} ({exc}); drop it by hand")
        if self.swaps:
            self.reporter.log("every existing collection this restore was to replace is as it was")
            if not left:  # else the record stays, and the next restore of the target drops what is left
                try:
                    self.intents.remove(self.id)
                except BackupToolError as exc:  # harmless: the next restore finds nothing left to drop
                    self.reporter.log(f"could not remove the restore's swap record ({exc})")

    def _remove_staged(self) -> None:
        if self.ctx.config.backup.keep_temp_files:
            return
        for prefix in self.staged_prefixes:
            try:
                self.ctx.milvus_storage.delete_prefix(prefix)
            except BackupToolError as exc:
                self.reporter.log(f"could not remove the staged binlogs under {prefix} ({exc})")


def prepare_restore(ctx: Context, request: RestoreRequest) -> tuple[BackupInfo, list[_Target]]:
    """Everything a restore checks before it changes anything."""
    info = ctx.catalog.get(request.backup_name, binlogs=False)  # _backup_entries reads them as a stream
    if info.state_code != BackupState.SUCCESS:
        raise InvalidRequest(
            f"backup {request.backup_name} is not complete (state {int(info.state_code)}); it cannot be restored"
        )
    if request.verify not in ("full", "quick"):
        raise InvalidRequest(f"verify must be 'full' or 'quick', not {request.verify!r}")
    targets = plan_targets(info, request)
    _version_warnings(ctx, info, request)  # refuses an untested or older Milvus unless overridden
    # sizes at once, before the job starts; the full check is the job's first phase
    refuse_damaged(verify_backup(ctx.backup_storage, ctx.backup_layout, request.backup_name, full=False))
    milvus = ctx.milvus
    # a restore killed while it replaced these targets: finish that first, so each holds a whole collection
    finish_interrupted(
        milvus,
        SwapIntents(ctx.milvus_storage, ctx.milvus_layout.root),
        {f"{t.db}.{t.name}" for t in targets},
        lambda line: log.warning("%s", line),
    )
    for t in targets:
        t.existed = milvus.has_collection(t.db, t.name)
    taken = [f"{t.db}.{t.name}" for t in targets if t.existed]
    if taken and not request.drop_exist_collection:
        raise AlreadyExists(
            f"collection(s) {', '.join(taken)} already exist; use a suffix (-s), a rename (-r) "
            "or --drop_exist_collection"
        )
    if request.confirmed_existing is not None:
        unconfirmed = sorted(set(taken) - set(request.confirmed_existing))
        if unconfirmed:
            raise AlreadyExists(
                f"collection(s) {', '.join(unconfirmed)} appeared after the restore was confirmed; "
                "nothing was changed: look at the plan again"
            )
    return info, targets


@dataclass(frozen=True)
class TargetPreview:
    """What a restore would do to one collection, shown before it starts."""

    source: str  # "db.name" in the backup
    target: str  # "db.name" in Milvus
    exists: bool  # the target is there now: refused, or dropped with drop_exist_collection


def preview_targets(info: BackupInfo, request: RestoreRequest, existing: set[str]) -> list[TargetPreview]:
    """The targets of `request` against `existing` ("db.name"), without touching Milvus; raises as plan_targets."""
    return [
        TargetPreview(
            f"{_source_db(t.source)}.{t.source.collection_name}", f"{t.db}.{t.name}", f"{t.db}.{t.name}" in existing
        )
        for t in plan_targets(info, request)
    ]


def _version_warnings(ctx: Context, info: BackupInfo, request: RestoreRequest) -> list[str]:
    return check_restore_target(
        ctx.milvus.version(), info.milvus_version, request.backup_name, ctx.config.backup.allow_untested_milvus
    )


def busy_message(busy: int) -> str:
    return f"Milvus is busy with {busy} import(s); this restore will queue behind them"


def restore_tasks(targets: list[_Target]) -> list[CollectionTask]:
    return [
        CollectionTask(
            f"{_source_db(t.source)}.{t.source.collection_name}",
            t.db,
            t.name,
            bytes_total=t.source.size,
            rows_total=t.source.num_rows,
        )
        for t in targets
    ]


def run_restore(
    ctx: Context,
    request: RestoreRequest,
    reporter: Reporter,
    restore_id: str | None = None,
    prepared: tuple[BackupInfo, list[_Target]] | None = None,
    tasks: list[CollectionTask] | None = None,
) -> list[CollectionTask]:
    """Carry out a restore (called in the job's thread)."""
    info, targets = prepared or prepare_restore(ctx, request)
    tasks = tasks if tasks is not None else restore_tasks(targets)
    entries = None if request.meta_only else _backup_entries(ctx, info, request, reporter)
    try:
        reporter.phase(Phase.PREPARE, message=f"restoring {len(targets)} collection(s) from backup {info.name}")
        for warning in _version_warnings(ctx, info, request):
            reporter.log(warning)
        busy = ctx.milvus.busy_imports() if not request.meta_only else 0
        if busy:
            reporter.log(busy_message(busy))
        done = _Restore(ctx, request, reporter, restore_id or str(uuid.uuid4()), tasks, entries).run(info, targets)
    finally:
        if entries is not None:
            entries.expected.close()  # its temporary table
    if request.rbac:
        restore_rbac(ctx.milvus, info.rbac_meta, ctx.config.backup.rbac_user_password.get_secret_value(), reporter)
    return done


def _backup_entries(ctx: Context, info: BackupInfo, request: RestoreRequest, reporter: Reporter) -> _Entries:
    """What the backup records about its binlogs, for the check of each import group: its manifest and
    its meta's sizes (all a Go tool's backup has), both read as streams into ExpectedObjects. With verify
    "full", the meta files the restore was planned from are re-hashed first (recorded by SHA-256):
    nothing is created from a meta that is not the one backed up."""
    storage, layout, name = ctx.backup_storage, ctx.backup_layout, request.backup_name
    prefix = layout.backup(name)
    expected = ExpectedObjects()
    try:
        if storage.stat(layout.meta(name, MANIFEST)) is not None:
            expected.add_manifest(storage, layout.meta(name, MANIFEST))
        if request.verify == "full":
            meta = expected.under([META_DIR + "/"])
            reporter.phase(Phase.VERIFY, message=f"checking the {len(meta)} meta file(s) of backup {name}")
            problems = check_objects(storage, prefix, meta, cancel=reporter.cancel_event)
            reporter.check_cancelled()
            refuse_damaged(VerifyReport(name=name, full=False, problems=problems))
        ctx.catalog.read_segments(
            name, info, lambda segments: expected.add_meta_sizes(meta_binlogs(layout, name, info, segments))
        )
    except BaseException:
        expected.close()
        raise
    return _Entries(prefix, expected)
