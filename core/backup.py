"""Create a backup: flush the chosen collections, copy their segments' binlogs, then write the meta.

The plan is made first (every collection's schema, partitions, indexes, segments and binlog objects),
so the copy has exact byte and object totals. Binlogs are found by listing each persistent segment's
folders in the Milvus bucket (Milvus 2.3 returns no paths); only the segments Milvus lists are
copied, so binlogs that compaction left behind for GC are not restored twice. Each copy is read back
and hashed (and compared with its source) for the integrity manifest, written after the other meta
and before `backup_meta.json`, which comes last; a failed or cancelled backup is removed, and never
gets that file.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from milvus_backup.core.context import Context
from milvus_backup.core.errors import AlreadyExists, BackupToolError, InvalidRequest, NotFound, StorageError
from milvus_backup.core.integrity import Entry, encode_manifest, hash_bytes, hash_object
from milvus_backup.core.jobs import Phase, Reporter
from milvus_backup.core.meta import (
    BackupInfo,
    BackupState,
    Binlog,
    Collection,
    Database,
    FieldBinlog,
    IndexInfo,
    KeyValue,
    Partition,
    Schema,
    Segment,
    decode,
    meta_files,
)
from milvus_backup.core.milvus import DEFAULT_DB, Milvus, SegmentInfo, proto_to_dict
from milvus_backup.core.paths import MANIFEST, META_DIR, META_WRITE_ORDER, MalformedKey, check_backup_name, join
from milvus_backup.core.pause import pause_point
from milvus_backup.core.storage import CopyTask
from milvus_backup.core.versions import META_KEY as UNTESTED_META_KEY
from milvus_backup.core.versions import check_backup_source

log = logging.getLogger("milvus_backup")


@dataclass
class BackupRequest:
    name: str = ""  # empty: backup_<UTC time>_<nanos>, as the Go tool names it
    collections: list[str] = field(default_factory=list)  # "name" or "db.name"; empty: every collection
    db: str = ""  # the database of bare names; with no collections, back up this whole database
    # the Go tool's map, {"db1": ["c1", "db1.c2"], "db2": []}: an empty list stands for the whole database
    db_collections: dict[str, list[str]] = field(default_factory=dict)
    meta_only: bool = False
    gc_pause: bool | None = None  # None: backup.gcPause.enable decides


def default_backup_name(now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    return f"backup_{now:%Y_%m_%d_%H_%M_%S}_{time.time_ns() % 1_000_000_000}"


def resolve_collections(milvus: Milvus, request: BackupRequest) -> list[tuple[str, str]]:
    """(db, name) pairs to back up, from every way a face can name them; unknown ones are refused
    before anything is done. Nothing named at all means every collection (of `request.db` if set)."""
    pairs = [_split(item, request.db or DEFAULT_DB) for item in request.collections]  # named ones first
    if request.db_collections:
        known = milvus.list_databases()
        from_dbs: list[tuple[str, str]] = []
        for db, names in request.db_collections.items():
            if db not in known:
                raise NotFound(f"database {db} not found in Milvus (it has: {', '.join(known)})")
            from_dbs += [_split(n, db) for n in names] if names else [(db, n) for n in milvus.list_collections(db)]
        if not from_dbs and not request.collections:
            raise NotFound("there are no collections to back up in database(s) " + ", ".join(request.db_collections))
        pairs += from_dbs
    if not request.collections and not request.db_collections:
        dbs = [request.db] if request.db else milvus.list_databases()
        pairs = [(db, name) for db in dbs for name in milvus.list_collections(db)]
        if not pairs:
            raise NotFound("there are no collections to back up" + (f" in database {request.db}" if request.db else ""))
        return pairs
    unique = list(dict.fromkeys(pairs))
    for db, name in unique:
        if db not in milvus.list_databases() or name not in milvus.list_collections(db):
            raise NotFound(f"collection {db}.{name} not found in Milvus; `milvus-backup list-collections` shows them")
    return unique


def _split(item: str, default_db: str) -> tuple[str, str]:
    db, _, name = item.strip().rpartition(".")
    if not name:
        raise InvalidRequest(f"empty collection name in {item!r}")
    return db or default_db, name


def _kv(pairs: Iterable[Any]) -> list[KeyValue]:  # protobuf KeyValuePair messages
    return [KeyValue(key=p.key, value=p.value) for p in pairs]


@dataclass
class _CollectionPlan:
    meta: Collection
    copies: list[CopyTask]


def _segment_binlogs(ctx: Context, seg: SegmentInfo) -> tuple[list[FieldBinlog], list[FieldBinlog]]:
    """A segment's insert and delta binlogs, found by listing its folders in the Milvus bucket."""
    by_field: dict[int, list[Binlog]] = {}
    prefix = ctx.milvus_layout.insert_segment(seg.collection_id, seg.partition_id, seg.segment_id)
    for obj in ctx.milvus_storage.list(prefix):
        try:
            insert_log = ctx.milvus_layout.parse_insert_log(obj.key)
        except MalformedKey:
            continue  # not a binlog
        by_field.setdefault(insert_log.field_id, []).append(Binlog(obj.key, obj.size, insert_log.log_id))
    deltas = []
    dprefix = ctx.milvus_layout.delta_segment(seg.collection_id, seg.partition_id, seg.segment_id)
    for obj in ctx.milvus_storage.list(dprefix):
        try:
            delta_log = ctx.milvus_layout.parse_delta_log(obj.key)
        except MalformedKey:
            continue
        deltas.append(Binlog(obj.key, obj.size, delta_log.log_id))
    if seg.num_rows and not by_field:
        raise StorageError(
            f"segment {seg.segment_id} has no binlogs under {ctx.milvus_storage.bucket}/{prefix}: check that "
            "minio.bucketName and minio.rootPath match the Milvus server's own config"
        )
    insert = [
        FieldBinlog(field_id=f, binlogs=sorted(logs, key=lambda b: b.log_id)) for f, logs in sorted(by_field.items())
    ]
    delta = [FieldBinlog(field_id=0, binlogs=sorted(deltas, key=lambda b: b.log_id))] if deltas else []
    return insert, delta


def _plan_collection(
    ctx: Context, backup_id: str, name: str, db: str, coll: str, meta_only: bool, reporter: Reporter
) -> _CollectionPlan:
    milvus = ctx.milvus
    desc = milvus.describe(db, coll)
    load_state = milvus.load_state(db, coll)
    flush_ts = 0 if meta_only else milvus.flush(db, coll)
    reporter.check_cancelled()
    backup_ts = flush_ts or (int(time.time() * 1000) << 18)
    indexes = [
        IndexInfo(
            field_name=i.field_name,
            index_name=i.index_name,
            index_type={kv.key: kv.value for kv in i.params}.get("index_type", ""),
            params={kv.key: kv.value for kv in i.params},
            index_id=i.indexID,
        )
        for i in milvus.indexes(db, coll)
    ]
    segments: dict[int, list[Segment]] = {}
    copies: list[CopyTask] = []
    if not meta_only:
        for seg in milvus.segments(db, coll):
            reporter.check_cancelled()
            insert, delta = _segment_binlogs(ctx, seg)
            segment = Segment(
                segment_id=seg.segment_id,
                collection_id=seg.collection_id,
                partition_id=seg.partition_id,
                num_of_rows=seg.num_rows,
                binlogs=insert,
                deltalogs=delta,
                group_id=seg.segment_id,
                storage_version=0,
            )
            segment.size = segment.insert_size + segment.delta_size
            segments.setdefault(seg.partition_id, []).append(segment)
            layout, cid, pid, sid = ctx.backup_layout, seg.collection_id, seg.partition_id, seg.segment_id
            for fb in insert:
                copies += [
                    CopyTask(
                        b.log_path, layout.insert_binlog(name, cid, pid, sid, sid, fb.field_id, b.log_id), b.log_size
                    )
                    for b in fb.binlogs
                ]
            for fb in delta:
                copies += [
                    CopyTask(b.log_path, layout.delta_binlog(name, cid, pid, sid, sid, b.log_id), b.log_size)
                    for b in fb.binlogs
                ]
    partitions = []
    for part_name, part_id in milvus.partitions(db, coll):
        segs = sorted(segments.get(part_id, []), key=lambda s: s.segment_id)
        partitions.append(
            Partition(
                partition_id=part_id,
                partition_name=part_name,
                collection_id=desc.collectionID,
                segment_backups=segs,
                size=sum(s.size for s in segs),
                load_state=load_state,
            )
        )
    meta = Collection(
        id=backup_id,
        collection_id=desc.collectionID,
        db_name=db,
        collection_name=coll,
        schema=decode(Schema, proto_to_dict(desc.schema)),
        shards_num=desc.shards_num,
        consistency_level=int(desc.consistency_level),
        partition_backups=partitions,
        backup_timestamp=backup_ts,
        size=sum(p.size for p in partitions),
        has_index=bool(indexes),
        index_infos=indexes,
        load_state=load_state,
        backup_physical_timestamp=(backup_ts >> 18) // 1000,
        properties=_kv(desc.properties),
        virtual_channel_names=list(desc.virtual_channel_names),
        physical_channel_names=list(desc.physical_channel_names),
        aliases=list(desc.aliases),
    )
    return _CollectionPlan(meta, copies)


def run_backup(ctx: Context, request: BackupRequest, reporter: Reporter, backup_id: str | None = None) -> BackupInfo:
    """Carry out a backup (called in the job's thread). Returns the BackupInfo that was written."""
    name = check_backup_name(request.name)
    catalog = ctx.catalog
    if catalog.exists(name):
        raise AlreadyExists(
            f"backup {name} already exists in {ctx.backup_storage.bucket}/"
            f"{ctx.backup_layout.backups_root()}; choose another name or delete it first"
        )
    pairs = resolve_collections(ctx.milvus, request)
    untested = check_backup_source(ctx.milvus.version(), ctx.config.backup.allow_untested_milvus)
    started = int(time.time())
    backup_id = backup_id or str(uuid.uuid4())
    wrote_anything = False
    try:
        reporter.phase(Phase.PREPARE, message=f"planning backup {name} of {len(pairs)} collection(s)")
        for warning in untested:
            reporter.log(warning)
        if not request.meta_only and request.gc_pause is not False:
            _pause_gc(ctx, reporter, forced=bool(request.gc_pause))
        plans = []
        for db, coll in pairs:
            reporter.phase(Phase.PREPARE, f"{db}.{coll}")
            plans.append(_plan_collection(ctx, backup_id, name, db, coll, request.meta_only, reporter))
            reporter.log(
                f"{db}.{coll}: {len(plans[-1].meta.segments())} segment(s), "
                f"{len(plans[-1].copies)} binlog(s), {plans[-1].meta.size} bytes"
            )
        copies = [task for plan in plans for task in plan.copies]
        total = sum(t.size for t in copies)
        reporter.phase(
            Phase.COPY,
            "",
            bytes_total=total,
            objects_total=len(copies),
            message=f"copying {len(copies)} binlog(s), {total} bytes, each read back and hashed",
        )
        wrote_anything = True
        entries = _HashedCopies(ctx, name, reporter)
        ctx.copy(ctx.milvus_storage, ctx.backup_storage, copies, reporter, after_copy=entries.add)
        reporter.check_cancelled()
        reporter.phase(Phase.META, message="writing meta")
        collections = [p.meta for p in plans]
        info = BackupInfo(
            id=backup_id,
            state_code=BackupState.SUCCESS,
            start_time=started,
            end_time=int(time.time()),
            progress=100,
            name=name,
            backup_timestamp=max((c.backup_timestamp for c in collections), default=0),
            collection_backups=collections,
            size=sum(c.size for c in collections),
            milvus_version=ctx.milvus.version(),
            database_backups=[Database(db_name=db) for db in sorted({c.db_name for c in collections})],
            # the guard was off for this backup: say so in its meta (the Go tool ignores keys it does not know)
            extra={UNTESTED_META_KEY: True} if ctx.config.backup.allow_untested_milvus else {},
        )
        write_meta(ctx, name, info, entries.entries)
        reporter.add(rows=sum(c.num_rows for c in collections))
        reporter.log(f"backup {name} complete: {len(collections)} collection(s), {info.size} bytes")
        return info
    except BaseException as exc:
        if wrote_anything:
            _remove_partial(ctx, name, reporter, exc)
        raise


class _HashedCopies:
    """Checks each binlog right after its copy, in the copy's worker: the copy is read back from the
    backup store and hashed, and so is its source; they must match (a store that drops or changes bytes
    fails the backup). The hashes go into the integrity manifest."""

    def __init__(self, ctx: Context, name: str, reporter: Reporter):
        self.ctx, self.name, self.reporter = ctx, name, reporter
        self.entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def add(self, task: CopyTask) -> None:
        storage, cancel = self.ctx.backup_storage, self.reporter.cancel_event
        got = hash_object(storage, task.dst_key, cancel)
        source = hash_object(self.ctx.milvus_storage, task.src_key, cancel)
        if got != source:
            what = f"{got.size} bytes" if got.size != source.size else "other bytes (SHA-256 differs)"
            raise StorageError(
                f"the copy {storage.describe(task.dst_key)} holds {what} than its source "
                f"{task.src_key} ({source.size} bytes): the store did not keep what was written"
            )
        relative = self.ctx.backup_layout.relative_key(self.name, task.dst_key)
        with self._lock:
            self.entries[relative] = got
        pause_point("backup:copy")


def write_meta(ctx: Context, name: str, info: BackupInfo, entries: dict[str, Entry] | None = None) -> None:
    """Write the meta files, then the integrity manifest (the binlogs' `entries` plus every meta file),
    then backup_meta.json, which marks the backup complete."""
    files = meta_files(info)
    info.meta_size = sum(len(data) for data in files.values())
    files = meta_files(info)
    storage, layout = ctx.backup_storage, ctx.backup_layout
    for filename in META_WRITE_ORDER[:-1]:
        storage.write(layout.meta(name, filename), files[filename])
    pause_point("backup:meta")
    manifest = dict(entries or {})
    for filename in META_WRITE_ORDER:
        manifest[join(META_DIR, filename)] = hash_bytes(files[filename])
    storage.write(layout.meta(name, MANIFEST), encode_manifest(name, manifest))
    pause_point("backup:final")
    storage.write(layout.meta(name, META_WRITE_ORDER[-1]), files[META_WRITE_ORDER[-1]])


def _pause_gc(ctx: Context, reporter: Reporter, seconds: int = 3600, forced: bool = False) -> None:
    """Ask Milvus to hold its garbage collection while binlogs are copied. Best effort: Milvus 2.3.5
    has no such endpoint, and its GC keeps dropped binlogs for about an hour anyway."""
    settings = ctx.config.backup
    if not (settings.gc_pause_enable or forced):
        return
    url = (
        f"{settings.gc_pause_address.rstrip('/')}/management/datacoord/garbage_collection/pause?pause_seconds={seconds}"
    )
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            resp.read()
        reporter.log(f"paused Milvus garbage collection for up to {seconds} s")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reporter.log(
            f"warning: could not pause Milvus garbage collection ({getattr(exc, 'reason', exc)}); going on without it"
        )


def _remove_partial(ctx: Context, name: str, reporter: Reporter, cause: BaseException) -> None:
    """A failed or cancelled backup leaves nothing that could be mistaken for a backup."""
    try:
        removed = ctx.backup_storage.delete_prefix(ctx.backup_layout.backup(name))
        reporter.log(f"removed {removed} object(s) of the unfinished backup {name}")
    except BackupToolError as exc:
        reporter.log(
            f"could not remove the unfinished backup {name} ({exc}); it has no backup_meta.json, "
            f"so it is listed as incomplete: remove it with `milvus-backup delete -n {name}`"
        )
    log.info("backup %s stopped: %s", name, cause)
