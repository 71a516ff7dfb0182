"""A backup's binlogs, kept on disk while it runs: a backup of hundreds of thousands of binlogs would hold,
for each, its copy, its meta entry and its confirmation in memory until the meta is written (about 1 KB
each). They go into a private temporary SQLite database instead (a small page cache in memory, the rest
on disk, removed when closed), as the segments are listed; what stays in memory is a summary per
collection, segment and field. The copies are read back a page at a time (the largest first), each
copy's answer and confirmation is recorded on its row, the meta's binlog lists are read back in their
order, and the manifest's entries in key order.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from milvus_backup.core.errors import BackupToolError
from milvus_backup.core.integrity import Entry
from milvus_backup.core.meta import Binlog
from milvus_backup.core.storage import Copied, CopyTask

PAGE = 1000  # rows read back at a time
INSERT, DELTA = 0, 1  # a binlog's kind


@dataclass(frozen=True)
class BinlogRow:
    """One binlog as its segment's listing found it, and where its copy goes."""

    collection: int  # the collection's place in the backup's plan
    segment: int
    kind: int  # INSERT or DELTA
    field: int  # 0 for a delta log
    log_id: int
    src: str
    dst: str
    size: int
    etag: str  # the source's, as listed


@dataclass(frozen=True)
class SpilledCopy(CopyTask):
    """A copy read back from the spill: its row, to record its answer on, and its collection's name."""

    row: int = 0
    collection: str = ""


@dataclass(frozen=True)
class CopyAnswer:
    """A copy made and not confirmed yet: what its source's listing and the copy's answer promise."""

    row: int
    task: CopyTask
    copied: Copied


class BinlogSpill:
    """The temporary database of one backup's binlogs. Safe to share among threads (one lock: each call
    is short). The copies' answers and confirmations are kept a page at a time and written together (an
    UPDATE per copy, under the lock every copy thread takes, cost more than the copy's own request); every
    read of them writes what is kept first."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._copied: list[tuple[str, str, bool, int]] = []  # (etag, sha256, single_part, row), not written yet
        self._confirmed: dict[int, str] = {}  # row -> listed etag, not written yet
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE binlog (id INTEGER PRIMARY KEY, coll INTEGER NOT NULL, seg INTEGER NOT NULL, "
            "kind INTEGER NOT NULL, field INTEGER NOT NULL, log_id INTEGER NOT NULL, src TEXT NOT NULL, "
            "dst TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, rank INTEGER NOT NULL, src_etag TEXT NOT NULL, "
            "etag TEXT, sha256 TEXT, single_part INTEGER, listed_etag TEXT, state INTEGER NOT NULL DEFAULT 0)"
        )  # state: 0 planned, 1 copied, 2 confirmed by the backup's listing
        self._db.execute("CREATE INDEX meta_order ON binlog (coll, seg, kind, field, log_id, id)")
        self._db.execute("CREATE INDEX copy_order ON binlog (coll, rank, id)")  # rank: -size

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, rows: Sequence[BinlogRow]) -> None:
        """Keep `rows`. Two objects that would be copied to one key (log IDs `7` and `007` parse alike) are
        refused with a BackupToolError naming both, before either is copied."""
        with self._lock:
            try:
                self._db.executemany(
                    "INSERT INTO binlog (coll, seg, kind, field, log_id, src, dst, size, rank, src_etag) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        (r.collection, r.segment, r.kind, r.field, r.log_id, r.src, r.dst, r.size, -r.size, r.etag)
                        for r in rows
                    ),
                )
            except sqlite3.IntegrityError:
                raise self._clash(rows) from None

    def _clash(self, rows: Sequence[BinlogRow]) -> BackupToolError:
        seen: dict[str, str] = {}
        for row in rows:
            found = self._db.execute("SELECT src FROM binlog WHERE dst = ?", (row.dst,)).fetchone()
            other = seen.get(row.dst) or (found[0] if found and found[0] != row.src else None)
            if other is not None:
                return BackupToolError(
                    f"{other} and {row.src} in the Milvus bucket are the same binlog (log {row.log_id}) and "
                    "would be backed up as one: remove the one Milvus does not list, then back up again"
                )
            seen[row.dst] = row.src
        return BackupToolError("two objects in the Milvus bucket would be backed up as one binlog")

    def binlogs(self, collection: int, segment: int, kind: int, field: int) -> Iterator[Binlog]:
        """One field's binlogs of a segment, by log ID (then in the order listed)."""
        last: tuple[int, int] = (-(2**63), -1)
        while True:
            with self._lock:
                page = self._db.execute(
                    "SELECT log_id, id, src, size FROM binlog WHERE coll = ? AND seg = ? AND kind = ? AND field = ? "
                    "AND (log_id, id) > (?, ?) ORDER BY log_id, id LIMIT ?",
                    (collection, segment, kind, field, *last, PAGE),
                ).fetchall()
            for log_id, _, src, size in page:
                yield Binlog(src, size, log_id)
            if len(page) < PAGE:
                return
            last = page[-1][0], page[-1][1]

    def copies(self, collection: int, name: str) -> Iterator[SpilledCopy]:
        """A collection's copies, the largest first (no large copy starts last, alone)."""
        last: tuple[int, int] = (-(2**63), -1)  # (rank, id) of the last copy read
        while True:
            with self._lock:
                page = self._db.execute(
                    "SELECT id, src, dst, size, src_etag FROM binlog WHERE coll = ? AND (rank, id) > (?, ?) "
                    "ORDER BY rank, id LIMIT ?",
                    (collection, *last, PAGE),
                ).fetchall()
            for row, src, dst, size, etag in page:
                yield SpilledCopy(src, dst, size, etag, row=row, collection=name)
            if len(page) < PAGE:
                return
            last = -page[-1][3], page[-1][0]

    def copied(self, row: int, copied: Copied) -> None:
        with self._lock:
            self._copied.append((copied.etag, copied.sha256, copied.single_part, row))
            if len(self._copied) >= PAGE:
                self._write_kept()

    def _write_kept(self, confirmations: bool = True) -> None:
        """Write the answers (and confirmations) kept so far, in this order: a copy is confirmed after it
        was made. Called under the lock."""
        if self._copied:
            self._db.executemany(
                "UPDATE binlog SET etag = ?, sha256 = ?, single_part = ?, state = 1 WHERE id = ?", self._copied
            )
            self._copied = []
        if self._confirmed and confirmations:
            self._db.executemany(
                "UPDATE binlog SET listed_etag = ?, state = 2 WHERE id = ?",
                ((etag, row) for row, etag in self._confirmed.items()),
            )
            self._confirmed = {}

    def answer(self, dst: str) -> CopyAnswer | None:
        """The copy to `dst` when it was made and is not confirmed yet."""
        with self._lock:
            self._write_kept(confirmations=False)  # those kept are looked at below
            found = self._db.execute(
                "SELECT id, src, size, src_etag, etag, sha256, single_part FROM binlog WHERE dst = ? AND state = 1",
                (dst,),
            ).fetchone()
            if found is None or found[0] in self._confirmed:
                return None
        row, src, size, src_etag, etag, sha256, single_part = found
        return CopyAnswer(row, CopyTask(src, dst, size, src_etag), Copied(etag, sha256, bool(single_part)))

    def confirmed(self, row: int, listed_etag: str) -> None:
        with self._lock:
            self._confirmed[row] = listed_etag
            if len(self._confirmed) >= PAGE:
                self._write_kept()

    def unconfirmed(self, collection: int | None = None) -> str | None:
        """The key of a copy not confirmed yet (of `collection`, or of any), if there is one."""
        where, args = ("coll = ? AND state < 2", (collection,)) if collection is not None else ("state < 2", ())
        with self._lock:
            self._write_kept()
            found = self._db.execute(f"SELECT dst FROM binlog WHERE {where} LIMIT 1", args).fetchone()
        return found[0] if found is not None else None

    def entries(self) -> Iterator[tuple[str, Entry]]:
        """Every confirmed copy's key and manifest entry, in key order: the size, the ETag the store
        vouches for, the SHA-256 of bytes that streamed through the tool."""
        last = ""
        while True:
            with self._lock:
                self._write_kept()
                page = self._db.execute(
                    "SELECT dst, size, sha256, listed_etag FROM binlog WHERE dst > ? AND state = 2 "
                    "ORDER BY dst LIMIT ?",
                    (last, PAGE),
                ).fetchall()
            for dst, size, sha256, etag in page:
                yield dst, Entry(size, sha256 or None, etag or None)
            if len(page) < PAGE:
                return
            last = page[-1][0]


class SpilledBinlogs:
    """One field's binlogs of a segment, read back from the spill each time they are iterated: stands in
    the meta where a list of binlogs is read (iterated and counted, never changed)."""

    def __init__(self, spill: BinlogSpill, collection: int, segment: int, kind: int, field: int, count: int):
        self._spill, self._where, self._count = spill, (collection, segment, kind, field), count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Binlog]:
        return self._spill.binlogs(*self._where)


class CollectionCopies:
    """A collection's copies (a CopyGroup), read back from the spill as they are started."""

    def __init__(self, spill: BinlogSpill, collection: int, name: str, count: int, size: int):
        self._spill, self._collection, self._name = spill, collection, name
        self.count, self.size = count, size  # how many, and their bytes

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[SpilledCopy]:
        return self._spill.copies(self._collection, self._name)
