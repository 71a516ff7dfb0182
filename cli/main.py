"""`milvus-backup`: the command line. Flags follow zilliztech/milvus-backup so its users' scripts work.

Output on stdout is the answer (tables, JSON); progress and errors go to stderr. The exit code is 0
only on success: 1 for a failed or refused operation, 2 for bad usage or config, 130 when cancelled,
141 when stdout's reader went away before the answer was written (as for any tool SIGPIPE ends).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

# Only what building the parser needs is imported here: `--help` and usage errors answer at once.
# The engine (its config and stores pull pydantic and minio; pymilvus loads on the first Milvus call),
# Textual, FastAPI and rich load in the commands that use them (tests/test_cli_commands.py and
# tests/test_catalog.py hold the line).
if TYPE_CHECKING:
    from milvus_backup.cli.progress import ProgressPrinter
    from milvus_backup.core.service import (
        BackupInfo,
        BackupRequest,
        BackupService,
        Config,
        Job,
        MetaFile,
        VerifyReport,
    )

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
# stdout was closed by its reader (`... | head`): the status a shell reports for any Unix tool that
# SIGPIPE ends (128 + 13), so `set -o pipefail` scripts see what they would see from cat or grep.
EXIT_PIPE = 141
TOKEN_ENV = "MILVUS_BACKUP_API_TOKEN"
UNTESTED_HELP = "go on with a Milvus this tool is not proven on (backup 2.2.x/2.3.x, restore 2.3.x) or older; warns"


_Arguments = Callable[[argparse.ArgumentParser], object]  # adds a command's arguments to its parser


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, sized to the terminal without importing shutil (argparse imports it, and with it
    bz2 and lzma, for every argument added: a few ms of each start)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_width() - 2)


@functools.cache
def _terminal_width() -> int:
    """As shutil.get_terminal_size: $COLUMNS, else the terminal's width, else 80."""
    if (columns := os.environ.get("COLUMNS", "")).isdecimal() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    """One line for a usage error, not argparse's usage dump. A command's parser gets its arguments
    (`arguments`) only when it parses or shows its help: a run builds the one command it runs."""

    def __init__(self, *args: Any, arguments: _Arguments | None = None, **kw: Any):
        super().__init__(*args, **{"formatter_class": _Formatter, **kw})
        self._arguments = arguments

    def _add_arguments(self) -> None:
        if self._arguments is not None:
            add, self._arguments = self._arguments, None
            add(self)

    def parse_known_args(  # type: ignore[override]  # (one signature of argparse's overloads)
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._add_arguments()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._add_arguments()
        return super().format_help()

    def format_usage(self) -> str:
        self._add_arguments()
        return super().format_usage()

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="milvus-backup", description="Back up and restore Milvus collections.")
    parser.add_argument(
        "--config",
        help="config file (default: configs/backup.yaml if present, else built-in "
        "defaults); MILVUS_ADDRESS, MINIO_SECRET_KEY... override it",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)  # none: open the TUI
    sub.add_parser("tui", help="open the terminal application (the default without a command)")
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the answer as JSON, for scripts")
    for name, help_text, arguments in _COMMANDS:
        sub.add_parser(name, help=help_text, parents=[as_json] if name in _JSON else [], arguments=arguments)
    return parser


def _name_argument(parser: argparse.ArgumentParser, **kw: Any) -> None:
    parser.add_argument("-n", "--name", required=True, **kw)


def _create_arguments(create: argparse.ArgumentParser) -> None:
    create.add_argument("-n", "--name", default="", help="backup name (default backup_<UTC time>_<nanos>)")
    create.add_argument(
        "-c", "--colls", type=_csv, default=[], help="collections, comma-separated: name or db.name (default: all)"
    )
    create.add_argument(
        "-d",
        "--databases",
        type=_csv,
        default=[],
        help="databases, comma-separated: without -c, back up every collection of each; "
        "with -c (one database only), the database of the collections",
    )
    create.add_argument("--meta_only", action="store_true", help="back up schemas and indexes, no data")
    create.add_argument(
        "--filter",
        default=None,
        help="collections to back up, comma-separated: coll, db1.coll, db1.* (all of db1); instead of -c/-d",
    )
    create.add_argument(
        "--strategy",
        default="",
        help="meta_only, skip_flush (copy only what Milvus has persisted), bulk_flush (flush all first) "
        "or serial_flush (the default: flush each collection in turn)",
    )
    create.add_argument("--rbac", action="store_true", help="also back up users, roles and grants (no passwords)")
    create.add_argument("--allow-untested-milvus", action="store_true", help=UNTESTED_HELP)


def _restore_arguments(restore: argparse.ArgumentParser) -> None:
    _name_argument(restore, help="backup name")
    restore.add_argument("-c", "--collections", type=_csv, default=[], help="only these (name or db.name)")
    target = restore.add_mutually_exclusive_group()
    target.add_argument("-s", "--suffix", default="", help="restore as <name><suffix>")
    target.add_argument("-r", "--rename", default="", help="old:new,db1.c1:db2.c2,db1.*:db2.*")
    restore.add_argument("--drop_exist_collection", action="store_true", help="drop a target that exists")
    restore.add_argument("--restore_index", action="store_true", help="recreate the indexes")
    restore.add_argument("--meta_only", action="store_true", help="recreate collections without data")
    restore.add_argument("--load", action="store_true", help="load the collections afterwards")
    restore.add_argument("--allow-untested-milvus", action="store_true", help=UNTESTED_HELP)
    restore.add_argument(
        "--filter",
        default=None,
        help="restore only the targets it names, AFTER the suffix or renames: coll, db1.coll, db1.* (comma-separated)",
    )
    restore.add_argument("--rbac", action="store_true", help="also restore users, roles and grants")
    restore.add_argument(
        "--verify",
        choices=["full", "quick"],
        default="full",
        help="check the backup first: full re-hashes every object (default), quick checks sizes",
    )


def _verify_arguments(verify: argparse.ArgumentParser) -> None:
    _name_argument(verify, help="backup name")
    verify.add_argument("--full", action="store_true", help="re-read and re-hash every object (reads the whole backup)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")


def _server_arguments(server: argparse.ArgumentParser) -> None:
    server.add_argument("-p", "--port", type=int, default=8080, help="port (default 8080)")
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only); with another one, set a token",
    )
    server.add_argument(
        "--token-file",
        default=None,
        help=f"file holding the bearer token clients must send (default: ${TOKEN_ENV}, if set)",
    )


def _sandbox_arguments(sandbox: argparse.ArgumentParser) -> None:
    sandbox.add_argument("action", choices=["start", "stop", "status"])
    sandbox.add_argument("--dir", default=None, help="sandbox folder (default ./.sandbox)")
    sandbox.add_argument("--milvus-port", type=int, default=19530)
    sandbox.add_argument("--s3-port", type=int, default=9000)
    sandbox.add_argument("--demo", action="store_true", help="load the sample collections")
    sandbox.add_argument("--auth", action="store_true", help="authorization on (user root, password Milvus)")
    sandbox.add_argument(
        "--milvus-version", default=None, help="another Milvus wheel, e.g. 2.2.16 (installed once into the cache)"
    )


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


# Each command: its name, its line in --help, and what adds its arguments (when it is the one run).
_COMMANDS: tuple[tuple[str, str, _Arguments], ...] = (
    ("create", "back up collections", _create_arguments),
    ("list", "list the backups in the backup store", _no_arguments),
    ("get", "show a backup's meta as JSON", _name_argument),
    ("delete", "delete a backup", _name_argument),
    ("restore", "restore collections from a backup", _restore_arguments),
    ("verify", "check a backup's objects: exist, sizes, and with --full their SHA-256", _verify_arguments),
    (
        "list-collections",
        "list the collections in Milvus",
        lambda colls: colls.add_argument("-d", "--database", default="", help="only this database"),
    ),
    ("check", "check Milvus and both stores (a probe write, copy and delete)", _no_arguments),
    ("jobs", "list the backups, restores and verifies of every process on this config", _no_arguments),
    (
        "cancel",
        "cancel a running job, in whichever process it runs; for an interrupted job, remove what it left",
        lambda cancel: cancel.add_argument("id", help="the job's id (`milvus-backup jobs` lists them)"),
    ),
    ("server", "serve the HTTP API (/api/v1/..., Swagger UI at /api/v1/docs/index.html)", _server_arguments),
    ("sandbox", "a real Milvus + S3 store on 127.0.0.1 to try things on", _sandbox_arguments),
)
_JSON = frozenset(["create", "list", "get", "delete", "restore", "list-collections", "check", "jobs", "cancel"])


def _config(args: argparse.Namespace) -> Config:
    from milvus_backup.core.service import load_config

    path = args.config
    if path is None and Path("configs/backup.yaml").is_file():
        path = "configs/backup.yaml"
    config = load_config(path)
    if getattr(args, "allow_untested_milvus", False):  # create and restore: the config key, for one command
        config = config.model_copy(update={"backup": config.backup.model_copy(update={"allow_untested_milvus": True})})
    _setup_log(config)
    return config


def _setup_log(config: Config) -> None:
    """The job log goes to log.file.filename at log.level; the terminal shows progress instead."""
    level = {"warn": "WARNING", "panic": "CRITICAL", "fatal": "CRITICAL"}.get(
        config.log.level, config.log.level.upper()
    )
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


def _run_job(job: Job[Any], printer: ProgressPrinter) -> int:
    """Wait for a job; Ctrl-C cancels it and waits for its clean-up. A hang-up (the SSH link or the tmux
    session went away) does not: the job runs to its end with no terminal, its record showing it to
    `milvus-backup jobs` anywhere, and the process exits when it is done."""
    from milvus_backup.core.service import JobState

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGHUP)

    def on_interrupt(signum: int, frame: object) -> None:
        print("\ncancelling (the job stops at its next step and cleans up)...", file=sys.stderr, flush=True)
        job.cancel()

    def on_hangup(signum: int, frame: object) -> None:
        detach_from_terminal()
        logging.getLogger("milvus_backup").warning(
            "terminal hung up: %s %s (job %s) goes on to its end; `milvus-backup jobs` shows it",
            job.kind,
            job.name,
            job.id,
        )

    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGHUP, on_hangup)
    try:
        while job.wait(0.2) is JobState.RUNNING:
            pass
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGHUP, previous[1])
        printer.close()  # the bar is gone before the verdict is printed
    if job.state is JobState.SUCCESS:
        return EXIT_OK
    print(f"error: {job.error}", file=sys.stderr)
    return EXIT_CANCELLED if job.state is JobState.CANCELLED else EXIT_FAILED


def _when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _print_json_file(rendered: MetaFile) -> None:
    """_print_json of a backup's meta, rendered into a temporary file (it grows with the backup's binlogs):
    copied to the terminal a piece at a time, then closed. Written once whole: a failure prints nothing."""
    import codecs

    with rendered.file:
        text = codecs.getreader("utf-8")(rendered.file)
        while piece := text.read(256 * 1024):
            sys.stdout.write(piece)
    sys.stdout.write("\n")


def cmd_sandbox(args: argparse.Namespace) -> int:
    from milvus_backup.sandbox.servers import ROOT_PASSWORD, ROOT_USER, Sandbox

    box = Sandbox(args.dir, args.milvus_port, args.s3_port, args.milvus_version, args.auth)
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
    auth = f"  auth on ({ROOT_USER}/{ROOT_PASSWORD})" if state.auth else ""
    print(f"Milvus {state.milvus_version:8} {state.milvus_uri}  pid {state.milvus_pid}{auth}")
    print(f"config          {state.config_path}")
    print(f"logs            {box.dir / 'logs'}")
    if args.demo:
        from milvus_backup.sandbox.demo import load_demo

        print("loading the demo collections...", file=sys.stderr)
        created = load_demo(state.milvus_uri, token=f"{ROOT_USER}:{ROOT_PASSWORD}" if state.auth else "")
        print("demo            " + (", ".join(created) if created else "already loaded"))
    print(f"try:            milvus-backup --config {state.config_path} list-collections")
    return EXIT_OK


def cmd_server(engine: BackupService, args: argparse.Namespace) -> int:
    from milvus_backup.api.server import listen, serve
    from milvus_backup.core.service import ConfigError

    token = os.environ.get(TOKEN_ENV) or None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {args.token_file} ({exc.strerror})") from None
        if not token:
            raise ConfigError(f"the token file {args.token_file} is empty")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        print(
            f"warning: listening on {args.host} without a token: anyone who reaches this port can create, restore "
            f"and delete backups (set {TOKEN_ENV} or --token-file)",
            file=sys.stderr,
        )
    host = "127.0.0.1" if args.host == "localhost" else args.host
    sock = listen(host, args.port)
    print(
        f"serving the backup API on http://{host}:{args.port}/api/v1 (Swagger UI: "
        f"http://{host}:{args.port}/api/v1/docs/index.html){' with a bearer token' if token else ''}; "
        "Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    serve(engine, sock, token)
    return EXIT_OK


def cmd_check(engine: BackupService, args: argparse.Namespace) -> int:
    report = engine.check()
    if args.json:
        _print_json(report.as_dict())
    else:
        for step in report.steps:
            print(f"{'ok' if step.ok else 'FAILED':6}  {step.name:38}  {step.detail}")
        print(
            f"milvus bucket {report.milvus_bucket} (rootPath {report.milvus_root}), backup bucket "
            f"{report.backup_bucket} (rootPath {report.backup_root})"
        )
    if not report.ok:
        failed = next(s for s in report.steps if not s.ok)
        print(f"error: check failed at {failed.name}: {failed.detail}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_list_collections(engine: BackupService, args: argparse.Namespace) -> int:
    import humanize

    collections = engine.list_collections(args.database or None)
    if args.json:
        _print_json(
            [
                {
                    "db_name": c.db_name,
                    "collection_name": c.name,
                    "row_count": c.row_count,
                    "load_state": c.load_state,
                }
                for c in collections
            ]
        )
        return EXIT_OK
    rows = [[f"{c.db_name}.{c.name}", humanize.intcomma(c.row_count), c.load_state] for c in collections]
    print(_table(rows, ["COLLECTION", "ROWS", "LOAD STATE"]))
    return EXIT_OK


def cmd_list(engine: BackupService, args: argparse.Namespace) -> int:
    import humanize

    backups = engine.list_backups()
    if args.json:
        _print_json(
            [
                {
                    "id": b.id,
                    "name": b.name,
                    "state": b.state,
                    "size": b.size,
                    "milvus_version": b.milvus_version,
                    "start_time": b.start_time,
                    "collections": list(b.collections),
                }
                for b in backups
            ]
        )
        return EXIT_OK
    rows = [
        [
            b.name,
            b.state,
            humanize.naturalsize(b.size),
            _when(b.start_time),
            b.milvus_version or "-",
            ",".join(b.collections) or "-",
        ]
        for b in backups
    ]
    print(_table(rows, ["NAME", "STATE", "SIZE", "CREATED (UTC)", "MILVUS", "COLLECTIONS"]))
    return EXIT_OK


def cmd_get(engine: BackupService, args: argparse.Namespace) -> int:
    _print_json_file(engine.backup_json(args.name, indent=2))
    return EXIT_OK


def cmd_delete(engine: BackupService, args: argparse.Namespace) -> int:
    removed = engine.delete_backup(args.name)
    if args.json:
        _print_json({"backup_name": args.name, "deleted_objects": removed})
    else:
        print(f"deleted backup {args.name} ({removed} objects)")
    return EXIT_OK


def _backup_request(args: argparse.Namespace) -> BackupRequest:
    """`-d`/`-c` as the Go tool reads them: -d alone backs up whole databases; -c with one -d names its
    collections. The engine resolves the names (and refuses unknown ones) when the backup starts."""
    from milvus_backup.core.service import BackupRequest, parse_filter

    common: dict[str, Any] = {"name": args.name, "meta_only": args.meta_only, "strategy": args.strategy}
    common.update(rbac=args.rbac, filter=parse_filter(args.filter) if args.filter is not None else None)
    if args.databases and not args.colls:
        return BackupRequest(db_collections={db: [] for db in args.databases}, **common)
    return BackupRequest(collections=args.colls, db=args.databases[0] if args.databases else "", **common)


def cmd_create(engine: BackupService, args: argparse.Namespace, printer: ProgressPrinter) -> int:
    import humanize

    from milvus_backup.core.service import BackupState, render_backup_json

    if len(args.databases) > 1 and args.colls:
        print(
            "error: -c goes with one database only (-d db); for several, qualify the names: -c db1.coll1,db2.coll2",
            file=sys.stderr,
        )
        return EXIT_USAGE
    job = engine.start_backup(_backup_request(args), [printer])
    code = _run_job(job, printer)
    info: BackupInfo | None = job.result if code == EXIT_OK else None
    if args.json:
        if info is not None:  # its binlog lists are read back from the job's spill, a segment at a time
            done = {"state_code": int(BackupState.SUCCESS), "progress": 100}
            _print_json_file(render_backup_json(info, indent=2, last_word=done))
        else:
            _print_json(
                {"id": job.id, "name": job.name, "state_code": int(BackupState.FAIL), "errorMessage": job.error}
            )
    elif info is not None:
        print(
            f"backup {info.name} created: {len(info.collection_backups)} collection(s), "
            f"{humanize.naturalsize(info.size)}"
        )
    return code


def cmd_restore(engine: BackupService, args: argparse.Namespace, printer: ProgressPrinter) -> int:
    import humanize

    from milvus_backup.core.service import RestoreRequest, parse_filter, parse_renames

    request = RestoreRequest(
        backup_name=args.name,
        collections=args.collections,
        suffix=args.suffix,
        renames=parse_renames(args.rename),
        drop_exist_collection=args.drop_exist_collection,
        meta_only=args.meta_only,
        restore_index=args.restore_index,
        load=args.load,
        verify=args.verify,
        filter=parse_filter(args.filter) if args.filter is not None else None,
        rbac=args.rbac,
    )
    job = engine.start_restore(request, [printer])
    code = _run_job(job, printer)
    if args.json:
        _print_json(engine.get_restore(job.id))
    elif code == EXIT_OK:
        for task in job.tasks:
            print(f"restored {task.source} as {task.target}: {humanize.intcomma(task.rows)} rows")
    return code


def cmd_jobs(engine: BackupService, args: argparse.Namespace) -> int:
    from milvus_backup.core.service import job_view

    views = [job_view(job) for job in engine.list_jobs()]
    if args.json:
        _print_json(views)
        return EXIT_OK
    if not views:
        print("no jobs yet: create, restore or verify start one")
        return EXIT_OK
    rows = [
        [
            v["id"],
            v["kind"],
            v["backup_name"],
            v["state"],
            f"{v['progress']}%",
            v["phase"],
            _when(v["start_time"]),
            _when(v["end_time"]),
            f"{v['host']}:{v['pid']}",
        ]
        for v in views
    ]
    print(_table(rows, ["ID", "KIND", "BACKUP", "STATE", "DONE", "PHASE", "STARTED (UTC)", "ENDED (UTC)", "HOST:PID"]))
    return EXIT_OK


def cmd_cancel(engine: BackupService, args: argparse.Namespace) -> int:
    outcome = engine.cancel_job(args.id)
    if args.json:
        _print_json({"id": outcome.job_id, "state": outcome.state, "message": outcome.message})
    else:
        print(outcome.message)
    return EXIT_OK


def cmd_verify(engine: BackupService, args: argparse.Namespace, printer: ProgressPrinter) -> int:
    """Exit 0 when the backup is intact, 1 when damaged (every problem named on stdout) or not found."""
    job = engine.start_verify(args.name, full=args.full, listeners=[] if args.json else [printer])
    code = _run_job(job, printer)
    if code != EXIT_OK:
        return code
    report: VerifyReport | None = job.result
    assert report is not None  # a verify that succeeded returned its report
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.problems:
            print(_table([[p.kind, p.key, p.detail] for p in report.problems], ["PROBLEM", "OBJECT", "DETAIL"]))
        print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and usage errors end here, before any heavy import
    # pydantic looks for plugins in every installed package's metadata when it builds the first model
    # (≈ 20 ms of each start); this tool uses none. Set to "" to have them loaded.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if args.command == "sandbox":
        return cmd_sandbox(args)
    if args.command in (None, "tui"):
        from milvus_backup.tui.launch import run_tui

        return run_tui(_config(args))
    from milvus_backup.core.service import open_service

    engine = open_service(_config(args))
    try:
        return _dispatch(engine, args)
    finally:
        engine.close()


def _dispatch(engine: BackupService, args: argparse.Namespace) -> int:
    from milvus_backup.core.service import InvalidRequest

    cmd = args.command
    if cmd == "server":
        return cmd_server(engine, args)
    reads = {
        "check": cmd_check,
        "list-collections": cmd_list_collections,
        "list": cmd_list,
        "get": cmd_get,
        "delete": cmd_delete,
        "jobs": cmd_jobs,
        "cancel": cmd_cancel,
    }
    if cmd in reads:
        return reads[cmd](engine, args)
    jobs = {"create": cmd_create, "restore": cmd_restore, "verify": cmd_verify}
    if cmd in jobs:
        from milvus_backup.cli.progress import ProgressPrinter  # rich: only commands that show progress

        return jobs[cmd](engine, args, ProgressPrinter())
    raise InvalidRequest(f"unknown command {cmd}")


def _error_code(exc: Exception) -> int:
    """The exit code of an error the tool raised on purpose, told in one line; anything else is a bug
    and keeps its traceback. (The error classes load only now: a command that needed no engine never
    imported them.)"""
    from milvus_backup.core.service import BackupToolError, ConfigError

    if isinstance(exc, ConfigError):
        code = EXIT_USAGE
    elif isinstance(exc, BackupToolError):
        code = EXIT_FAILED
    else:
        raise exc
    print(f"error: {exc}", file=sys.stderr)
    return code


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: the terminal is gone, and a write to it would fail
    (EIO) in whichever thread made it. The log file still gets every line."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _reader_gone() -> int:
    """stdout's reader has gone (`milvus-backup list | head -2`): end quietly, as a Unix tool does.

    As the Python docs advise (signal module, "Note on SIGPIPE"): stdout is pointed at /dev/null, so
    the interpreter's last flush of what is still buffered cannot fail again and print a traceback.
    SIGPIPE itself is left ignored, as Python sets it: a client that drops a connection to the API
    server must not kill the server."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


def main(argv: Sequence[str] | None = None) -> NoReturn:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        code = run(argv)
        sys.stdout.flush()  # stdout is buffered in a pipe: a reader that left shows here, not at exit
    except BrokenPipeError:
        code = _reader_gone()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_CANCELLED
    except Exception as exc:
        code = _error_code(exc)
    sys.exit(code)


if __name__ == "__main__":
    main()
