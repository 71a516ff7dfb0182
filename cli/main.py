"""`milvus-backup`: the command line. Flags follow zilliztech/milvus-backup so its users' scripts work.

Output on stdout is the answer (tables, JSON); progress and errors go to stderr. The exit code is 0
only on success: 1 for a failed or refused operation, 2 for bad usage or config, 130 when cancelled.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Sequence

import humanize

from cli.progress import ProgressPrinter
from core.backup import BackupRequest
from core.config import Config, load_config
from core.errors import BackupToolError, ConfigError, InvalidRequest
from core.jobs import JobState
from core.meta import encode
from core.restore import RestoreRequest, parse_renames

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage dump
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="milvus-backup", description="Back up and restore Milvus collections.")
    parser.add_argument("--config", help="config file (default: configs/backup.yaml if present, else built-in "
                                         "defaults); MILVUS_ADDRESS, MINIO_SECRET_KEY... override it")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    create = sub.add_parser("create", help="back up collections")
    create.add_argument("-n", "--name", default="", help="backup name (default backup_<UTC time>_<nanos>)")
    create.add_argument("-c", "--colls", type=_csv, default=[], help="collections, comma-separated: name or db.name "
                                                                    "(default: all)")
    create.add_argument("-d", "--databases", default="", help="database of the collections (default: default; "
                                                              "without -c, back up this whole database)")
    create.add_argument("--meta_only", action="store_true", help="back up schemas and indexes, no data")

    sub.add_parser("list", help="list the backups in the backup store")
    get = sub.add_parser("get", help="show a backup's meta as JSON")
    get.add_argument("-n", "--name", required=True)
    delete = sub.add_parser("delete", help="delete a backup")
    delete.add_argument("-n", "--name", required=True)

    restore = sub.add_parser("restore", help="restore collections from a backup")
    restore.add_argument("-n", "--name", required=True, help="backup name")
    restore.add_argument("-c", "--collections", type=_csv, default=[], help="only these (name or db.name)")
    target = restore.add_mutually_exclusive_group()
    target.add_argument("-s", "--suffix", default="", help="restore as <name><suffix>")
    target.add_argument("-r", "--rename", default="", help="old:new,db1.c1:db2.c2,db1.*:db2.*")
    restore.add_argument("--drop_exist_collection", action="store_true", help="drop a target that exists")
    restore.add_argument("--restore_index", action="store_true", help="recreate the indexes")
    restore.add_argument("--meta_only", action="store_true", help="recreate collections without data")
    restore.add_argument("--load", action="store_true", help="load the collections afterwards")
    restore.add_argument("--verify", choices=["full", "quick"], default="full",
                         help="check the backup first: full re-hashes every object (default), quick checks sizes")

    verify = sub.add_parser("verify", help="check a backup's objects: exist, sizes, and with --full their SHA-256")
    verify.add_argument("-n", "--name", required=True, help="backup name")
    verify.add_argument("--full", action="store_true", help="re-read and re-hash every object (reads the whole backup)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")

    colls = sub.add_parser("list-collections", help="list the collections in Milvus")
    colls.add_argument("-d", "--database", default="", help="only this database")

    sandbox = sub.add_parser("sandbox", help="a real Milvus + S3 store on 127.0.0.1 to try things on")
    sandbox.add_argument("action", choices=["start", "stop", "status"])
    sandbox.add_argument("--dir", default=None, help="sandbox folder (default ./.sandbox)")
    sandbox.add_argument("--milvus-port", type=int, default=19530)
    sandbox.add_argument("--s3-port", type=int, default=9000)
    sandbox.add_argument("--demo", action="store_true", help="load the sample collections")
    return parser


def _config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and Path("configs/backup.yaml").is_file():
        path = "configs/backup.yaml"
    config = load_config(path)
    _setup_log(config)
    return config


def _setup_log(config: Config) -> None:
    """The job log goes to log.file.filename at log.level; the terminal shows progress instead."""
    level = {"warn": "WARNING", "panic": "CRITICAL", "fatal": "CRITICAL"}.get(config.log.level, config.log.level.upper())
    logger = logging.getLogger("milvus_backup")
    logger.setLevel(level)
    logger.propagate = False  # not also on stderr, where the progress printer shows the same lines
    if config.log.filename:
        try:
            Path(config.log.filename).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(config.log.filename)
        except OSError as exc:
            print(f"warning: cannot write the log file {config.log.filename} ({exc.strerror})", file=sys.stderr)
            return
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def _run_job(job, printer: ProgressPrinter) -> int:
    """Wait for a job; Ctrl-C cancels it and waits for its clean-up."""
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):
        print("\ncancelling (the job stops at its next step and cleans up)...", file=sys.stderr, flush=True)
        job.cancel()

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        while job.wait(0.2) is JobState.RUNNING:
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
    if job.state is JobState.SUCCESS:
        return EXIT_OK
    print(f"error: {job.error}", file=sys.stderr)
    return EXIT_CANCELLED if job.state is JobState.CANCELLED else EXIT_FAILED


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from core.sandbox import Sandbox

    box = Sandbox(args.dir, args.milvus_port, args.s3_port)
    if args.action == "status":
        for key, value in box.status().items():
            print(f"{key:7} {value}")
        return EXIT_OK if box.running() else EXIT_FAILED
    if args.action == "stop":
        stopped = box.stop()
        print("stopped " + ", ".join(stopped) if stopped else f"nothing was running in {box.dir}")
        return EXIT_OK
    print(f"starting the sandbox in {box.dir} (first start unpacks Milvus, about 10 s)...", file=sys.stderr)
    state = box.start()
    print(f"S3 (SeaweedFS)  http://{state.s3_endpoint}  pid {state.weed_pid}  bucket a-bucket  (minioadmin/minioadmin)")
    print(f"Milvus 2.3.5    {state.milvus_uri}  pid {state.milvus_pid}")
    print(f"config          {state.config_path}")
    print(f"logs            {box.dir / 'logs'}")
    if args.demo:
        from core.demo import load_demo

        print("loading the demo collections...", file=sys.stderr)
        created = load_demo(state.milvus_uri)
        print("demo            " + (", ".join(created) if created else "already loaded"))
    print(f"try:            milvus-backup --config {state.config_path} list-collections")
    return EXIT_OK


def cmd_verify(engine, args: argparse.Namespace, printer: ProgressPrinter) -> int:
    """Exit 0 when the backup is intact, 1 when damaged (every problem named on stdout) or not found."""
    job = engine.start_verify(args.name, full=args.full, listeners=[] if args.json else [printer])
    code = _run_job(job, printer)
    if code != EXIT_OK:
        return code
    report = job.result
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.problems:
            print(_table([[p.kind, p.key, p.detail] for p in report.problems], ["PROBLEM", "OBJECT", "DETAIL"]))
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        return cmd_sandbox(args)
    from core.engine import Engine

    engine = Engine(_config(args))
    try:
        return _dispatch(engine, args)
    finally:
        engine.close()


def _dispatch(engine, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "list-collections":
        rows = [[f"{c.db_name}.{c.name}", humanize.intcomma(c.row_count), c.load_state]
                for c in engine.list_collections(args.database or None)]
        print(_table(rows, ["COLLECTION", "ROWS", "LOAD STATE"]))
        return EXIT_OK
    if cmd == "list":
        rows = [[b.name, b.state, humanize.naturalsize(b.size), _when(b.start_time), b.milvus_version or "-",
                 ",".join(b.collections) or "-"] for b in engine.list_backups()]
        print(_table(rows, ["NAME", "STATE", "SIZE", "CREATED (UTC)", "MILVUS", "COLLECTIONS"]))
        return EXIT_OK
    if cmd == "get":
        print(json.dumps(encode(engine.get_backup(args.name)), indent=2, ensure_ascii=False))
        return EXIT_OK
    if cmd == "delete":
        removed = engine.delete_backup(args.name)
        print(f"deleted backup {args.name} ({removed} objects)")
        return EXIT_OK
    printer = ProgressPrinter()
    if cmd == "create":
        job = engine.start_backup(BackupRequest(name=args.name, collections=args.colls, db=args.databases,
                                                meta_only=args.meta_only), [printer])
        code = _run_job(job, printer)
        if code == EXIT_OK:
            info = job.result
            print(f"backup {info.name} created: {len(info.collection_backups)} collection(s), "
                  f"{humanize.naturalsize(info.size)}")
        return code
    if cmd == "restore":
        request = RestoreRequest(backup_name=args.name, collections=args.collections, suffix=args.suffix,
                                 renames=parse_renames(args.rename), drop_exist_collection=args.drop_exist_collection,
                                 meta_only=args.meta_only, restore_index=args.restore_index, load=args.load,
                                 verify=args.verify)
        job = engine.start_restore(request, [printer])
        code = _run_job(job, printer)
        if code == EXIT_OK:
            for task in job.result:
                print(f"restored {task.source} as {task.target}: {humanize.intcomma(task.rows)} rows")
        return code
    if cmd == "verify":
        return cmd_verify(engine, args, printer)
    raise InvalidRequest(f"unknown command {cmd}")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        code = run(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except BackupToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_CANCELLED
    sys.exit(code)


if __name__ == "__main__":
    main()
