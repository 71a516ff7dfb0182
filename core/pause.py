"""A test hook: hold a job at a named point so a test can kill the process exactly there.

With `MILVUS_BACKUP_PAUSE_AT=<point>` (several: comma-separated) and `MILVUS_BACKUP_PAUSE_FILE=<path>`
in the environment, a job reaching that point appends the point's name to the file and then waits
until the process is killed, the job is cancelled (when the point is given its cancel event), or the
file named by `MILVUS_BACKUP_RESUME_FILE` appears. The crash tests (`kill -9` at each phase), the cancel
and the hang-up tests use it instead of sleeping and hoping. Without the variable, which is never set
outside tests, `pause_point` does nothing.

Points: `backup:copy` (the first binlog was copied, more are to come), `backup:meta` (the level meta
files and full_meta.json are written), `backup:final` (the integrity manifest is written, backup_meta.json
is not), `restore:import` (the target collection exists and its first import finished; a cancel of the
job releases it), `restore:check` (a collection's later import group is about to be checked while an
earlier one was submitted to Milvus), `restore:swap:intent` (a drop-existing restore wrote its swap intent, nothing is
renamed yet), `restore:swap:aside` (the old collection was renamed aside, the target name is free),
`restore:swap:renamed` (the restored collection holds the target name; aliases not moved, old not dropped).
"""

from __future__ import annotations

import os
import threading

PAUSE_AT = "MILVUS_BACKUP_PAUSE_AT"
PAUSE_FILE = "MILVUS_BACKUP_PAUSE_FILE"
RESUME_FILE = "MILVUS_BACKUP_RESUME_FILE"
_forever = threading.Event()


def pause_point(point: str, cancel: threading.Event | None = None) -> None:
    wanted = os.environ.get(PAUSE_AT)
    if not wanted or point not in wanted.split(","):
        return
    path = os.environ.get(PAUSE_FILE)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(point + "\n")
    resume = os.environ.get(RESUME_FILE)
    while not (resume and os.path.exists(resume)):
        if (cancel if cancel is not None else _forever).wait(0.1):
            return
