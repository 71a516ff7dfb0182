"""The backups in a backup store, read from the store itself (never from process memory).

A folder under the backup root is a complete backup when `meta/backup_meta.json` exists; a folder
without it is what an interrupted or failed backup left behind, listed as incomplete so it can be
deleted. Backups written by zilliztech/milvus-backup are read the same way.

A listing is one listing of the root with "/" as the delimiter (a name a backup), then each backup's
`backup_meta.json` read, in parallel: its cost grows with the backups, never with their binlogs. (A
listing with "/binlogs/" as the delimiter would give every meta file's ETag in a few requests, but
SeaweedFS walks every key it rolls up, 28 s for 50 backups of 2,000 binlogs, and no store need index by
another delimiter than "/".) A summary (collections, times, from `backup_meta.json` and
`collection_meta.json`) comes from a cache on this machine keyed by the ETag of the `backup_meta.json`
just read (a backup made again under the same name has another), so `collection_meta.json` is read only
for backups not seen before. A local folder has no ETags: each is read.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import hashlib
import json
import logging
import os
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from milvus_backup.core.errors import NotFound, StorageError
from milvus_backup.core.meta import (
    BackupInfo,
    BackupState,
    Collection,
    MetaError,
    MetaFile,
    Partition,
    RenderedSegments,
    Segment,
    full_meta_segments,
    placed_level_segments,
    placed_segments,
    read_backup,
    read_full_meta,
    read_segment_meta,
    render_backup_json,
    segment_meta_segments,
)
from milvus_backup.core.paths import (
    BACKUP_META,
    CHANNEL_CP_META,
    COLLECTION_META,
    FULL_META,
    META_WRITE_ORDER,
    PARTITION_META,
    SEGMENT_META,
    BackupLayout,
    InvalidName,
    UnsafeKey,
    check_backup_name,
)
from milvus_backup.core.storage import ObjectNotFound, Readable, Storage

log = logging.getLogger("milvus_backup")
T = TypeVar("T")
READERS = 32  # meta files read at once by a listing
CHECKING = "checking"  # the state of a backup listed but not read yet (Catalog.list's early answer)
SETTLED = frozenset({"success", "fail"})  # the states of a backup_meta.json no backup writes again


@dataclass(frozen=True)
class BackupSummary:
    name: str
    id: str
    state: str  # "success", "fail", ... or "incomplete" when backup_meta.json is missing
    size: int
    milvus_version: str
    start_time: int
    end_time: int
    collections: tuple[str, ...]  # "db.name"

    @property
    def complete(self) -> bool:
        return self.state == "success"


def _state_name(code: int) -> str:
    try:
        return BackupState(code).name.lower()
    except ValueError:
        return str(code)


class Catalog:
    def __init__(self, storage: Storage, layout: BackupLayout):
        self.storage = storage
        self.layout = layout

    def exists(self, name: str) -> bool:
        """True when anything at all is stored under the name: a name is taken even by leftovers."""
        return next(iter(self.storage.list(self.layout.backup(name))), None) is not None

    def is_complete(self, name: str) -> bool:
        return self.storage.exists(self.layout.meta(name, BACKUP_META))

    def list(
        self,
        early: Callable[[list[BackupSummary]], None] | None = None,
        known: Mapping[str, BackupSummary] | None = None,
    ) -> list[BackupSummary]:
        """Every backup folder's summary, by name: the folders from one "/" listing of the root, then each
        backup's `backup_meta.json` read in parallel (a backup seen before under its ETag costs nothing more).

        `early`, when given, is called once the names are known, before anything is read, with what this
        machine last saw of each (its cached summary, unchecked), or a summary in state CHECKING.
        `known`: summaries the caller read a moment ago and takes as they are for the names still listed
        (those of finished backups: success or fail); only the other names are read."""
        root = self.layout.backups_root()
        cache = SummaryCache.for_store(self.storage.describe(root))
        names = sorted(name for info in self.storage.list_rolled(root, "/") if (name := _folder_name(root, info.key)))
        if early is not None:
            early([cache.last_seen(name) or _checking(name) for name in names])
        settled = {name: summary for name, summary in (known or {}).items() if summary.state in SETTLED}

        def summary(name: str) -> BackupSummary | None:
            if name in settled:
                cache.keep(name)
                return settled[name]
            return self._summary(name, cache)

        unread = [name for name in names if name not in settled]
        with ThreadPoolExecutor(max(1, min(READERS, len(unread))), thread_name_prefix="catalog") as pool:
            summaries = builtins.list(pool.map(summary, names))
        cache.save()
        return [summary for summary in summaries if summary is not None]

    def name_of_id(self, backup_id: str) -> str | None:
        """The name of the backup with that id: one read when this machine's listing cache saw it (its
        backup_meta.json is read to be sure it still has that id), else a whole listing; None if none has."""
        if not backup_id:
            return None
        cache = SummaryCache.for_store(self.storage.describe(self.layout.backups_root()))
        for name in cache.names_of_id(backup_id):
            try:
                info = read_backup({BACKUP_META: self.storage.read(self.layout.meta(name, BACKUP_META))})
            except (ObjectNotFound, MetaError):
                continue
            if info.id == backup_id:
                return name
        return next((summary.name for summary in self.list() if summary.id == backup_id), None)

    def _summary(self, name: str, cache: SummaryCache) -> BackupSummary | None:
        """The summary from the cache by the ETag read, else read from the backup's meta files (and kept)."""
        try:
            raw, etag = self.storage.read_tagged(self.layout.meta(name, BACKUP_META))
        except ObjectNotFound:  # deleted since the listing, or a folder the store keeps after its last object
            return _incomplete(name) if self.exists(name) else None
        cached = cache.get(name, etag)
        if cached is not None:
            return cached
        files = {BACKUP_META: raw}
        try:
            files[COLLECTION_META] = self.storage.read(self.layout.meta(name, COLLECTION_META))
        except ObjectNotFound:
            pass
        try:
            info = read_backup(files)
        except MetaError as exc:
            return BackupSummary(name, "", f"unreadable ({exc})", 0, "", 0, 0, ())
        summary = BackupSummary(
            # the folder's name, which get, restore and delete take (a copied backup's meta keeps its old one)
            name=name,
            id=info.id,
            state=_state_name(info.state_code),
            size=info.size,
            milvus_version=info.milvus_version,
            end_time=info.end_time,
            # backup_meta.json has no times: the collections' backup time stands in for it
            start_time=info.start_time
            or max((c.backup_physical_timestamp for c in info.collection_backups), default=0),
            collections=tuple(f"{c.db_name or 'default'}.{c.collection_name}" for c in info.collection_backups),
        )
        cache.put(name, etag, summary)
        return summary

    def get(self, name: str, *, binlogs: bool = False) -> BackupInfo:
        """The backup's meta: its few files read in parallel, whatever the number of backups.

        Its segments come without their binlog lists, so memory grows with the segments, not the
        binlogs: what get, the API and the app show, what a restore plans from and verify walks. The
        file the binlogs are in is read as a stream: full_meta.json (read_full_meta), or in a backup
        without it, segment_meta.json (read_segment_meta) beside the small level files.
        `read_segments` and `backup_json` give the binlogs back when needed. binlogs=True: the whole
        meta decoded at once, binlog lists included (read_backup), for a caller that knows it is small."""
        return self._get(name, binlogs)

    def _get(self, name: str, binlogs: bool, keep: Callable[[Segment], Segment] | None = None) -> BackupInfo:
        check_backup_name(name)
        files = (*META_WRITE_ORDER, CHANNEL_CP_META) if binlogs else (BACKUP_META,)
        found = self._read_files(name, files)
        if BACKUP_META not in found:
            if self.exists(name):
                raise NotFound(
                    f"backup {name} is incomplete (no meta/backup_meta.json): an interrupted or "
                    f"failed backup left it; remove it with: milvus-backup delete -n {name}"
                )
            raise NotFound(f"backup {name} not found under {self.storage.bucket}/{self.layout.backups_root()}")
        info = read_backup(found) if binlogs else self._read_bare(name, found[BACKUP_META], keep)
        if not info.name:
            info.name = name
        return info

    def backup_json(
        self,
        name: str,
        *,
        indent: int | None = None,
        last_word: Callable[[BackupInfo], dict[str, Any]] | None = None,
    ) -> MetaFile:
        """The backup's meta as the JSON text of encode(get(name)), updated with last_word(the meta), in
        a temporary file (meta.render_backup_json): get(name, binlogs=False), each segment's text made
        as the stream passes it whole (meta.RenderedSegments), then written where the tree puts it."""
        rendered = RenderedSegments(indent)
        try:
            info = self._get(name, False, rendered.keep)
            return render_backup_json(info, rendered, indent=indent, last_word=last_word(info) if last_word else None)
        finally:
            rendered.close()

    def _read_bare(self, name: str, top: bytes, keep: Callable[[Segment], Segment] | None) -> BackupInfo:
        """get(name, binlogs=False) once backup_meta.json (`top`) is read; `keep` as read_full_meta's."""
        try:
            return read_streamed(
                self.storage, self.layout.meta(name, FULL_META), lambda s: read_full_meta(s, top, keep)
            )
        except ObjectNotFound:
            pass
        levels = self._read_files(name, (COLLECTION_META, PARTITION_META))
        try:
            key = self.layout.meta(name, SEGMENT_META)
            segments = read_streamed(self.storage, key, lambda s: read_segment_meta(s, keep))
        except ObjectNotFound:
            segments = []
        return read_backup({BACKUP_META: top, **levels}, segments)

    def read_segments(
        self,
        name: str,
        info: BackupInfo,
        consume: Callable[[Iterator[tuple[Collection, Partition | None, Segment]]], T],
    ) -> T:
        """consume(every segment of `info`, as get(name, binlogs=False) gave it, with its binlog lists and
        where it sits: meta.placed_segments): full_meta.json (or, without it, segment_meta.json) read once
        more as a stream, a segment at a time. A transient failure starts it again: `consume` must take
        all or nothing (ExpectedObjects.add_meta_sizes does)."""
        try:
            key = self.layout.meta(name, FULL_META)
            return read_streamed(self.storage, key, lambda s: consume(placed_segments(info, full_meta_segments(s))))
        except ObjectNotFound:
            pass
        try:
            key = self.layout.meta(name, SEGMENT_META)
            return read_streamed(
                self.storage, key, lambda s: consume(placed_level_segments(info, segment_meta_segments(s)))
            )
        except ObjectNotFound:  # no segments but those the tree holds whole
            return consume(placed_segments(info))

    def _read_files(self, name: str, files: tuple[str, ...]) -> dict[str, bytes]:
        if not files:
            return {}
        with ThreadPoolExecutor(len(files), thread_name_prefix="meta") as pool:
            read = dict(zip(files, pool.map(lambda filename: self._read_meta(name, filename), files), strict=True))
        return {filename: data for filename, data in read.items() if data is not None}

    def _read_meta(self, name: str, filename: str) -> bytes | None:
        key = self.layout.meta(name, filename)
        try:
            return self.storage.read(key)
        except StorageError:
            if not self.storage.exists(key):
                return None
            raise

    def delete(self, name: str) -> int:
        """Remove every object of the backup, backup_meta.json first so it stops looking complete."""
        if not self.exists(name):
            raise NotFound(f"backup {name} not found under {self.storage.bucket}/{self.layout.backups_root()}")
        marker = self.layout.meta(name, BACKUP_META)
        removed = 0
        if self.storage.exists(marker):
            self.storage.delete(marker)
            removed = 1
        return removed + self.storage.delete_prefix(self.layout.backup(name))


def read_streamed(storage: Storage, key: str, consume: Callable[[Readable], T]) -> T:
    """consume(a stream of the object at `key`), never read whole; transient failures start it again
    (`consume` must take all or nothing). Raises ObjectNotFound when there is no such object, and what
    `consume` raises (MetaError, UnsafeKey, StorageError) as it is."""
    failed: list[Exception] = []

    def run() -> T | None:
        with storage.open(key) as stream:
            try:
                return consume(stream)
            except (MetaError, UnsafeKey, StorageError) as exc:  # not for _call to retry or to restate
                failed.append(exc)
                return None

    result = storage._call("read", storage.describe(key), run)
    if failed:
        raise failed[-1]
    return typing.cast(T, result)


def _folder_name(root: str, key: str) -> str | None:
    """The backup `key` (listed under `root`) is part of: the folder it is in, when that is a valid name."""
    name, slash, _rest = key[len(root) :].partition("/")
    if not slash or not key.startswith(root):
        return None  # a file beside the backups, not in a folder
    return name if _valid_name(name) else None  # else not ours (the Go tool's temp folders, stray files)


@functools.lru_cache(maxsize=4096)
def _valid_name(name: str) -> bool:
    try:
        check_backup_name(name)
    except InvalidName:
        return False
    return True


def _checking(name: str) -> BackupSummary:
    """A backup listed, not read yet."""
    return BackupSummary(name, "", CHECKING, 0, "", 0, 0, ())


def _incomplete(name: str) -> BackupSummary:
    """A folder without backup_meta.json: a backup being written, or one an interruption left behind."""
    return BackupSummary(name, "", "incomplete", 0, "", 0, 0, ())


class SummaryCache:
    """Backup summaries kept on this machine between runs, each with the ETag of the `backup_meta.json`
    it was made from: an entry is used only while that file still has that ETag. Stores without ETags
    (local folders, whose files are cheap to read) are not cached. Losing the file costs only time."""

    def __init__(self, path: Path | None):
        self.path = path
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self._old = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._old = {}

    @classmethod
    def for_store(cls, where: str) -> SummaryCache:
        """The cache of the backups at `where` (a store's description: endpoint, bucket, root)."""
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "milvus-backup-py" / "catalog"
        return cls(base / (hashlib.sha256(where.encode()).hexdigest()[:32] + ".json"))

    def get(self, name: str, etag: str) -> BackupSummary | None:
        """The summary kept for the backup while its `backup_meta.json` still has that ETag."""
        entry = self._old.get(name)
        if not etag or not isinstance(entry, dict) or entry.get("etag") != etag:
            return None
        summary = self.last_seen(name)
        if summary is not None:
            self._new[name] = entry
        return summary

    def last_seen(self, name: str) -> BackupSummary | None:
        """The summary kept for the backup, whatever it has become since."""
        entry = self._old.get(name)
        if not isinstance(entry, dict):
            return None
        try:
            fields = dict(entry["summary"])
            return BackupSummary(**{**fields, "collections": tuple(fields["collections"])})
        except (KeyError, TypeError, ValueError):
            return None

    def names_of_id(self, backup_id: str) -> builtins.list[str]:
        """The backups last seen with that id (one, unless a backup was copied under another name)."""
        return [name for name in self._old if (seen := self.last_seen(name)) is not None and seen.id == backup_id]

    def keep(self, name: str) -> None:
        """Keep the entry as it is: the listing took the backup's summary from its caller, unread."""
        if name in self._old:
            self._new[name] = self._old[name]

    def put(self, name: str, etag: str, summary: BackupSummary) -> None:
        if etag:
            self._new[name] = {"etag": etag, "summary": dataclasses.asdict(summary)}

    def save(self) -> None:
        """Write what this listing used (entries of backups gone since are dropped), atomically."""
        if self.path is None or self._new == self._old:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps(self._new, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("could not write the listing cache %s: %s", self.path, exc)
