"""Memory that does not grow with a backup's binlogs. verify's quick check walks the backup's listing
beside the expected entries, as a merge of two sorted streams: unit tests of that comparison with a
listing of 200,000 objects made one at a time, counting how many of them are alive at once (no
timing). The backup's manifest is written as its entries come, and read as a stream into a table on
disk (ExpectedObjects): Python's own allocations are traced while 200,000 entries are read and merged."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from milvus_backup.core import catalog as catalog_module
from milvus_backup.core import integrity
from milvus_backup.core.catalog import Catalog
from milvus_backup.core.integrity import (
    ALTERED,
    MANIFEST_FORMAT,
    MISSING,
    TRUNCATED,
    UNEXPECTED,
    Entry,
    ExpectedObjects,
    ManifestWriter,
    VerifyReport,
    _compare_sorted,
    decode_manifest,
    meta_binlogs,
    verify_backup,
)
from milvus_backup.core.meta import (
    BackupInfo,
    BackupState,
    Binlog,
    Collection,
    FieldBinlog,
    MetaError,
    Partition,
    Segment,
    meta_files,
)
from milvus_backup.core.paths import BACKUP_META, FULL_META, MANIFEST, META_DIR, META_WRITE_ORDER, BackupLayout, join
from milvus_backup.core.storage import ObjectInfo
from milvus_backup.core.storage.local import LocalStorage
from tests.conftest import traced_peak

PREFIX = "backup/big/"
OBJECTS = 200_000
ETAG = "0123456789abcdef0123456789abcdef"


def _rel(i: int) -> str:
    return f"binlogs/insert_log/1/2/{i // 1000:03d}/{i // 1000:03d}/100/{i:07d}"  # sorted as strings too


class _Counted(ObjectInfo):
    """A listed object that counts how many of its kind are alive: the most at once is what the
    comparison held."""

    now = most = 0

    def __init__(self, key: str, size: int, etag: str):
        super().__init__(key, size, etag)
        _Counted.now += 1
        _Counted.most = max(_Counted.most, _Counted.now)

    def __del__(self) -> None:
        _Counted.now -= 1


def _listing(skip: int, short: int, extra: int, count: int = OBJECTS) -> Iterator[ObjectInfo]:
    """The store's listing, sorted by key, made lazily: object `skip` is absent, `short` is a byte short,
    and an unnamed binlog sorts right after object `extra`."""
    for i in range(count):
        if i != skip:
            yield _Counted(PREFIX + _rel(i), 100 - (i == short), ETAG)
        if i == extra:
            yield _Counted(PREFIX + _rel(i) + "x", 7, ETAG)
    yield _Counted(PREFIX + "meta/backup_meta.json", 10, ETAG)  # not a binlog: no problem


def _expected(count: int = OBJECTS) -> Iterator[tuple[str, Entry]]:
    entry = Entry(100, etag=ETAG)
    return ((_rel(i), entry) for i in range(count))


def test_the_quick_check_never_holds_the_listing():
    _Counted.now = _Counted.most = 0
    report = VerifyReport(name="big", full=False)
    to_hash = list(
        _compare_sorted(PREFIX, _expected(), _listing(10, 150_000, 199_998), report, hash_unvouched=False, full=False)
    )
    assert to_hash == []
    assert [(p.key, p.kind) for p in report.problems] == [
        (PREFIX + _rel(10), MISSING),
        (PREFIX + _rel(150_000), TRUNCATED),
        (PREFIX + _rel(199_998) + "x", UNEXPECTED),
    ]
    assert report.objects_checked == OBJECTS - 1
    assert report.bytes_checked == (OBJECTS - 2) * 100 + 99  # every listed object that was expected
    # the object compared and the one the listing just gave (a listing held whole: 200,000)
    assert _Counted.most <= 2, _Counted.most
    assert _Counted.now == 0


def test_a_rewritten_object_is_caught_in_the_stream():
    listed = [ObjectInfo(PREFIX + _rel(i), 100, ETAG if i != 3 else "f" * 32) for i in range(5)]
    report = VerifyReport(name="big", full=False)
    expected = [(_rel(i), Entry(100, etag=ETAG)) for i in range(5)]
    list(_compare_sorted(PREFIX, expected, iter(listed), report, hash_unvouched=False, full=False))
    assert [(p.key, p.kind) for p in report.problems] == [(PREFIX + _rel(3), ALTERED)]


def test_the_objects_to_hash_come_out_in_order():
    listed = [ObjectInfo(PREFIX + _rel(i), 100, "") for i in range(4)]
    expected = [(_rel(i), Entry(100, sha256="a" * 64)) for i in range(4)]
    report = VerifyReport(name="big", full=False)
    to_hash = list(_compare_sorted(PREFIX, expected, iter(listed), report, hash_unvouched=True, full=False))
    assert [key for key, _ in to_hash] == [PREFIX + _rel(i) for i in range(4)]
    assert report.problems == [] and report.objects_checked == 4


def test_the_manifest_is_written_as_its_entries_come():
    entries = {
        _rel(i): Entry(100 + i, sha256=None if i % 2 else "b" * 64, etag=ETAG if i % 3 else None) for i in range(3)
    }
    entries["meta/backup_meta.json"] = Entry(10, sha256="c" * 64)
    writer = ManifestWriter("big")
    try:
        for key, entry in sorted(entries.items()):
            writer.add(key, entry)
        with pytest.raises(ValueError, match="out of order"):
            writer.add(_rel(0), entries[_rel(0)])
        file, length = writer.finish()
        raw = file.read()
    finally:
        writer.close()
    assert len(raw) == length and decode_manifest(raw) == entries
    objects = [
        {"key": k, "size": e.size} | ({"etag": e.etag} if e.etag else {}) | ({"sha256": e.sha256} if e.sha256 else {})
        for k, e in sorted(entries.items())
    ]
    whole = {"format": MANIFEST_FORMAT, "algorithm": "sha256", "backup": "big", "objects": objects}
    assert raw == json.dumps(whole, separators=(",", ":")).encode()  # the bytes one json.dumps of it all gives


def _write_manifest(storage: LocalStorage, key: str, entries: Iterator[tuple[str, Entry]]) -> None:
    writer = ManifestWriter("big")
    try:
        for rel, entry in entries:
            writer.add(rel, entry)
        storage.write_file(key, *writer.finish())
    finally:
        writer.close()


READ = 20_000  # entries read with every allocation traced (slow): enough to tell a stream from a whole decode


def test_the_manifest_is_read_as_a_stream_and_never_decoded_whole(tmp_path):
    """A manifest read into ExpectedObjects and merged with a listing of as many objects: the Python
    memory this takes at its peak (measured: 0.6 MiB, whatever the count) stays far below what decoding
    the manifest whole takes (6 MiB for these 20,000 entries, 60 MiB for 200,000)."""
    storage, key = LocalStorage(tmp_path), "backup/big/meta/integrity_manifest.json"
    _write_manifest(storage, key, _expected(READ))
    _Counted.now = _Counted.most = 0
    report = VerifyReport(name="big", full=False)
    tracemalloc.start()
    try:
        with ExpectedObjects() as expected:
            expected.add_manifest(storage, key)
            listing = _listing(10, 15_000, READ - 2, READ)
            to_hash = list(
                _compare_sorted(PREFIX, expected.in_order(), listing, report, hash_unvouched=False, full=False)
            )
            group = expected.under(["binlogs/insert_log/1/2/015/"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected.from_manifest == READ and to_hash == []
    assert [(p.key, p.kind) for p in report.problems] == [
        (PREFIX + _rel(10), MISSING),
        (PREFIX + _rel(15_000), TRUNCATED),
        (PREFIX + _rel(READ - 2) + "x", UNEXPECTED),
    ]
    assert report.objects_checked == READ - 1
    # one group's folder: exactly its own 1,000 entries
    assert group == {_rel(i): Entry(100, etag=ETAG) for i in range(15_000, 16_000)}
    assert peak < 1.5 * 1024 * 1024, peak
    assert _Counted.most <= 2, _Counted.most


def test_a_manifest_that_fails_halfway_leaves_nothing_behind(tmp_path):
    storage, key = LocalStorage(tmp_path), "backup/big/meta/integrity_manifest.json"
    _write_manifest(storage, key, ((_rel(i), Entry(100, etag=ETAG)) for i in range(5_000)))
    raw = storage.read(key)
    storage.write(key, raw[: len(raw) // 2])  # cut in the middle of the objects
    with ExpectedObjects() as expected:
        with pytest.raises(MetaError, match="not valid JSON"):
            expected.add_manifest(storage, key)
        assert expected.from_manifest == 0 and list(expected.in_order()) == []  # verify falls back to the meta


def test_entries_come_out_in_key_order_whatever_order_the_manifest_has(tmp_path):
    storage, key = LocalStorage(tmp_path), "backup/big/meta/integrity_manifest.json"
    objects = [{"key": k, "size": 1, "etag": ETAG} for k in ("b/2", "b0/1", "a/1", "b/1")]
    storage.write(key, json.dumps({"objects": objects, "algorithm": "sha256", "format": MANIFEST_FORMAT}).encode())
    with ExpectedObjects() as expected:
        expected.add_manifest(storage, key)
        assert [rel for rel, _ in expected.in_order()] == ["a/1", "b/1", "b/2", "b0/1"]
        assert list(expected.under(["b/"])) == ["b/1", "b/2"]  # not folder b0/, which shares its start
    storage.write(key, json.dumps({"format": MANIFEST_FORMAT, "algorithm": "sha256", "objects": objects * 2}).encode())
    with ExpectedObjects() as expected, pytest.raises(MetaError, match="b/2 is listed twice"):
        expected.add_manifest(storage, key)


# --- the meta side: full_meta.json read as a stream, never decoded whole ------------------------------

SEGMENTS, FIELDS, LOGS = 30, 10, 10  # 3,031 binlogs: decoded whole, full_meta.json takes ~2 MiB


def _big_meta(segments: int = SEGMENTS) -> BackupInfo:
    """The meta of a backup of `segments` x FIELDS x LOGS binlogs, and a delete log a segment."""
    segs = []
    for s in range(segments):
        sid = 1000 + s
        inserts = [
            FieldBinlog(f, [Binlog(f"files/insert_log/1/2/{sid}/{f}/{sid}{n}", 8, sid * 100 + n) for n in range(LOGS)])
            for f in range(100, 100 + FIELDS)
        ]
        deletes = [FieldBinlog(binlogs=[Binlog(f"files/delta_log/1/2/{sid}/{sid}99", 8, sid * 100 + 99)])]
        segs.append(Segment(sid, 1, 2, num_of_rows=10, binlogs=inserts, deltalogs=deletes, size=8, group_id=sid))
    l0 = Segment(9, 1, -1, deltalogs=[FieldBinlog(binlogs=[Binlog("files/delta_log/1/-1/9/7", 8, 7)])], is_l0=True)
    coll = Collection(collection_id=1, collection_name="c", partition_backups=[Partition(2, "_default", 1, segs)])
    coll.l0_segments = [l0]
    return BackupInfo(id="x", name="big", state_code=BackupState.SUCCESS, collection_backups=[coll])


def _write_backup(storage: LocalStorage, layout: BackupLayout, info: BackupInfo, *, binlogs: bool) -> None:
    """The backup of `info` in a folder, by the project's own meta and manifest writers (its binlog files
    too when `binlogs`)."""
    writer = ManifestWriter("big")
    try:
        for rel, size in sorted(meta_binlogs(layout, "big", info)):
            if binlogs:
                storage.write(layout.backup("big") + rel, b"0" * size)
            writer.add(rel, Entry(size, sha256="a" * 64))
        files = meta_files(info)
        for name in sorted(files):
            writer.add(join(META_DIR, name), Entry(len(files[name]), sha256=hashlib.sha256(files[name]).hexdigest()))
        for name in META_WRITE_ORDER[:-1]:
            storage.write(layout.meta("big", name), files[name])
        storage.write_file(layout.meta("big", MANIFEST), *writer.finish())
        storage.write(layout.meta("big", BACKUP_META), files[BACKUP_META])
    finally:
        writer.close()


def test_a_restore_reads_full_meta_as_a_stream(tmp_path):
    """What a restore reads before its imports: the tree it plans from, then every binlog's size. Both
    come from full_meta.json read as a stream of JSON events, a segment at a time: Python's own
    allocations at their peak (measured: 0.80-0.88 MiB from 1,000 to 10,000 binlogs) stay below the
    whole decode of the same meta (measured: 2.0 MiB for these 3,031 binlogs, and 0.7 KB more each)."""
    storage, layout = LocalStorage(tmp_path), BackupLayout("backup")
    info = _big_meta()
    _write_backup(storage, layout, info, binlogs=False)
    catalog = Catalog(storage, layout)

    def plan() -> tuple[BackupInfo, int]:
        summary = catalog.get("big", binlogs=False)
        return summary, catalog.read_segments(
            "big", summary, lambda segments: sum(1 for _ in meta_binlogs(layout, "big", summary, segments))
        )

    (summary, count), peak = traced_peak(plan)
    assert peak < 1.4 * 1024 * 1024, peak
    assert count == SEGMENTS * (FIELDS * LOGS + 1) + 1
    # every binlog the whole tree names, and the tree a restore plans from: the whole tree's, less the binlog lists
    whole = list(meta_binlogs(layout, "big", info))
    assert catalog.read_segments("big", summary, lambda segs: list(meta_binlogs(layout, "big", summary, segs))) == whole
    for seg in [*info.collection_backups[0].segments(), *info.collection_backups[0].l0_segments]:
        seg.binlogs, seg.deltalogs = [], []
    assert summary == info


def test_verify_never_decodes_full_meta_whole(tmp_path, monkeypatch):
    """verify checks the binlogs full_meta.json names against the listing, reading it as a stream."""
    storage, layout = LocalStorage(tmp_path), BackupLayout("backup")
    _write_backup(storage, layout, _big_meta(segments=2), binlogs=True)
    monkeypatch.setattr(catalog_module, "read_backup", None)  # the whole decode: verify must not need it
    monkeypatch.setattr(integrity, "read_backup", None, raising=False)
    storage.write(layout.backup("big") + "binlogs/insert_log/1/2/1000/1000/100/100099", b"extra")
    report = verify_backup(storage, layout, "big")
    assert [p.kind for p in report.problems] == ["unexpected"]
    assert report.objects_checked == 2 * (FIELDS * LOGS + 1) + 1 + len(META_WRITE_ORDER)


def test_verify_of_a_backup_without_full_meta_reads_segment_meta_as_a_stream(tmp_path, monkeypatch):
    """A backup of the Go tool's older layouts has the level files only, and no manifest: verify checks
    the binlogs segment_meta.json names, read as a stream too, and still finds a missing or extra one."""
    storage, layout = LocalStorage(tmp_path), BackupLayout("backup")
    info = _big_meta(segments=2)
    info.collection_backups[0].l0_segments = []  # the level files have no place for them
    for rel, size in meta_binlogs(layout, "big", info):
        storage.write(layout.backup("big") + rel, b"0" * size)
    files = meta_files(info)
    for name in META_WRITE_ORDER:
        if name != FULL_META:
            storage.write(layout.meta("big", name), files[name])
    monkeypatch.setattr(integrity, "read_backup", None, raising=False)  # the whole decode verify once made
    storage.write(layout.backup("big") + "binlogs/insert_log/1/2/1000/1000/100/100099", b"extra")
    storage.delete(layout.backup("big") + "binlogs/insert_log/1/2/1001/1001/100/100100")
    report = verify_backup(storage, layout, "big")
    assert sorted((p.kind, p.key.rsplit("/", 1)[1]) for p in report.problems) == [
        ("missing", "100100"),
        ("unexpected", "100099"),
    ]
    assert report.source == "meta"
    assert report.objects_checked == 2 * (FIELDS * LOGS + 1) + len(META_WRITE_ORDER) - 2
