"""Integrity of a backup: the manifest a backup writes, and the check (`verify`) that reads it back.

Every backup records, in `meta/integrity_manifest.json` (an extra file the Go tool ignores), the size
of every object it wrote, plus what vouches for its bytes without reading them twice: for a copy made
inside one S3 store, the ETag the store gave it (confirmed against the source's by one listing); for a
copy whose bytes streamed through the tool (across stores, into or out of a folder) and for each meta
file, the SHA-256 hashed on the way. Manifests of format 1 (a SHA-256 for every object) are still read.
The manifest is written after the other meta files and before `backup_meta.json`, so a complete backup
always has one.

`verify_backup` checks a backup against its manifest and against its own meta (the binlogs and sizes
the meta names), so backups made by the Go tool, which have no manifest, are checked by their meta
sizes. The quick check is one listing of the backup's folder (existence, sizes, ETags); the full check
also re-reads every object and compares its SHA-256 (or its MD5 with an ETag that is one).
`check_objects` is the quick check of a few objects, for a restore to run just before it imports them;
`check_staged` checks an object a restore copies anyway, from what the copy vouches for.
A manifest grows with the backup's binlogs (about 150 bytes each): it is written as its entries come
(`ManifestWriter`) and read as a stream of JSON events into a temporary SQLite table (`ExpectedObjects`),
from which verify takes the entries in key order and a restore the entries of one import group.
Keys read from a manifest or a meta file are checked by `BackupLayout.object_key` and can never leave
the backup's folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import ijson

from milvus_backup.core.catalog import Catalog, read_streamed
from milvus_backup.core.errors import BackupToolError, Cancelled, NotFound, StorageError
from milvus_backup.core.jobs import Phase
from milvus_backup.core.meta import (
    BackupInfo,
    Binlog,
    Collection,
    MetaError,
    Partition,
    Segment,
    json_error_line,
    placed_segments,
    read_full_meta,
)
from milvus_backup.core.paths import (
    BACKUP_META,
    CHANNEL_CP_META,
    FULL_META,
    MANIFEST,
    META_DIR,
    META_WRITE_ORDER,
    SEGMENT_META,
    BackupLayout,
    MalformedKey,
    UnsafeKey,
    check_backup_name,
    check_relative_key,
    is_binlog,
    join,
    log_id_of,
    relative_to,
)
from milvus_backup.core.storage import CHUNK_SIZE, Copied, ObjectInfo, Readable, Storage
from milvus_backup.core.storage.base import first

if TYPE_CHECKING:
    from milvus_backup.core.context import Context
    from milvus_backup.core.jobs import Reporter

MANIFEST_FORMAT = "milvus-backup-py/integrity-manifest/2"
OLD_MANIFEST_FORMAT = "milvus-backup-py/integrity-manifest/1"  # read, never written: a SHA-256 for each object
ALGORITHM = "sha256"
MANIFEST_IN_MEMORY = 1024 * 1024  # a larger manifest is written through a temporary file on disk
_HEX = frozenset("0123456789abcdef")
_MAX_SIZE = 2**63 - 1  # the largest size SQLite keeps (ExpectedObjects)

# The kinds of problem a check reports.
MISSING = "missing"  # an object the backup should hold is absent
TRUNCATED = "truncated"  # smaller than recorded
ALTERED = "altered"  # another size than recorded (larger), or the same size with other bytes
UNEXPECTED = "unexpected"  # a binlog no manifest or meta names: a restore would import it
UNREADABLE = "unreadable"  # a meta file or the manifest that cannot be parsed
UNSAFE = "unsafe"  # a key in a meta file or the manifest that would leave the backup's folder
INCONSISTENT = "inconsistent"  # the manifest and the meta disagree about an object


class DamagedBackup(BackupToolError):
    """A backup that failed its integrity check; carries the report."""

    def __init__(self, message: str, report: VerifyReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Problem:
    key: str  # the object's full key in the backup store
    kind: str  # missing | truncated | altered | unexpected | unreadable | unsafe | inconsistent
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "kind": self.kind, "detail": self.detail}


@dataclass
class VerifyReport:
    name: str
    full: bool  # True when every object was re-hashed
    source: str = "manifest"  # what the sizes/hashes came from: "manifest" or "meta" (a Go tool backup)
    objects_checked: int = 0
    bytes_checked: int = 0  # bytes whose size was checked (quick) or re-read and hashed (full)
    objects_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        how = "sizes and digests" if self.full else "existence, sizes and ETags"
        state = "OK" if self.ok else f"DAMAGED, {len(self.problems)} problem(s)"
        return (
            f"backup {self.name}: {state} ({how} of {self.objects_checked} object(s), {self.bytes_checked} "
            f"bytes, checked against the {'integrity manifest' if self.source == 'manifest' else 'meta sizes'})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "full": self.full,
            "source": self.source,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "objects_hashed": self.objects_hashed,
            "problems": [p.to_dict() for p in self.problems],
        }


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class Entry:
    """What a backup knows about one of its objects: always the size; the ETag the store gave it (what
    the store vouches for: a copy that never passed through this tool); the SHA-256 where the bytes did
    pass through (a meta file, a copy streamed across stores or into a folder). Neither: a Go tool's
    backup, known by its meta sizes only."""

    size: int
    sha256: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class Digests:
    """An object as read back: its size, SHA-256 and MD5 (an S3 ETag of a one-part object is its MD5)."""

    size: int
    sha256: str
    md5: str


def read_digests(storage: Storage, key: str, cancel: threading.Event | None = None) -> Digests:
    """Size, SHA-256 and MD5 of a stored object, read once in chunks (constant memory); transient
    failures retried."""

    def run() -> Digests | None:
        sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        with storage.open(key) as stream:
            while True:
                if cancel is not None and cancel.is_set():
                    return None  # raised below: inside _call it would become a StorageError
                chunk = stream.read(CHUNK_SIZE)
                if not chunk:
                    break
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
        return Digests(size, sha256.hexdigest(), md5.hexdigest())

    digests = storage._call("read", storage.describe(key), run)
    if digests is None:
        raise Cancelled(f"reading {key} was cancelled")
    return digests


def is_md5_etag(etag: str | None) -> bool:
    """True for the ETag of an object stored in one part, which S3 stores make the MD5 of its bytes
    (a multipart object's ETag ends in '-<parts>' and is no digest of the whole)."""
    return bool(etag) and len(etag or "") == 32 and all(c in _HEX for c in etag or "")


class ManifestWriter:
    """A manifest written as its entries come, in key order, into a temporary file that stays in memory
    while small: a backup's manifest grows with its binlogs, and is never held whole."""

    def __init__(self, name: str):
        self._file = tempfile.SpooledTemporaryFile(MANIFEST_IN_MEMORY)  # noqa: SIM115 (closed by close())
        head = {"format": MANIFEST_FORMAT, "algorithm": ALGORITHM, "backup": name, "objects": []}
        self._file.write(json.dumps(head, separators=(",", ":"))[: -len("]}")].encode())
        self._last: str | None = None

    def add(self, key: str, entry: Entry) -> None:
        """The entry of `key` (relative to the backup's folder), which sorts after the last one added."""
        if self._last is not None and key <= self._last:
            raise ValueError(f"manifest keys out of order: {key!r} after {self._last!r}")
        item: dict[str, Any] = {"key": key, "size": entry.size}
        if entry.etag:
            item["etag"] = entry.etag
        if entry.sha256:
            item["sha256"] = entry.sha256
        self._file.write((b"," if self._last is not None else b"") + json.dumps(item, separators=(",", ":")).encode())
        self._last = key

    def finish(self) -> tuple[BinaryIO, int]:
        """The whole manifest, as a file at its start, and its length."""
        self._file.write(b"]}")
        length = self._file.tell()
        self._file.seek(0)
        return cast(BinaryIO, self._file), length

    def close(self) -> None:
        self._file.close()


def encode_manifest(name: str, entries: dict[str, Entry]) -> bytes:
    """The manifest's JSON; `entries` are keyed by the key relative to the backup's folder."""
    writer = ManifestWriter(name)
    try:
        for key, entry in sorted(entries.items()):
            writer.add(key, entry)
        return writer.finish()[0].read()
    finally:
        writer.close()


def iter_manifest(stream: Readable) -> Iterator[tuple[str, Entry]]:
    """The manifest's entries (relative key and entry) as they are read from `stream`, of either format
    (1: a SHA-256 for every object; 2: an ETag and/or a SHA-256): parsed as a stream of JSON events,
    never decoded whole, so memory does not grow with the backup's objects. Raises MetaError (a clear
    line) on any malformed input, UnsafeKey on a key that would leave the backup's folder; a consumer
    that must not act on half a manifest keeps what it took until the generator ends (an error can
    come last: a truncated file, a format named after the objects). Repeated keys are not its concern."""
    try:
        yield from _ManifestParser().entries(ijson.basic_parse(stream, use_float=False))
    except ijson.JSONError as exc:
        raise MetaError(f"{MANIFEST} is not valid JSON ({json_error_line(exc)})") from None
    except UnicodeDecodeError as exc:
        raise MetaError(f"{MANIFEST} is not valid JSON ({str(exc)[:120]})") from None


_NESTED = object()  # an entry's field whose value is a list or an object: never valid
_OPEN = frozenset(("start_map", "start_array"))
_CLOSE = frozenset(("end_map", "end_array"))


class _ManifestParser:
    """The manifest's JSON events (ijson's basic_parse: no per-event path bookkeeping, so no cost that
    grows with nesting) made into entries one at a time: only the entry being read is held."""

    def __init__(self) -> None:
        self.header: dict[str, Any] = {}  # the top level's scalar values: format, algorithm, backup
        self.unsigned: int | None = None  # the first entry without a SHA-256 (format 1 requires one)

    def entries(self, stream: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Entry]]:
        events = iter(stream)
        if next(events)[0] != "start_map":
            self._not_a_manifest()
        objects_seen = False
        for event, name in events:
            if event == "end_map":
                break
            event, value = next(events)  # the value of top-level key `name`
            if name == "objects":
                if event != "start_array" or objects_seen:
                    raise MetaError(f"{MANIFEST}: 'objects' should be one list")
                self._check_header(final=False)
                objects_seen = True
                yield from self._objects(events)
            elif event in _OPEN:
                _skip(events)
            else:
                self.header[name] = value
        next(events, None)  # ijson raises on anything after the top object
        if not objects_seen:
            raise MetaError(f"{MANIFEST}: 'objects' should be a list")
        self._check_header(final=True)
        if self.unsigned is not None and self.header["format"] == OLD_MANIFEST_FORMAT:
            raise MetaError(f"{MANIFEST}: objects[{self.unsigned}].sha256 should be 64 lowercase hex digits")

    def _objects(self, events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Entry]]:
        """The entries of the `objects` list, up to its end."""
        index = -1
        for event, _ in events:
            if event == "end_array":
                return
            index += 1
            if event != "start_map":
                raise MetaError(f"{MANIFEST}: objects[{index}] should be an object")
            item: dict[str, Any] = {}
            field = ""
            for event, value in events:  # the entry's own events
                if event == "map_key":
                    field = value
                elif event == "end_map":
                    break
                elif event in _OPEN:
                    _skip(events)
                    item[field] = _NESTED
                else:
                    item[field] = value
            yield self._entry(index, item)

    def _check_header(self, *, final: bool) -> None:
        """Format and algorithm, checked as soon as the objects start (where this tool writes them) or
        at the end (a manifest that names them after its objects)."""
        if "format" not in self.header and not final:
            return
        if self.header.get("format") not in (OLD_MANIFEST_FORMAT, MANIFEST_FORMAT):
            self._not_a_manifest()
        algorithm = self.header.get("algorithm")
        if algorithm != ALGORITHM:
            raise MetaError(f"{MANIFEST} uses algorithm {str(algorithm)[:40]!r}, not {ALGORITHM}")

    def _not_a_manifest(self) -> None:
        raise MetaError(f"{MANIFEST} is not a manifest of format {MANIFEST_FORMAT} or {OLD_MANIFEST_FORMAT}")

    def _entry(self, i: int, item: dict[str, Any]) -> tuple[str, Entry]:
        key, size, sha, etag = item.get("key"), item.get("size"), item.get("sha256"), item.get("etag")
        if not isinstance(key, str):
            raise MetaError(f"{MANIFEST}: objects[{i}].key should be a string")
        check_relative_key(key)
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
            raise MetaError(f"{MANIFEST}: objects[{i}].size should be a non-negative integer")
        if sha is None and self.unsigned is None:
            self.unsigned = i
        if (sha is not None or self.header.get("format") == OLD_MANIFEST_FORMAT) and (
            not isinstance(sha, str) or len(sha) != 64 or not _HEX.issuperset(sha)
        ):
            raise MetaError(f"{MANIFEST}: objects[{i}].sha256 should be 64 lowercase hex digits")
        if etag is not None and (not isinstance(etag, str) or not 0 < len(etag) <= 128 or not etag.isprintable()):
            raise MetaError(f"{MANIFEST}: objects[{i}].etag should be a short string")
        if sha is None and etag is None:
            raise MetaError(f"{MANIFEST}: objects[{i}] has neither an etag nor a sha256")
        return key, Entry(size, sha, etag)


def _skip(events: Iterator[tuple[str, Any]]) -> None:
    """Pass over the rest of a list or object whose start was just read."""
    depth = 1
    for event, _ in events:
        if event in _OPEN:
            depth += 1
        elif event in _CLOSE:
            depth -= 1
            if depth == 0:
                return


def decode_manifest(raw: bytes) -> dict[str, Entry]:
    """The whole manifest's entries by relative key (for tests and small manifests: verify and restore
    read it as a stream, `iter_manifest`). Raises as iter_manifest does, and on a key listed twice."""
    entries: dict[str, Entry] = {}
    for key, entry in iter_manifest(io.BytesIO(raw)):
        if key in entries:
            raise MetaError(f"{MANIFEST}: {key} is listed twice")
        entries[key] = entry
    return entries


class ExpectedObjects:
    """What a backup records about each of its objects, by key relative to its folder: its manifest's
    entries, read as a stream, and the sizes its meta gives. Kept in a private temporary SQLite
    database (a small page cache in memory, the rest on disk, removed when closed): a backup of 200,000
    binlogs has a manifest of about 30 MB, whose entries would take several times that as Python
    objects. Answers the entries in key order (verify merges them with the store's listing) and those
    under a few folders (a restore checks one import group at a time). Safe to share among threads."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self.from_manifest = 0  # entries the manifest gave
        for table in (
            "entry (key TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT, etag TEXT)",
            "named (key TEXT PRIMARY KEY, size INTEGER NOT NULL)",
            "to_hash (key TEXT PRIMARY KEY, size INTEGER NOT NULL, sha256 TEXT, etag TEXT)",
        ):
            self._db.execute(f"CREATE TABLE {table} WITHOUT ROWID")

    def __enter__(self) -> ExpectedObjects:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_manifest(self, storage: Storage, key: str) -> None:
        """Read the manifest at `key` into the table, all of it or none (MetaError/UnsafeKey for one that
        cannot be trusted, StorageError for one that cannot be read; transient failures retried)."""

        def run() -> BackupToolError | None:
            with storage.open(key) as stream:
                try:
                    self.from_manifest = self._insert_all(
                        "INSERT INTO entry VALUES (?, ?, ?, ?)",
                        ((rel, e.size, e.sha256, e.etag) for rel, e in iter_manifest(stream)),
                    )
                except (MetaError, UnsafeKey) as exc:
                    return exc  # not for _call to retry, nor to make a StorageError of
                return None

        problem = storage._call("read", storage.describe(key), run)
        if problem is not None:
            raise problem

    def add_meta_sizes(self, sizes: Iterable[tuple[str, int]]) -> None:
        """The size the meta records for each of its binlogs; a binlog the manifest left out gets an entry
        of that size alone (a Go tool's backup has no manifest). All or none, as add_manifest."""
        self._insert_all("INSERT OR REPLACE INTO named VALUES (?, ?)", sizes)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO entry (key, size) SELECT key, size FROM named")

    def disagreements(self) -> Iterator[tuple[str, int, int | None]]:
        """(key, meta size, manifest size or None) for each binlog the meta names that the manifest
        does not, or with another size, in key order."""
        return self._rows(
            "SELECT n.key, n.size, CASE WHEN e.sha256 IS NULL AND e.etag IS NULL THEN NULL ELSE e.size END "
            "FROM named n JOIN entry e USING (key) "
            "WHERE (e.sha256 IS NULL AND e.etag IS NULL) OR e.size != n.size ORDER BY n.key"
        )

    def setdefault(self, rel: str, entry: Entry) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO entry VALUES (?, ?, ?, ?)", (rel, entry.size, entry.sha256, entry.etag)
            )

    def in_order(self) -> Iterator[tuple[str, Entry]]:
        """Every entry, by key."""
        for rel, size, sha, etag in self._rows("SELECT key, size, sha256, etag FROM entry ORDER BY key"):
            yield rel, Entry(size, sha, etag)

    def under(self, folders: Iterable[str]) -> dict[str, Entry]:
        """The entries under these folders (relative keys ending in '/')."""
        found: dict[str, Entry] = {}
        for folder in folders:
            # the keys that start with `folder`: from it up to (not including) the folder with '/' + 1
            end = folder[:-1] + chr(ord(folder[-1]) + 1)
            query = "SELECT key, size, sha256, etag FROM entry WHERE key >= ? AND key < ? ORDER BY key"
            found.update((rel, Entry(size, sha, etag)) for rel, size, sha, etag in self._rows(query, (folder, end)))
        return found

    def hash_later(self, items: Iterable[tuple[str, Entry]]) -> None:
        """Keep (full key, entry) pairs to read and hash once the listing is compared."""
        self._insert_all("INSERT INTO to_hash VALUES (?, ?, ?, ?)", ((k, e.size, e.sha256, e.etag) for k, e in items))

    def to_hash_totals(self) -> tuple[int, int]:
        count, size = next(self._rows("SELECT count(*), coalesce(sum(size), 0) FROM to_hash"))
        return count, size

    def to_hash(self) -> Iterator[tuple[str, Entry]]:
        for key, size, sha, etag in self._rows("SELECT key, size, sha256, etag FROM to_hash ORDER BY key"):
            yield key, Entry(size, sha, etag)

    def _insert_all(self, statement: str, rows: Iterable[tuple[Any, ...]]) -> int:
        """Insert every row in one transaction, undone when the rows or the insert fail; returns how many.
        A repeated key is a MetaError naming it."""
        last: list[Any] = [None]

        def counted() -> Iterator[tuple[Any, ...]]:
            for row in rows:
                last[0] = row[0]
                yield row

        with self._lock:
            self._db.execute("BEGIN")
            try:
                count = self._db.executemany(statement, counted()).rowcount
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise MetaError(f"{MANIFEST}: {last[0]} is listed twice") from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return count

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """The query's rows, fetched a page at a time (other threads may use the table between pages)."""
        with self._lock:
            cursor = self._db.execute(query, params)
        while True:
            with self._lock:
                page = cursor.fetchmany(1000)
            if not page:
                return
            yield from page


def check_objects(
    storage: Storage,
    prefix: str,
    entries: dict[str, Entry],
    *,
    folders: Sequence[str] = (),
    hash_unvouched: bool = True,
    cancel: threading.Event | None = None,
) -> list[Problem]:
    """Check some objects of a backup (keyed relative to `prefix`, the backup's folder, e.g. the
    objects of one import group) just before they are used, quick where the manifest allows: a listing
    gives sizes and ETags; only objects whose entry has a SHA-256 but no ETag (the store vouches for
    nothing: folders, streamed copies, old manifests) are read and hashed, and only with hash_unvouched
    (a restore that stages them checks them on the way instead: `check_staged`).

    `folders` (full keys ending in '/'): list exactly these, and name every binlog in them that no entry
    names (an import takes whole folders); by default the entries' common folder is listed. Returns the
    problems, none for intact objects."""
    if not entries and not folders:
        return []
    listed: dict[str, ObjectInfo] = {}
    for folder in folders or [prefix + _common_folder(list(entries))]:
        listed.update((relative_to(prefix, o.key), o) for o in storage.list(folder))
    report = VerifyReport(name=prefix, full=False)
    if folders:
        report.problems += [
            Problem(prefix + rel, UNEXPECTED, f"{o.size} bytes that neither the manifest nor the meta names")
            for rel, o in sorted(listed.items())
            if is_binlog(rel) and rel not in entries
        ]
    to_hash = list(
        _compare_sorted(
            prefix,
            sorted(entries.items()),
            (listed[rel] for rel in sorted(listed)),
            report,
            hash_unvouched=hash_unvouched,
            full=False,
        )
    )
    _hash_all(storage, to_hash, report, 1, cancel, None)
    return sorted(report.problems, key=lambda p: (p.key, p.kind))


def check_staged(key: str, want: Entry, copied: Copied, size: int) -> Problem | None:
    """A restore that stages (copies) a backup's object anyway can check it on the way, with no read of
    its own: the copy's SHA-256 (bytes streamed through the tool) or, for a server-side copy in one
    part, its ETag against the manifest's entry. (A streamed copy's ETag is the upload's, a multipart one
    beyond 5 MiB: no digest to compare; the listing before the copy checked the source's ETag.)
    Pass it as ctx.copy's after_copy; `size` is what was copied."""
    if size != want.size:
        kind = TRUNCATED if size < want.size else ALTERED
        return Problem(key, kind, f"{size} bytes staged, expected {want.size}")
    if want.sha256 and copied.sha256 and copied.sha256 != want.sha256:
        return Problem(key, ALTERED, f"SHA-256 {copied.sha256[:16]}..., recorded {want.sha256[:16]}...")
    server_side = not copied.sha256
    if server_side and copied.single_part and is_md5_etag(want.etag) and copied.etag and copied.etag != want.etag:
        return Problem(key, ALTERED, f"the staged copy's ETag is {copied.etag[:40]}, recorded {(want.etag or '')[:40]}")
    return None


def _common_folder(keys: list[str]) -> str:
    first_key, last_key = min(keys), max(keys)
    common = ""
    for a, b in zip(first_key, last_key, strict=False):
        if a != b:
            break
        common += a
    return common.rpartition("/")[0] + "/" if "/" in common else ""


# --------------------------------------------------------------------------- what the meta names


def meta_binlogs(
    layout: BackupLayout,
    name: str,
    info: BackupInfo,
    segments: Iterable[tuple[Collection, Partition | None, Segment]] | None = None,
) -> Iterator[tuple[str, int]]:
    """Every binlog the backup's meta names (relative key, and the size the meta records), one at a time:
    those of `info`'s segments, or of `segments` (placed_segments: the segments with their binlogs, when
    `info` was read without them).

    Accepts the three group layouts (group = segment, packed groups, no group level) and L0 segments.
    """

    def add(key: str, size: int) -> tuple[str, int]:
        return layout.relative_key(name, key), size  # UnsafeKey outside the folder: not with integer IDs

    for coll, part, seg in segments if segments is not None else placed_segments(info):
        cid = coll.collection_id
        if part is not None:
            group = seg.group_id or None
            for fb in seg.binlogs:
                for b in fb.binlogs:
                    yield add(
                        layout.insert_binlog(
                            name, cid, part.partition_id, group, seg.segment_id, fb.field_id, _log_id(b)
                        ),
                        b.log_size,
                    )
            for fb in seg.deltalogs:
                for b in fb.binlogs:
                    yield add(
                        layout.delta_binlog(name, cid, part.partition_id, group, seg.segment_id, _log_id(b)), b.log_size
                    )
            continue
        for fb in seg.deltalogs:
            for b in fb.binlogs:
                if seg.partition_id == -1:  # collection-level: no group folder (FORMAT.md)
                    yield add(layout.l0_delta_binlog(name, cid, seg.segment_id, _log_id(b)), b.log_size)
                else:
                    yield add(
                        layout.delta_binlog(
                            name, cid, seg.partition_id, seg.group_id or None, seg.segment_id, _log_id(b)
                        ),
                        b.log_size,
                    )


def _log_id(binlog: Binlog) -> int:
    """The log's ID, or the last part of its source path when the meta left the ID out."""
    if binlog.log_id:
        return binlog.log_id
    try:
        return log_id_of(binlog.log_path)
    except MalformedKey:
        raise MetaError(f"binlog {binlog.log_path[:200]!r} has no log_id and its path does not end in one") from None


# --------------------------------------------------------------------------- the check


def verify_backup(
    storage: Storage,
    layout: BackupLayout,
    name: str,
    full: bool = False,
    *,
    hash_unvouched: bool = False,
    parallelism: int = 4,
    cancel: threading.Event | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Check backup `name`: every object its manifest and its meta name exists with its size, and with
    the ETag the manifest records (one listing: a rewritten object gets a new ETag from the store).
    full=True also re-reads every object the manifest has a digest for, and compares its SHA-256, or,
    for an object recorded by ETag only, its MD5 when that ETag is one (a one-part object); a multipart
    ETag is no digest of the whole, so such an object is read whole and its size checked.
    hash_unvouched=True (a restore's check) re-hashes only what the store does not vouch for: objects
    with a SHA-256 but no ETag. Never raises for a damaged backup (the report lists the problems);
    raises NotFound when there is no complete backup of that name.

    The manifest is read as a stream into `ExpectedObjects`, and the whole backup's listing is walked
    beside its entries: neither is held in memory.

    on_start(objects, bytes) announces the totals; on_progress(bytes, objects) reports each object.
    """
    prefix = layout.backup(name)
    # the meta folder's listing is small; the whole backup's is streamed once, against `expected`, below
    listed = {relative_to(prefix, o.key): o for o in storage.list(prefix + META_DIR + "/")}
    if not listed and first(storage.list(prefix)) is None:
        raise NotFound(f"backup {name} not found under {storage.bucket}/{layout.backups_root()}")
    if join(META_DIR, BACKUP_META) not in listed:
        raise NotFound(
            f"backup {name} is incomplete (no meta/backup_meta.json): an interrupted or failed backup "
            f"left it; remove it with: milvus-backup delete -n {name}"
        )
    report = VerifyReport(name=name, full=full)
    with ExpectedObjects() as expected:
        _read_manifest(storage, prefix, listed, expected, report)
        meta_files = _add_meta(storage, layout, name, listed, expected, report)
        if report.source == "meta":
            for filename in meta_files:
                rel = join(META_DIR, filename)
                expected.setdefault(rel, Entry(listed[rel].size))
        to_hash = _compare_sorted(
            prefix, expected.in_order(), storage.list(prefix), report, hash_unvouched=hash_unvouched, full=full
        )
        expected.hash_later(to_hash)
        objects, size = expected.to_hash_totals()
        if on_start is not None:
            on_start(objects, size)
        if objects:
            _hash_all(storage, expected.to_hash(), report, parallelism, cancel, on_progress)
    report.problems.sort(key=lambda p: (p.key, p.kind))
    return report


def _read_manifest(
    storage: Storage, prefix: str, listed: dict[str, ObjectInfo], expected: ExpectedObjects, report: VerifyReport
) -> None:
    """The manifest's entries into `expected`; without a manifest, or with one that cannot be trusted
    (a problem), the backup is checked against its meta alone."""
    rel = join(META_DIR, MANIFEST)
    if rel not in listed:
        report.source = "meta"
        return
    try:
        expected.add_manifest(storage, prefix + rel)
    except (MetaError, UnsafeKey) as exc:
        report.problems.append(Problem(prefix + rel, UNSAFE if isinstance(exc, UnsafeKey) else UNREADABLE, str(exc)))
        report.source = "meta"  # what is left to check against


def _add_meta(
    storage: Storage,
    layout: BackupLayout,
    name: str,
    listed: dict[str, ObjectInfo],
    expected: ExpectedObjects,
    report: VerifyReport,
) -> list[str]:
    """The meta's binlog sizes into `expected` (checked even when a manifest exists: the two must agree);
    returns the names of the meta files there are, less any that could not be read."""
    prefix = layout.backup(name)
    there = [f for f in (*META_WRITE_ORDER, CHANNEL_CP_META) if join(META_DIR, f) in listed]
    # full_meta.json, where there is one, holds the whole tree: the level files, as large again
    # (segment_meta.json holds every segment), are then only listed. The file of the binlogs (full_meta.json,
    # else segment_meta.json) is read as a stream, never whole.
    needed = (BACKUP_META,) if FULL_META in there else [f for f in there if f != SEGMENT_META]
    meta_files = {}
    for filename in [f for f in there if f in needed]:
        rel = join(META_DIR, filename)
        try:
            meta_files[filename] = storage.read(prefix + rel)
        except StorageError as exc:
            report.problems.append(Problem(prefix + rel, MISSING, str(exc)))
            there.remove(filename)
    try:
        _add_meta_sizes(Catalog(storage, layout), name, meta_files, FULL_META in there, expected)
    except StorageError as exc:  # the file of the binlogs could not be read
        streamed = FULL_META if FULL_META in there else SEGMENT_META
        report.problems.append(Problem(prefix + join(META_DIR, streamed), MISSING, str(exc)))
        if streamed in there:
            there.remove(streamed)
    except (MetaError, UnsafeKey, KeyError) as exc:
        report.problems.append(
            Problem(prefix + join(META_DIR, BACKUP_META), UNREADABLE, f"the backup's meta cannot be read: {exc}")
        )
    if report.source == "manifest" and expected.from_manifest:  # else every binlog is known by its meta size
        for rel, meta_size, manifest_size in expected.disagreements():
            detail = (
                "named by the meta but not by the integrity manifest"
                if manifest_size is None
                else f"the meta records {meta_size} bytes, the integrity manifest {manifest_size}"
            )
            report.problems.append(Problem(prefix + rel, INCONSISTENT, detail))
    return there


def _add_meta_sizes(
    catalog: Catalog, name: str, meta_files: dict[str, bytes], streamed: bool, expected: ExpectedObjects
) -> None:
    """The sizes of the binlogs the meta names, into `expected`. The file they are in is read twice as a
    stream, never whole: its tree without the binlog lists, then its segments one at a time. That file is
    full_meta.json (`streamed`), or without it segment_meta.json, beside the small level files."""
    layout = catalog.layout
    if streamed:
        top = meta_files.get(BACKUP_META)
        info = read_streamed(catalog.storage, layout.meta(name, FULL_META), lambda stream: read_full_meta(stream, top))
    else:
        info = catalog.get(name)
    catalog.read_segments(
        name, info, lambda segments: expected.add_meta_sizes(meta_binlogs(layout, name, info, segments))
    )


def _compare_sorted(
    prefix: str,
    expected: Iterable[tuple[str, Entry]],
    listed: Iterable[ObjectInfo],
    report: VerifyReport,
    *,
    hash_unvouched: bool,
    full: bool,
) -> Iterator[tuple[str, Entry]]:
    """The quick check of `expected` (relative key and entry, sorted by key) against a listing of
    `prefix` (sorted by key, as every Storage lists), walked side by side as a merge: neither is held
    whole, so memory does not grow with the backup's objects. Problems go into `report`; a listed binlog
    nobody expects is one (a restore imports whole folders). Yields, as it goes, the objects (full key,
    entry) that are to be read and hashed: all with a digest when `full`, those with a SHA-256 and no ETag
    when `hash_unvouched`."""
    objects = iter(listed)
    have = next(objects, None)
    for rel, want in expected:
        key = prefix + rel
        while have is not None and have.key < key:
            _unexpected(prefix, have, report)
            have = next(objects, None)
        if have is None or have.key != key:
            report.problems.append(Problem(key, MISSING, f"expected {want.size} bytes, the object is absent"))
            continue
        if _compare_one(key, want, have, report, hash_unvouched=hash_unvouched, full=full):
            yield key, want
        have = next(objects, None)
    while have is not None:
        _unexpected(prefix, have, report)
        have = next(objects, None)


def _unexpected(prefix: str, have: ObjectInfo, report: VerifyReport) -> None:
    if is_binlog(relative_to(prefix, have.key)):
        report.problems.append(
            Problem(have.key, UNEXPECTED, f"{have.size} bytes that neither the manifest nor the meta names")
        )


def _compare_one(
    key: str, want: Entry, have: ObjectInfo, report: VerifyReport, *, hash_unvouched: bool, full: bool
) -> bool:
    """One listed object against its entry (problems go into `report`); True when it is to be read and
    hashed."""
    report.objects_checked += 1
    if have.size < want.size:
        report.problems.append(Problem(key, TRUNCATED, f"{have.size} bytes, expected {want.size}"))
    elif have.size > want.size:
        report.problems.append(Problem(key, ALTERED, f"{have.size} bytes, expected {want.size}"))
    elif want.etag and have.etag and have.etag != want.etag:
        report.problems.append(
            Problem(key, ALTERED, f"ETag {have.etag[:40]}, recorded {want.etag[:40]}: the object was rewritten")
        )
    elif (full and (want.sha256 or want.etag)) or (hash_unvouched and want.sha256 and not want.etag):
        return True
    report.bytes_checked += have.size
    return False


def _hash_all(
    storage: Storage,
    items: Iterable[tuple[str, Entry]],
    report: VerifyReport,
    parallelism: int,
    cancel: threading.Event | None,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    lock = threading.Lock()

    def check(item: tuple[str, Entry]) -> None:
        key, want = item
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"verify of backup {report.name} cancelled")
        try:
            got = read_digests(storage, key, cancel)
        except Cancelled:
            raise
        except StorageError as exc:
            with lock:
                report.problems.append(Problem(key, MISSING, f"cannot be read: {exc}"))
            return
        problem = _digest_problem(key, want, got)
        with lock:
            report.objects_hashed += 1
            report.bytes_checked += got.size
            if problem is not None:
                report.problems.append(problem)
        if on_progress is not None:
            on_progress(got.size, 1)

    workers = max(1, parallelism)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        pending: deque[Future[None]] = deque()
        for item in items:  # a few per worker in flight: `items` may be a whole backup's objects
            if len(pending) >= 2 * workers:
                pending.popleft().result()  # the first error (a cancel) is raised here, after the pool drains
            pending.append(pool.submit(check, item))
        for future in pending:
            future.result()


def _digest_problem(key: str, want: Entry, got: Digests) -> Problem | None:
    """What is wrong with an object read back whole, against its entry; None when nothing is."""
    if got.size != want.size:
        kind = TRUNCATED if got.size < want.size else ALTERED
        return Problem(key, kind, f"read {got.size} bytes, expected {want.size}")
    if want.sha256 and got.sha256 != want.sha256:
        return Problem(key, ALTERED, f"SHA-256 {got.sha256[:16]}..., recorded {want.sha256[:16]}...")
    if not want.sha256 and is_md5_etag(want.etag) and got.md5 != want.etag:
        return Problem(key, ALTERED, f"MD5 {got.md5[:16]}..., the recorded ETag is {(want.etag or '')[:16]}...")
    return None


def run_verify(
    ctx: Context, name: str, full: bool, reporter: Reporter, *, hash_unvouched: bool = False
) -> VerifyReport:
    """verify_backup as a job's work: a 'verify' phase with object and byte totals, cancellable."""
    check_backup_name(name)
    how = "re-hashing every object" if full else "sizes and ETags"
    if hash_unvouched and not full:
        how += ", re-hashing what the store does not vouch for"
    reporter.phase(Phase.VERIFY, message=f"verifying backup {name} ({how})")
    report = verify_backup(
        ctx.backup_storage,
        ctx.backup_layout,
        name,
        full,
        hash_unvouched=hash_unvouched,
        parallelism=ctx.config.backup.copydata,
        cancel=reporter.cancel_event,
        on_start=lambda objects, size: reporter.phase(Phase.VERIFY, bytes_total=size, objects_total=objects),
        on_progress=lambda size, objects: reporter.add(bytes_done=size, objects_done=objects),
    )
    reporter.check_cancelled()
    for problem in report.problems[:20]:
        reporter.log(f"{problem.kind}: {problem.key}: {problem.detail}")
    if len(report.problems) > 20:
        reporter.log(f"... and {len(report.problems) - 20} more problem(s)")
    reporter.log(report.summary())
    return report


def refuse_damaged(report: VerifyReport) -> None:
    """Raise DamagedBackup (one line naming the first problems) unless the report is clean."""
    if report.ok:
        return
    shown = "; ".join(f"{p.kind} {p.key}" for p in report.problems[:3])
    more = f" and {len(report.problems) - 3} more" if len(report.problems) > 3 else ""
    raise DamagedBackup(
        f"backup {report.name} is damaged ({shown}{more}); nothing was restored. "
        f"See: milvus-backup verify -n {report.name} --full",
        report,
    )
