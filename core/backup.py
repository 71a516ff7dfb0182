"""Create a backup: flush the chosen collections (when and how the strategy says), copy their segments'
binlogs, then write the meta.

Each collection is planned (its schema, partitions, indexes, segments and binlog objects) and its binlogs
are copied as soon as it is planned, while later collections are planned; the copy's byte and object
totals are given once every collection is planned, so they are exact and the fraction never goes back.
Binlogs are found by listing each persistent segment's
folders in the Milvus bucket (Milvus 2.3 returns no paths); only the segments Milvus lists are
copied, so binlogs that compaction left behind for GC are not restored twice. Copies inside one store
run server-side and are never read back: once a collection's copies are done, a listing of each of its
segments' folders in the backup (listed at once, while other collections copy) confirms each copy's size
and ETag against its source's listing (a store that kept other bytes fails the backup); copies whose bytes
stream through the tool are hashed on the way. What the store vouches for goes into the integrity
manifest, written after the other meta and before `backup_meta.json`, which
comes last; a failed or cancelled backup is removed, and never gets that file.

Memory does not grow with the binlogs: each listing's binlogs go into a temporary database on disk
(core.spill) as they are found, and the copies, their confirmations, the meta's binlog lists and the
manifest's entries are read back from it a page at a time; what stays in memory is a summary per
collection, segment and field.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar, cast

from milvus_backup.core.context import Context
from milvus_backup.core.errors import AlreadyExists, BackupToolError, InvalidRequest, NotFound, StorageError
from milvus_backup.core.integrity import Entry, ManifestWriter, is_md5_etag
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
    rendered_meta,
)
from milvus_backup.core.milvus import DEFAULT_DB, Milvus, SegmentInfo, proto_to_dict
from milvus_backup.core.paths import (
    FULL_META,
    MANIFEST,
    META_DIR,
    META_WRITE_ORDER,
    MalformedKey,
    check_backup_name,
    join,
)
from milvus_backup.core.pause import pause_point
from milvus_backup.core.rbac import backup_rbac
from milvus_backup.core.requests import ALL, describe_filter, filter_allows
from milvus_backup.core.spill import (
    DELTA,
    INSERT,
    BinlogRow,
    BinlogSpill,
    CollectionCopies,
    SpilledBinlogs,
    SpilledCopy,
)
from milvus_backup.core.spill import PAGE as SPILL_PAGE
from milvus_backup.core.storage import Copied, CopyTask, ObjectInfo, Storage, copy_groups
from milvus_backup.core.storage.parallel_copy import CopyFeed
from milvus_backup.core.versions import META_KEY as UNTESTED_META_KEY
from milvus_backup.core.versions import check_backup_source

log = logging.getLogger("milvus_backup")
T = TypeVar("T")
R = TypeVar("R")
MAX_LISTINGS = 128  # segment folders listed at once, at most
FLUSH_BATCH = 10  # collections flushed by one request
ONE_PART_AT_ONCE = 1024 * 1024  # meta files larger than this are written one at a time
REQUESTS_PER_PLAN = 3  # a collection's Milvus requests that run beside its flush and segments request


@dataclass
class BackupRequest:
    name: str = ""  # empty: backup_<UTC time>_<nanos>, as the Go tool names it
    collections: list[str] = field(default_factory=list)  # "name" or "db.name"; empty: every collection
    db: str = ""  # the database of bare names; with no collections, back up this whole database
    # the Go tool's map, {"db1": ["c1", "db1.c2"], "db2": []}: an empty list stands for the whole database
    db_collections: dict[str, list[str]] = field(default_factory=dict)
    # the upstream's CollFilter map (core.requests): {"db1": ["c1"], "db2": ["*"]}; not with the three above
    filter: dict[str, list[str]] | None = None
    strategy: str = ""  # a Strategy; "" picks one (meta_only when meta_only is set)
    root_path: str = ""  # another backup root in the same store (the API's backup_root_path); "": the config's
    gc_pause_seconds: int = 0  # how long Milvus GC is paused (0: an hour)
    gc_pause_address: str = ""  # Milvus's management address ("": backup.gcPause.address)
    meta_only: bool = False
    gc_pause: bool | None = None  # None: backup.gcPause.enable decides
    rbac: bool = False  # also back up users, roles and grants (core.rbac)


class Strategy(StrEnum):
    """When data is flushed before it is copied (the upstream's `strategy`)."""

    AUTO = "auto"  # as bulk_flush: one Flush request for several collections, sent while the plans start
    META_ONLY = "meta_only"  # schemas, partitions and indexes; no flush, no data
    SKIP_FLUSH = "skip_flush"  # copy only what Milvus has already persisted; rows still in memory are left out
    BULK_FLUSH = "bulk_flush"  # one flush call for FLUSH_BATCH chosen collections of a database, then plan and copy
    SERIAL_FLUSH = "serial_flush"  # flush each collection just before it is planned


def strategy_of(request: BackupRequest) -> Strategy:
    """The request's strategy; an unknown name is refused, listing the known ones."""
    if not request.strategy:
        return Strategy.META_ONLY if request.meta_only else Strategy.AUTO
    try:
        strategy = Strategy(request.strategy)
    except ValueError:
        known = ", ".join(s.value for s in Strategy if s is not Strategy.AUTO)
        raise InvalidRequest(f"unknown strategy {request.strategy!r}: use one of {known}") from None
    if request.meta_only and strategy is not Strategy.META_ONLY:
        raise InvalidRequest(f"meta_only and strategy {strategy} contradict each other: give one of them")
    return strategy


def check_request(request: BackupRequest) -> Strategy:
    """What can be refused in a request without asking Milvus; its strategy."""
    if request.gc_pause_seconds < 0:
        raise InvalidRequest(f"gc_pause_seconds must be 0 or more, not {request.gc_pause_seconds}")
    if request.gc_pause_address and not request.gc_pause_address.startswith(("http://", "https://")):
        raise InvalidRequest(f"gc_pause_address must be an http:// or https:// URL, not {request.gc_pause_address!r}")
    return strategy_of(request)


def default_backup_name(now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.UTC)
    return f"backup_{now:%Y_%m_%d_%H_%M_%S}_{time.time_ns() % 1_000_000_000}"


def resolve_collections(milvus: Milvus, request: BackupRequest) -> list[tuple[str, str]]:
    """(db, name) pairs to back up, from every way a face can name them; unknown ones are refused
    before anything is done. Nothing named at all means every collection (of `request.db` if set)."""
    if request.filter is not None:
        return _filtered(milvus, request)
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
    databases = set(milvus.list_databases())
    in_milvus = {db: set(milvus.list_collections(db)) for db in {db for db, _ in unique} if db in databases}
    for db, name in unique:  # two requests per database, not per collection
        if name not in in_milvus.get(db, ()):
            raise NotFound(f"collection {db}.{name} not found in Milvus; `milvus-backup list-collections` shows them")
    return unique


def _filtered(milvus: Milvus, request: BackupRequest) -> list[tuple[str, str]]:
    """The upstream's CollFilter: named collections, "*" for all of a database, a database alone backs up
    none of its collections. Every database and collection it names must exist; it must match one at least."""
    assert request.filter is not None
    if request.collections or request.db_collections or request.db:
        raise InvalidRequest("give either filter or collection names / databases (collection_names, db_collections)")
    known = milvus.list_databases()
    pairs = []
    for db, names in request.filter.items():
        if db not in known:
            raise NotFound(f"database {db} of the filter not found in Milvus (it has: {', '.join(known)})")
        present = milvus.list_collections(db)
        missing = [n for n in names if n != ALL and n not in present]
        if missing:
            raise NotFound(f"collection {db}.{missing[0]} of the filter not found in Milvus")
        pairs += [(db, name) for name in present if filter_allows(request.filter, db, name)]
    if not pairs:
        raise NotFound(f"the filter {describe_filter(request.filter)} matches no collection: nothing to back up")
    return pairs


def _split(item: str, default_db: str) -> tuple[str, str]:
    db, _, name = item.strip().rpartition(".")
    if not name:
        raise InvalidRequest(f"empty collection name in {item!r}")
    return db or default_db, name


def _kv(pairs: Iterable[Any]) -> list[KeyValue]:  # protobuf KeyValuePair messages
    return [KeyValue(key=p.key, value=p.value) for p in pairs]


@dataclass
class _CollectionPlan:
    meta: Collection  # its binlog lists read back from the spill
    copies: CollectionCopies  # read back from the spill as they start, the largest first
    folders: list[str]  # the backup's folders its copies go to (one a segment and kind): listed to confirm them


# A collection's flush: its timestamp when done already (0: not flushed at all), None to flush it as it is
# planned, or the answer to one flush request for several collections of its database.
Flushed = int | None | Future[dict[str, int]]


class _LoadStates:
    """Every chosen collection's load state, asked once per database for the whole backup: one request
    instead of one per collection."""

    def __init__(self, milvus: Milvus):
        self._milvus = milvus
        self._lock = threading.Lock()
        self._by_db: dict[str, dict[str, str]] = {}

    def of(self, db: str, coll: str) -> str:
        with self._lock:  # the first plan of a database asks; the others wait for its answer
            states = self._by_db.get(db)
            if states is None:
                states = self._by_db[db] = self._milvus.load_states(db)
        return states.get(coll, "NotLoad")


@dataclass(frozen=True)
class _Pools:
    """What the plans share: threads for the Milvus requests of the collections being planned and for
    segment listings, and the load states."""

    requests: ThreadPoolExecutor
    segments: ThreadPoolExecutor
    load_states: _LoadStates


@dataclass(frozen=True)
class _Spilling:
    """Where a collection's segment listings put the binlogs they find: the spill, the backup's name (the
    copies' keys) and the collection's place in the plan."""

    spill: BinlogSpill
    name: str
    index: int
    check_cancelled: Callable[[], None] = lambda: None  # between pages of a listing: one segment can hold 100k


class _Found:
    """A listing's binlogs on their way into the spill, a page at a time, and how many of each field, how
    large: the segment's meta keeps only that."""

    def __init__(self, to: _Spilling, seg: SegmentInfo, kind: int):
        self.to, self.seg, self.kind = to, seg, kind
        self.fields: dict[int, list[int]] = {}  # field -> [binlogs, bytes]
        self._rows: list[BinlogRow] = []

    def add(self, obj: ObjectInfo, field_id: int, log_id: int, dst: str) -> None:
        where = (self.to.index, self.seg.segment_id, self.kind)
        self._rows.append(BinlogRow(*where, field_id, log_id, obj.key, dst, obj.size, obj.etag))
        counts = self.fields.setdefault(field_id, [0, 0])
        counts[0] += 1
        counts[1] += obj.size
        if len(self._rows) >= SPILL_PAGE:
            self.flush()

    def flush(self) -> None:
        self.to.spill.add(self._rows)
        self._rows = []
        self.to.check_cancelled()

    def field_binlogs(self) -> tuple[list[FieldBinlog], int]:
        """The segment's binlogs of this kind by field, read back from the spill when the meta is written,
        and their bytes."""
        self.flush()
        to, seg = self.to, self.seg
        spilled = [
            FieldBinlog(
                field_id=f,
                binlogs=cast(list[Binlog], SpilledBinlogs(to.spill, to.index, seg.segment_id, self.kind, f, count)),
            )
            for f, (count, _) in sorted(self.fields.items())
        ]
        return spilled, sum(size for _, size in self.fields.values())


def _insert_binlogs(ctx: Context, seg: SegmentInfo, to: _Spilling) -> tuple[list[FieldBinlog], int]:
    """A segment's insert binlogs, found by listing its folder in the Milvus bucket, into the spill (with
    the listing's ETags, for the copies' confirmation); their bytes."""
    found = _Found(to, seg, INSERT)
    layout, cid, pid, sid = ctx.backup_layout, seg.collection_id, seg.partition_id, seg.segment_id
    prefix = ctx.milvus_layout.insert_segment(cid, pid, sid)
    for obj in ctx.milvus_storage.list(prefix):
        try:
            log = ctx.milvus_layout.parse_insert_log(obj.key)
        except MalformedKey:
            continue  # not a binlog
        dst = layout.insert_binlog(to.name, cid, pid, sid, sid, log.field_id, log.log_id)
        found.add(obj, log.field_id, log.log_id, dst)
    if seg.num_rows and not found.fields:
        raise StorageError(
            f"segment {seg.segment_id} has no binlogs under {ctx.milvus_storage.bucket}/{prefix}: check that "
            "minio.bucketName and minio.rootPath match the Milvus server's own config"
        )
    return found.field_binlogs()


def _delta_binlogs(ctx: Context, seg: SegmentInfo, to: _Spilling) -> tuple[list[FieldBinlog], int]:
    """A segment's delete logs, as _insert_binlogs finds its insert logs (all as field 0)."""
    found = _Found(to, seg, DELTA)
    layout, cid, pid, sid = ctx.backup_layout, seg.collection_id, seg.partition_id, seg.segment_id
    for obj in ctx.milvus_storage.list(ctx.milvus_layout.delta_segment(cid, pid, sid)):
        try:
            log = ctx.milvus_layout.parse_delta_log(obj.key)
        except MalformedKey:
            continue
        found.add(obj, 0, log.log_id, layout.delta_binlog(to.name, cid, pid, sid, sid, log.log_id))
    return found.field_binlogs()


_LISTINGS = (_insert_binlogs, _delta_binlogs)  # in this order: listed[::2] are insert logs


def _flush_ts(milvus: Milvus, db: str, coll: str, flushed: Flushed) -> int:
    if flushed is None:
        return milvus.flush(db, coll)
    if isinstance(flushed, Future):
        return flushed.result()[coll]
    return flushed


def _plan_collection(
    ctx: Context,
    backup_id: str,
    name: str,
    db: str,
    coll: str,
    meta_only: bool,
    reporter: Reporter,
    pools: _Pools,
    to: _Spilling,
    flushed: Flushed = None,
) -> _CollectionPlan:
    """The requests that do not depend on the flush (describe, indexes, partitions) are sent while it
    runs and the persistent segments are asked for: a collection's plan takes about as long as its flush,
    its segments request and its segment listing."""
    milvus = ctx.milvus
    asked_desc = pools.requests.submit(milvus.describe, db, coll)
    asked_indexes = pools.requests.submit(milvus.indexes, db, coll)
    asked_partitions = pools.requests.submit(milvus.partitions, db, coll)
    try:
        load_state = pools.load_states.of(db, coll)
        flush_ts = _flush_ts(milvus, db, coll, flushed)
        reporter.check_cancelled()
        found = [] if meta_only else milvus.segments(db, coll)
        desc = asked_desc.result()
        reporter.check_cancelled()
    finally:
        others: list[Future[Any]] = [asked_desc, asked_indexes, asked_partitions]
        wait(others)  # nothing of this plan runs on after it
    backup_ts = flush_ts or (int(time.time() * 1000) << 18)
    indexes = [
        IndexInfo(
            field_name=i.field_name,
            index_name=i.index_name,
            index_type={kv.key: kv.value for kv in i.params}.get("index_type", ""),
            params={kv.key: kv.value for kv in i.params},
            index_id=i.indexID,
        )
        for i in asked_indexes.result()
    ]
    segments: dict[int, list[Segment]] = {}
    folders: set[str] = set()
    copies = CollectionCopies(to.spill, to.index, f"{db}.{coll}", 0, 0)
    if not meta_only:
        # each segment's two folders listed at once, on the pool all plans share
        listings = [partial(list_binlogs, ctx, seg, to) for seg in found for list_binlogs in _LISTINGS]
        listed = run_all(pools.segments, lambda listing: listing(), listings, reporter)
        for seg, (insert, insert_size), (delta, delta_size) in zip(found, listed[::2], listed[1::2], strict=True):
            segment = Segment(
                segment_id=seg.segment_id,
                collection_id=seg.collection_id,
                partition_id=seg.partition_id,
                num_of_rows=seg.num_rows,
                binlogs=insert,
                deltalogs=delta,
                size=insert_size + delta_size,
                group_id=seg.segment_id,
                storage_version=0,
            )
            segments.setdefault(seg.partition_id, []).append(segment)
            layout, cid, pid = ctx.backup_layout, seg.collection_id, seg.partition_id
            sid = seg.segment_id
            folders.update([layout.insert_group(name, cid, pid, sid)] if insert else [])
            folders.update([layout.delta_group(name, cid, pid, sid)] if delta else [])
            copies.count += sum(len(fb.binlogs) for fb in insert + delta)
            copies.size += segment.size
    partitions = []
    for part_name, part_id in asked_partitions.result():
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
    return _CollectionPlan(meta, copies, sorted(folders))


class _PlanAndCopy:
    """Plans (describes, flushes, lists the segments of) up to backup.parallelism.backupCollection collections
    at once, and copies each collection's binlogs as soon as it is planned, while later ones are planned: the
    copies of at most backupCollection collections are under way at a time (one copy of each in turn), on
    one pool of backup.parallelism.copydata threads. Segment folders are listed on one shared pool of
    backupSegment threads (at most MAX_LISTINGS: the S3 client keeps that many connections, more threads
    would only wait).

    Progress: each collection's planning is the job's step until the first copies start; from then on the
    job is in its copy phase, and its byte and object totals are given once every collection is planned (a
    total never grows under what is done, so the fraction never goes back). Each collection's share is
    declared as it is planned."""

    def __init__(
        self,
        ctx: Context,
        backup_id: str,
        name: str,
        pairs: list[tuple[str, str]],
        meta_only: bool,
        reporter: Reporter,
        strategy: Strategy,
        spill: BinlogSpill,
    ):
        self.ctx, self.backup_id, self.name, self.pairs = ctx, backup_id, name, pairs
        self.meta_only, self.reporter, self.strategy, self.spill = meta_only, reporter, strategy, spill
        self.flushed: dict[tuple[str, str], Flushed] = {}
        self._feed = CopyFeed()
        self.confirmations = _ConfirmedCopies(ctx, name, reporter, self._feed.fail, spill)
        self.copying = False  # the first copies were handed over: something may be written
        self._plans: list[_CollectionPlan | None] = [None] * len(pairs)
        self._lock = threading.Lock()
        self._bytes = self._objects = 0

    def collections_at_once(self) -> int:
        return min(self.ctx.config.backup.backup_collection, len(self.pairs))

    def listings_at_once(self) -> int:
        return min(self.ctx.config.backup.backup_segment, MAX_LISTINGS)

    def run(self) -> list[_CollectionPlan]:
        """Every collection's plan, in the order of `pairs`, once all its copies are done (run it while
        `confirmations` is checking: the last confirmations may still be under way when it returns). At the
        first failure (a cancel included) no other plan or copy starts, and the failure is raised once what
        runs has finished."""
        at_once = self.collections_at_once()
        with (
            ThreadPoolExecutor(self.listings_at_once(), thread_name_prefix="segments") as segments,
            ThreadPoolExecutor(REQUESTS_PER_PLAN * at_once, thread_name_prefix="requests") as requests,
            ThreadPoolExecutor(at_once, thread_name_prefix="collections") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="flush") as flushes,
        ):
            pools = _Pools(requests, segments, _LoadStates(self.ctx.milvus))
            self.flushed = _flushes(self.ctx.milvus, self.pairs, self.strategy, self.reporter, flushes)
            futures = [pool.submit(self._plan, index, pools) for index in range(len(self.pairs))]
            try:
                self._copy()
            except BaseException:
                for future in futures:
                    future.cancel()
                wait(futures)
                raise
        return [plan for plan in self._plans if plan is not None]

    def _plan(self, index: int, pools: _Pools) -> None:
        db, coll = self.pairs[index]
        try:
            self.reporter.check_cancelled()
            if self._feed.error is not None:
                return  # another plan failed: the backup stops
            self.reporter.phase(Phase.PREPARE, f"{db}.{coll}", unless=Phase.COPY)
            flushed = self.flushed[db, coll]
            to = _Spilling(self.spill, self.name, index, self.reporter.check_cancelled)
            plan = _plan_collection(
                self.ctx, self.backup_id, self.name, db, coll, self.meta_only, self.reporter, pools, to, flushed
            )
            self._planned(index, plan)
        except BaseException as exc:
            self._feed.fail(exc)
            raise
        self.reporter.log(
            f"{db}.{coll}: {len(plan.meta.segments())} segment(s), {len(plan.copies)} binlog(s), {plan.meta.size} bytes"
        )

    def _planned(self, index: int, plan: _CollectionPlan) -> None:
        """Hand the plan's copies over; under the lock, so the copy phase starts before its first copy does."""
        db, coll = self.pairs[index]
        with self._lock:
            self._plans[index] = plan
            self.confirmations.expect(f"{db}.{coll}", index, len(plan.copies), plan.folders)
            self.reporter.plan_collection(f"{db}.{coll}", plan.copies.size, plan.meta.num_rows)
            self._bytes += plan.copies.size
            self._objects += len(plan.copies)
            left = sum(p is None for p in self._plans)
            if not left:
                done = f"copying {self._objects} binlog(s), {self._bytes} bytes"
                if self.copying:
                    self.reporter.totals(self._bytes, self._objects, message=f"every collection planned: {done}")
                else:
                    self.reporter.phase(
                        Phase.COPY, "", bytes_total=self._bytes, objects_total=self._objects, message=done
                    )
            elif plan.copies and not self.copying:
                self.reporter.phase(Phase.COPY, "", message=f"copying as collections are planned ({left} to plan)")
            self.copying = self.copying or bool(plan.copies)
            self._feed.add(plan.copies)
            if not left:
                self._feed.close()

    def _copy(self) -> None:
        copy_groups(
            self.ctx.milvus_storage,
            self.ctx.backup_storage,
            self._feed,
            self.ctx.config.backup.copydata,
            self.ctx.config.backup.backup_collection,
            on_progress=lambda b, o: self.reporter.add(bytes_done=b, objects_done=o),
            cancel=self.reporter.cancel_event,
            server_side=not self.ctx.config.cross_storage,
            after_copy=self.confirmations.add,
        )


def run_all(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Sequence[T], reporter: Reporter) -> list[R]:
    """fn of each item on `pool`, the results in the items' order. Each starts with a cancel check;
    at the first failure (a cancel included) what has not started is dropped, and the failure is
    raised once what runs has finished, so nothing of this job is still at work after it returns."""
    futures: list[Future[R]] = []

    def checked(item: T) -> R:
        reporter.check_cancelled()
        return fn(item)

    try:
        futures = [pool.submit(checked, item) for item in items]
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise


def run_backup(
    ctx: Context,
    request: BackupRequest,
    reporter: Reporter,
    backup_id: str | None = None,
    pairs: list[tuple[str, str]] | None = None,
) -> BackupInfo:
    """Carry out a backup (called in the job's thread). Returns the BackupInfo that was written. `pairs`:
    the collections as resolve_collections gave them to a caller that also found the name free just
    before; they are not asked for again (a listing and two requests to Milvus before the first copy)."""
    name = check_backup_name(request.name)
    if pairs is None and ctx.catalog.exists(name):
        raise AlreadyExists(
            f"backup {name} already exists in {ctx.backup_storage.bucket}/"
            f"{ctx.backup_layout.backups_root()}; choose another name or delete it first"
        )
    strategy = check_request(request)
    pairs = resolve_collections(ctx.milvus, request) if pairs is None else pairs
    version = ctx.milvus.version()
    untested = check_backup_source(version, ctx.config.backup.allow_untested_milvus)
    started = int(time.time())
    backup_id = backup_id or str(uuid.uuid4())
    wrote_anything = gc_paused = False
    planned: _PlanAndCopy | None = None
    manifest: ManifestWriter | None = None
    spill = BinlogSpill()  # the binlogs, on disk; the returned meta reads its binlog lists from it
    try:
        reporter.phase(Phase.PREPARE, message=f"planning backup {name} of {len(pairs)} collection(s)")
        for warning in untested:
            reporter.log(warning)
        meta_only = strategy is Strategy.META_ONLY
        if not meta_only and request.gc_pause is not False:
            gc_paused = _pause_gc(ctx, reporter, request)
        planned = _PlanAndCopy(ctx, backup_id, name, pairs, meta_only, reporter, strategy, spill)
        confirmations = planned.confirmations
        # the last collection's confirmation (a listing) runs on while the meta files are rendered and written
        with confirmations.checking(planned.collections_at_once(), planned.listings_at_once()):
            info = _copied(ctx, request, reporter, planned, backup_id, name, version, started)
            wrote_anything = True
            manifest = ManifestWriter(name)
            reporter.phase(Phase.META, message="writing meta")
            write_meta(ctx, name, info, manifest, confirmations.confirm)
        reporter.add(rows=sum(c.num_rows for c in info.collection_backups))
        reporter.log(f"backup {name} complete: {len(info.collection_backups)} collection(s), {info.size} bytes")
        return info
    except BaseException as exc:
        spill.close()
        if wrote_anything or (planned is not None and planned.copying):
            _remove_partial(ctx, name, reporter, exc)
        raise
    finally:
        if manifest is not None:
            manifest.close()
        if gc_paused:
            _gc_call(ctx, request, reporter, "resume", "resumed Milvus garbage collection")


def _copied(
    ctx: Context,
    request: BackupRequest,
    reporter: Reporter,
    planned: _PlanAndCopy,
    backup_id: str,
    name: str,
    version: str,
    started: int,
) -> BackupInfo:
    """Plan and copy every collection; the backup's meta once the copies are done."""
    plans = planned.run()
    reporter.check_cancelled()
    collections = [p.meta for p in plans]
    return BackupInfo(
        id=backup_id,
        state_code=BackupState.SUCCESS,
        start_time=started,
        end_time=int(time.time()),
        progress=100,
        name=name,
        backup_timestamp=max((c.backup_timestamp for c in collections), default=0),
        collection_backups=collections,
        size=sum(c.size for c in collections),
        milvus_version=version,
        database_backups=[Database(db_name=db) for db in sorted({c.db_name for c in collections})],
        rbac_meta=backup_rbac(ctx.milvus, reporter) if request.rbac else None,
        # the guard was off for this backup: say so in its meta (the Go tool ignores keys it does not know)
        extra={UNTESTED_META_KEY: True} if ctx.config.backup.allow_untested_milvus else {},
    )


class _ConfirmedCopies:
    """Confirms the binlog copies without reading them back, as the Go tool does: once a collection's last
    copy is done, a listing of its segments' folders (listed at once, while other collections copy) must
    show each of its copies with its source's size, and with the ETag the copy reported (and, for a one-part
    copy inside one store, its source's ETag). A store that kept other bytes than it was given fails the
    backup: `on_failure` is told at once, so that no other copy starts. Gives the manifest's entries: size,
    the ETag the store vouches for, and the SHA-256 of bytes that streamed through the tool anyway."""

    def __init__(
        self,
        ctx: Context,
        name: str,
        reporter: Reporter,
        on_failure: Callable[[BaseException], None],
        spill: BinlogSpill,
    ):
        self.ctx, self.name, self.reporter, self.on_failure, self.spill = ctx, name, reporter, on_failure, spill
        self._index: dict[str, int] = {}  # each collection's place in the plan: its copies' rows in the spill
        self._left: dict[str, int] = {}  # each collection's copies not done yet
        self._folders: dict[str, list[str]] = {}
        self._checks: list[Future[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._lists: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @contextmanager
    def checking(self, at_once: int, listings: int) -> Iterator[None]:
        """While open, each collection is confirmed as soon as its copies are done, `at_once` at a time,
        up to `listings` of their folders listed at once; the confirmations under way end before it closes."""
        with (
            ThreadPoolExecutor(at_once, thread_name_prefix="confirm") as pool,
            ThreadPoolExecutor(listings, thread_name_prefix="confirm-list") as lists,
        ):
            self._pool, self._lists = pool, lists
            yield

    def expect(self, collection: str, index: int, copies: int, folders: list[str]) -> None:
        """`collection`'s count of copies, declared before any of them starts, and the folders they go to."""
        with self._lock:
            self._index[collection] = index
            self._left[collection] = copies
            self._folders[collection] = folders

    def add(self, task: CopyTask, copied: Copied) -> None:
        """Called in the copy's worker after each copy: its answer goes on its row of the spill."""
        assert isinstance(task, SpilledCopy), "a backup's copies are read from its spill"
        owner = task.collection
        self.spill.copied(task.row, copied)
        with self._lock:
            self._left[owner] -= 1
            if not self._left[owner]:
                assert self._pool is not None, "copies are made while checking"
                self._checks.append(self._pool.submit(self._confirm_collection, owner))
        self.reporter.collection_copied(owner, task.size)
        pause_point("backup:copy")

    def _confirm_collection(self, collection: str) -> None:
        try:
            self._list_and_check(collection)
        except BaseException as exc:
            self.on_failure(exc)
            raise

    def _list_and_check(self, collection: str) -> None:
        assert self._lists is not None, "copies are confirmed while checking"
        run_all(self._lists, self._check_folder, self._folders[collection], self.reporter)
        storage = self.ctx.backup_storage
        absent = self.spill.unconfirmed(self._index[collection])
        if absent is not None:
            raise StorageError(
                f"the copy {storage.describe(absent)} is absent after it was written: the store did not keep "
                "what was written"
            )

    def _check_folder(self, folder: str) -> None:
        """Check each copy that the listing of `folder` shows (a segment's insert or delete logs)."""
        storage = self.ctx.backup_storage
        for obj in storage.list(folder):
            made = self.spill.answer(obj.key)
            if made is None:
                continue
            _check_copy(storage, made.task, made.copied, obj)
            self.spill.confirmed(made.row, obj.etag)

    def confirm(self, manifest: ManifestWriter) -> None:
        """Once every copy is done: wait for the checks still under way, raise the first failed confirmation,
        else add every copy's entry to `manifest`, in key order (read back from the spill)."""
        for check in self._checks:
            check.result()
        left = self.spill.unconfirmed()
        if left is not None:  # a copy whose collection was never confirmed: not expected once every copy is done
            raise StorageError(f"the copy {self.ctx.backup_storage.describe(left)} was not confirmed")
        for key, entry in self.spill.entries():
            manifest.add(self.ctx.backup_layout.relative_key(self.name, key), entry)


def _check_copy(storage: Storage, task: CopyTask, copied: Copied, listed: ObjectInfo) -> None:
    """Raise unless the listed copy is what its source's listing and its copy's answer promise."""
    if listed.size != task.size:
        what = f"{listed.size} bytes"
    elif copied.etag and listed.etag and listed.etag != copied.etag:
        what = f"other bytes (ETag {listed.etag}, the copy answered {copied.etag})"
    elif copied.single_part and not copied.sha256 and is_md5_etag(task.etag) and listed.etag != task.etag:
        what = f"other bytes (ETag {listed.etag or 'none'})"
    else:
        return
    raise StorageError(
        f"the copy {storage.describe(listed.key)} holds {what} than its source {task.src_key} ({task.size} bytes, ETag "
        f"{task.etag or 'none'}): the store did not keep what was written"
    )


def write_meta(
    ctx: Context, name: str, info: BackupInfo, manifest: ManifestWriter, binlogs: Callable[[ManifestWriter], None]
) -> None:
    """Write the meta files, then the integrity manifest (the binlogs' entries, which `binlogs` adds once
    every copy is confirmed, then every meta file's), then backup_meta.json, which marks the backup complete."""
    storage, layout = ctx.backup_storage, ctx.backup_layout
    first = META_WRITE_ORDER[:-1]
    # written a binlog at a time into temporary files, never held whole; full_meta.json records the
    # length of the five files as they are with its meta_size still 0, so it is written twice
    with rendered_meta(info) as files, ExitStack() as stack:
        info.meta_size = sum(meta.length for meta in files.values())
        files = {**files, **stack.enter_context(rendered_meta(info, (FULL_META,)))}

        def write(filename: str) -> None:
            storage.write_file(layout.meta(name, filename), files[filename].file, files[filename].length)

        small = [f for f in first if files[f].length <= ONE_PART_AT_ONCE]
        with ThreadPoolExecutor(len(first), thread_name_prefix="meta") as pool:  # no order among these
            writes = [pool.submit(write, f) for f in small]
            for f in first:  # a large file holds a part (5 MiB) in memory while it is sent: one at a time
                if f not in small:
                    write(f)
            for future in writes:
                future.result()
        pause_point("backup:meta")
        binlogs(manifest)
        for filename in sorted(META_WRITE_ORDER):  # after every binlog: "binlogs/..." < "meta/..."
            manifest.add(join(META_DIR, filename), Entry(files[filename].length, files[filename].sha256))
        storage.write_file(layout.meta(name, MANIFEST), *manifest.finish())
        pause_point("backup:final")
        last = files[META_WRITE_ORDER[-1]]
        storage.write_file(layout.meta(name, META_WRITE_ORDER[-1]), last.file, last.length)


def _flushes(
    milvus: Milvus, pairs: list[tuple[str, str]], strategy: Strategy, reporter: Reporter, pool: ThreadPoolExecutor
) -> dict[tuple[str, str], Flushed]:
    """Each collection's flush. auto and bulk_flush: one Flush request per FLUSH_BATCH chosen collections of
    a database, sent on `pool` one after the other, in the order the collections are planned (the plans'
    other requests go meanwhile; each plan waits for its batch's answer before it asks for segments): a
    request, and a wait, for many collections, and the first plans need not wait for the last batch.
    serial_flush: each collection is flushed as it is planned. meta_only, skip_flush: never (0)."""
    if strategy is Strategy.SERIAL_FLUSH:
        return dict.fromkeys(pairs, None)
    if strategy in (Strategy.META_ONLY, Strategy.SKIP_FLUSH):
        if strategy is Strategy.SKIP_FLUSH:
            reporter.log("skip_flush: only what Milvus has persisted is copied; rows it holds in memory are left out")
        return dict.fromkeys(pairs, 0)
    batches: list[tuple[str, list[str]]] = []  # runs of one database's collections, in the order of `pairs`
    for db, coll in pairs:
        if batches and batches[-1][0] == db and len(batches[-1][1]) < FLUSH_BATCH:
            batches[-1][1].append(coll)
        else:
            batches.append((db, [coll]))
    reporter.log(f"flushing {len(pairs)} collection(s), {FLUSH_BATCH} at most a request")
    flushed: dict[tuple[str, str], Flushed] = {}
    for db, names in batches:
        asked = pool.submit(milvus.flush_many, db, names)
        flushed.update({(db, name): asked for name in names})
    return flushed


GC_PAUSE_SECONDS = 3600  # when the request names no duration


def _pause_gc(ctx: Context, reporter: Reporter, request: BackupRequest) -> bool:
    """Ask Milvus to hold its garbage collection while binlogs are copied (resumed when the backup ends).
    Best effort, as in the upstream: Milvus 2.3.5 has no such endpoint (it answers 404), and its GC keeps
    dropped binlogs for about an hour anyway. True when Milvus paused it."""
    if not (ctx.config.backup.gc_pause_enable or request.gc_pause):
        return False
    seconds = request.gc_pause_seconds or GC_PAUSE_SECONDS
    return _gc_call(ctx, request, reporter, f"pause?pause_seconds={seconds}", f"paused Milvus GC for up to {seconds} s")


def _gc_call(ctx: Context, request: BackupRequest, reporter: Reporter, action: str, done: str) -> bool:
    address = request.gc_pause_address or ctx.config.backup.gc_pause_address
    url = f"{address.rstrip('/')}/management/datacoord/garbage_collection/{action}"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            resp.read()
        reporter.log(done)
        return True
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        reporter.log(f"warning: Milvus at {address} did not {action.split('?')[0]} its garbage collection ({reason})")
        return False


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
