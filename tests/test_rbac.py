"""RBAC (`rbac` on create and restore) against a real Milvus with authorization on.

The module starts its own sandbox with `auth` (the session one runs without it), beside the session's,
and stops it by PID at the end. A role with grants in two databases and a user bound to it are backed
up, dropped, and restored; the backup's meta holds no password.
"""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr
from pymilvus import MilvusClient

from milvus_backup.core.backup import BackupRequest
from milvus_backup.core.config import Config, load_config
from milvus_backup.core.engine import Engine
from milvus_backup.core.errors import MilvusError
from milvus_backup.core.jobs import JobState
from milvus_backup.core.meta import (
    GrantEntity,
    GrantorEntity,
    ObjectEntity,
    PrivilegeEntity,
    RBACMeta,
    RoleEntity,
    UserEntity,
    UserInfo,
    decode,
    encode,
)
from milvus_backup.core.paths import META_WRITE_ORDER
from milvus_backup.core.restore import RestoreRequest
from milvus_backup.sandbox.demo import demo_collection, load_demo
from milvus_backup.sandbox.servers import ROOT_PASSWORD, ROOT_USER, Sandbox, SandboxState, free_port
from tests.conftest import pymilvus_summaries, run_cli, summarised

ROOT_TOKEN = f"{ROOT_USER}:{ROOT_PASSWORD}"
ROLE, USER, USER_PASSWORD = "reader", "alice", "Alice-pw-1"
GRANTS = {  # (object type, object name, database, privilege)
    ("Collection", "products", "shop", "Query"),
    ("Collection", "*", "shop", "Search"),
    ("Global", "*", "default", "DescribeCollection"),
    ("Collection", "*", "*", "Flush"),  # every database
}


def test_rbac_meta_json_is_the_upstream_shape():
    meta = RBACMeta(
        users=[UserInfo(user="alice", roles=[RoleEntity("reader")])],
        roles=[RoleEntity("reader")],
        grants=[
            GrantEntity(
                RoleEntity("reader"),
                ObjectEntity("Collection"),
                "products",
                GrantorEntity(UserEntity("root"), PrivilegeEntity("Query")),
                "shop",
            )
        ],
    )
    assert encode(meta) == {
        "users": [{"user": "alice", "roles": [{"name": "reader"}]}],
        "roles": [{"name": "reader"}],
        "grants": [
            {
                "role": {"name": "reader"},
                "object": {"name": "Collection"},
                "object_name": "products",
                "grantor": {"user": {"name": "root"}, "privilege": {"name": "Query"}},
                "db_name": "shop",
            }
        ],
    }
    assert decode(RBACMeta, encode(meta)) == meta


@pytest.fixture(scope="module")
def auth_sandbox(tmp_path_factory) -> SandboxState:
    box = Sandbox(tmp_path_factory.mktemp("auth_sandbox"), milvus_port=free_port(), s3_port=free_port(), auth=True)
    try:
        state = box.start()
        load_demo(state.milvus_uri, (demo_collection("products"),), token=ROOT_TOKEN)
        yield state
    finally:
        box.stop()


@pytest.fixture(scope="module")
def auth_config(auth_sandbox: SandboxState) -> Config:
    return load_config(auth_sandbox.config_path, env={})


def _client(state: SandboxState, token: str = ROOT_TOKEN, db: str = "default") -> MilvusClient:
    return MilvusClient(uri=state.milvus_uri, token=token, db_name=db)


def _grants_of(client: MilvusClient, role: str) -> set[tuple[str, str, str, str]]:
    return {
        (p["object_type"], p["object_name"], p["db_name"], p["privilege"])
        for p in client.describe_role(role)["privileges"]
    }


def _grants_in_both_dbs(state: SandboxState, role: str) -> set[tuple[str, str, str, str]]:
    grants: set[tuple[str, str, str, str]] = set()
    for db in ("default", "shop"):
        client = _client(state, db=db)
        try:
            grants |= {g for g in _grants_of(client, role) if g[2] in (db, "*")}
        finally:
            client.close()
    return grants


def _drop_role_and_user(client: MilvusClient) -> None:
    if USER in client.list_users():
        client.drop_user(USER)
    if ROLE in client.list_roles():
        for object_type, name, db, privilege in GRANTS:
            client.revoke_privilege(ROLE, object_type, privilege, name, db_name=db)
        client.drop_role(ROLE)


def _run(job):
    assert job.wait(300) is JobState.SUCCESS, job.error
    return job


def _with_user_password(config: Config, password: str) -> Config:
    return config.model_copy(
        update={"backup": config.backup.model_copy(update={"rbac_user_password": SecretStr(password)})}
    )


@pytest.fixture(scope="module")
def rbac_backup(auth_sandbox, auth_config):
    """A role with grants in two databases and a user bound to it, backed up with rbac, then dropped."""
    client = _client(auth_sandbox)
    try:
        client.create_role(ROLE)
        for object_type, name, db, privilege in GRANTS:
            client.grant_privilege(ROLE, object_type, privilege, name, db_name=db)
        client.create_user(USER, USER_PASSWORD)
        client.grant_role(USER, ROLE)
        assert _grants_in_both_dbs(auth_sandbox, ROLE) == GRANTS
        engine = Engine(auth_config)
        try:
            _run(engine.start_backup(BackupRequest(name="with_rbac", collections=["shop.products"], rbac=True)))
        finally:
            engine.close()
        _drop_role_and_user(client)
        assert ROLE not in client.list_roles() and USER not in client.list_users()
        yield "with_rbac"
    finally:
        _drop_role_and_user(client)
        client.close()


def _meta_files(config: Config, name: str) -> dict[str, bytes]:
    engine = Engine(config)
    try:
        storage, layout = engine.ctx.backup_storage, engine.ctx.backup_layout
        return {f: storage.read(layout.meta(name, f)) for f in META_WRITE_ORDER}
    finally:
        engine.close()


def test_backup_holds_users_roles_and_grants_and_no_password(auth_config, rbac_backup):
    files = _meta_files(auth_config, rbac_backup)
    for name, data in files.items():
        text = data.decode()
        assert "password" not in text.lower() and USER_PASSWORD not in text and ROOT_PASSWORD not in text, name
    rbac = json.loads(files["full_meta.json"])["rbac_meta"]
    users = {u["user"]: [r["name"] for r in u.get("roles", [])] for u in rbac["users"]}
    assert users[USER] == [ROLE] and ROOT_USER in users
    assert [r["name"] for r in rbac["roles"]] == [ROLE]  # the built-in admin and public are never listed
    mine = {
        (g["object"]["name"], g["object_name"], g["db_name"], g["grantor"]["privilege"]["name"])
        for g in rbac["grants"]
        if g["role"]["name"] == ROLE
    }
    assert mine == GRANTS
    assert all(g["grantor"]["user"]["name"] == ROOT_USER for g in rbac["grants"] if g["role"]["name"] == ROLE)


def _restore(config: Config, backup: str, suffix: str):
    engine = Engine(config)
    try:
        request = RestoreRequest(backup_name=backup, collections=["shop.products"], suffix=suffix, rbac=True)
        return _run(engine.start_restore(request))
    finally:
        engine.close()
        drop_if_exists_as_root(config, "shop", f"products{suffix}")


def drop_if_exists_as_root(config: Config, db: str, name: str) -> None:
    client = MilvusClient(uri=config.milvus.uri, token=ROOT_TOKEN, db_name=db)
    try:
        if client.has_collection(name):
            client.drop_collection(name)
    finally:
        client.close()


def test_restore_recreates_role_grants_and_user_with_the_operators_password(auth_sandbox, auth_config, rbac_backup):
    job = _restore(_with_user_password(auth_config, "Restored-pw-1"), rbac_backup, "_rbac1")
    root = _client(auth_sandbox)
    try:
        assert ROLE in root.list_roles()
        assert _grants_in_both_dbs(auth_sandbox, ROLE) == GRANTS
        assert root.describe_user(USER)["roles"] == (ROLE,)
        assert set(root.list_users()) == {ROOT_USER, USER}
    finally:
        root.close()
    # alice logs in with the password the operator set, and her role's grant works
    alice = _client(auth_sandbox, token=f"{USER}:Restored-pw-1", db="shop")
    try:
        assert alice.query("products", filter="id == 10000", output_fields=["id"]) == [{"id": 10000}]
    finally:
        alice.close()
    assert any(f"created user(s) {USER};" in line for line in job.lines), job.lines


def test_restore_without_a_password_keeps_what_exists_and_names_the_users_it_left(
    auth_sandbox, auth_config, rbac_backup
):
    root = _client(auth_sandbox)
    try:
        if USER in root.list_users():
            root.drop_user(USER)
        if ROLE not in root.list_roles():
            root.create_role(ROLE)  # an existing role is kept; the backup's grants are added to it
        job = _restore(auth_config, rbac_backup, "_rbac2")
        assert USER not in root.list_users()
        assert _grants_in_both_dbs(auth_sandbox, ROLE) == GRANTS
    finally:
        root.close()
    warning = [line for line in job.lines if line.startswith("warning: RBAC")]
    assert len(warning) == 1 and f"user(s) {USER} not created" in warning[0], job.lines
    assert "backup.rbac.userPassword" in warning[0]


def test_the_collections_table_signs_in_to_milvus(auth_sandbox, auth_config):
    """Its connection (the tool's own gRPC channel) sends the configured user; a wrong password is one line."""
    engine = Engine(auth_config)
    try:
        listed = engine.list_collections()
    finally:
        engine.close()
    assert summarised(listed) == pymilvus_summaries(auth_sandbox.milvus_uri, ROOT_TOKEN)  # pymilvus signed in
    assert "shop.products" in {f"{c.db_name}.{c.name}" for c in listed}
    wrong = auth_config.model_copy(
        update={"milvus": auth_config.milvus.model_copy(update={"password": SecretStr("not-the-password")})}
    )
    engine = Engine(wrong)
    try:
        with pytest.raises(MilvusError) as refused:
            engine.list_collections()
    finally:
        engine.close()
    assert "list databases failed" in str(refused.value) and "\n" not in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_asking_a_running_sandbox_for_auth_is_refused_in_one_line(sandbox):
    proc = run_cli(None, "sandbox", "start", "--dir", str(sandbox.dir), "--auth")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: the sandbox in {sandbox.dir} runs Milvus 2.3.5 with auth off; stop it first or use another --dir"
    )
    assert Sandbox(sandbox.dir).load_state().milvus_pid == sandbox.milvus_pid
