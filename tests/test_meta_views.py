"""What `get`, the API's backup views and the app's details read of a backup: its tree without the binlog
lists, then (for get and the API, which print every binlog) the file they are in read once more as a
stream, each segment written whole in turn. The output is the bytes json.dumps of the whole tree gives;
Python's own allocations are traced while a backup of 50,000 binlogs is read and written. No sandbox:
a backup in a local folder, made by the project's own meta writer."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from milvus_backup.api.server import create_app
from milvus_backup.cli.main import main as cli_main
from milvus_backup.core.catalog import Catalog
from milvus_backup.core.config import load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.meta import (
    BackupInfo,
    BackupState,
    Binlog,
    Collection,
    FieldBinlog,
    MetaError,
    MetaFile,
    Partition,
    Segment,
    encode,
    meta_files,
    read_backup,
    render_backup_json,
)
from milvus_backup.core.paths import (
    BACKUP_META,
    COLLECTION_META,
    FULL_META,
    META_WRITE_ORDER,
    PARTITION_META,
    SEGMENT_META,
    BackupLayout,
)
from milvus_backup.core.storage.local import LocalStorage
from tests.conftest import traced_peak
from tests.test_hostile_meta import meta_like

NAME = "big"
FUZZ = settings(
    max_examples=max(1, int(os.environ.get("FUZZ_EXAMPLES", "300")) // 6),  # two stores, four reads each
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _meta(segments: int, fields: int = 10, logs: int = 100) -> BackupInfo:
    """A backup of `segments` x `fields` x `logs` binlogs in two collections, a delete log a segment, an L0
    segment, and text that is not ASCII."""
    colls = []
    for c in (1, 2):
        segs = []
        for s in range(segments // 2):
            sid = c * 10_000 + s
            inserts = [
                FieldBinlog(
                    f,
                    [Binlog(f"files/insert_log/{c}/2/{sid}/{f}/{sid}{n}", 8 + n, sid * 1000 + n) for n in range(logs)],
                )
                for f in range(100, 100 + fields)
            ]
            deletes = [FieldBinlog(binlogs=[Binlog(f"files/delta_log/{c}/2/{sid}/{sid}999", 8, sid * 1000 + 999)])]
            segs.append(
                Segment(sid, c, 2, num_of_rows=10 + s, binlogs=inserts, deltalogs=deletes, size=8, group_id=sid)
            )
        coll = Collection(
            id="x", collection_id=c, collection_name=f"c{c}_é", partition_backups=[Partition(2, "_default", c, segs)]
        )
        coll.l0_segments = [
            Segment(
                c * 100,
                c,
                -1,
                deltalogs=[FieldBinlog(binlogs=[Binlog(f"files/delta_log/{c}/-1/9/7", 8, 7)])],
                is_l0=True,
            )
        ]
        colls.append(coll)
    return BackupInfo(id="x", name=NAME, state_code=BackupState.SUCCESS, collection_backups=colls, progress=100)


def _write(storage: LocalStorage, layout: BackupLayout, files: dict[str, bytes], name: str = NAME) -> None:
    for filename in META_WRITE_ORDER:
        if filename in files:
            storage.write(layout.meta(name, filename), files[filename])


def _dumps(data: Any, indent: int | None) -> str:
    if indent is None:  # as the API's JSONResponse writes
        return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return json.dumps(data, indent=indent, ensure_ascii=False)


def _text(rendered: MetaFile) -> str:
    with rendered.file:
        text = rendered.file.read().decode("utf-8")
    assert len(text.encode("utf-8")) == rendered.length
    return text


def _expected(whole: BackupInfo, indent: int | None, last_word: dict[str, Any] | None = None) -> str:
    """What get, create --json and the API wrote until now: json.dumps of the whole tree, encoded whole."""
    data = encode(whole)
    data.update(last_word or {})
    return _dumps(data, indent)


def _local_engine(tmp_path: Path) -> Engine:
    config = tmp_path / "local.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "log": {"file": {"filename": str(tmp_path / "backup.log")}},
                "minio": {"backupStorageType": "local", "backupRootPath": str(tmp_path / "backups")},
            }
        )
    )
    return Engine(load_config(config, env={}))


# --- memory: flat in the binlogs -----------------------------------------------------------------------


def test_get_and_the_details_never_hold_the_binlog_lists(tmp_path):
    """The app's details and restore dialog (get_backup) and get's output (backup_json), for a backup of
    10,022 binlogs (full_meta.json: 0.9 MB): Python's allocations at their peak stay flat (measured: 1.0
    MiB for get_backup, 2.5 MiB for backup_json, mostly its buffers; 1.4 and 3.2 MiB at 50,000 binlogs),
    where get's whole decode and json.dumps took 12 MiB here (62 MiB at 50,000), get_backup's 6 MiB."""
    engine = _local_engine(tmp_path)
    try:
        storage, layout = engine.ctx.backup_storage, engine.ctx.backup_layout
        files = meta_files(_meta(segments=20, logs=50))
        _write(storage, layout, files)
        bare, details_peak = traced_peak(lambda: engine.get_backup(NAME))

        def get() -> int:
            rendered = engine.backup_json(NAME, indent=2)
            with rendered.file:
                while rendered.file.read(256 * 1024):
                    pass
            return rendered.length

        length, get_peak = traced_peak(get)
        assert details_peak < 2 * 1024 * 1024, details_peak
        assert get_peak < 4 * 1024 * 1024, get_peak

        # what they read is the backup: the tree less its binlog lists, and every byte get printed until now
        whole = read_backup(files)
        assert length == len(_expected(whole, 2).encode())
        assert _text(engine.backup_json(NAME, indent=2)) == _expected(whole, 2)
        for coll in whole.collection_backups:
            for seg in [*coll.segments(), *coll.l0_segments]:
                seg.binlogs, seg.deltalogs = [], []
        assert bare == whole
    finally:
        engine.close()


def test_a_backup_without_full_meta_reads_segment_meta_as_a_stream(tmp_path):
    """The level files only (as the Go tool's oldest backups have them): segment_meta.json, the one of
    them that grows with the binlogs, is read as a stream too; get prints what the whole rebuild gave."""
    storage, layout = LocalStorage(tmp_path), BackupLayout("backup")
    files = meta_files(_meta(segments=20, logs=10))
    del files[FULL_META]
    _write(storage, layout, files)
    catalog = Catalog(storage, layout)
    whole = catalog.get(NAME, binlogs=True)
    bare = catalog.get(NAME, binlogs=False)
    assert _text(catalog.backup_json(NAME)) == _expected(whole, None)
    assert sum(len(s.binlogs) + len(s.deltalogs) for c in bare.collection_backups for s in c.segments()) == 0
    assert [s.num_of_rows for s in bare.collection_backups[1].segments()] == list(range(10, 20))
    # and a restore or verify gets every binlog back from it, where the rebuild put its segment
    placed = catalog.read_segments(
        NAME, bare, lambda segs: [(c.collection_id, p and p.partition_id, encode(s)) for c, p, s in segs]
    )
    assert placed == [
        (c.collection_id, p.partition_id, encode(s))
        for c in whole.collection_backups
        for p in c.partition_backups
        for s in p.segment_backups
    ]


# --- the same bytes as before ----------------------------------------------------------------------------


@pytest.fixture
def cli_logging():
    """The CLI's main sets up the "milvus_backup" logger for its process (a log file, no propagation): put
    it back, so that no later test in this process loses the records it captures."""
    logger = logging.getLogger("milvus_backup")
    level, propagate, handlers = logger.level, logger.propagate, list(logger.handlers)
    yield
    for handler in [h for h in logger.handlers if h not in handlers]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = propagate


def test_the_cli_prints_what_it_printed(tmp_path, capsys, cli_logging):
    """`get -n` and `get --json`, in process: the text json.dumps(encode(the whole meta), indent=2) printed."""
    engine = _local_engine(tmp_path)
    try:
        info = _meta(segments=4, logs=3)
        _write(engine.ctx.backup_storage, engine.ctx.backup_layout, meta_files(info))
        whole = engine.ctx.catalog.get(NAME, binlogs=True)
    finally:
        engine.close()
    for extra in ([], ["--json"]):
        with pytest.raises(SystemExit) as done:
            cli_main(["--config", str(tmp_path / "local.yaml"), "get", "-n", NAME, *extra])
        assert done.value.code == 0
        assert capsys.readouterr().out == _expected(whole, 2) + "\n"


def test_the_api_answers_what_it_answered(tmp_path):
    """get_backup's envelope: the bytes JSONResponse wrote for the whole meta, with state and progress."""
    engine = _local_engine(tmp_path)
    try:
        info = _meta(segments=4, logs=3)
        info.progress = 0  # a backup that says nothing of its progress: the view's 100 comes last
        files = meta_files(info)
        _write(engine.ctx.backup_storage, engine.ctx.backup_layout, files)
        whole = engine.ctx.catalog.get(NAME, binlogs=True)
        with TestClient(create_app(engine)) as client:
            answer = client.get("/api/v1/get_backup", params={"backup_name": NAME, "requestId": "r-1"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        data = encode(whole)
        data.update(state_code=2, progress=100)
        envelope = {"requestId": "r-1", "code": 0, "msg": "success", "data": data}
        assert answer.content == _dumps(envelope, None).encode()
        assert int(answer.headers["content-length"]) == len(answer.content)
    finally:
        engine.close()


def test_a_job_result_is_written_a_segment_at_a_time():
    """create --json and the API's create under another root write the job's own tree, whose binlog lists
    a backup reads back from its spill: render_backup_json of it is what encode gave, updated in place."""
    info = _meta(segments=4, logs=3)
    done = {"state_code": 2, "progress": 100, "new_key": [1, "ü"]}
    assert _text(render_backup_json(info, indent=2, last_word=done)) == _expected(info, 2, done)
    assert _text(render_backup_json(BackupInfo(), last_word=done)) == _expected(BackupInfo(), None, done)
    assert _text(render_backup_json(BackupInfo())) == _dumps(encode(BackupInfo()), None)


def test_full_meta_is_read_once_whatever_its_order(tmp_path):
    """get reads full_meta.json once, each segment's text made as the stream passes it, and written where
    the tree puts it: a file whose L0 segments come before its partitions, or that names a list twice
    (the last one counts, as json.loads has it), gives the same bytes as the whole read."""
    storage, layout = LocalStorage(tmp_path), BackupLayout("backup")
    files = meta_files(_meta(segments=4, logs=2))
    full = json.loads(files[FULL_META])
    reordered = {**full, "collection_backups": [_l0_first(c) for c in full["collection_backups"]]}
    named_twice = json.dumps(reordered)[:-1] + ', "collection_backups": ' + json.dumps(full["collection_backups"][::-1])
    files[FULL_META] = (named_twice + "}").encode()
    _write(storage, layout, files)
    catalog = Catalog(storage, layout)
    reads: list[str] = []
    real_open = storage.open
    storage.open = lambda key: reads.append(key) or real_open(key)  # type: ignore[method-assign]
    whole = catalog.get(NAME, binlogs=True)
    assert [c.collection_id for c in whole.collection_backups] == [2, 1]
    assert _text(catalog.backup_json(NAME, indent=2)) == _expected(whole, 2)
    assert reads == [layout.meta(NAME, FULL_META)]


def _l0_first(coll: dict[str, Any]) -> dict[str, Any]:
    assert coll["l0_segments"] and coll["partition_backups"]
    return {"l0_segments": coll["l0_segments"], **{k: v for k, v in coll.items() if k != "l0_segments"}}


# --- fuzzed: the stream writes what the whole read wrote, or both fail ---------------------------------


def _same_as_whole(files: dict[str, bytes]) -> None:
    """backup_json of a backup of these meta files (indented and compact) is the text json.dumps of
    read_backup's whole tree gives; where that read fails, the streamed one fails with a MetaError too."""
    with tempfile.TemporaryDirectory() as folder:
        storage, layout = LocalStorage(folder), BackupLayout("backup")
        _write(storage, layout, files)
        catalog = Catalog(storage, layout)
        try:
            whole = catalog.get(NAME, binlogs=True)
            expected = [_expected(whole, indent) for indent in (2, None)]
        except (MetaError, ValueError, RecursionError):
            with pytest.raises(MetaError) as raised:
                catalog.backup_json(NAME)
            assert str(raised.value) and "\n" not in str(raised.value)
            return
        assert [_text(catalog.backup_json(NAME, indent=indent)) for indent in (2, None)] == expected


def _int64(value: Any) -> Any:
    from tests.test_hostile_meta import _int64 as within_64_bits

    return within_64_bits(value)


@FUZZ
@given(meta_like.map(_int64))
def test_full_meta_written_by_get_is_the_whole_read(full):
    top = b'{"name":"big","state_code":2}'
    _same_as_whole({BACKUP_META: top, FULL_META: json.dumps(full).encode()})
    nested = {"collection_backups": [{"partition_backups": [{"segment_backups": [full]}], "l0_segments": [full]}]}
    _same_as_whole({BACKUP_META: top, FULL_META: json.dumps(nested).encode()})


@FUZZ
@given(meta_like.map(_int64), st.lists(meta_like.map(_int64), max_size=3))
def test_segment_meta_written_by_get_is_the_whole_rebuild(segments, more):
    l0 = {"segment_id": 5, "is_l0": True, "deltalogs": [{"binlogs": [{"log_id": 7}]}]}  # read whole, beside
    files = {
        BACKUP_META: b'{"name":"big","state_code":2}',
        COLLECTION_META: json.dumps({"infos": [{"collection_id": 1, "l0_segments": [l0]}]}).encode(),
        PARTITION_META: b'{"infos":[{"collection_id":1,"partition_id":2},{"collection_id":1,"partition_id":2}]}',
    }
    _same_as_whole({**files, SEGMENT_META: json.dumps(segments).encode()})
    shaped = [{"collection_id": 1, "partition_id": 2, **m} if isinstance(m, dict) else m for m in more]
    _same_as_whole({**files, SEGMENT_META: json.dumps({"infos": shaped}).encode()})
    twice = '{"infos":' + json.dumps(shaped[::-1]) + ',"infos":' + json.dumps(shaped) + "}"  # the last counts
    _same_as_whole({**files, SEGMENT_META: twice.encode()})
