"""Time a backup and a restore of a 100k x 128-d collection on a running sandbox.

    .venv/bin/python scripts/bench.py [--config .sandbox/backup.yaml] [--rows 100000] [--dim 128]

Also times `verify` (quick and --full) of the backup. Prints the figures; it asserts nothing about
time (these machines are noisy).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import humanize
from pymilvus import DataType, MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import JobState
from milvus_backup.core.restore import RestoreRequest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=".sandbox/backup.yaml")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--local", help="back up to this local folder instead of the bucket")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.local:
        local = config.backup_storage.model_copy(update={"storage_type": "local", "root_path": args.local})
        config = config.model_copy(update={"backup_storage": local})
    uri = config.milvus.uri
    name = f"bench_{args.rows}"
    client = MilvusClient(uri=uri)
    for coll in (name, name + "_restored"):
        if client.has_collection(coll):
            client.drop_collection(coll)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=args.dim)
    client.create_collection(name, schema=schema)
    rng = random.Random(7)
    t = time.perf_counter()
    for start in range(0, args.rows, 5000):
        client.insert(
            name,
            [
                {"id": i, "vec": [rng.random() for _ in range(args.dim)]}
                for i in range(start, min(args.rows, start + 5000))
            ],
        )
    client.flush(name)
    print(f"loaded {args.rows} rows in {time.perf_counter() - t:.1f} s")

    engine = Engine(config)
    backup = f"bench_{int(time.time())}"
    t = time.perf_counter()
    job = engine.start_backup(BackupRequest(name=backup, collections=[name]))
    assert job.wait() is JobState.SUCCESS, job.error
    took = time.perf_counter() - t
    size = job.result.size
    print(
        f"backup: {took:.2f} s, {humanize.naturalsize(size)} ({humanize.naturalsize(size / took)}/s), "
        f"{job.progress.objects_total} objects"
    )
    for full in (False, True):
        t = time.perf_counter()
        report = engine.verify_backup(backup, full=full)
        assert report.ok, report.to_dict()
        print(
            f"verify {'--full' if full else '(quick)'}: {time.perf_counter() - t:.2f} s, "
            f"{report.objects_checked} objects, {humanize.naturalsize(report.bytes_checked)}"
        )
    t = time.perf_counter()
    job = engine.start_restore(RestoreRequest(backup, suffix="_restored"))
    assert job.wait() is JobState.SUCCESS, job.error
    print(f"restore (full verify first): {time.perf_counter() - t:.2f} s, {job.result[0].rows} rows")
    engine.delete_backup(backup)
    for coll in (name, name + "_restored"):
        client.drop_collection(coll)
    engine.close()
    client.close()


if __name__ == "__main__":
    main()
