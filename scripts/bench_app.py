"""The terminal app's start, for scripts/bench.py: run in a process of its own that imports what
`milvus-backup` imports to open the app, in the same order (the config, then `tui.launch.open_app`,
which asks for the tables' first listings before it imports Textual), and nothing else (bench.py itself
loads pymilvus).

    python scripts/bench_app.py CONFIG BACKUPS SPAWNED

Opens the app headless and prints, as JSON, the seconds from SPAWNED (the parent's clock when it
started this process) to the first screen drawn (tables saying "loading..."), to each table filled
with what the app loaded (at least BACKUPS - 5 backups: the listing was whole), and to both ("seconds");
and the CPU seconds this process had used by then ("cpu": what a busy machine does not inflate much).
The backups table is filled when it shows its rows: first the listing's early answer (the names, with
what this machine last saw of each), then every backup read ("read"). It adds the rows past its first
screenful a paint later, and "all_rows" is when it holds every backup (its CPU by then: "all_rows_cpu").
As `milvus-backup` does (cli.main.run), pydantic's plugins are not looked for.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time

os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from milvus_backup.core.service import load_config
from milvus_backup.tui.launch import open_app


async def run(config_path: str, backups: int, spawned: float) -> dict[str, float]:
    app = open_app(load_config(config_path))
    async with app.run_test(size=(120, 40)) as pilot:
        took = {"painted": time.time() - spawned}
        deadline = time.monotonic() + 120
        filled = {  # each table filled with what the app loaded
            "backups": lambda: len(app.backups) > 0 and app.backups_table.row_count > 0,
            "collections": lambda: app.collections_table.row_count > 0,
            "all_rows": lambda: len(app.backups) > 0 and app.backups_table.row_count == len(app.backups),
            "read": app.loaded.is_set,  # every backup read (the table first shows names and what was last seen)
        }
        cpu: dict[str, float] = {}
        while len(took) < 5:
            assert time.monotonic() < deadline, (app.backups_table.row_count, backups)
            await pilot.pause(0.01)
            now = time.time() - spawned
            took.update({table: now for table, done in filled.items() if table not in took and done()})
            if "cpu" not in cpu and {"backups", "collections"} <= set(took):
                cpu["cpu"] = _cpu()
        cpu["all_rows_cpu"] = _cpu()
        assert len(app.backups) >= backups - 5, (len(app.backups), backups)
        first = max(took[name] for name in ("painted", "backups", "collections"))
        return {"seconds": first, **took, **cpu}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))))
