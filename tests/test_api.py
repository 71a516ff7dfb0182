"""The HTTP API as its users call it: the real `milvus-backup server` in a subprocess on a free loopback
port, the sandbox's Milvus and S3 behind it, httpx in front. Checked by the answers AND by what the
calls did to Milvus and to the bucket.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from minio import Minio
from pymilvus import MilvusClient

from milvus_backup.sandbox.demo import demo_collection
from milvus_backup.sandbox.servers import free_port
from tests.conftest import assert_same_rows, cli_command, cli_env, drop_if_exists, fetch_rows

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "a-bucket"
WALKTHROUGH = ROOT / "scripts" / "walkthrough"


def _uid() -> str:
    return uuid.uuid4().hex[:10]


class Server:
    """`milvus-backup server` in a subprocess; stopped by its PID."""

    def __init__(self, config: Path, tmp: Path, port: int | None = None, token: str | None = None):
        self.config, self.port, self.token = config, port or free_port(), token
        self.log = tmp / f"server-{self.port}-{_uid()}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> Server:
        env = cli_env(**({"MILVUS_BACKUP_API_TOKEN": self.token} if self.token else {}))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "milvus_backup.cli",
                    "--config",
                    str(self.config),
                    "server",
                    "-p",
                    str(self.port),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited: {self.log.read_text()}"
            try:
                httpx.get(f"{self.base}/docs/index.html", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"server did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return httpx.request(method, f"{self.base}/{path}", headers=headers, timeout=300, **kwargs)

    def get(self, path: str, **params) -> dict:
        return _envelope(self.call("GET", path, params=params))

    def post(self, path: str, body) -> dict:
        return _envelope(self.call("POST", path, json=body))


def _envelope(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body) == {"requestId", "code", "msg", "data"}, body
    assert isinstance(body["requestId"], str) and body["requestId"]
    body["http"] = resp.status_code
    return body


def _ok(body: dict) -> dict | list:
    assert body["code"] == 0, body
    assert body["http"] == 200
    return body["data"]


def _poll(server: Server, path: str, timeout: float = 300, **params) -> dict:
    """Ask until the state is final (2 success, 3 fail); returns the last data."""
    deadline = time.monotonic() + timeout
    while True:
        data = _ok(server.get(path, **params))
        assert 0 <= data["progress"] <= 100
        if data["state_code"] in (2, 3):
            return data
        assert data["state_code"] in (0, 1), data
        assert time.monotonic() < deadline, f"{path} {params} still {data['state_code']}"
        time.sleep(0.3)


def _s3(sandbox) -> Minio:
    return Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)


def _keys(sandbox, prefix: str) -> list[str]:
    return sorted(o.object_name for o in _s3(sandbox).list_objects(BUCKET, prefix=prefix, recursive=True))


def _delete(server: Server, name: str) -> None:
    server.call("DELETE", "delete", params={"backup_name": name})


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    srv = Server(sandbox.config_path, tmp_path_factory.mktemp("api")).start()
    yield srv
    srv.stop()


# -- the walkthrough, literally --------------------------------------------------------------------


def test_the_upstream_walkthrough_works_as_written(sandbox, server):
    uri = sandbox.milvus_uri
    drop_if_exists(uri, "default", "hello_milvus_recover")
    _delete(server, "my_backup")
    try:
        created = server.post(
            "create", {"async": True, "backup_name": "my_backup", "collection_names": ["hello_milvus"]}
        )
        data = _ok(created)
        assert data["name"] == "my_backup" and data["state_code"] in (0, 1, 2) and data["id"]
        listed = _ok(server.get("list"))
        assert "my_backup" in [b["name"] for b in listed]
        assert all(set(b) >= {"id", "name", "size", "milvus_version"} for b in listed)
        info = _poll(server, "get_backup", backup_name="my_backup")
        assert info["state_code"] == 2 and info["progress"] == 100, info
        assert info["id"] == data["id"]
        assert [c["collection_name"] for c in info["collection_backups"]] == ["hello_milvus"]
        assert "backup/my_backup/meta/backup_meta.json" in _keys(sandbox, "backup/my_backup/")

        restore = _ok(
            server.post(
                "restore",
                {
                    "async": True,
                    "collection_names": ["hello_milvus"],
                    "collection_suffix": "_recover",
                    "backup_name": "my_backup",
                },
            )
        )
        assert restore["id"] and restore["state_code"] in (0, 1, 2)
        done = _poll(server, "get_restore", id=restore["id"])
        assert done["state_code"] == 2 and done["progress"] == 100, done
        assert done["errorMessage"] == "" and done["end_time"] >= done["start_time"] > 0
        [task] = done["collection_restore_tasks"]
        assert (task["target_db_name"], task["target_collection_name"], task["state_code"], task["progress"]) == (
            "default",
            "hello_milvus_recover",
            2,
            100,
        )
        # the docs' verify step: count, index, load, search
        expected = len(demo_collection("hello_milvus").expected_rows())
        verify = subprocess.run(
            [sys.executable, str(WALKTHROUGH / "verify_data.py"), "--uri", uri, "--rows", str(expected)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert_same_rows(fetch_rows(uri, "default", "hello_milvus_recover"), demo_collection("hello_milvus"))
    finally:
        drop_if_exists(uri, "default", "hello_milvus_recover")
        _delete(server, "my_backup")


def test_the_walkthrough_scripts_round_trip_their_data(sandbox, server):
    """prepare_data -> create (a whole database via db_collections) -> clean_data -> restore -> verify_data --exact."""
    db, name = f"walk_{_uid()}", f"walk_{_uid()}"
    uri = sandbox.milvus_uri

    def script(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args, "--uri", uri, "--db", db], capture_output=True, text=True, timeout=300
        )

    try:
        prepared = script(str(WALKTHROUGH / "prepare_data.py"))
        assert prepared.returncode == 0, prepared.stderr
        assert f"Number of entities in {db}.hello_milvus: 3000" in prepared.stdout
        info = _ok(server.post("create", {"backup_name": name, "db_collections": {db: []}}))  # synchronous
        assert info["state_code"] == 2 and [c["db_name"] for c in info["collection_backups"]] == [db]
        assert (
            sum(
                s["num_of_rows"]
                for c in info["collection_backups"]
                for p in c["partition_backups"]
                for s in p["segment_backups"]
            )
            == 3000
        )
        cleaned = script(str(WALKTHROUGH / "clean_data.py"))
        assert cleaned.returncode == 0 and f"dropped {db}.hello_milvus" in cleaned.stdout
        missing = script(str(WALKTHROUGH / "verify_data.py"))
        assert missing.returncode == 1 and "does not exist" in missing.stderr
        restored = _ok(server.post("restore", {"backup_name": name, "collection_suffix": "_recover"}))
        assert restored["state_code"] == 2
        assert restored["collection_restore_tasks"][0]["target_db_name"] == db
        verified = script(str(WALKTHROUGH / "verify_data.py"), "--exact")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "every row equals what prepare_data.py wrote" in verified.stdout
        wrong = script(str(WALKTHROUGH / "verify_data.py"), "--rows", "2999")
        assert wrong.returncode == 1 and "3000 rows, expected 2999" in wrong.stderr
    finally:
        script(str(WALKTHROUGH / "clean_data.py"))
        _delete(server, name)


def test_the_upstream_clients_current_payloads_are_served(sandbox, server):
    """Bodies as the upstream's own test client sends them today: newer fields, hints included."""
    name, suffix = f"cur_{_uid()}", f"_cur{_uid()}"
    try:
        created = server.post(
            "create",
            {"async": False, "backup_name": name, "collection_names": ["books"], "rbac": True, "strategy": ""},
        )
        assert created["code"] == 0 and created["msg"] == "success", created
        restored = server.post(
            "restore",
            {
                "async": False,
                "backup_name": name,
                "collection_suffix": suffix,
                "useV2Restore": True,
                "rbac": True,
                "skipParams": {"collectionProperties": [], "fieldIndexParams": [], "fieldTypeParams": []},
            },
        )
        assert restored["code"] == 0 and restored["msg"] == "success", restored
        [task] = restored["data"]["collection_restore_tasks"]
        assert task["target_collection_name"] == f"books{suffix}"
        assert task["restored_rows"] == len(demo_collection("books").expected_rows())
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", f"books{suffix}")
        _delete(server, name)


# -- answers -----------------------------------------------------------------------------------------


def test_hello_check_and_get_by_id(sandbox, server):
    assert "backup service" in _ok(server.get("hello"))
    report = _ok(server.get("check"))
    assert report["ok"] and report["milvus_version"] and all(s["ok"] for s in report["steps"])
    assert {s["name"] for s in report["steps"]} >= {"milvus", "delete", "copy milvus storage -> backup storage"}
    assert not [k for k in _keys(sandbox, "") if ".milvus_backup_probe_" in k], "check left probe objects"
    assert "backup_check" not in [b["name"] for b in _ok(server.get("list"))]
    name = f"api_{_uid()}"
    try:
        info = _ok(
            server.post("create", {"backup_name": name, "collection_names": ["shop.products"], "requestId": "req-1"})
        )
        by_id = _ok(server.get("get_backup", backup_id=info["id"]))
        assert by_id == _ok(server.get("get_backup", backup_name=name)) == info
        assert [b["name"] for b in _ok(server.get("list", collection_name="products"))].count(name) == 1
        assert name not in [b["name"] for b in _ok(server.get("list", collection_name="books"))]
        echoed = server.post("create", {"backup_name": name, "requestId": "req-2"})
        assert echoed["requestId"] == "req-2" and echoed["code"] == 400
    finally:
        deleted = server.call("DELETE", "delete", params={"backup_name": name}).json()
        assert deleted["code"] == 0
    assert server.get("get_backup", backup_name=name)["code"] == 404
    assert not _keys(sandbox, f"backup/{name}/")


def test_create_without_a_name_uses_the_default_name(sandbox, server):
    started = _ok(server.post("create", {"async": True, "collection_names": ["shop.products"]}))
    name = started["name"]
    try:
        assert re.fullmatch(r"backup_\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}_\d+", name), name
        info = _poll(server, "get_backup", backup_name=name)
        assert info["state_code"] == 2 and info["id"] == started["id"]
        assert [(c["db_name"], c["collection_name"]) for c in info["collection_backups"]] == [("shop", "products")]
    finally:
        _delete(server, name)


def test_restore_refusals_own_ids_and_records(sandbox, server):
    name = f"api_{_uid()}"
    try:
        _ok(server.post("create", {"backup_name": name, "collection_names": ["books"]}))
        # restoring onto the live collection is refused before anything changes
        refused = server.post("restore", {"backup_name": name})
        assert refused["code"] == 400 and "already exist" in refused["msg"]
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "books"), demo_collection("books"))
        # a restore id of our own, then the same id again
        rid = f"r_{_uid()}"
        done = _ok(
            server.post(
                "restore",
                {
                    "backup_name": name,
                    "collection_renames": {"books": f"books_{rid}"},
                    "id": rid,
                    "restoreIndex": True,
                    "load": True,
                },
            )
        )
        assert done["id"] == rid and done["state_code"] == 2
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", f"books_{rid}"), demo_collection("books"))
        again = server.post("restore", {"backup_name": name, "collection_suffix": "_x", "id": rid})
        assert again["code"] == 400 and "taken" in again["msg"]
        assert f"files/backup_restore_records/{rid}.json" in _keys(sandbox, "files/backup_restore_records/")
        assert not _keys(sandbox, "backup/backup_restore_records")  # never under the backup root
        drop_if_exists(sandbox.milvus_uri, "default", f"books_{rid}")
    finally:
        _delete(server, name)


BAD_INPUTS = [
    # (method, path, kwargs, code, words in msg)
    ("POST", "create", {"content": b"{bad", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
    ("POST", "create", {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400, "JSON object"),
    ("POST", "create", {}, 400, "body is required"),
    ("POST", "create", {"json": {"collection_names": "hello_milvus"}}, 400, "collection_names"),
    ("POST", "create", {"json": {"async": "yes"}}, 400, "async"),
    ("POST", "create", {"json": {"backup_name": 12}}, 400, "backup_name"),
    ("POST", "create", {"json": {"collection_name": ["hello_milvus"]}}, 400, "unknown field 'collection_name'"),
    ("POST", "create", {"json": {"backup_name": "bad-name"}}, 400, "invalid backup name"),
    ("POST", "create", {"json": {"backup_name": "x" * 129}}, 400, "invalid backup name"),
    ("POST", "create", {"json": {"backup_name": "ok_name", "collection_names": ["no_such_coll"]}}, 404, "not found"),
    ("POST", "create", {"json": {"db_collections": {"no_such_db": []}}}, 404, "database no_such_db"),
    ("POST", "create", {"json": {"db_collections": "{oops"}}, 400, "db_collections"),
    ("GET", "get_backup", {}, 400, "backup_name"),
    ("GET", "get_backup", {"params": {"backup_name": "no_such_backup"}}, 404, "not found"),
    ("GET", "get_backup", {"params": {"backup_name": "../etc"}}, 400, "invalid backup name"),
    ("GET", "get_backup", {"params": {"backup_id": "no-such-id"}}, 404, "no backup has id"),
    ("DELETE", "delete", {}, 400, "backup_name"),
    ("DELETE", "delete", {"params": {"backup_name": "no_such_backup"}}, 404, "not found"),
    ("DELETE", "delete", {"params": {"backup_name": "a/b"}}, 400, "invalid backup name"),
    ("POST", "restore", {"json": {}}, 400, "backup_name is required"),
    ("POST", "restore", {"json": {"backup_name": "no_such_backup"}}, 404, "not found"),
    ("POST", "restore", {"json": {"backup_name": "x y"}}, 400, "invalid backup name"),
    ("POST", "restore", {"json": {"backup_name": "b", "collection_renames": ["a:b"]}}, 400, "collection_renames"),
    ("POST", "restore", {"json": {"backup_name": "b", "dropExistCollection": 1}}, 400, "dropExistCollection"),
    (
        "POST",
        "restore",
        {"json": {"backup_name": "b", "collection_suffix": "_s", "collection_renames": {"a": "b"}}},
        400,
        "not both",
    ),
    ("GET", "get_restore", {}, 400, "id"),
    ("GET", "get_restore", {"params": {"id": "no_such_restore"}}, 404, "not found"),
    ("GET", "get_restore", {"params": {"id": "../x"}}, 400, "invalid restore id"),
]


@pytest.mark.parametrize(
    "method,path,kwargs,code,words", BAD_INPUTS, ids=[f"{m} {p} {i}" for i, (m, p, *_rest) in enumerate(BAD_INPUTS)]
)
def test_bad_input_gets_one_clear_line_and_an_error_code(sandbox, server, method, path, kwargs, code, words):
    before = _keys(sandbox, "backup/")
    body = _envelope(server.call(method, path, **kwargs))
    assert body["code"] == code, body
    assert body["http"] == code
    assert words in body["msg"], body["msg"]
    assert "\n" not in body["msg"] and "Traceback" not in body["msg"]
    assert _keys(sandbox, "backup/") == before  # nothing written


def test_wrong_methods_and_paths_get_the_envelope_too(server):
    wrong_method = _envelope(server.call("GET", "create"))
    assert wrong_method["http"] == 405 and wrong_method["code"] == 400 and "use POST" in wrong_method["msg"]
    no_path = _envelope(server.call("GET", "create_backup"))
    assert no_path["http"] == 404 and no_path["code"] == 404 and "no such endpoint" in no_path["msg"]


def test_unsupported_upstream_fields_are_served_when_empty_and_refused_when_set(sandbox, server):
    before = _keys(sandbox, "backup/")
    refused = server.post("restore", {"backup_name": "go_only", "bucket_name": "other", "skipCreateCollection": True})
    assert refused["code"] == 1 and refused["msg"].startswith("not supported: bucket_name, skipCreateCollection")
    assert "minio.backupBucketName" in refused["msg"]
    # create has no bucket_name upstream: a name in neither set is refused as before
    unknown = server.post("create", {"backup_name": "go_only", "bucket_name": "other"})
    assert unknown["code"] == 400 and "unknown field 'bucket_name'" in unknown["msg"]
    assert _keys(sandbox, "backup/") == before
    # as a generated Go client sends every field: empty, so served
    empty = server.post(
        "create",
        {
            "backup_name": "no_such_backup_x",
            "collection_names": ["no_such_coll"],
            "rbac": False,
            "force": False,
            "gc_pause_address": "",
            "with_index_extra": False,
            "backup_root_path": "",
            "strategy": "",
        },
    )
    assert empty["code"] == 404, empty
    empty = server.post(
        "restore", {"backup_name": "no_such_backup_x", "bucket_name": "", "path": "", "truncateBinlogByTs": False}
    )
    assert empty["code"] == 404, empty


def test_a_second_create_with_a_taken_name_is_refused_and_the_first_is_unharmed(sandbox, server):
    name = f"dup_{_uid()}"
    body = {"backup_name": name, "collection_names": ["hello_milvus", "books", "shop.products"]}
    answers: list[dict] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        answers.append(_envelope(httpx.post(f"{server.base}/create", json={**body, "async": True}, timeout=300)))

    threads = [threading.Thread(target=create) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(a["code"] for a in answers) == [0, 400, 400, 400, 400, 400], answers
        assert all(name in a["msg"] for a in answers if a["code"] == 400)
        info = _poll(server, "get_backup", backup_name=name)
        assert info["state_code"] == 2, info
        assert sorted(c["collection_name"] for c in info["collection_backups"]) == ["books", "hello_milvus", "products"]
        late = server.post("create", body)
        assert late["code"] == 400 and "already exists" in late["msg"]
        assert _ok(server.get("get_backup", backup_name=name)) == info
    finally:
        _delete(server, name)


def test_twenty_concurrent_clients_are_all_served(sandbox, server, capsys):
    names = [f"conc_{i}_{_uid()}" for i in range(4)]
    existing = f"conc_base_{_uid()}"
    _ok(server.post("create", {"backup_name": existing, "collection_names": ["hello_milvus"]}))
    calls = (
        [("POST", "create", {"json": {"async": True, "backup_name": n, "collection_names": ["books"]}}) for n in names]
        + [("GET", "list", {})] * 8
        + [("GET", "get_backup", {"params": {"backup_name": existing}})] * 8
    )
    assert len(calls) == 20
    results: list[tuple[dict, float]] = []
    barrier = threading.Barrier(len(calls))

    def run(method, path, kwargs) -> None:
        with httpx.Client(timeout=300) as client:  # one client each, as many separate users would be
            barrier.wait()
            start = time.monotonic()
            resp = client.request(method, f"{server.base}/{path}", **kwargs)
            results.append((_envelope(resp), time.monotonic() - start))

    threads = [threading.Thread(target=run, args=call) for call in calls]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 20
        assert [r["code"] for r, _ in results] == [0] * 20, [r for r, _ in results if r["code"]]
        reference = _ok(server.get("get_backup", backup_name=existing))
        assert all(
            r["data"] == reference
            for r, _ in results
            if isinstance(r["data"], dict) and r["data"].get("name") == existing
        )
        for n in names:
            assert _poll(server, "get_backup", backup_name=n)["state_code"] == 2
        latencies = sorted(t for _, t in results)
        with capsys.disabled():
            print(f"\n20 concurrent requests: median {latencies[10]:.3f}s, max {latencies[-1]:.3f}s")
    finally:
        for n in [*names, existing]:
            _delete(server, n)


def test_state_survives_a_restart(sandbox, tmp_path):
    """A backup made by the CLI and a restore made over HTTP answer the same from a new server process."""
    name, suffix = f"rs_{_uid()}", f"_rs{_uid()}"
    created = subprocess.run(
        cli_command(sandbox.config_path, "create", "-n", name, "-c", "books"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    assert created.returncode == 0, created.stderr
    first = Server(sandbox.config_path, tmp_path).start()
    second = None
    try:
        info = _ok(first.get("get_backup", backup_name=name))
        assert info["state_code"] == 2 and info["progress"] == 100 and info["collection_backups"]
        listed = _ok(first.get("list"))
        restore = _ok(first.post("restore", {"async": True, "backup_name": name, "collection_suffix": suffix}))
        done = _poll(first, "get_restore", id=restore["id"])
        assert done["state_code"] == 2
        first.stop()
        second = Server(sandbox.config_path, tmp_path, port=first.port).start()
        assert _ok(second.get("get_backup", backup_name=name)) == info
        assert _ok(second.get("get_backup", backup_id=info["id"])) == info
        assert _ok(second.get("list")) == listed
        assert _ok(second.get("get_restore", id=restore["id"])) == done
    finally:
        first.stop()
        if second is not None:
            second.stop()
        drop_if_exists(sandbox.milvus_uri, "default", f"books{suffix}")
        subprocess.run(
            [sys.executable, "-m", "milvus_backup.cli", "--config", str(sandbox.config_path), "delete", "-n", name],
            cwd=ROOT,
            capture_output=True,
            env=cli_env(),
            timeout=300,
        )


def test_a_restart_in_the_middle_of_a_backup_leaves_no_complete_backup(sandbox, tmp_path):
    name = f"mid_{_uid()}"
    srv = Server(sandbox.config_path, tmp_path).start()
    after = None
    try:
        started = _ok(
            srv.post(
                "create",
                {"async": True, "backup_name": name, "collection_names": ["hello_milvus", "books", "shop.products"]},
            )
        )
        assert started["state_code"] in (1, 2)
        srv.stop()  # SIGTERM: running jobs are cancelled and clean up
        after = Server(sandbox.config_path, tmp_path, port=srv.port).start()
        answer = after.get("get_backup", backup_name=name)
        if answer["code"] == 0:  # it had finished in time: then it is whole
            assert answer["data"]["state_code"] == 2 and len(answer["data"]["collection_backups"]) == 3
        else:
            assert answer["code"] == 404, answer
            assert f"backup/{name}/meta/backup_meta.json" not in _keys(sandbox, f"backup/{name}/")
    finally:
        srv.stop()
        if after is not None:
            _delete(after, name)
            after.stop()


def test_a_restart_in_the_middle_of_a_restore_leaves_a_final_record(sandbox, tmp_path):
    name, suffix = f"midr_{_uid()}", f"_midr{_uid()}"
    srv = Server(sandbox.config_path, tmp_path).start()
    after = None
    targets = [("default", f"hello_milvus{suffix}"), ("default", f"books{suffix}"), ("shop", f"products{suffix}")]
    try:
        _ok(srv.post("create", {"backup_name": name, "collection_names": ["hello_milvus", "books", "shop.products"]}))
        started = _ok(srv.post("restore", {"async": True, "backup_name": name, "collection_suffix": suffix}))
        srv.stop()  # SIGTERM: the restore is cancelled, drops what it created, and records how it ended
        after = Server(sandbox.config_path, tmp_path, port=srv.port).start()
        record = _ok(after.get("get_restore", id=started["id"]))
        assert record["state_code"] in (2, 3), record
        if record["state_code"] == 3:
            assert "cancelled" in record["errorMessage"]
            for db, coll in targets:
                assert not MilvusClient(uri=sandbox.milvus_uri, db_name=db).has_collection(coll), coll
    finally:
        srv.stop()
        for db, coll in targets:
            drop_if_exists(sandbox.milvus_uri, db, coll)
        if after is not None:
            _delete(after, name)
            after.stop()


def test_a_token_guards_every_call_but_the_docs(sandbox, tmp_path):
    token = f"t0k-{_uid()}"
    srv = Server(sandbox.config_path, tmp_path, token=token).start()
    try:
        bare = httpx.get(f"{srv.base}/list")
        assert bare.status_code == 401 and bare.json()["code"] == 2
        wrong = httpx.get(f"{srv.base}/list", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == 2
        # refused before the body is read: no hint about what is malformed, or what exists
        for resp in (
            httpx.post(f"{srv.base}/create", content=b"{bad"),
            httpx.get(f"{srv.base}/no_such_endpoint"),
            httpx.post(f"{srv.base}/create", json={"backup_name": "x"}, headers={"Authorization": token}),
        ):
            assert resp.status_code == 401 and resp.json()["code"] == 2
        assert _ok(srv.get("list")) is not None
        assert httpx.get(f"{srv.base}/docs/index.html").status_code == 200
        log = srv.log.read_text()
        assert token not in log and "minioadmin" not in log
    finally:
        srv.stop()


def test_swagger_ui_is_served_from_this_server_with_no_external_urls(server):
    page = httpx.get(f"{server.base}/docs/index.html")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "SwaggerUIBundle" in page.text
    urls = re.findall(r'(?:src|href|url)\s*[:=]\s*"([^"]+)"', page.text)
    assert urls and all(u.startswith("/api/v1/") for u in urls), urls
    assert "http://" not in page.text and "https://" not in page.text and "cdn" not in page.text.lower()
    for url in urls:
        resp = httpx.get(f"http://127.0.0.1:{server.port}{url}")
        assert resp.status_code == 200, url
        assert len(resp.content) > 100, url
    spec = httpx.get(f"{server.base}/openapi.json").json()
    assert {
        f"/api/v1/{p}" for p in ("hello", "create", "list", "get_backup", "delete", "restore", "get_restore", "check")
    } <= set(spec["paths"])
    assert "async" in json.dumps(spec["components"]["schemas"]["CreateBackupRequest"])
    assert httpx.get(f"{server.base}/docs", follow_redirects=True).status_code == 200


def test_verify_names_a_damaged_object(sandbox, server):
    """verify: code 0 for a whole backup; a flipped byte is found (its rewrite changed the ETag), and named."""
    name = f"api_verify_{_uid()}"
    try:
        _ok(server.post("create", {"backup_name": name, "collection_names": ["shop.products"]}))
        quick = _ok(server.get("verify", backup_name=name))
        assert quick["ok"] and not quick["full"] and quick["objects_checked"] > 0
        assert _ok(server.get("verify", backup_name=name, full="true"))["objects_hashed"] == quick["objects_checked"]
        binlog = next(k for k in _keys(sandbox, f"backup/{name}/binlogs/insert_log/"))
        data = _s3(sandbox).get_object(BUCKET, binlog).read()
        flipped = data[:10] + bytes([data[10] ^ 0x01]) + data[11:]
        _s3(sandbox).put_object(BUCKET, binlog, io.BytesIO(flipped), len(flipped))
        quick = server.get("verify", backup_name=name)  # one listing: the rewritten object has a new ETag
        assert quick["code"] == 3
        assert [(p["key"], p["kind"]) for p in quick["data"]["problems"]] == [(binlog, "altered")]
        damaged = server.get("verify", backup_name=name, full="true")
        assert damaged["code"] == 3 and binlog in damaged["msg"] and "altered" in damaged["msg"]
        assert [(p["key"], p["kind"]) for p in damaged["data"]["problems"]] == [(binlog, "altered")]
        assert server.get("verify", backup_name="no_such_backup")["code"] == 404
        assert server.get("verify", backup_name="../x")["code"] == 400
    finally:
        _delete(server, name)


def test_jobs_lists_every_process_s_jobs_and_cancel_stops_one_in_another_process(sandbox, server, tmp_path):
    """The server's own backup and a restore the CLI runs (held in its import) are both listed; the
    restore is cancelled through the API and its process stops and drops what it created."""
    from milvus_backup.core.pause import PAUSE_AT, PAUSE_FILE

    name, suffix = f"apijobs_{_uid()}", f"_apij{_uid()}"
    marker = tmp_path / "paused"
    proc = None
    try:
        info = _ok(server.post("create", {"backup_name": name, "collection_names": ["shop.products"]}))
        command = [sys.executable, "-m", "milvus_backup.cli", "--config", str(sandbox.config_path)]
        proc = subprocess.Popen(
            [*command, "restore", "-n", name, "-s", suffix],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=cli_env(**{PAUSE_AT: "restore:import", PAUSE_FILE: str(marker)}),
        )
        deadline = time.monotonic() + 180
        while not marker.is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "the restore never reached its import"
            time.sleep(0.1)
        jobs = {j["id"]: j for j in _ok(server.get("jobs"))}
        assert jobs[info["id"]]["kind"] == "backup" and jobs[info["id"]]["state"] == "success"
        [restore] = [j for j in jobs.values() if j["pid"] == proc.pid]
        assert (restore["kind"], restore["backup_name"], restore["state"], restore["phase"]) == (
            "restore",
            name,
            "running",
            "import",
        )
        assert 0 <= restore["progress"] < 100 and restore["host"] and restore["end_time"] == 0
        cancelled = server.call("POST", "cancel", params={"id": restore["id"]})
        body = _envelope(cancelled)
        assert body["code"] == 0 and "cancel requested" in body["msg"], body
        assert body["data"] == {"id": restore["id"], "state": "cancelling"}
        assert proc.wait(120) == 130
        after = {j["id"]: j for j in _ok(server.get("jobs"))}[restore["id"]]
        assert after["state"] == "cancelled" and after["end_time"] >= after["start_time"]
        assert not MilvusClient(uri=sandbox.milvus_uri, db_name="shop").has_collection("products" + suffix)
        again = _envelope(server.call("POST", "cancel", params={"id": restore["id"]}))
        assert again["code"] == 400 and "already ended" in again["msg"]
        assert _envelope(server.call("POST", "cancel", params={"id": "nosuchjob"}))["code"] == 404
        assert _envelope(server.call("POST", "cancel"))["code"] == 400
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        drop_if_exists(sandbox.milvus_uri, "shop", "products" + suffix)
        _delete(server, name)
