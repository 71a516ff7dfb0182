"""Backups of several collections at once, as backup.parallelism configures: collections are planned
side by side, their copies interleave, and a cancel while several collections copy stops the copies,
removes what was written and leaves nothing that looks like a backup. backupCollection bounds the
collections whose copies are under way (1: one after the other)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from minio import Minio
from pymilvus import DataType, MilvusClient

from milvus_backup.core import backup as backup_module
from milvus_backup.core.backup import BackupRequest, Strategy
from milvus_backup.core.engine import Engine
from milvus_backup.core.errors import Cancelled, InvalidRequest
from milvus_backup.core.jobs import Job, JobKind, JobState, Reporter
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.core.storage import CopyTask, LocalStorage, copy_groups
from milvus_backup.core.storage.parallel_copy import CopyFeed
from tests.conftest import drop_if_exists, fetch_rows

BUCKET = "a-bucket"
COLLECTIONS = ["hello_milvus", "books", "shop.products"]


def _engine(base_config, **parallelism) -> Engine:
    return Engine(base_config.model_copy(update={"backup": base_config.backup.model_copy(update=parallelism)}))


def _keys(sandbox, prefix: str) -> list[str]:
    s3 = Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)
    return sorted(o.object_name for o in s3.list_objects(BUCKET, prefix=prefix, recursive=True))


@pytest.mark.integration
def test_collections_are_planned_side_by_side(sandbox, base_config):
    # each collection's planning waits until all three have started: only a parallel plan gets through
    engine = _engine(base_config, backup_collection=3)
    together = threading.Barrier(3, timeout=120)
    name = f"par_{uuid.uuid4().hex[:8]}"

    def hold(p):
        if p.phase == "prepare" and p.collection and not p.message:
            together.wait()

    try:
        job = engine.start_backup(BackupRequest(name=name, collections=COLLECTIONS), [hold])
        assert job.wait(300) is JobState.SUCCESS, job.error
        got = [f"{c.db_name}.{c.collection_name}" for c in job.result.collection_backups]
        assert got == ["default.hello_milvus", "default.books", "shop.products"]  # in the order asked
        assert engine.verify_backup(name).ok
    finally:
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()


@pytest.mark.integration
def test_one_at_a_time_when_configured(sandbox, base_config):
    engine = _engine(base_config, backup_collection=1)
    active, peak, lock = [0], [0], threading.Lock()
    real = engine.ctx.milvus.segments

    def counting_segments(db, name):  # each plan asks for its segments in its own thread
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real(db, name)
        finally:
            with lock:
                active[0] -= 1

    engine.ctx.milvus.segments = counting_segments
    name = f"par_{uuid.uuid4().hex[:8]}"
    try:
        job = engine.start_backup(BackupRequest(name=name, collections=COLLECTIONS))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert peak[0] == 1
    finally:
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()


@pytest.mark.integration
def test_cancel_while_several_collections_copy(sandbox, base_config):
    engine = _engine(base_config, backup_collection=3, copydata=2)
    name = f"par_{uuid.uuid4().hex[:8]}"
    all_planned = threading.Event()  # the copies wait for it: then the three collections' copies interleave
    at_cancel: list[str] = []
    done_at_cancel = [0]
    storage = engine.ctx.backup_storage
    real_copy = storage.copy_from

    def copy_once_all_planned(*args, **kwargs):
        assert all_planned.wait(120), "the last collection was never planned"
        return real_copy(*args, **kwargs)

    def cancel_once_two_collections_copied(p):  # runs in the copy's worker, before the pool starts another copy
        if p.phase == "copy" and p.objects_total:
            all_planned.set()
        copied = [share for share in engine.job(p.job_id).shares.values() if share.bytes_done]
        if p.phase == "copy" and len(copied) >= 2 and not at_cancel:
            engine.job(p.job_id).cancel()
            done_at_cancel[0] = p.objects_done
            at_cancel.extend(_keys(sandbox, f"backup/{name}/binlogs/"))

    storage.copy_from = copy_once_all_planned
    try:
        job = engine.start_backup(
            BackupRequest(name=name, collections=COLLECTIONS), [cancel_once_two_collections_copied]
        )
        assert job.wait(300) is JobState.CANCELLED, job.error
        # copies of two collections at least were written; after the cancel, only the copy still in flight
        # finished and no other started
        collection_ids = {key.split("/")[4] for key in at_cancel}
        assert len(collection_ids) >= 2, at_cancel
        progress = job.progress
        assert progress.objects_done <= done_at_cancel[0] + 1 < progress.objects_total
        assert _keys(sandbox, f"backup/{name}/") == []  # cleaned up
        assert not engine.ctx.catalog.exists(name)
        assert name not in [b.name for b in engine.list_backups()]
    finally:
        engine.close()


def test_progress_from_many_workers_adds_up_exactly():
    def work(reporter: Reporter) -> None:
        def add_many() -> None:
            for _ in range(2000):
                reporter.add(bytes_done=3, objects_done=1)

        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(add_many) for _ in range(8)]:
                future.result()

    job = Job(JobKind.BACKUP, "counted", work).start()
    assert job.wait(60) is JobState.SUCCESS, job.error
    assert (job.progress.objects_done, job.progress.bytes_done) == (16000, 48000)


class _GroupWatch(LocalStorage):
    """A destination that records, at each copy's start, which groups (a key's first folder) have copies
    started and not all finished: the groups "being copied"."""

    def __init__(self, base_dir, sizes: dict[str, int]):
        super().__init__(base_dir)
        self.left = dict(sizes)  # group -> copies not finished
        self.started: list[str] = []
        self.open_at_start: list[set[str]] = []
        self.lock = threading.Lock()

    def copy_from(self, src, src_key, dst_key, size, *, server_side=True):
        group = dst_key.split("/")[0]
        with self.lock:
            self.started.append(dst_key)
            begun = {dst.split("/")[0] for dst in self.started}
            self.open_at_start.append({g for g in begun if self.left[g]})
        copied = super().copy_from(src, src_key, dst_key, size, server_side=server_side)
        with self.lock:
            self.left[group] -= 1
        return copied


def _groups(src: LocalStorage, sizes: dict[str, int]) -> list[list[CopyTask]]:
    groups = []
    for group, count in sizes.items():
        tasks = []
        for i in range(count):
            src.write(f"{group}/{i}", f"{group} {i}".encode())
            tasks.append(CopyTask(f"{group}/{i}", f"{group}/{i}", len(f"{group} {i}")))
        groups.append(tasks)
    return groups


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_copies_of_at_most_backup_collection_groups_at_a_time(tmp_path, at_once):
    sizes = {"a": 5, "b": 1, "c": 4, "d": 6, "e": 2}
    src, dst = LocalStorage(tmp_path / "s"), _GroupWatch(tmp_path / "d", sizes)
    groups = _groups(src, sizes)
    copy_groups(src, dst, groups, 4, at_once)
    assert sorted(dst.started) == sorted(t.dst_key for g in groups for t in g)
    assert max(len(groups_open) for groups_open in dst.open_at_start) <= at_once
    firsts = [key.split("/")[0] for key in dst.started[:at_once]]
    assert sorted(firsts) == list(sizes)[:at_once]  # the first copies: one of each open group
    if at_once == 1:  # one group after the other, in order
        assert [key.split("/")[0] for key in dst.started] == [g for g, n in sizes.items() for _ in range(n)]


@pytest.mark.integration
def test_copies_start_while_later_collections_are_planned(sandbox, base_config):
    # the last collection's segments request waits for a binlog of the first to be copied: only a backup that
    # copies a collection as soon as it is planned gets through; the bar's fraction never goes back meanwhile
    engine = _engine(base_config, backup_collection=1)
    first_copied = threading.Event()
    real_segments = engine.ctx.milvus.segments

    def segments_of_last_after_a_copy(db, coll):
        if f"{db}.{coll}" == "shop.products":
            assert first_copied.wait(120), "no copy started before the last collection was planned"
        return real_segments(db, coll)

    fractions: list[float] = []

    def watch(p):
        fractions.append(p.fraction)
        if p.phase == "copy" and p.objects_done:
            first_copied.set()

    engine.ctx.milvus.segments = segments_of_last_after_a_copy
    name = f"par_{uuid.uuid4().hex[:8]}"
    try:
        job = engine.start_backup(BackupRequest(name=name, collections=COLLECTIONS), [watch])
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert fractions == sorted(fractions), fractions
        shares = job.shares
        assert list(shares) == ["default.hello_milvus", "default.books", "shop.products"]
        for coll in job.result.collection_backups:
            share = shares[f"{coll.db_name}.{coll.collection_name}"]
            assert share.bytes_done == share.bytes_total == coll.size > 0
            assert share.rows == coll.num_rows > 0
        assert (job.progress.bytes_done, job.progress.objects_done) == (
            job.progress.bytes_total,
            job.progress.objects_total,
        )
        assert job.progress.bytes_total == sum(c.size for c in job.result.collection_backups)
        assert engine.verify_backup(name).ok
    finally:
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()


def test_groups_fed_while_copying_are_copied_and_a_failed_feed_stops_them(tmp_path):
    sizes = {"a": 3, "b": 2, "c": 4}
    src, dst = LocalStorage(tmp_path / "s"), _GroupWatch(tmp_path / "d", sizes)
    groups = _groups(src, sizes)
    feed, fed, lock = CopyFeed(), {0}, threading.Lock()
    feed.add(groups[0])

    def feed_the_next(task, copied):  # a group comes once a copy of the one before it is done
        following = "abc".index(task.dst_key[0]) + 1
        with lock:
            if following < len(groups) and following not in fed:
                fed.add(following)
                feed.add(groups[following])
                if len(fed) == len(groups):
                    feed.close()

    copy_groups(src, dst, feed, 2, 2, after_copy=feed_the_next)
    keys = [t.dst_key for g in groups for t in g]
    assert sorted(dst.started) == sorted(keys)
    assert max(len(groups_open) for groups_open in dst.open_at_start) <= 2
    assert [dst.read(key) for key in keys] == [src.read(key) for key in keys]

    failing, stopped = CopyFeed(), _GroupWatch(tmp_path / "e", sizes)
    failing.add(groups[0])  # the plan of the next group fails after the first copy
    with pytest.raises(InvalidRequest, match="the plan of b failed"):
        copy_groups(
            src, stopped, failing, 1, 2, after_copy=lambda *_: failing.fail(InvalidRequest("the plan of b failed"))
        )
    assert stopped.started == ["a/0"]  # no other copy started


def test_a_cancel_reaches_copy_threads_that_wait_for_the_next_group(tmp_path):
    # every copy of the first group is done and the feed stays open (a later collection still being planned):
    # the copy threads wait for work, and a cancel, which nothing hands to the feed, still ends the copy
    sizes = {"a": 3}
    src, dst = LocalStorage(tmp_path / "s"), _GroupWatch(tmp_path / "d", sizes)
    feed, cancel, copied = CopyFeed(), threading.Event(), []
    feed.add(_groups(src, sizes)[0])

    def cancel_after_the_last(task, _copied):
        copied.append(task.dst_key)
        if len(copied) == sizes["a"]:
            threading.Timer(0.05, cancel.set).start()  # once the threads wait, not while one still copies

    with pytest.raises(Cancelled, match="after 3 of 3 objects"):
        copy_groups(src, dst, feed, 4, 2, cancel=cancel, after_copy=cancel_after_the_last)
    assert sorted(dst.started) == ["a/0", "a/1", "a/2"]


@pytest.mark.integration
def test_one_flush_request_keeps_rows_inserted_just_before_the_backup(sandbox, base_config):
    """By default the chosen collections of a database are flushed in one request, and their load states
    asked in one: rows inserted (not flushed) just before the backup all come back, every field; each
    collection's meta keeps its own load state."""
    uri, tag = sandbox.milvus_uri, uuid.uuid4().hex[:8]
    names = [f"flush1_{tag}_{i}" for i in range(2)]
    rows = {n: [{"id": i, "v": [i / 64, 0.5, 0.0, 1.0], "t": f"{n} row {i}"} for i in range(40)] for n in names}
    client = MilvusClient(uri=uri)
    engine = _engine(base_config, backup_collection=2)
    flushes: list[tuple[str, list[str]]] = []
    real_flush_many = engine.ctx.milvus.flush_many

    def counting_flush_many(db, colls, timeout=300):  # Milvus.flush (one collection) goes through it too
        flushes.append((db, list(colls)))
        return real_flush_many(db, colls, timeout)

    engine.ctx.milvus.flush_many = counting_flush_many
    name = f"flush1_{tag}"
    try:
        for coll in names:
            schema = MilvusClient.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
            schema.add_field("t", DataType.VARCHAR, max_length=64)
            index = client.prepare_index_params()
            index.add_index("v", index_type="FLAT", metric_type="L2")
            client.create_collection(coll, schema=schema, index_params=index)
            client.insert(coll, rows[coll])  # not flushed
        client.release_collection(names[1])
        job = engine.start_backup(BackupRequest(name=name, collections=names))
        assert job.wait(300) is JobState.SUCCESS, job.error
        assert flushes == [("default", names)]
        metas = {c.collection_name: c for c in job.result.collection_backups}
        assert [metas[n].load_state for n in names] == ["Loaded", "NotLoad"]
        assert [metas[n].num_rows for n in names] == [40, 40]
        restored = engine.start_restore(RestoreRequest(name, suffix="_r", restore_index=True, load=True))
        assert restored.wait(300) is JobState.SUCCESS, restored.error
        for coll in names:
            got = sorted(fetch_rows(uri, "default", coll + "_r"), key=lambda row: row["id"])
            assert [{**row, "v": [float(x) for x in row["v"]]} for row in got] == rows[coll]
    finally:
        if engine.ctx.catalog.exists(name):
            engine.delete_backup(name)
        engine.close()
        client.close()
        drop_if_exists(uri, "default", *names, *(n + "_r" for n in names))


class _FlushRecorder:
    """A Milvus stand-in that records each Flush request (this unit test is about the batching only)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[str]]] = []

    def flush_many(self, db: str, names: list[str], timeout: float = 300) -> dict[str, int]:
        self.requests.append((db, list(names)))
        return {name: 1000 + len(self.requests) for name in names}


def test_flushes_go_in_batches_of_one_database_in_the_order_collections_are_planned():
    pairs = [("a", f"a{i}") for i in range(23)] + [("b", "b0"), ("b", "b1"), ("a", "a23")]
    milvus = _FlushRecorder()
    job = Job(JobKind.BACKUP, "flushes", lambda r: None)
    with ThreadPoolExecutor(1) as pool:
        flushed = backup_module._flushes(milvus, pairs, Strategy.AUTO, Reporter(job), pool)
        stamps = {pair: backup_module._flush_ts(milvus, *pair, flushed[pair]) for pair in pairs}
    sizes = [(db, len(names)) for db, names in milvus.requests]
    assert sizes == [("a", 10), ("a", 10), ("a", 3), ("b", 2), ("a", 1)]
    assert [name for _, names in milvus.requests for name in names] == [coll for _, coll in pairs]
    assert stamps[("a", "a0")] == 1001 and stamps[("a", "a22")] == 1003 and stamps[("a", "a23")] == 1005
    serial = backup_module._flushes(milvus, pairs, Strategy.SERIAL_FLUSH, Reporter(job), pool)
    assert set(serial.values()) == {None} and len(milvus.requests) == 5  # each flushed as it is planned
