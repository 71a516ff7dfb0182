"""A backup's binlogs are kept on disk while it runs (core.spill), not in memory until its meta is written:
unit tests of the spill with 6,000 binlogs listed out of order, tracing Python's own allocations (no
timing). The meta read back from the spill is the same bytes as the whole tree in memory would give, the
copies come back the largest first, and the manifest's entries in key order."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from milvus_backup.core import backup, meta
from milvus_backup.core import spill as spill_module
from milvus_backup.core.backup import _Found, _Spilling
from milvus_backup.core.errors import BackupToolError, Cancelled
from milvus_backup.core.meta import BackupInfo, Binlog, Collection, FieldBinlog, Partition, Segment, encode
from milvus_backup.core.milvus import SegmentInfo
from milvus_backup.core.paths import FULL_META, SEGMENT_META
from milvus_backup.core.spill import DELTA, INSERT, BinlogSpill, CollectionCopies
from milvus_backup.core.storage import Copied, ObjectInfo

SEGMENTS, FIELDS, LOGS = 3, 10, 200  # 6,000 insert logs, and one delete log a segment
PAGE = 100  # rows read back at a time (1,000 in a backup)


def _listed(seg: int) -> list[tuple[int, int, ObjectInfo]]:
    """A segment's insert logs as a listing gives them (field, log ID, object), in a shuffled order."""
    found = [
        (f, n, ObjectInfo(f"files/insert_log/1/10/{seg}/{f}/{n}", 100 + (n * 7 + f) % 50, f"etag{seg}.{f}.{n}"))
        for f in range(100, 100 + FIELDS)
        for n in range(LOGS)
    ]
    random.Random(seg).shuffle(found)
    return found


def _spilled_segments(spill: BinlogSpill) -> list[Segment]:
    """The segments as a backup plans them: each listing goes into the spill as it comes; the meta keeps
    a summary of each field."""
    to = _Spilling(spill, "big", 0)
    segments = []
    for seg in range(SEGMENTS):
        info = SegmentInfo(seg, 1, 10, 5)
        insert, delta = _Found(to, info, INSERT), _Found(to, info, DELTA)
        for f, n, obj in _listed(seg):
            insert.add(obj, f, n, f"backup/big/binlogs/insert_log/1/10/{seg}/{seg}/{f}/{n}")
        delta.add(ObjectInfo(f"files/delta_log/1/10/{seg}/7", 33, "d"), 0, 7, f"backup/big/binlogs/delta_log/{seg}/7")
        (binlogs, insert_size), (deltalogs, delta_size) = insert.field_binlogs(), delta.field_binlogs()
        segments.append(Segment(seg, 1, 10, 5, binlogs, deltalogs, insert_size + delta_size, group_id=seg))
    return segments


def _whole_segments() -> list[Segment]:
    """The same segments with every binlog in memory, sorted as the meta lists them."""
    segments = []
    for seg in range(SEGMENTS):
        by_field: dict[int, list[Binlog]] = {}
        for f, n, obj in _listed(seg):
            by_field.setdefault(f, []).append(Binlog(obj.key, obj.size, n))
        binlogs = [FieldBinlog(f, sorted(logs, key=lambda b: b.log_id)) for f, logs in sorted(by_field.items())]
        deltalogs = [FieldBinlog(0, [Binlog(f"files/delta_log/1/10/{seg}/7", 33, 7)])]
        size = sum(b.log_size for fb in binlogs for b in fb.binlogs) + 33
        segments.append(Segment(seg, 1, 10, 5, binlogs, deltalogs, size, group_id=seg))
    return segments


def _info(segments: list[Segment]) -> BackupInfo:
    partition = Partition(10, "_default", 1, segments, size=sum(s.size for s in segments))
    return BackupInfo(name="big", collection_backups=[Collection(collection_id=1, partition_backups=[partition])])


def test_the_meta_read_back_from_the_spill_is_the_same_bytes_and_holds_no_binlog(monkeypatch):
    monkeypatch.setattr(spill_module, "PAGE", PAGE)
    monkeypatch.setattr(backup, "SPILL_PAGE", PAGE)
    spill = BinlogSpill()
    try:
        tracemalloc.start()
        try:
            spilled = _info(_spilled_segments(spill))
            planned = tracemalloc.get_traced_memory()[0]  # what the plan keeps: the summary
            whole = _info(_whole_segments())
            held = tracemalloc.get_traced_memory()[0] - planned  # what holding every binlog takes
        finally:
            tracemalloc.stop()
        with meta.rendered_meta(spilled) as rendered, meta.rendered_meta(whole) as expected:
            for name in (SEGMENT_META, FULL_META):
                assert rendered[name].file.read() == expected[name].file.read(), name
                assert rendered[name].sha256 == expected[name].sha256
        assert encode(spilled) == encode(whole)
        assert planned < held / 5, (planned, held)  # a summary per field and segment, no binlog
    finally:
        spill.close()


def _dst(seg: int, field: int, log_id: int) -> str:
    return f"backup/big/binlogs/insert_log/1/10/{seg}/{seg}/{field}/{log_id}"


def test_copies_come_back_the_largest_first_and_entries_in_key_order_a_page_at_a_time(monkeypatch):
    monkeypatch.setattr(spill_module, "PAGE", PAGE)
    monkeypatch.setattr(backup, "SPILL_PAGE", PAGE)
    spill = BinlogSpill()
    try:
        segments = _spilled_segments(spill)
        count = sum(len(fb.binlogs) for s in segments for fb in s.binlogs + s.deltalogs)
        copies = CollectionCopies(spill, 0, "default.big", count, sum(s.size for s in segments))
        read, last, most = 0, 2**63, 0
        tracemalloc.start()
        try:
            for copy in copies:  # as the copy loop reads them, each copy's answer recorded on its row
                assert copy.size <= last and copy.collection == "default.big"
                read, last = read + 1, copy.size
                spill.copied(copy.row, Copied(f"etag-{copy.src_key}", "", True))
                most = max(most, tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
        assert read == len(copies) == SEGMENTS * (FIELDS * LOGS + 1)
        assert most < 512 * 1024, most  # a page of copies; all 6,003 would take about 2 MB

        listed = [(_dst(seg, f, n), obj) for seg in range(SEGMENTS) for f, n, obj in _listed(seg)]
        listed += [(f"backup/big/binlogs/delta_log/{seg}/7", None) for seg in range(SEGMENTS)]
        for dst, obj in listed:  # the backup's listing confirms each copy once
            made = spill.answer(dst)
            assert made is not None and made.task.dst_key == dst and made.copied.etag == f"etag-{made.task.src_key}"
            assert obj is None or (made.task.size, made.task.etag) == (obj.size, obj.etag)
            spill.confirmed(made.row, made.copied.etag)
            assert spill.answer(dst) is None
        assert spill.unconfirmed() is None
        entries = list(spill.entries())
        assert [key for key, _ in entries] == sorted(dst for dst, _ in listed)
        assert all(entry.etag and entry.etag.startswith("etag-files/") and not entry.sha256 for _, entry in entries)
    finally:
        spill.close()


def test_two_objects_that_would_be_one_binlog_are_refused_naming_both():
    spill = BinlogSpill()
    try:
        found = _Found(_Spilling(spill, "big", 0), SegmentInfo(1, 1, 10, 5), INSERT)
        dst = "backup/big/binlogs/insert_log/1/10/1/1/100/7"
        found.add(ObjectInfo("files/insert_log/1/10/1/100/7", 8, "a"), 100, 7, dst)
        found.add(ObjectInfo("files/insert_log/1/10/1/100/8", 8, "b"), 100, 8, dst[:-1] + "8")
        found.flush()
        found.add(ObjectInfo("files/insert_log/1/10/1/100/007", 8, "c"), 100, 7, dst)  # parses as log 7 too
        with pytest.raises(BackupToolError) as caught:
            found.flush()
        message = str(caught.value)
        assert "files/insert_log/1/10/1/100/7 and files/insert_log/1/10/1/100/007" in message, message
        assert "\n" not in message
    finally:
        spill.close()


def test_a_long_segment_listing_looks_for_a_cancel_between_its_pages(monkeypatch):
    """One segment can hold 100,000 binlogs: its listing must not run to its end once the job is cancelled."""
    monkeypatch.setattr(backup, "SPILL_PAGE", PAGE)
    looked: list[int] = []

    def check_cancelled() -> None:
        looked.append(len(looked))
        if len(looked) == 2:
            raise Cancelled("cancelled")

    spill = BinlogSpill()
    try:
        found = _Found(_Spilling(spill, "big", 0, check_cancelled), SegmentInfo(1, 1, 10, 5), INSERT)
        added = 0
        with pytest.raises(Cancelled):
            for f, n, obj in _listed(1):
                found.add(obj, f, n, f"backup/big/binlogs/insert_log/1/10/1/1/{f}/{n}")
                added += 1
        assert added == 2 * PAGE - 1  # the add that filled the second page (of 20) raised
    finally:
        spill.close()
