"""The HTTP API of zilliztech/milvus-backup (`/api/v1/...`), on the same engine as the CLI and the TUI.

Every answer is the envelope `{requestId, code, msg, data}`. The HTTP status follows the code for a bad
request (400 parameter error, 404 not found, 401 missing token) and is 200 otherwise: a job that ran and
failed answers 200 with code 3, as the Go server does. Unlike the Go server, state is read from storage:
get_backup answers the same for a backup made by the CLI, the TUI or before a restart, and get_restore
reads the restore's record. Jobs of this process (running, or failed and so absent from storage) are
answered from memory. Swagger UI is served from files installed with the package: no CDN.
"""

from __future__ import annotations

import hmac
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from milvus_backup.api.models import (
    UPSTREAM_FIELDS,
    CollFilterBody,
    CreateBackupRequest,
    Envelope,
    RestoreBackupRequest,
    RestoreCollectionOverrideBody,
    RestorePlanBody,
    SkipParamsBody,
    Support,
)
from milvus_backup.core.service import (
    AlreadyExists,
    BackupInfo,
    BackupRequest,
    BackupService,
    BackupState,
    BackupToolError,
    CollectionMapping,
    CollectionOverride,
    CollFilter,
    DatabaseMapping,
    InvalidRequest,
    Job,
    JobKind,
    JobState,
    MetaFile,
    NotFound,
    RestorePlan,
    RestoreRequest,
    SkipParams,
    check_backup_name,
    filter_from_map,
    job_view,
    parse_db_collections,
    render_backup_json,
)

log = logging.getLogger("milvus_backup.api")

BASE = "/api/v1"
OK, NOT_SUPPORTED, NO_PERMISSION, FAIL, PARAMETER_ERROR, NOT_FOUND = 0, 1, 2, 3, 400, 404
SWAGGER_STATIC = Path(fastapi_offline.__file__).parent / "static"
HELLO = "Hello, This is backup service"

_SWAGGER_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>milvus-backup API</title>
<link rel="stylesheet" href="{base}/docs/static/swagger-ui.css">
<link rel="icon" href="{base}/docs/static/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "{base}/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"}});
</script>
</body>
</html>
"""


# The HTTP status says whether the request itself was good; `code` says what came of it.
_STATUS = {PARAMETER_ERROR: 400, NOT_FOUND: 404, NO_PERMISSION: 401}


def _envelope(code: int, msg: str, data: Any = None, request_id: str = "", status: int | None = None) -> JSONResponse:
    return JSONResponse(
        {"requestId": request_id or uuid.uuid4().hex, "code": code, "msg": msg, "data": data},
        status_code=status or _STATUS.get(code, 200),
    )


def _success(data: dict[str, Any] | MetaFile, request_id: str) -> Response:
    """_envelope(OK, "success", data), for data that may be a backup's meta rendered into a temporary
    file (it grows with the backup's binlogs): the same bytes JSONResponse writes, sent a piece at a time."""
    if isinstance(data, dict):
        return _envelope(OK, "success", data, request_id)
    envelope = JSONResponse({"requestId": request_id or uuid.uuid4().hex, "code": OK, "msg": "success"})
    head = bytes(envelope.body)[:-1] + b',"data":'

    def body() -> Iterator[bytes]:
        with data.file:
            yield head
            while piece := data.file.read(256 * 1024):
                yield piece
            yield b"}"

    length = {"content-length": str(len(head) + data.length + 1)}
    return StreamingResponse(body(), media_type=JSONResponse.media_type, headers=length)


def _code_of(exc: BackupToolError) -> int:
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, (InvalidRequest, AlreadyExists)):
        return PARAMETER_ERROR
    return FAIL


def _validation_message(exc: RequestValidationError) -> str:
    """One line: what is wrong with the request and what to send instead."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query")]
        where = ".".join(loc)
        kind = err.get("type", "")
        if kind == "json_invalid":
            parts.append(
                f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')}); "
                "send a JSON object with Content-Type: application/json"
            )
        elif kind == "extra_forbidden":
            parts.append(f"unknown field {where!r} (see {BASE}/docs/index.html for the fields)")
        elif kind == "missing":
            parts.append(
                f"field {where} is required"
                if where
                else "the request body is required: send a JSON object (at least {}) with "
                "Content-Type: application/json"
            )
        elif not where and kind in ("model_attributes_type", "dict_type"):
            parts.append("the body must be a JSON object sent with Content-Type: application/json")
        else:
            parts.append(
                f"field {where}: {err.get('msg', 'invalid value')}" if where else err.get("msg", "invalid request")
            )
    return "; ".join(parts[:3]) or "invalid request"


def _not_supported(names: list[str], request_id: str = "") -> JSONResponse:
    """Code 1 for fields the upstream defines that would change the result and that this tool does not carry out."""
    where = (
        "; backups live in the config's backup bucket and root path (minio.backupBucketName, minio.backupRootPath)"
        if {"bucket_name", "path"} & set(names)
        else ""
    )
    return _envelope(
        NOT_SUPPORTED,
        f"not supported: {', '.join(names)} (send it empty or leave it out){where}",
        request_id=request_id,
    )


def _refused(body: CreateBackupRequest | RestoreBackupRequest) -> JSONResponse | None:
    """The answer for a body that sets an unsupported field; hints set are logged (they change nothing here)."""
    hints = body.given(Support.HINT)
    if hints:
        log.info("%s: accepted as hints, no effect here: %s", type(body).__name__, ", ".join(hints))
    unsupported = body.given(Support.UNSUPPORTED)
    return _not_supported(unsupported, body.requestId) if unsupported else None


def _described(message: str, name: str) -> str:
    support, how = UPSTREAM_FIELDS[message][name]
    return f"[{support}] {how}"


def _filter(value: dict[str, CollFilterBody] | None, field: str) -> CollFilter | None:
    return None if value is None else filter_from_map({db: f.colls for db, f in value.items()}, field)


def _backup_request(body: CreateBackupRequest) -> BackupRequest:
    # As the upstream: strategy wins over its deprecated spellings force (skip_flush) and meta_only.
    strategy = body.strategy or ("skip_flush" if body.force else "")
    for old, new in (("force", "strategy skip_flush"), ("meta_only", "strategy meta_only")):
        if getattr(body, old):
            log.info("create: %s is deprecated upstream; it means %s", old, new)
    return BackupRequest(
        name=body.backup_name,
        collections=list(body.collection_names),
        db_collections=parse_db_collections(body.db_collections),
        filter=_filter(body.filter, "filter"),
        strategy=strategy,
        root_path=body.backup_root_path,
        gc_pause_seconds=body.gc_pause_seconds,
        gc_pause_address=body.gc_pause_address,
        meta_only=body.meta_only and not strategy,
        gc_pause=body.gc_pause_enable,
        rbac=body.rbac,
    )


def _plan(body: RestorePlanBody) -> RestorePlan:
    return RestorePlan(
        mapping=tuple(
            DatabaseMapping(
                m.source,
                m.target,
                tuple(
                    CollectionMapping(
                        c.source,
                        c.target,
                        CollectionOverride(c.override.shardNum, c.override.description)
                        if c.override
                        else CollectionOverride(),
                    )
                    for c in m.colls
                ),
            )
            for m in body.mapping
        ),
        filter=_filter(body.filter, "restorePlan.filter"),
    )


def _override(body: RestoreCollectionOverrideBody | None) -> CollectionOverride:
    return CollectionOverride(body.shardNum, body.description) if body is not None else CollectionOverride()


def _restore_request(body: RestoreBackupRequest) -> RestoreRequest:
    after_rename = parse_db_collections(body.db_collections_after_rename)
    skip = body.skipParams or SkipParamsBody()
    return RestoreRequest(
        backup_name=body.backup_name,
        collections=list(body.collection_names),
        db_collections=parse_db_collections(body.db_collections),
        suffix=body.collection_suffix,
        renames=dict(body.collection_renames),
        plan=_plan(body.restorePlan) if body.restorePlan is not None else None,
        filter={db: names or ["*"] for db, names in after_rename.items()} if after_rename else None,
        skip_params=SkipParams(
            tuple(skip.collectionProperties),
            tuple(skip.fieldTypeParams),
            tuple(skip.fieldIndexParams),
            tuple(skip.indexParams),
        ),
        max_shard_num=body.maxShardNum,
        use_auto_index=body.useAutoIndex,
        root_path=body.path,
        drop_exist_collection=body.dropExistCollection,
        meta_only=body.metaOnly,
        restore_index=body.restoreIndex,
        load=body.load,
        rbac=body.rbac,
    )


# -- what the answers hold ---------------------------------------------------------------------------


def backup_job_view(job: Job[Any]) -> dict[str, Any]:
    """A backup job of this process that is running or failed (a finished one is read from storage)."""
    p = job.progress
    state = {JobState.RUNNING: BackupState.EXECUTING, JobState.SUCCESS: BackupState.SUCCESS}.get(
        p.state, BackupState.FAIL
    )
    return {
        "id": job.id,
        "state_code": int(state),
        "errorMessage": job.error if p.state.finished else "",
        "start_time": job.start_time,
        "end_time": job.end_time if p.state.finished else 0,
        "progress": 100 if p.state is JobState.SUCCESS else min(99, int(p.fraction * 100)),
        "name": job.name,
        "size": p.bytes_done,
    }


def stored_backup_view(engine: BackupService, name: str) -> MetaFile:
    return engine.backup_json(name, last_word=_state_and_progress)


def info_view(info: BackupInfo) -> MetaFile:
    return render_backup_json(info, last_word=_state_and_progress(info))


def _state_and_progress(info: BackupInfo) -> dict[str, Any]:
    """What a backup's view says besides its meta: its state and progress as numbers, 100 when done."""
    progress = 100 if info.state_code == BackupState.SUCCESS else int(info.progress)
    return {"state_code": int(info.state_code), "progress": progress}


def backup_view(engine: BackupService, name: str = "", backup_id: str = "") -> dict[str, Any] | MetaFile:
    """get_backup's data: a running job of this process, else storage, else a failed job of this process."""
    job = engine.backup_job(name=name, job_id=backup_id)
    if job is not None and not job.state.finished:
        return backup_job_view(job)
    if not name and backup_id:
        name = job.name if job is not None else engine.backup_name_of_id(backup_id) or ""
        if not name:
            raise NotFound(f"no backup has id {backup_id}")
    try:
        return stored_backup_view(engine, name)
    except NotFound as exc:
        if job is not None and job.state is not JobState.SUCCESS:  # failed here: its leftovers were removed
            return backup_job_view(job)
        if engine.backup_exists(name):  # an interrupted backup's leftovers
            return {
                "id": "",
                "state_code": int(BackupState.FAIL),
                "errorMessage": str(exc),
                "progress": 0,
                "name": name,
                "size": 0,
            }
        raise


# -- the app -----------------------------------------------------------------------------------------


def create_app(engine: BackupService, token: str | None = None) -> FastAPI:
    """The API on `engine`. With a token, every /api/v1 call but the docs needs `Authorization: Bearer <token>`."""
    # Open the stores now (no network yet): requests on many threads must share one of each.
    engine.open_stores()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Shutting down: running jobs stop at their next step and clean up, as on Ctrl-C in the CLI.
        running = [j for j in engine.jobs() if not j.state.finished]
        for job in running:
            job.cancel()
        deadline = time.monotonic() + 30
        for job in running:
            job.wait(max(0.0, deadline - time.monotonic()))

    app = FastAPI(
        title="milvus-backup",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{BASE}/openapi.json",
        description="Back up and restore Milvus collections; the API of zilliztech/milvus-backup. "
        "Every answer is {requestId, code, msg, data}: code 0 success, 1 not supported, "
        "2 no permission, 3 fail, 400 parameter error, 404 not found.",
    )
    app.mount(f"{BASE}/docs/static", StaticFiles(directory=SWAGGER_STATIC), name="swagger-static")

    open_paths = (f"{BASE}/docs", f"{BASE}/openapi.json")

    @app.middleware("http")
    async def authorize(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Before anything else, so a caller without the token learns nothing, not even what is malformed."""
        if token and not request.url.path.startswith(open_paths):
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                response = _envelope(
                    NO_PERMISSION, "missing or wrong token: send the header Authorization: Bearer <token>"
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def on_bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _envelope(PARAMETER_ERROR, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            msg = f"no such endpoint {request.url.path}; the endpoints are listed at {BASE}/docs/index.html"
            return _envelope(NOT_FOUND, msg)
        if exc.status_code == 405:
            allowed = exc.headers.get("Allow", "") if exc.headers else ""
            return _envelope(
                PARAMETER_ERROR,
                f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else ""),
                status=405,
            )
        return _envelope(PARAMETER_ERROR if exc.status_code < 500 else FAIL, str(exc.detail), status=exc.status_code)

    @app.exception_handler(BackupToolError)
    async def on_engine_error(request: Request, exc: BackupToolError) -> JSONResponse:
        return _envelope(_code_of(exc), str(exc))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s crashed", request.method, request.url.path)
        return _envelope(FAIL, f"unexpected error: {type(exc).__name__}: {exc}", status=500)

    @app.get(f"{BASE}/docs", include_in_schema=False)
    @app.get(f"{BASE}/docs/", include_in_schema=False)
    def docs_redirect() -> RedirectResponse:
        return RedirectResponse(f"{BASE}/docs/index.html")

    @app.get(f"{BASE}/docs/index.html", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_SWAGGER_PAGE.format(base=BASE))

    @app.get(f"{BASE}/hello", response_model=Envelope, summary="Is the server up?")
    def hello() -> JSONResponse:
        return _envelope(OK, "success", HELLO)

    @app.post(f"{BASE}/create", response_model=Envelope, summary="Create a backup")
    def create(body: CreateBackupRequest) -> Response:
        try:
            return _create(body)
        except BackupToolError as exc:
            return _envelope(_code_of(exc), str(exc), request_id=body.requestId)

    def _create(body: CreateBackupRequest) -> Response:
        refused = _refused(body)
        if refused is not None:
            return refused
        if body.format == "snapshot":
            return _not_supported(["format snapshot (Milvus 2.3.5 has no snapshots; use binlog)"], body.requestId)
        if body.format not in ("", "auto", "binlog"):
            raise InvalidRequest(f"unknown format {body.format!r}: use auto or binlog")
        request = _backup_request(body)
        job = engine.start_backup(request)  # checks the name, then resolves the collections
        if body.async_:
            return _envelope(OK, "create backup is executing asynchronously", backup_job_view(job), body.requestId)
        if job.wait() is JobState.SUCCESS:
            if request.root_path and job.result is not None:  # not under the root get_backup reads
                return _success(info_view(job.result), body.requestId)
            return _success(stored_backup_view(engine, job.name), body.requestId)
        return _envelope(FAIL, job.error, backup_job_view(job), body.requestId)

    @app.get(f"{BASE}/list", response_model=Envelope, summary="List the backups in the backup store")
    def list_backups(
        collection_name: str = Query("", description='only backups holding it ("name" or "db.name")'),
        requestId: str = Query("", description="echoed in the answer"),
    ) -> JSONResponse:
        rows = []
        for b in engine.list_backups():
            if collection_name and not any(
                c == collection_name or c.split(".", 1)[1] == collection_name for c in b.collections
            ):
                continue
            if b.complete:
                state = BackupState.SUCCESS
            elif engine.running_backup(b.name):
                state = BackupState.EXECUTING
            else:
                state = BackupState.FAIL
            rows.append(
                {
                    "id": b.id,
                    "state_code": int(state),
                    "name": b.name,
                    "size": b.size,
                    "milvus_version": b.milvus_version,
                }
            )
        listed = {row["name"] for row in rows}
        for job in reversed(engine.jobs()):  # still planning: nothing in storage yet (oldest first)
            if job.kind is JobKind.BACKUP and not job.state.finished and job.name not in listed and not collection_name:
                rows.append(
                    {
                        "id": job.id,
                        "state_code": int(BackupState.EXECUTING),
                        "name": job.name,
                        "size": 0,
                        "milvus_version": "",
                    }
                )
        return _envelope(OK, "success", rows, requestId)

    @app.get(f"{BASE}/get_backup", response_model=Envelope, summary="A backup's state and meta")
    def get_backup(
        backup_name: str = Query(""),
        backup_id: str = Query(""),
        requestId: str = Query("", description="echoed in the answer"),
        bucket_name: str = Query("", description=_described("GetBackupRequest", "bucket_name")),
        path: str = Query("", description=_described("GetBackupRequest", "path")),
        without_detail: bool = Query(False, description=_described("GetBackupRequest", "without_detail")),
    ) -> Response:
        unsupported = [name for name, value in (("bucket_name", bucket_name), ("path", path)) if value]
        if unsupported:
            return _not_supported(unsupported, requestId)
        if without_detail:
            log.info("get_backup: accepted as hints, no effect here: without_detail")
        if not backup_name and not backup_id:
            return _envelope(PARAMETER_ERROR, "give backup_name or backup_id, e.g. get_backup?backup_name=my_backup")
        if backup_name:
            check_backup_name(backup_name)
        return _success(backup_view(engine, backup_name, backup_id), requestId)

    @app.delete(f"{BASE}/delete", response_model=Envelope, summary="Delete a backup")
    def delete(backup_name: str = Query(""), requestId: str = Query("")) -> JSONResponse:
        if not backup_name:
            return _envelope(PARAMETER_ERROR, "give backup_name, e.g. delete?backup_name=my_backup")
        removed = engine.delete_backup(backup_name)
        return _envelope(OK, "success", {"backup_name": backup_name, "deleted_objects": removed}, requestId)

    @app.post(f"{BASE}/restore", response_model=Envelope, summary="Restore collections from a backup")
    def restore(body: RestoreBackupRequest) -> JSONResponse:
        try:
            return _restore(body)
        except BackupToolError as exc:
            return _envelope(_code_of(exc), str(exc), request_id=body.requestId)

    def _restore(body: RestoreBackupRequest) -> JSONResponse:
        refused = _refused(body)
        if refused is not None:
            return refused
        check_backup_name(body.backup_name)
        if body.collection_suffix and body.collection_renames:
            raise InvalidRequest("give either collection_suffix or collection_renames, not both")
        request = _restore_request(body)
        job = engine.start_restore(request, restore_id=body.id or None)
        if body.async_:
            return _envelope(
                OK, "restore backup is executing asynchronously", engine.get_restore(job.id), body.requestId
            )
        state = job.wait()
        data = engine.get_restore(job.id)
        if state is JobState.SUCCESS:
            return _envelope(OK, "success", data, body.requestId)
        return _envelope(FAIL, job.error, data, body.requestId)

    @app.get(f"{BASE}/get_restore", response_model=Envelope, summary="A restore's state and progress")
    def get_restore(id: str = Query(""), requestId: str = Query("")) -> JSONResponse:
        if not id:
            return _envelope(PARAMETER_ERROR, "give id, the id the restore answered with: get_restore?id=<id>")
        return _envelope(OK, "success", engine.get_restore(id), requestId)

    @app.get(f"{BASE}/jobs", response_model=Envelope, summary="Every job of every process on this config")
    def jobs() -> JSONResponse:
        """Backups, restores and verifies, newest first, as `milvus-backup jobs --json` lists them."""
        return _envelope(OK, "success", [job_view(job) for job in engine.list_jobs()])

    @app.post(f"{BASE}/cancel", response_model=Envelope, summary="Cancel a job, in whichever process it runs")
    def cancel(id: str = Query("")) -> JSONResponse:
        """A running job stops at its next step (within a few seconds) and cleans up; for an interrupted
        job, what it left is removed. 404 for an unknown id, 400 for a job that has already ended."""
        if not id:
            return _envelope(PARAMETER_ERROR, "give id, the id `jobs` lists: cancel?id=<id>")
        outcome = engine.cancel_job(id)
        return _envelope(OK, outcome.message, {"id": outcome.job_id, "state": outcome.state})

    @app.get(
        f"{BASE}/verify",
        response_model=Envelope,
        summary="Is a backup whole? Sizes (and with full=true the SHA-256) of every object it holds",
    )
    def verify(backup_name: str = Query(""), full: bool = Query(False)) -> JSONResponse:
        if not backup_name:
            return _envelope(PARAMETER_ERROR, "give backup_name, e.g. verify?backup_name=my_backup&full=true")
        report = engine.verify_backup(check_backup_name(backup_name), full=full)
        if report.ok:
            return _envelope(OK, report.summary(), report.to_dict())
        worst = report.problems[0]
        return _envelope(FAIL, f"{report.summary()}; first: {worst.kind} {worst.key}: {worst.detail}", report.to_dict())

    @app.get(
        f"{BASE}/check",
        response_model=Envelope,
        summary="Milvus answers; both stores take a probe write, copy and delete",
    )
    def check() -> JSONResponse:
        report = engine.check()
        failed = [s for s in report.steps if not s.ok]
        if failed:
            return _envelope(FAIL, f"{failed[0].name}: {failed[0].detail}", report.as_dict())
        return _envelope(OK, "Succeed to connect to milvus and storage.", report.as_dict())

    return app


def listen(host: str = "127.0.0.1", port: int = 8080) -> socket.socket:
    """The listening socket, or one line saying why there is none."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BackupToolError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (pick another port with -p, or stop what uses it)"
        ) from None
    sock.listen(2048)
    return sock


def serve(engine: BackupService, sock: socket.socket, token: str | None = None, log_level: str = "info") -> None:
    """Serve the API on `sock` until SIGINT/SIGTERM; running jobs are then cancelled and clean up."""
    import uvicorn

    # A stop waits a little for open requests (a synchronous create holds one), then cancels the jobs.
    config = uvicorn.Config(
        create_app(engine, token),
        log_level=log_level,
        access_log=True,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])
