"""The CLI's progress printer when a restore works on two collections at once: their events interleave,
and neither the plain lines nor the terminal's bars may follow every switch between them."""

from __future__ import annotations

import io
from dataclasses import replace

from milvus_backup.cli.progress import ProgressPrinter
from milvus_backup.core.service import JobKind, JobState, Phase, Progress


def _interleaved() -> list[Progress]:
    start = Progress(job_id="j", kind=JobKind.RESTORE, name="b", phase=Phase.IMPORT)
    events = []
    for done in range(1, 6):  # two collections, each importing its 5 objects, their events alternating
        for collection in ("db.a", "db.b"):
            events.append(replace(start, collection=collection, objects_done=done, objects_total=5))
    return [*events, replace(start, state=JobState.SUCCESS)]


def test_plain_lines_name_each_collection_phase_once():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    for event in _interleaved():
        printer(event)
    lines = out.getvalue().splitlines()
    assert [line.split()[:2] for line in lines] == [["import", "db.a"], ["import", "db.b"]], lines


def test_the_terminal_keeps_one_bar_per_collection():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    added = []
    for event in _interleaved()[:-1]:
        printer(event)
        assert printer._bar is not None
        added = [task.description for task in printer._bar.tasks]
    assert sorted(added) == ["import db.a", "import db.b"]
    assert [task.completed for task in printer._bar.tasks] == [5, 5]
    printer.close()
