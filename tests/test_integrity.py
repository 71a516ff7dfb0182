"""The integrity manifest and `verify` on the real sandbox: what a backup records, and each kind of damage
(a flipped byte, a truncated, deleted or extra object, a hostile manifest) caught by verify and by a
restore before it creates anything in Milvus. Backups without a manifest (the Go tool's) are checked
against their meta sizes."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path

import pytest
from minio import Minio

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.engine import Engine
from milvus_backup.core.errors import Cancelled, NotFound
from milvus_backup.core.integrity import (
    MANIFEST_FORMAT,
    DamagedBackup,
    check_objects,
    decode_manifest,
    verify_backup,
)
from milvus_backup.core.jobs import JobState
from milvus_backup.core.paths import BACKUP_META, FULL_META, MANIFEST, META_WRITE_ORDER
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows, run_cli, with_backup_storage
from tests.faults import Rule, access_denied, inject

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "a-bucket"
REFERENCE = Path("/work/shared/reference/meta-examples")
GO_BACKUP_META_KEYS = {"id", "state_code", "name", "size", "milvus_version", "format"}


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def _s3(sandbox) -> Minio:
    return Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)


def _objects(sandbox, prefix: str) -> dict[str, bytes]:
    s3 = _s3(sandbox)
    return {
        o.object_name: s3.get_object(BUCKET, o.object_name).read()
        for o in s3.list_objects(BUCKET, prefix=prefix, recursive=True)
    }


def _put(sandbox, key: str, data: bytes) -> None:
    _s3(sandbox).put_object(BUCKET, key, io.BytesIO(data), len(data))


def _run(job):
    assert job.wait(300) is JobState.SUCCESS, job.error
    return job.result


@pytest.fixture
def backup(sandbox, engine):
    """A fresh backup of hello_milvus (function scope: tests damage it)."""
    name = f"integ_{_uid()}"
    _run(engine.start_backup(BackupRequest(name=name, collections=["hello_milvus"])))
    yield name
    if engine.ctx.catalog.exists(name):
        engine.delete_backup(name)


def _binlogs(sandbox, name: str) -> list[str]:
    return sorted(k for k in _objects(sandbox, f"backup/{name}/binlogs/"))


# --------------------------------------------------------------------------- what a backup records


def test_the_manifest_records_what_vouches_for_every_other_object(sandbox, backup):
    # binlogs copied inside the store: size and the store's ETag (their MD5); meta files: size and SHA-256
    stored = _objects(sandbox, f"backup/{backup}/")
    prefix = f"backup/{backup}/"
    manifest = decode_manifest(stored[prefix + f"meta/{MANIFEST}"])
    assert set(manifest) == {k[len(prefix) :] for k in stored} - {f"meta/{MANIFEST}"}
    for rel, entry in manifest.items():
        data = stored[prefix + rel]
        if rel.startswith("binlogs/"):
            assert (entry.size, entry.etag, entry.sha256) == (len(data), hashlib.md5(data).hexdigest(), None), rel
        else:
            assert (entry.size, entry.etag, entry.sha256) == (len(data), None, hashlib.sha256(data).hexdigest()), rel
    assert any(rel.startswith("binlogs/insert_log/") for rel in manifest)
    # the Go tool's own files are exactly as before: the same five, backup_meta.json with its keys only
    meta = sorted(k[len(prefix) + 5 :] for k in stored if k.startswith(prefix + "meta/"))
    assert meta == sorted((*META_WRITE_ORDER, MANIFEST))
    assert set(json.loads(stored[prefix + f"meta/{BACKUP_META}"])) <= GO_BACKUP_META_KEYS
    assert json.loads(stored[prefix + f"meta/{MANIFEST}"])["format"] == MANIFEST_FORMAT


def test_verify_of_an_intact_backup_is_ok_quick_and_full(sandbox, engine, backup):
    total = sum(len(v) for k, v in _objects(sandbox, f"backup/{backup}/").items() if not k.endswith(MANIFEST))
    for full in (False, True):
        report = engine.verify_backup(backup, full=full)
        assert report.ok and report.problems == [], report.to_dict()
        assert report.source == "manifest" and report.full is full
        assert report.bytes_checked == total
        assert report.objects_hashed == (report.objects_checked if full else 0)
        data = json.loads(json.dumps(report.to_dict()))
        assert data["ok"] is True and data["problems"] == [] and data["objects_checked"] == report.objects_checked


def test_a_same_store_backup_never_reads_a_binlog(sandbox, base_config):
    # every read of a binlog, source or copy, would fail the backup: the copies are confirmed by a listing
    engine = Engine(base_config)
    name = f"integ_{_uid()}"
    try:
        faults = inject(engine.ctx.milvus_storage, [Rule("get_object", access_denied, times=0, match="_log/")])
        _run(engine.start_backup(BackupRequest(name=name, collections=["hello_milvus", "books"])))
        assert faults.injected["get_object"] == 0
    finally:
        engine.ctx.milvus_storage._client = faults._client
        engine.delete_backup(name)
        engine.close()


def _old_manifest(sandbox, name: str) -> bytes:
    """The manifest a backup of format 1 has: a SHA-256 for every object."""
    prefix = f"backup/{name}/"
    objects = [
        {"key": key[len(prefix) :], "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for key, data in sorted(_objects(sandbox, prefix).items())
        if not key.endswith(MANIFEST)
    ]
    doc = {"format": "milvus-backup-py/integrity-manifest/1", "algorithm": "sha256", "backup": name, "objects": objects}
    return json.dumps(doc).encode()


def test_an_old_manifest_with_sha256_everywhere_still_verifies(sandbox, engine, backup):
    _put(sandbox, f"backup/{backup}/meta/{MANIFEST}", _old_manifest(sandbox, backup))
    for full in (False, True):
        report = engine.verify_backup(backup, full=full)
        assert report.ok and report.source == "manifest", report.to_dict()
    key = _target_key(sandbox, backup, "binlog")
    _damage(sandbox, key, "flip")
    assert engine.verify_backup(backup).ok  # no ETag recorded: same size, only a re-hash sees it
    full = engine.verify_backup(backup, full=True)
    assert [(p.key, p.kind) for p in full.problems] == [(key, "altered")]
    # a restore's check re-hashes what the store does not vouch for: here, everything
    ctx = engine.ctx
    before_restore = verify_backup(ctx.backup_storage, ctx.backup_layout, backup, hash_unvouched=True)
    assert [(p.key, p.kind) for p in before_restore.problems] == [(key, "altered")]


def test_a_full_verify_compares_an_etag_only_object_with_its_md5(sandbox, base_config, backup, tmp_path):
    # the S3 backup moved into a folder (which has no ETags): its binlogs are known by ETag only
    for key, data in _objects(sandbox, f"backup/{backup}/").items():
        path = tmp_path / "backups" / key[len("backup/") :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    engine = Engine(with_backup_storage(base_config, storage_type="local", root_path=str(tmp_path / "backups")))
    try:
        assert engine.verify_backup(backup, full=True).ok
        binlog = sorted((tmp_path / "backups" / backup / "binlogs").rglob("*"))[-1]
        binlog.write_bytes(_flip(binlog.read_bytes()))
        assert engine.verify_backup(backup).ok  # no ETags in a folder: same size
        report = engine.verify_backup(backup, full=True)
        key = binlog.relative_to(tmp_path / "backups").as_posix()
        assert [(p.key, p.kind) for p in report.problems] == [(key, "altered")]
        assert "MD5" in report.problems[0].detail
    finally:
        engine.close()


def test_check_objects_checks_one_group_quick_where_the_manifest_allows(sandbox, engine, backup):
    ctx = engine.ctx
    prefix = ctx.backup_layout.backup(backup)
    manifest = decode_manifest(ctx.backup_storage.read(ctx.backup_layout.meta(backup, MANIFEST)))
    group = {rel: e for rel, e in manifest.items() if rel.startswith("binlogs/insert_log/")}
    assert group and check_objects(ctx.backup_storage, prefix, group) == []
    keys = sorted(prefix + rel for rel in group)
    _damage(sandbox, keys[0], "flip")
    _damage(sandbox, keys[-1], "delete")
    problems = check_objects(ctx.backup_storage, prefix, group)
    assert [(p.key, p.kind) for p in problems] == [(keys[0], "altered"), (keys[-1], "missing")]


def test_verify_of_a_missing_or_invalid_name_is_refused(engine):
    with pytest.raises(NotFound):
        engine.verify_backup("no_such_backup")
    with pytest.raises(Exception, match="invalid backup name"):
        engine.verify_backup("../x")


# --------------------------------------------------------------------------- damage


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _damage(sandbox, key: str, fault: str) -> None:
    data = _s3(sandbox).get_object(BUCKET, key).read()
    if fault == "flip":
        _put(sandbox, key, _flip(data))
    elif fault == "truncate":
        _put(sandbox, key, data[: len(data) // 2])
    elif fault == "delete":
        _s3(sandbox).remove_object(BUCKET, key)
    elif fault == "grow":
        _put(sandbox, key, data + b"\0")
    else:
        raise AssertionError(fault)


# (fault, object, kind seen by the quick check or None, kind seen by the full check)
FAULTS = [
    ("flip", "binlog", "altered", "altered"),  # a rewrite gets a new ETag: one listing sees it
    ("truncate", "binlog", "truncated", "truncated"),
    ("delete", "binlog", "missing", "missing"),
    ("grow", "binlog", "altered", "altered"),
    ("flip", "meta", None, "altered"),
    ("delete", "meta", "missing", "missing"),
]


def _target_key(sandbox, name: str, what: str) -> str:
    if what == "binlog":
        return [k for k in _binlogs(sandbox, name) if "/insert_log/" in k][-1]
    return f"backup/{name}/meta/{FULL_META}"


@pytest.mark.parametrize("fault,what,quick_kind,full_kind", FAULTS, ids=[f"{f}-{w}" for f, w, *_ in FAULTS])
def test_damage_is_named_by_verify_and_refused_by_restore(sandbox, engine, backup, fault, what, quick_kind, full_kind):
    key = _target_key(sandbox, backup, what)
    if fault == "flip" and what == "meta":
        # a change that still parses: another row count in full_meta.json
        data = _s3(sandbox).get_object(BUCKET, key).read()
        spot = data.index(b'"num_of_rows":') + len(b'"num_of_rows":')
        digit = data[spot : spot + 1]
        _put(sandbox, key, data[:spot] + (b"1" if digit != b"1" else b"2") + data[spot + 1 :])
    else:
        _damage(sandbox, key, fault)
    before = _objects(sandbox, f"backup/{backup}/")

    quick = engine.verify_backup(backup)
    assert [(p.key, p.kind) for p in quick.problems] == ([(key, quick_kind)] if quick_kind else [])
    assert quick.ok is (quick_kind is None)
    full = engine.verify_backup(backup, full=True)
    assert not full.ok
    assert (key, full_kind) in [(p.key, p.kind) for p in full.problems], full.to_dict()

    target = f"hello_milvus_{fault}"
    drop_if_exists(sandbox.milvus_uri, "default", target)
    try:
        created = []
        if quick_kind:  # refused at once, before the job starts
            with pytest.raises(DamagedBackup, match="damaged"):
                engine.start_restore(RestoreRequest(backup, collections=["hello_milvus"], suffix=f"_{fault}"))
        else:  # refused by the job's first phase (re-hashing), still before anything is created
            job = engine.start_restore(
                RestoreRequest(backup, collections=["hello_milvus"], suffix=f"_{fault}"),
                [lambda p: created.append(p.phase)],
            )
            assert job.wait(300) is JobState.FAILED
            assert isinstance(job.exception, DamagedBackup), job.error
            assert "create" not in created and "import" not in created
        assert not engine.ctx.milvus.has_collection("default", target)
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", target)
    # verify and the refused restore only read: the backup is as it was
    assert _objects(sandbox, f"backup/{backup}/") == before


def test_an_extra_binlog_is_named_because_a_restore_would_import_it(sandbox, engine, backup):
    binlog = _binlogs(sandbox, backup)[0]
    extra = binlog.rsplit("/", 1)[0] + "/999999"
    _put(sandbox, extra, b"not a binlog")
    report = engine.verify_backup(backup)
    assert [(p.key, p.kind) for p in report.problems] == [(extra, "unexpected")]
    with pytest.raises(DamagedBackup):
        engine.start_restore(RestoreRequest(backup, suffix="_extra"))


def test_a_hostile_manifest_cannot_make_verify_read_outside_the_backup(sandbox, engine, backup):
    other = f"integ_{_uid()}"
    _put(sandbox, f"backup/{other}/meta/{BACKUP_META}", b'{"name":"x"}')
    try:
        key = f"backup/{backup}/meta/{MANIFEST}"
        doc = json.loads(_s3(sandbox).get_object(BUCKET, key).read())
        doc["objects"].append({"key": f"../{other}/meta/{BACKUP_META}", "size": 12, "sha256": "0" * 64})
        _put(sandbox, key, json.dumps(doc).encode())
        report = engine.verify_backup(backup, full=True)
        assert [(p.key, p.kind) for p in report.problems] == [(key, "unsafe")]
        assert "leave the backup" in report.problems[0].detail
        with pytest.raises(DamagedBackup):
            engine.start_restore(RestoreRequest(backup, suffix="_hostile"))
    finally:
        _s3(sandbox).remove_object(BUCKET, f"backup/{other}/meta/{BACKUP_META}")


# --------------------------------------------------------------------------- backups without a manifest


def test_a_backup_without_manifest_is_checked_against_its_meta_sizes(sandbox, engine, backup):
    _s3(sandbox).remove_object(BUCKET, f"backup/{backup}/meta/{MANIFEST}")
    report = engine.verify_backup(backup, full=True)
    assert report.ok and report.source == "meta", report.to_dict()
    assert report.objects_checked == len(_binlogs(sandbox, backup)) + len(META_WRITE_ORDER)
    key = _target_key(sandbox, backup, "binlog")
    _damage(sandbox, key, "truncate")
    report = engine.verify_backup(backup)
    assert [(p.key, p.kind) for p in report.problems] == [(key, "truncated")]
    with pytest.raises(DamagedBackup):
        engine.start_restore(RestoreRequest(backup, suffix="_nomanifest"))
    # ... and an intact one still restores every row
    _s3(sandbox).remove_object(BUCKET, key)


def test_the_go_tools_example_backup_is_checked_by_its_meta_sizes(sandbox, engine):
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent")
    name = f"go_{_uid()}"
    files = {n: (REFERENCE / n).read_bytes() for n in (*META_WRITE_ORDER,) if (REFERENCE / n).is_file()}
    for filename in sorted(files, key=lambda n: n == BACKUP_META):
        _put(sandbox, f"backup/{name}/meta/{filename}", files[filename])
    try:
        report = engine.verify_backup(name)
        assert report.source == "meta"
        missing = {p.key: p.detail for p in report.problems if p.kind == "missing"}
        assert missing and {p.kind for p in report.problems} == {"missing"}
        # supply each binlog with the size its meta records: then the backup is whole
        for key, detail in missing.items():
            size = int(detail.split()[1])
            _put(sandbox, key, bytes(size))
        for full in (False, True):
            report = engine.verify_backup(name, full=full)
            assert report.ok, report.to_dict()
            assert report.objects_hashed == 0  # no hashes to compare against
    finally:
        engine.delete_backup(name)


# --------------------------------------------------------------------------- the command line


def test_cli_verify_names_each_damaged_object_and_exits_non_zero(sandbox, backup):
    ok = run_cli(sandbox.config_path, "verify", "-n", backup)
    assert ok.returncode == 0, ok.stderr
    assert f"backup {backup}: OK" in ok.stdout
    keys = [k for k in _binlogs(sandbox, backup) if "/insert_log/" in k]
    _damage(sandbox, keys[0], "flip")
    _damage(sandbox, keys[1], "truncate")
    _damage(sandbox, keys[2], "delete")
    quick = run_cli(sandbox.config_path, "verify", "-n", backup)
    assert quick.returncode == 1
    assert keys[0] in quick.stdout and keys[1] in quick.stdout and keys[2] in quick.stdout
    full = run_cli(sandbox.config_path, "verify", "-n", backup, "--full", "--json")
    assert full.returncode == 1, full.stderr
    report = json.loads(full.stdout)
    assert report["ok"] is False and report["full"] is True
    assert {(p["key"], p["kind"]) for p in report["problems"]} == {
        (keys[0], "altered"),
        (keys[1], "truncated"),
        (keys[2], "missing"),
    }
    restore = run_cli(sandbox.config_path, "restore", "-n", backup, "-s", "_cli_damaged")
    assert restore.returncode == 1
    assert [line for line in restore.stderr.splitlines() if line.strip()] == [
        line for line in restore.stderr.splitlines() if line.startswith("error:")
    ]
    assert "damaged" in restore.stderr and "Traceback" not in restore.stderr


def test_cli_verify_of_a_missing_backup_is_one_error_line(sandbox):
    proc = run_cli(sandbox.config_path, "verify", "-n", "no_such_backup_here")
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: backup no_such_backup_here not found under a-bucket/backup/"
    ]


def test_an_intact_backup_restores_every_row_after_a_full_verify(sandbox, engine, backup):
    target = "hello_milvus_verified"
    drop_if_exists(sandbox.milvus_uri, "default", target)
    phases = []
    try:
        job = engine.start_restore(
            RestoreRequest(backup, suffix="_verified", load=True, restore_index=True),
            [lambda p: phases.append(p.phase)],
        )
        _run(job)
        assert phases.index("verify") < phases.index("create")
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), demo_collection("hello_milvus"))
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", target)


def test_a_full_verify_reports_progress_and_can_be_cancelled(sandbox, engine, backup):
    seen = []
    job = engine.start_verify(backup, full=True, listeners=[seen.append])
    assert job.wait(300) is JobState.SUCCESS, job.error
    last = [p for p in seen if p.phase == "verify"][-1]
    assert last.objects_done == last.objects_total > 0 and last.bytes_done == last.bytes_total > 0

    def cancel_when_totals_known(p):  # the engine registers the job before it starts
        if p.phase == "verify" and p.objects_total:
            engine.job(p.job_id).cancel()

    job = engine.start_verify(backup, full=True, listeners=[cancel_when_totals_known])
    assert job.wait(300) is JobState.CANCELLED, job.error
    assert isinstance(job.exception, Cancelled)


def test_a_local_folder_backup_is_verified_and_a_damaged_one_refused(sandbox, base_config, tmp_path):
    engine = Engine(with_backup_storage(base_config, storage_type="local", root_path=str(tmp_path / "backups")))
    try:
        _run(engine.start_backup(BackupRequest(name="local_integ", collections=["hello_milvus"])))
        assert (tmp_path / "backups" / "local_integ" / "meta" / MANIFEST).is_file()
        assert engine.verify_backup("local_integ", full=True).ok
        files = sorted(p for p in (tmp_path / "backups" / "local_integ" / "binlogs").rglob("*") if p.is_file())
        files[0].write_bytes(_flip(files[0].read_bytes()))
        key = files[0].relative_to(tmp_path / "backups").as_posix()
        assert engine.verify_backup("local_integ").ok  # same size: only the full check sees it
        report = engine.verify_backup("local_integ", full=True)
        assert [(p.key, p.kind) for p in report.problems] == [(key, "altered")]
        job = engine.start_restore(RestoreRequest("local_integ", suffix="_local_integ"))
        assert job.wait(300) is JobState.FAILED and isinstance(job.exception, DamagedBackup), job.error
        assert not engine.ctx.milvus.has_collection("default", "hello_milvus_local_integ")
        # nothing was staged in the Milvus bucket either
        assert list(_objects(sandbox, "files/backup_restore_temp/")) == []
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "hello_milvus_local_integ")
        engine.close()
