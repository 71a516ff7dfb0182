"""Every row of issue 13's table, measured in one run on a running sandbox: the tool against the raw
operation underneath, back to back, alternating which goes first, several rounds; median and spread.

    .venv/bin/python scripts/bench.py [--config .sandbox/backup.yaml] [--rows 1000000] [--dim 128]
                                      [--small 50] [--small-rows 2000] [--backups 1000] [--fake-binlogs 20]
                                      [--rounds 3]
                                      [--only big|small|listing] [--keep] [--timeline] [--backup-only]

Rows: a backup in the same store (against a parallel server-side copy of the same binlogs) and the
bytes read through the client for it; a backup into a local folder (against a parallel download); a
restore (against backup-mode bulk imports of the same folders, all submitted at once) and a restore
from a local folder; `--small` collections of `--small-rows` rows backed up as configured against one
at a time (backupCollection=1) and restored against raw imports submitted all at once; `list --json`,
GET /api/v1/list and the terminal app's first screen with `--backups` backups in the store, each
holding `--fake-binlogs` binlogs (against one "/" listing of the root and every `backup_meta.json` read
in parallel); the start of `get` and `delete`.
The tool's backups and restores run in a child process each, which reports its peak RSS and the
bytes it read (files, and what the S3 client received); each is timed once the child has connected to
Milvus, as the API server and the app have (a CLI command adds the connection once: in the notes).
`--timeline` prints, for each large backup, when each kind of step ran (Milvus requests, listings,
copies, confirmation, meta writes) against the raw copy's time; `--backup-only` measures only that
backup pair. Times never go into pass/fail tests; this
script asserts only that every operation did its job (row counts).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import Config, load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.milvus import Milvus
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.core.storage import open_storage

MIB = 1024 * 1024
_socket_read = [0]
_socket_lock = threading.Lock()


# --------------------------------------------------------------------------- the child: one tool operation


def _count_socket_reads() -> None:
    """Count what Python's sockets receive (the S3 client's; gRPC has sockets of its own, not counted)."""
    plain = socket.socket.recv_into

    def recv_into(self: socket.socket, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        n = plain(self, buffer, nbytes, flags)
        with _socket_lock:
            _socket_read[0] += n
        return n

    socket.socket.recv_into = recv_into  # type: ignore[method-assign]


def _read_bytes() -> int:
    """Bytes that passed through this process: files read (/proc/self/io rchar) plus S3 responses."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1]) + _socket_read[0]
    return _socket_read[0]


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that over from the
    parent through fork and exec, so a child would report the (larger) bench process's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child_config(config_path: str, spec: dict[str, Any]) -> Config:
    config = load_config(config_path)
    backup = config.backup
    for key in ("backup_collection", "restore_collection"):
        if spec.get(key):
            backup = backup.model_copy(update={key: spec[key]})
    config = config.model_copy(update={"backup": backup})
    if spec.get("local"):
        local = config.backup_storage.model_copy(update={"storage_type": "local", "root_path": spec["local"]})
        config = config.model_copy(update={"backup_storage": local})
    return config


class _Timeline:
    """Where a backup's time goes (`--timeline`): the child wraps the tool's Milvus requests, storage calls,
    copies, spill calls and meta writing, and records when each ran (seconds from the operation's start)
    and in which thread; the parent prints each kind's count, first start, last end and summed time."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.events: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()

    def record(self, name: str, start: float, end: float) -> None:
        with self._lock:
            self.events.append((name, start - self.t0, end - self.t0))

    def wrap(self, owner: Any, method: str, label: Callable[..., str] | None = None) -> None:
        plain = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return plain(*args, **kwargs)
            finally:
                self.record(label(*args, **kwargs) if label else method, start, time.perf_counter())

        setattr(owner, method, timed)

    def wrap_iterator(self, owner: Any, method: str, label: Callable[..., str]) -> None:
        """A generator method: from its first request to its last entry."""
        plain = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                yield from plain(*args, **kwargs)
            finally:
                self.record(label(*args, **kwargs), start, time.perf_counter())

        setattr(owner, method, timed)

    def install(self, backup_root: str) -> None:
        from milvus_backup.core import backup, spill
        from milvus_backup.core.milvus import Milvus as ToolMilvus
        from milvus_backup.core.storage.base import Storage
        from milvus_backup.core.storage.s3 import MinioStorage

        for rpc in ("version", "list_databases", "list_collections", "describe", "partitions", "indexes"):
            self.wrap(ToolMilvus, rpc, lambda *a, rpc=rpc, **k: f"milvus {rpc}")
        for rpc in ("load_states", "flush_many", "flush", "segments"):
            self.wrap(ToolMilvus, rpc, lambda *a, rpc=rpc, **k: f"milvus {rpc}")

        def where(store: Any, prefix: str, *a: Any, **k: Any) -> str:
            return "list backup" if prefix.startswith(backup_root + "/") else "list milvus"

        self.wrap_iterator(MinioStorage, "_listing", where)
        self.wrap(Storage, "copy_from", lambda *a, **k: "copy")
        self.wrap(Storage, "write_file", lambda s, key, *a, **k: f"write {key.rsplit('/', 1)[-1]}")
        self.wrap(MinioStorage, "write", lambda s, key, *a, **k: f"write {key.split('/')[-2]}/")
        self.wrap(MinioStorage, "stat", lambda *a, **k: "stat")
        for step in ("write_meta", "run_backup", "resolve_collections"):
            self.wrap(backup, step)
        self.wrap(backup._ConfirmedCopies, "_list_and_check", lambda *a, **k: "confirm a collection")
        self.wrap(backup._ConfirmedCopies, "confirm", lambda *a, **k: "confirm: manifest entries")
        for call in ("add", "copied", "answer", "confirmed"):
            self.wrap(spill.BinlogSpill, call, lambda *a, call=call, **k: f"spill {call}")

    def summary(self) -> list[dict[str, Any]]:
        kinds: dict[str, list[tuple[float, float]]] = {}
        for name, start, end in self.events:
            kinds.setdefault(name, []).append((start, end))
        rows = [
            {
                "what": name,
                "n": len(spans),
                "first": min(s for s, _ in spans),
                "last": max(e for _, e in spans),
                "sum": sum(e - s for s, e in spans),
            }
            for name, spans in kinds.items()
        ]
        return sorted(rows, key=lambda r: (r["first"], r["last"]))


def _print_timeline(label: str, rows: list[dict[str, Any]], took: float) -> None:
    print(f"timeline of {label} ({took:.2f} s)", file=sys.stderr)
    for r in rows:
        print(
            f"  {r['what']:<28} n={r['n']:<6} {r['first']:7.3f} -> {r['last']:7.3f} s  summed {r['sum']:7.3f} s",
            file=sys.stderr,
        )


def child(config_path: str, spec: dict[str, Any]) -> None:
    """One tool operation in this process; prints seconds, peak RSS and bytes read as JSON."""
    _count_socket_reads()
    config = _child_config(config_path, spec)
    timeline = _Timeline() if spec.get("timeline") else None
    if timeline is not None:
        timeline.install(config.backup_storage.root_path)
    engine = Engine(config)
    t = time.perf_counter()
    engine.ctx.milvus.version()  # connected, as in the API server and the app (the CLI: + this, once)
    connect = time.perf_counter() - t
    read_before, t = _read_bytes(), time.perf_counter()
    if timeline is not None:
        timeline.t0 = t
    if spec["what"] == "backup":
        job: Any = engine.start_backup(BackupRequest(name=spec["backup"], collections=spec["collections"]))
    else:
        job = engine.start_restore(RestoreRequest(spec["backup"], suffix=spec["suffix"]))
    assert job.wait() is JobState.SUCCESS, job.error
    took = time.perf_counter() - t
    size = job.result.size if spec["what"] == "backup" else sum(c.rows for c in job.result)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    engine.close()
    result = {"seconds": took, "rss_mib": _peak_rss_mib(), "read": _read_bytes() - read_before, "size": size}
    result["connect"] = connect
    result["cpu"] = cpu.ru_utime + cpu.ru_stime
    if timeline is not None:
        result["timeline"] = timeline.summary()
    print(json.dumps(result))


# --------------------------------------------------------------------------- the parent


@dataclass
class Row:
    label: str
    tool: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of the tool's side, where measured
    figures: dict[str, list[float]] = field(default_factory=dict)  # template -> each round's value

    def figure(self, template: str, value: float) -> None:
        """A measured figure for the notes, as ("peak RSS {:.0f} MiB", 121.4): the rounds' values print as one
        range ("peak RSS 121–134 MiB"), not a note per round."""
        self.figures.setdefault(template, []).append(value)


def _figures(row: Row) -> list[str]:
    shown = []
    for template, values in row.figures.items():
        low, high = template.format(min(values)), template.format(max(values))
        if low == high:
            shown.append(low)
        else:
            spec = template[template.index("{") : template.index("}") + 1]
            shown.append(template.replace(spec, f"{spec}–{spec}").format(min(values), max(values)))
    return shown


def _spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def _ratio(row: Row) -> str:
    if not row.tool or not row.raw:
        return "—"
    ratios = [t / r for t, r in zip(row.tool, row.raw, strict=False)]
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def pair(round_no: int, tool: Callable[[], float], raw: Callable[[], float], row: Row) -> None:
    """Run both sides back to back; odd rounds run the raw side first."""
    if round_no % 2:
        row.raw.append(raw())
        row.tool.append(tool())
    else:
        row.tool.append(tool())
        row.raw.append(raw())


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.config = load_config(args.config)
        s = self.config.storage
        self.s3 = Minio(s.endpoint, s.access_key_id, s.secret_access_key.get_secret_value(), secure=s.use_ssl)
        self.bucket, self.root = s.bucket_name, s.root_path
        self.store = open_storage(s)  # deletes what the bench made, with the folders SeaweedFS would keep
        self.backup_bucket, self.backup_root = (
            self.config.backup_storage.bucket_name,
            self.config.backup_storage.root_path,
        )
        from pymilvus import MilvusClient  # the parent's data only: the tool's child never loads pymilvus

        self.client = MilvusClient(uri=self.config.milvus.uri)
        self.rows: dict[str, Row] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))

    def row(self, label: str) -> Row:
        return self.rows.setdefault(label, Row(label))

    # ---- data

    def schema(self) -> Any:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=self.args.dim)
        schema.add_field("text", DataType.VARCHAR, max_length=64)
        return schema

    def make_collection(self, name: str, rows: int) -> int:
        if self.client.has_collection(name):
            if self._reusable(name, rows):  # left by an earlier run (--keep): inserting again takes minutes
                return int(self.client.describe_collection(name)["collection_id"])
            self.client.drop_collection(name)
        self.client.create_collection(name, schema=self.schema())
        rng = random.Random(7)
        for start in range(0, rows, 5000):
            batch = [
                {"id": i, "vec": [rng.random() for _ in range(self.args.dim)], "text": f"row {i}"}
                for i in range(start, min(rows, start + 5000))
            ]
            self.client.insert(name, batch)
        self.client.flush(name)
        return int(self.client.describe_collection(name)["collection_id"])

    def _reusable(self, name: str, rows: int) -> bool:
        """A collection of this bench's schema, with `rows` rows, all flushed."""
        if not self.args.keep:
            return False
        fields = {f["name"]: f for f in self.client.describe_collection(name)["fields"]}
        dim = fields.get("vec", {}).get("params", {}).get("dim")
        return int(dim or 0) == self.args.dim and self.client.get_collection_stats(name)["row_count"] == rows

    def binlogs(self, collection_ids: list[int]) -> list[str]:
        return [
            o.object_name
            for cid in collection_ids
            for kind in ("insert_log", "delta_log")
            for o in self.s3.list_objects(self.bucket, prefix=f"{self.root}/{kind}/{cid}/", recursive=True)
        ]

    # ---- the tool, in a child process

    def tool(self, **spec: Any) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--config", self.args.config, "--child", json.dumps(spec)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def cli(self, *args: str, label: str = "") -> float:
        """Seconds a CLI command takes, start-up included; its CPU seconds go into the row's notes
        (what a busy machine does not inflate)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "milvus_backup.cli", "--config", self.args.config, *args]
        subprocess.run(cmd, check=True, capture_output=True, env=_installed_env())
        took = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if label:
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            self.row(label).cpu.append(cpu)
        return took

    # ---- the raw operations

    def raw_copy(self, keys: list[str]) -> float:
        """What a backup does at least: a parallel server-side copy of the binlogs, one CopyObject request
        each (minio's copy_object would first send a HEAD per object, which the tool does not)."""

        def copy(key: str) -> None:
            headers: dict[str, Any] = CopySource(self.bucket, key).gen_copy_headers()
            self.s3._execute("PUT", self.bucket, object_name=f"bench_raw/{key}", headers=headers)

        t = time.perf_counter()
        with ThreadPoolExecutor(self.config.backup.copydata) as pool:
            list(pool.map(copy, keys))
        took = time.perf_counter() - t
        self.store.delete_prefix("bench_raw/")
        return took

    def raw_download(self, keys: list[str]) -> float:
        """What a backup into a folder does at least: a parallel download of the binlogs."""
        folder = self.tmp / "raw_download"
        t = time.perf_counter()
        with ThreadPoolExecutor(self.config.backup.copydata) as pool:
            list(pool.map(lambda k: self.s3.fget_object(self.bucket, k, str(folder / k)), keys))
        took = time.perf_counter() - t
        shutil.rmtree(folder)
        return took

    def raw_import(self, backup: str, targets: dict[int, tuple[str, Any]]) -> float:
        """What a restore does at least: backup-mode bulk imports of the backup's group folders, every
        collection's, all submitted at once. `targets`: source collection ID -> (target name, schema)."""
        base = f"{self.backup_root}/{backup}/binlogs/insert_log/"
        groups: dict[int, set[str]] = {}
        for o in self.s3.list_objects(self.backup_bucket, prefix=base, recursive=True):
            parts = o.object_name[len(base) :].split("/")  # collection/partition/group/segment/field/log
            groups.setdefault(int(parts[0]), set()).add(base + "/".join(parts[:3]) + "/")
        for name, schema in targets.values():
            if self.client.has_collection(name):
                self.client.drop_collection(name)
            self.client.create_collection(name, schema=schema)
        milvus = Milvus(self.config.milvus)
        t = time.perf_counter()
        tasks = [
            task
            for cid, folders in groups.items()
            for folder in sorted(folders)
            for task in milvus.start_import("default", targets[cid][0], "_default", [folder, ""])
        ]
        while tasks:
            time.sleep(0.1)
            for task in list(tasks):
                progress = milvus.import_progress(task)
                assert progress.state != "failed", progress.reason
                if progress.state == "completed":
                    tasks.remove(task)
        took = time.perf_counter() - t
        milvus.close()
        for name, _ in targets.values():
            self.client.drop_collection(name)
        return took

    def raw_list(self) -> float:
        """What a listing does at least: one listing of the backup root with "/" as the delimiter (the
        backups' names), then every backup's `backup_meta.json` read, 32 at once (as many as the tool)."""
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        query: dict[str, Any] = {"list-type": "2", "prefix": self.backup_root + "/", "delimiter": "/"}
        t = time.perf_counter()
        names: list[str] = []
        while True:
            page = ElementTree.fromstring(self.s3._execute("GET", self.backup_bucket, query_params=query).data)
            names += (entry.findtext(ns + "Prefix") or "" for entry in page.iterfind(ns + "CommonPrefixes"))
            if page.findtext(ns + "IsTruncated") != "true":
                break
            query["continuation-token"] = page.findtext(ns + "NextContinuationToken")

        def read(prefix: str) -> int:
            try:
                response = self.s3.get_object(self.backup_bucket, prefix + "meta/backup_meta.json")
            except S3Error:
                return 0
            try:
                return len(response.read())
            finally:
                response.close()
                response.release_conn()

        with ThreadPoolExecutor(32) as pool:
            read_ok = sum(1 for size in pool.map(read, names) if size)
        took = time.perf_counter() - t
        assert read_ok >= self.args.backups - 5, read_ok
        return took

    def raw_get(self, name: str) -> float:
        """What `get` reads: the backup's five meta files."""
        t = time.perf_counter()
        for filename in ("backup_meta.json", "collection_meta.json", "partition_meta.json", "segment_meta.json"):
            self.s3.get_object(self.backup_bucket, f"{self.backup_root}/{name}/meta/{filename}").read()
        self.s3.get_object(self.backup_bucket, f"{self.backup_root}/{name}/meta/full_meta.json").read()
        return time.perf_counter() - t

    # ---- the rows

    def big(self) -> None:
        args = self.args
        name = f"bench_{args.rows}"
        cid = self.make_collection(name, args.rows)
        keys = self.binlogs([cid])
        for r in range(args.rounds):
            self.big_round(r, name, cid, keys)
        if not args.keep:
            self.client.drop_collection(name)

    def big_round(self, r: int, name: str, cid: int, keys: list[str]) -> None:
        args, schema = self.args, self.schema()
        backup = f"bench_{int(time.time())}_{r}"
        result: dict[str, Any] = {}

        def backup_tool() -> float:
            result.update(self.tool(what="backup", backup=backup, collections=[name], timeline=args.timeline))
            return float(result["seconds"])

        same_store = self.row("backup, same store")
        pair(r, backup_tool, lambda: self.raw_copy(keys), same_store)
        same_store.cpu.append(result["cpu"])
        same_store.figure("connecting to Milvus before it {:.2f} s", result["connect"])
        if args.timeline:
            _print_timeline(f"round {r} (raw copy {same_store.raw[-1]:.2f} s)", result["timeline"], result["seconds"])
        size = result["size"]
        read_row = self.row("bytes read through the client per byte backed up")
        read_row.figure("{:.1f} MiB", result["read"] / MIB)
        read_row.figure("{:.3f} per byte", result["read"] / size)
        read_row.figure("peak RSS {:.0f} MiB", result["rss_mib"])
        if args.backup_only:
            engine = Engine(self.config)
            engine.delete_backup(backup)
            engine.close()
            return
        for full in (False, True):
            t = time.perf_counter()
            engine = Engine(self.config)
            assert engine.verify_backup(backup, full=full).ok
            engine.close()
            self.row(f"verify {'--full' if full else '(quick)'}").tool.append(time.perf_counter() - t)

        local = str(self.tmp / f"local_{r}")
        local_result: dict[str, Any] = {}

        def local_tool() -> float:
            local_result.update(self.tool(what="backup", backup=backup, collections=[name], local=local))
            return float(local_result["seconds"])

        pair(r, local_tool, lambda: self.raw_download(keys), self.row("backup to a local folder"))
        local_row = self.row("backup to a local folder")
        local_row.figure("read {:.0f} MiB", local_result["read"] / MIB)
        local_row.figure("{:.2f} per byte", local_result["read"] / size)
        local_row.figure("peak RSS {:.0f} MiB", local_result["rss_mib"])

        restored: dict[str, Any] = {}

        def restore_tool() -> float:
            restored.update(self.tool(what="restore", backup=backup, suffix="_restored"))
            assert restored["size"] == args.rows, restored
            self.client.drop_collection(name + "_restored")
            return float(restored["seconds"])

        def restore_raw() -> float:
            return self.raw_import(backup, {cid: ("bench_raw_import", schema)})

        pair(r, restore_tool, restore_raw, self.row("restore (default check)"))
        self.row("restore (default check)").figure("read {:.0f} MiB", restored["read"] / MIB)
        self.row("restore (default check)").figure("peak RSS {:.0f} MiB", restored["rss_mib"])
        local_restore: dict[str, Any] = {}

        def local_restore_tool() -> float:  # stages the binlogs into the Milvus bucket, then imports
            local_restore.update(self.tool(what="restore", backup=backup, suffix="_restored", local=local))
            assert local_restore["size"] == args.rows, local_restore
            self.client.drop_collection(name + "_restored")
            return float(local_restore["seconds"])

        pair(r, local_restore_tool, restore_raw, self.row("restore from a local folder"))
        staged_row = self.row("restore from a local folder")
        staged_row.figure("read {:.0f} MiB", local_restore["read"] / MIB)
        staged_row.figure("{:.2f} per byte backed up", local_restore["read"] / size)
        staged_row.figure("peak RSS {:.0f} MiB", local_restore["rss_mib"])
        engine = Engine(self.config)
        engine.delete_backup(backup)
        engine.close()
        shutil.rmtree(local)

    def small(self) -> None:
        args = self.args
        names = [f"bench_small_{i:03d}" for i in range(args.small)]
        ids = {n: self.make_collection(n, args.small_rows) for n in names}
        for r in range(args.rounds):
            self.small_round(r, names, ids)
        for n in names if not args.keep else ():
            self.client.drop_collection(n)

    def small_round(self, r: int, names: list[str], ids: dict[str, int]) -> None:
        args, schema = self.args, self.schema()
        backup = f"bench_small_{int(time.time())}_{r}"
        parallel = f"{backup}_p"
        serial = f"{backup}_s"

        def tool_parallel() -> float:
            result = self.tool(what="backup", backup=parallel, collections=names)
            self.row(label).figure("peak RSS {:.0f} MiB", result["rss_mib"])
            return float(result["seconds"])

        def tool_serial() -> float:
            return float(self.tool(what="backup", backup=serial, collections=names, backup_collection=1)["seconds"])

        label = f"backup of {args.small} small collections vs one at a time"
        pair(r, tool_parallel, tool_serial, self.row(label))
        copy_row = self.row(f"backup of {args.small} small collections vs raw copy")
        copy_row.tool.append(self.rows[label].tool[-1])
        copy_row.raw.append(self.raw_copy(self.binlogs(list(ids.values()))))

        def restore_tool(restore_collection: int = 0) -> float:
            result = self.tool(what="restore", backup=parallel, suffix="_r", restore_collection=restore_collection)
            assert result["size"] == args.small * args.small_rows, result
            for n in names:
                self.client.drop_collection(n + "_r")
            return float(result["seconds"])

        targets = {cid: (f"{n}_raw", schema) for n, cid in ids.items()}
        if not args.no_restore:
            small_row = self.row(f"restore of {args.small} small")
            pair(r, restore_tool, lambda: self.raw_import(parallel, targets), small_row)
            # what restoring collections at once buys on a DataNode that runs one import at a time
            serial_row = self.row(f"restore of {args.small} small, restoreCollection=1 vs as configured")
            pair(r, lambda: restore_tool(1), restore_tool, serial_row)
        engine = Engine(self.config)
        engine.delete_backup(parallel)
        engine.delete_backup(serial)
        engine.close()

    def listing(self) -> None:
        args = self.args
        name = "bench_fake_src"
        self.make_collection(name, 100)
        engine = Engine(self.config)
        if engine.ctx.catalog.exists(name):  # left by an interrupted run
            engine.delete_backup(name)
        assert engine.start_backup(BackupRequest(name=name, collections=[name])).wait() is JobState.SUCCESS
        prefix = f"{self.backup_root}/{name}/meta/"
        metas = {
            o.object_name[len(prefix) :]: self.s3.get_object(self.backup_bucket, o.object_name).read()
            for o in self.s3.list_objects(self.backup_bucket, prefix=prefix)
        }
        fakes = [f"bench_fake_{i:05d}" for i in range(args.backups - 1)]

        def make(fake: str) -> None:
            for filename, data in metas.items():
                key = f"{self.backup_root}/{fake}/meta/{filename}"
                self.s3.put_object(self.backup_bucket, key, io.BytesIO(data), len(data))
            for i in range(args.fake_binlogs):  # a listing must not grow with these
                key = f"{self.backup_root}/{fake}/binlogs/insert_log/1/2/3/{i}"
                self.s3.put_object(self.backup_bucket, key, io.BytesIO(b"x"), 1)

        with ThreadPoolExecutor(32) as pool:
            list(pool.map(make, fakes))
        total = len(engine.list_backups())  # also fills the listing cache
        cold = self.cli("list", "--json")
        self.row(f"`list --json`, {total} backups").figure("first run of the CLI {:.2f} s (cache warm)", cold)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "milvus_backup.cli", "--config", args.config, "server", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_installed_env(),
        )
        try:
            _wait_for(f"http://127.0.0.1:{port}/api/v1/hello")
            listed = f"`list --json`, {total} backups"
            for r in range(args.rounds):
                pair(r, lambda: self.cli("list", "--json", label=listed), self.raw_list, self.row(listed))
                pair(
                    r,
                    lambda: _http_get(f"http://127.0.0.1:{port}/api/v1/list"),
                    self.raw_list,
                    self.row("GET /api/v1/list"),
                )
                self.row("the app's first screen").tool.append(self._tui(total))
                pair(
                    r,
                    lambda: self.cli("get", "-n", fakes[0], label="`get -n NAME`"),
                    lambda: self.raw_get(fakes[0]),
                    self.row("`get -n NAME`"),
                )
                self.row("`delete -n NAME`").tool.append(
                    self.cli("delete", "-n", fakes[-1 - r], label="`delete -n NAME`")
                )
                self.row("`--help`").tool.append(self.cli("--help", label="`--help`"))
        finally:
            server.terminate()
            server.wait(30)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda fake: engine.ctx.backup_storage.delete_prefix(f"{self.backup_root}/{fake}/"), fakes))
        engine.delete_backup(name)
        engine.close()
        self.client.drop_collection(name)

    def _tui(self, backups: int) -> float:
        """Seconds to both tables filled; the screen drawn (loading...) and each table's fill go into the notes."""
        app = Path(__file__).with_name("bench_app.py")
        cmd = [sys.executable, str(app), self.args.config, str(backups), str(time.time())]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_installed_env()).stdout
        took = json.loads(out.strip().splitlines()[-1])
        self.row("the app's first screen").cpu.append(took["cpu"])
        first = self.row("the app's first screen")
        first.figure("drawn at {:.2f} s", took["painted"])
        first.figure("backups at {:.2f} s", took["backups"])
        first.figure("collections at {:.2f} s", took["collections"])
        first.figure("every backup's row at {:.2f} s", took["all_rows"])  # the rows past the first screenful
        first.figure("every backup read at {:.2f} s", took["read"])
        return float(took["seconds"])

    def report(self) -> str:
        a = self.args
        lines = [
            f"rows {a.rows:,} x {a.dim}-d + varchar; {a.small} small collections x {a.small_rows:,} rows; "
            f"{a.backups:,} backups to list; {a.rounds} rounds; median (min–max)",
            "",
            "| run | tool | raw operation | ratio | notes |",
            "|---|---|---|---|---|",
        ]
        for row in self.rows.values():
            notes = ", ".join(_figures(row))
            if row.cpu:
                notes = f"CPU {_spread(row.cpu)}" + (f"; {notes}" if notes else "")
            lines.append(f"| {row.label} | {_spread(row.tool)} | {_spread(row.raw)} | {_ratio(row)} | {notes} |")
        return "\n".join(lines)


def _installed_env() -> dict[str, str]:
    """The environment a CLI child runs in, as an installed tool runs: from compiled bytecode (pip
    compiles a package when it installs it). With PYTHONDONTWRITEBYTECODE set, as some shells and CI
    runners do, every run of a source checkout compiles the package again (≈ 0.1 s of each start)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _http_get(url: str) -> float:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        assert json.loads(response.read())["code"] == 0
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=".sandbox/backup.yaml")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--small", type=int, default=50, help="small collections")
    parser.add_argument("--small-rows", type=int, default=2000)
    parser.add_argument("--backups", type=int, default=1000, help="backups in the store when listing")
    parser.add_argument("--fake-binlogs", type=int, default=20, help="binlogs in each of those backups")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["big", "small", "listing"], action="append", help="run only these parts")
    parser.add_argument("--keep", action="store_true", help="keep the source collections, reuse kept ones")
    parser.add_argument("--no-restore", action="store_true", help="leave out the restore of the small collections")
    parser.add_argument("--timeline", action="store_true", help="print where each big backup's time went")
    parser.add_argument("--backup-only", action="store_true", help="big: only the same-store backup and raw copy")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.config, json.loads(args.child))
    bench = Bench(args)
    try:
        for part in args.only or ["big", "small", "listing"]:
            getattr(bench, part)()
            print(bench.report(), flush=True)
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
        bench.client.close()


if __name__ == "__main__":
    main()
