"""Time the tool against the raw operations underneath, on a running sandbox, in one run.

    .venv/bin/python scripts/bench.py [--config .sandbox/backup.yaml] [--rows 100000] [--dim 128] [--rounds 3]

Each round: the tool's backup, then a raw parallel server-side copy of the same binlogs; the tool's
restore, then raw backup-mode bulk imports of the same folders into an empty collection. The tool's
backup and restore run in a child process each, which reports its peak RSS and the bytes it read
(files, and what the S3 client received: what passed through the tool). Also times `verify`
(quick and --full). Prints the figures and ratios; it asserts nothing about time (the machine is noisy).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import humanize
from minio import Minio
from pymilvus import DataType, MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import Config, load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.milvus import Milvus
from milvus_backup.core.restore import RestoreRequest

_socket_read = [0]
_socket_lock = threading.Lock()


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


def child(config_path: str, what: str, backup: str, collection: str) -> None:
    """One tool operation in this process; prints seconds, peak RSS and bytes read as JSON."""
    _count_socket_reads()
    engine = Engine(load_config(config_path))
    read_before, t = _read_bytes(), time.perf_counter()
    if what == "backup":
        job: Any = engine.start_backup(BackupRequest(name=backup, collections=[collection]))
    else:
        job = engine.start_restore(RestoreRequest(backup, suffix="_restored"))
    assert job.wait() is JobState.SUCCESS, job.error
    took = time.perf_counter() - t
    size = job.result.size if what == "backup" else sum(c.rows for c in job.result)
    engine.close()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": took, "rss_mib": rss_mib, "read": _read_bytes() - read_before, "size": size}))


def _tool(args: argparse.Namespace, what: str, backup: str, collection: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--config", args.config, "--child", what, backup, collection]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def _s3(config: Config) -> Minio:
    s = config.storage
    return Minio(s.endpoint, s.access_key_id, s.secret_access_key.get_secret_value(), secure=s.use_ssl)


def raw_copy(config: Config, collection_id: int) -> tuple[float, int]:
    """What a backup does at least: a parallel server-side copy of the collection's binlogs."""
    from minio.commonconfig import CopySource

    s3, bucket, root = _s3(config), config.storage.bucket_name, config.storage.root_path
    keys = [
        o.object_name
        for kind in ("insert_log", "delta_log")
        for o in s3.list_objects(bucket, prefix=f"{root}/{kind}/{collection_id}/", recursive=True)
    ]
    t = time.perf_counter()
    with ThreadPoolExecutor(config.backup.copydata) as pool:
        list(pool.map(lambda k: s3.copy_object(bucket, f"bench_raw/{k}", CopySource(bucket, k)), keys))
    took = time.perf_counter() - t
    for k in keys:
        s3.remove_object(bucket, f"bench_raw/{k}")
    return took, len(keys)


def raw_import(config: Config, client: MilvusClient, schema: Any, backup: str) -> tuple[float, int]:
    """What a restore does at least: backup-mode bulk imports of the backup's group folders."""
    s3, bucket = _s3(config), config.backup_storage.bucket_name
    base = f"{config.backup_storage.root_path}/{backup}/binlogs/insert_log/"
    groups: set[str] = set()
    for o in s3.list_objects(bucket, prefix=base, recursive=True):
        parts = o.object_name[len(base) :].split("/")  # collection/partition/group/segment/field/log
        groups.add(base + "/".join(parts[:3]) + "/")
    target = "bench_raw_import"
    if client.has_collection(target):
        client.drop_collection(target)
    client.create_collection(target, schema=schema)
    milvus = Milvus(config.milvus)
    t = time.perf_counter()
    tasks = [task for g in sorted(groups) for task in milvus.start_import("default", target, "_default", [g, ""])]
    rows = 0
    while tasks:
        time.sleep(0.3)
        for task in list(tasks):
            progress = milvus.import_progress(task)
            assert progress.state != "failed", progress.reason
            if progress.state == "completed":
                rows += progress.row_count
                tasks.remove(task)
    took = time.perf_counter() - t
    milvus.close()
    client.drop_collection(target)
    return took, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=".sandbox/backup.yaml")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "BACKUP", "COLLECTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.config, *args.child)
    config = load_config(args.config)
    name = f"bench_{args.rows}"
    client = MilvusClient(uri=config.milvus.uri)
    for coll in (name, name + "_restored"):
        if client.has_collection(coll):
            client.drop_collection(coll)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=args.dim)
    client.create_collection(name, schema=schema)
    rng = random.Random(7)
    for start in range(0, args.rows, 5000):
        rows = [{"id": i, "vec": [rng.random() for _ in range(args.dim)]} for i in range(start, start + 5000)]
        client.insert(name, rows[: max(0, args.rows - start)])
    client.flush(name)
    collection_id = client.describe_collection(name)["collection_id"]
    engine = Engine(config)
    mib = 1024 * 1024
    for round_no in range(1, args.rounds + 1):
        backup = f"bench_{int(time.time())}_{round_no}"
        b = _tool(args, "backup", backup, name)
        copy_s, objects = raw_copy(config, collection_id)
        print(
            f"[{round_no}] backup {b['seconds']:.2f} s ({humanize.naturalsize(b['size'])}, {objects} binlogs) vs raw "
            f"server-side copy {copy_s:.2f} s: {b['seconds'] / copy_s:.1f}x; client read {b['read'] / mib:.1f} MiB "
            f"({b['read'] / max(1, b['size']):.2f} bytes per byte backed up); peak RSS {b['rss_mib']:.0f} MiB"
        )
        for full in (False, True):
            t = time.perf_counter()
            report = engine.verify_backup(backup, full=full)
            assert report.ok, report.to_dict()
            print(f"[{round_no}] verify {'--full' if full else '(quick)'}: {time.perf_counter() - t:.2f} s")
        r = _tool(args, "restore", backup, name)
        import_s, imported = raw_import(config, client, schema, backup)
        assert imported == r["size"] == args.rows, (imported, r["size"])
        print(
            f"[{round_no}] restore {r['seconds']:.2f} s ({r['size']} rows) vs raw bulk import {import_s:.2f} s: "
            f"{r['seconds'] / import_s:.1f}x; client read {r['read'] / mib:.1f} MiB; peak RSS {r['rss_mib']:.0f} MiB"
        )
        engine.delete_backup(backup)
        client.drop_collection(name + "_restored")
    client.drop_collection(name)
    engine.close()
    client.close()


if __name__ == "__main__":
    main()
