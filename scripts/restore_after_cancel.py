"""Measure "a restore right after a cancelled one" on a fresh sandbox of its own (issue 10).

Backs up two demo collections, starts a restore and cancels it the moment Milvus has accepted its first
import task (the worst moment: Milvus 2.3 cannot stop that task), then at once restores the same backup
again and reports how long that second restore took, up to `--cap` seconds.

    .venv/bin/python scripts/restore_after_cancel.py --dir /tmp/mb-measure [--cap 1200]

The sandbox runs on free ports in `--dir` and is stopped at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.jobs import Job, JobState
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import load_demo
from milvus_backup.sandbox.servers import Sandbox, free_port


def _cancel_after_first_import(engine: Engine, backup: str) -> Job[Any]:
    milvus = engine.ctx.milvus
    start_import = milvus.start_import
    job: Job[Any] | None = None

    def start_then_cancel(*args: Any, **kwargs: Any) -> list[int]:
        task_ids = start_import(*args, **kwargs)
        assert job is not None
        job.cancel()  # Milvus holds the task now
        return task_ids

    milvus.start_import = start_then_cancel  # type: ignore[method-assign]
    try:
        job = engine.start_restore(RestoreRequest(backup, suffix="_cancelled", verify="quick"))
        job.wait()
    finally:
        milvus.start_import = start_import  # type: ignore[method-assign]
    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="the sandbox's folder")
    parser.add_argument("--cap", type=float, default=1200, help="give up on the second restore after this many s")
    args = parser.parse_args()
    box = Sandbox(args.dir, milvus_port=free_port(), s3_port=free_port())
    try:
        state = box.start()
        load_demo(state.milvus_uri)
        engine = Engine(load_config(state.config_path, env={}))
        backup = engine.start_backup(BackupRequest(name="measure", collections=["hello_milvus", "books"]))
        assert backup.wait() is JobState.SUCCESS, backup.error
        started = time.monotonic()
        first = _cancel_after_first_import(engine, "measure")
        print(f"cancelled restore: {first.state} after {time.monotonic() - started:.1f} s")
        print("\n".join("  " + line for line in first.lines))
        started = time.monotonic()
        second = engine.start_restore(RestoreRequest("measure", suffix="_next", verify="quick"))
        state_ = second.wait(args.cap)
        took = time.monotonic() - started
        if not state_.finished:
            second.cancel()
            second.wait()
        print(f"RESULT restore right after a cancel: {state_} in {took:.1f} s (cap {args.cap:.0f} s)")
        print("\n".join("  " + line for line in second.lines))
        engine.close()
    finally:
        box.stop()


if __name__ == "__main__":
    main()
