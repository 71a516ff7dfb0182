"""The meta readers against malformed and hostile input (fuzzed with hypothesis), and the one check that
keeps every key read from a file inside its backup's folder. No sandbox: these are pure functions."""

from __future__ import annotations

import io
import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milvus_backup.core.integrity import MANIFEST_FORMAT, Entry, decode_manifest, encode_manifest, meta_binlogs
from milvus_backup.core.meta import (
    BackupInfo,
    MetaError,
    full_meta_segments,
    placed_segments,
    read_backup,
    read_full_meta,
)
from milvus_backup.core.paths import (
    BACKUP_META,
    COLLECTION_META,
    FULL_META,
    PARTITION_META,
    SEGMENT_META,
    BackupLayout,
    UnsafeKey,
    check_relative_key,
)

LAYOUT = BackupLayout("backup")
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)

# Keys the meta model knows, so the fuzzer reaches the decoder's typed branches, not only `extra`.
_KNOWN = [
    "id",
    "state_code",
    "name",
    "size",
    "collection_backups",
    "partition_backups",
    "segment_backups",
    "binlogs",
    "deltalogs",
    "log_path",
    "log_size",
    "log_id",
    "fieldID",
    "schema",
    "fields",
    "collection_id",
    "partition_id",
    "segment_id",
    "group_id",
    "num_of_rows",
    "l0_segments",
    "infos",
    "is_l0",
    "db_name",
    "collection_name",
    "index_infos",
    "params",
    "type_params",
    "properties",
    "key",
    "value",
    "data_type",
]
meta_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=8)
    | st.sampled_from(["12", "-3", "²", "٣", "1e3", "../x", ""]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(_KNOWN), children, max_size=6),
    max_leaves=40,
)


def _read_all(files: dict[str, bytes]) -> None:
    """read_backup, and the keys its binlogs would give: only MetaError or UnsafeKey may come out."""
    try:
        info = read_backup(files)
        for rel, _ in meta_binlogs(LAYOUT, "b", info):
            assert check_relative_key(rel) == rel
    except (MetaError, UnsafeKey) as exc:
        assert str(exc) and "\n" not in str(exc)


def _stripped(info: BackupInfo) -> BackupInfo:
    for coll in info.collection_backups:
        for seg in [*coll.segments(), *coll.l0_segments]:
            seg.binlogs, seg.deltalogs = [], []
    return info


def _streamed_as_whole(full: bytes) -> None:
    """full_meta.json read as a stream (a restore's plan, then its binlogs) gives what read_backup gives,
    less the binlog lists, and the same binlogs; or, where read_backup fails, a MetaError of its own
    (json.loads also takes Infinity and integers beyond 64 bits, which the stream, like Go, refuses:
    the fuzzer here writes neither)."""
    try:
        whole = read_backup({FULL_META: full})
        binlogs = list(meta_binlogs(LAYOUT, "b", whole))
    except (MetaError, UnsafeKey):
        with pytest.raises((MetaError, UnsafeKey)) as raised:
            info = read_full_meta(io.BytesIO(full))
            list(meta_binlogs(LAYOUT, "b", info, placed_segments(info, full_meta_segments(io.BytesIO(full)))))
        assert str(raised.value) and "\n" not in str(raised.value)
        return
    info = read_full_meta(io.BytesIO(full))
    assert list(meta_binlogs(LAYOUT, "b", info, placed_segments(info, full_meta_segments(io.BytesIO(full))))) == binlogs
    assert info == _stripped(whole)


def _int64(value: object) -> object:
    """`value` with every integer brought into 64 bits: the stream's parser (yajl, like Go's int64 and the
    Go tool that writes these files) refuses larger ones, with a MetaError, where json.loads takes them."""
    if isinstance(value, list):
        return [_int64(v) for v in value]
    if isinstance(value, dict):
        return {k: _int64(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool):
        return max(1 - 2**63, min(2**63 - 1, value))
    return value


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))  # two reads of each, compared whole: slower
@given(meta_like.map(_int64))
def test_full_meta_read_as_a_stream_is_read_backup_without_the_binlog_lists(full):
    _streamed_as_whole(json.dumps(full).encode())
    _streamed_as_whole(
        json.dumps({"collection_backups": [{"partition_backups": [{"segment_backups": [full]}]}]}).encode()
    )


def test_the_streamed_full_meta_is_the_example_without_its_binlog_lists():
    raw = (Path("/work/shared/reference/meta-examples") / FULL_META).read_bytes()
    _streamed_as_whole(raw)
    _streamed_as_whole(raw[: len(raw) // 2])  # cut short: a clear error from both


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_in_every_meta_file_give_a_clear_error(raw):
    for name in (BACKUP_META, FULL_META, COLLECTION_META, SEGMENT_META):
        _read_all({BACKUP_META: b'{"name":"b","state_code":2}', name: raw})


@FUZZ
@given(json_values)
def test_any_json_value_in_full_meta_gives_a_clear_error(value):
    _read_all({BACKUP_META: b'{"name":"b","state_code":2}', FULL_META: json.dumps(value).encode()})


@FUZZ
@given(meta_like, meta_like, meta_like)
def test_meta_shaped_json_gives_a_tree_or_a_clear_error(full, partitions, segments):
    _read_all({BACKUP_META: b'{"name":"b","state_code":2}', FULL_META: json.dumps(full).encode()})
    _read_all(
        {
            BACKUP_META: json.dumps(full).encode(),
            COLLECTION_META: json.dumps({"infos": [full]}).encode(),
            PARTITION_META: json.dumps({"infos": partitions}).encode(),
            SEGMENT_META: json.dumps(segments).encode(),
        }
    )


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 50_000, b"\xff\xfe", b"", b"null", b'"x"'])
def test_pathological_documents_give_a_clear_error(raw):
    with pytest.raises(MetaError):
        read_backup({BACKUP_META: raw})
    with pytest.raises(MetaError):
        read_full_meta(io.BytesIO(raw))
    with pytest.raises(MetaError, match="nested too deeply"):  # whole, yet deeper than any meta
        read_full_meta(io.BytesIO(b'{"extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
    with pytest.raises(MetaError):
        decode_manifest(raw)


def test_unicode_digits_are_not_integers():
    # '²'.isdigit() is True but int('²') fails: the reader must say "expected an integer", not crash
    with pytest.raises(MetaError, match="expected an integer"):
        read_backup({BACKUP_META: '{"size":"²"}'.encode()})


_HOSTILE = [
    "../other/meta/backup_meta.json",
    "/etc/passwd",
    "binlogs/../../x",
    "./binlogs/1",
    "binlogs//1",
    "binlogs\\..\\x",
    "binlogs/1\x00",
    "",
    "..",
    "binlogs/",
    "a/./b",
]


@pytest.mark.parametrize("key", _HOSTILE)
def test_keys_that_leave_the_backup_are_refused(key):
    with pytest.raises(UnsafeKey):
        LAYOUT.object_key("b", key)
    manifest = json.dumps(
        {"format": MANIFEST_FORMAT, "algorithm": "sha256", "objects": [{"key": key, "size": 1, "sha256": "0" * 64}]}
    ).encode()
    with pytest.raises((UnsafeKey, MetaError)):
        decode_manifest(manifest)


@FUZZ
@given(st.text(alphabet=string.printable + "/.\\\x00é", max_size=40))
def test_an_accepted_key_always_stays_inside_the_backup(key):
    try:
        full = LAYOUT.object_key("b", key)
    except UnsafeKey:
        return
    assert full.startswith("backup/b/") and full == "backup/b/" + key
    assert not {"", ".", ".."} & set(key.split("/"))


def test_ids_from_meta_must_be_integers():
    with pytest.raises(UnsafeKey):
        LAYOUT.insert_binlog("b", 1, 2, 3, "../../x", 5, 6)
    with pytest.raises(UnsafeKey):
        LAYOUT.insert_group("b", "..", 2, None)


@FUZZ
@given(
    st.dictionaries(
        st.text(alphabet="abc/0123456789", min_size=1, max_size=12),
        st.tuples(st.integers(0, 2**40), st.binary(min_size=32, max_size=32)),
        max_size=8,
    )
)
def test_manifest_round_trips_or_refuses_unsafe_keys(items):
    entries = {k: Entry(size, digest.hex()) for k, (size, digest) in items.items()}
    raw = encode_manifest("b", entries)
    try:
        for key in entries:
            check_relative_key(key)
    except UnsafeKey:
        with pytest.raises(UnsafeKey):
            decode_manifest(raw)
        return
    assert decode_manifest(raw) == entries


@FUZZ
@given(json_values)
def test_any_json_as_a_manifest_gives_a_clear_error(value):
    doc = {"format": MANIFEST_FORMAT, "algorithm": "sha256", "objects": value}
    for raw in (json.dumps(value).encode(), json.dumps(doc).encode()):
        try:
            decode_manifest(raw)
        except (MetaError, UnsafeKey) as exc:
            assert str(exc) and "\n" not in str(exc)
