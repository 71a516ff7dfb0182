"""Memory that does not grow with a backup's binlogs. verify's quick check walks the backup's listing
beside the expected entries, as a merge of two sorted streams: unit tests of that comparison with a
listing of 200,000 objects made one at a time, counting how many of them are alive at once (no
timing). The backup's manifest is written as its entries come."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from milvus_backup.core.integrity import (
    ALTERED,
    MANIFEST_FORMAT,
    MISSING,
    TRUNCATED,
    UNEXPECTED,
    Entry,
    ManifestWriter,
    VerifyReport,
    _compare_sorted,
    decode_manifest,
)
from milvus_backup.core.storage import ObjectInfo

PREFIX = "backup/big/"
OBJECTS = 200_000
ETAG = "0123456789abcdef0123456789abcdef"


def _rel(i: int) -> str:
    return f"binlogs/insert_log/1/2/{i // 1000}/{i // 1000}/100/{i:07d}"


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


def _listing(skip: int, short: int, extra: int) -> Iterator[ObjectInfo]:
    """The store's listing, sorted by key, made lazily: object `skip` is absent, `short` is a byte short,
    and an unnamed binlog sorts right after object `extra`."""
    for i in range(OBJECTS):
        if i != skip:
            yield _Counted(PREFIX + _rel(i), 100 - (i == short), ETAG)
        if i == extra:
            yield _Counted(PREFIX + _rel(i) + "x", 7, ETAG)
    yield _Counted(PREFIX + "meta/backup_meta.json", 10, ETAG)  # not a binlog: no problem


def _expected() -> Iterator[tuple[str, Entry]]:
    entry = Entry(100, etag=ETAG)
    return ((_rel(i), entry) for i in range(OBJECTS))


def test_the_quick_check_never_holds_the_listing():
    _Counted.now = _Counted.most = 0
    report = VerifyReport(name="big", full=False)
    to_hash = _compare_sorted(
        PREFIX, _expected(), _listing(10, 150_000, 199_998), report, hash_unvouched=False, full=False
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
    _compare_sorted(PREFIX, expected, iter(listed), report, hash_unvouched=False, full=False)
    assert [(p.key, p.kind) for p in report.problems] == [(PREFIX + _rel(3), ALTERED)]


def test_the_objects_to_hash_come_out_in_order():
    listed = [ObjectInfo(PREFIX + _rel(i), 100, "") for i in range(4)]
    expected = [(_rel(i), Entry(100, sha256="a" * 64)) for i in range(4)]
    report = VerifyReport(name="big", full=False)
    to_hash = _compare_sorted(PREFIX, expected, iter(listed), report, hash_unvouched=True, full=False)
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
