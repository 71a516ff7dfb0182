"""The upstream's current request fields (issue 12): every field is accepted in the upstream's JSON spelling,
and each is carried out, accepted as a hint, or answered "not supported" as api.models.UPSTREAM_FIELDS says.

Units check the table against the models and the planning of filters and restore plans; the rest goes
through the real `milvus-backup server` against the sandbox, checked by what it did to Milvus and the bucket,
and bad inputs by what they did NOT do: no object written, no collection created.
"""

from __future__ import annotations

import uuid

import pytest
from pymilvus import DataType, MilvusClient

from milvus_backup.api.models import (
    OWN_FIELDS,
    UPSTREAM_FIELDS,
    CreateBackupRequest,
    RestoreBackupRequest,
    Support,
    support_table,
)
from milvus_backup.core.backup import BackupRequest, resolve_collections
from milvus_backup.core.errors import InvalidRequest, NotFound
from milvus_backup.core.meta import BackupInfo, Collection, KeyValue, RBACMeta, RoleEntity, Schema, UserInfo
from milvus_backup.core.requests import filter_from_map, parse_filter
from milvus_backup.core.restore import (
    CollectionMapping,
    CollectionOverride,
    DatabaseMapping,
    RestorePlan,
    RestoreRequest,
    SkipParams,
    plan_targets,
)
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows
from tests.test_api import Server, _envelope, _keys, _ok, _s3
from tests.test_requests_records import _FakeMilvus


def _uid() -> str:
    return uuid.uuid4().hex[:8]


# -- the table -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [CreateBackupRequest, RestoreBackupRequest])
def test_every_upstream_field_is_a_field_of_the_body_and_nothing_else_is(model):
    names = {info.alias or attr for attr, info in model.model_fields.items()}
    upstream = set(UPSTREAM_FIELDS[model.__name__])
    assert names == upstream | set(OWN_FIELDS.get(model.__name__, {}))
    for attr, info in model.model_fields.items():  # the docs say what each does, from the same table
        if (info.alias or attr) in upstream:
            support, how = UPSTREAM_FIELDS[model.__name__][info.alias or attr]
            assert info.description == f"[{support}] {how}"


def test_the_closing_note_lists_every_field_once():
    table = support_table()
    rows = table.splitlines()[2:]
    assert len(rows) == sum(len(fields) for fields in UPSTREAM_FIELDS.values())
    assert all(any(f"| {s} |" in row for s in Support) for row in rows)
    assert "| RestoreBackupRequest | `useV2Restore` | hint |" in table
    assert "| RestoreBackupRequest | `truncateBinlogByTs` | not supported |" in table
    assert "| CreateBackupRequest | `strategy` | implemented |" in table


def test_set_fields_are_found_by_support_also_nested():
    body = RestoreBackupRequest.model_validate(
        {
            "backup_name": "b",
            "useV2Restore": True,
            "skipImportDiskQuotaCheck": False,
            "truncateBinlogByTs": True,
            "bucket_name": "",
            "restorePlan": {"mapping": [{"source": "a", "target": "b", "withProp": True}]},
        }
    )
    assert body.given(Support.HINT) == ["useV2Restore", "restorePlan.mapping.withProp"]
    assert body.given(Support.UNSUPPORTED) == ["truncateBinlogByTs"]


# -- filters and plans, without servers ------------------------------------------------------------------


def test_filter_rules_as_the_cli_writes_them():
    assert parse_filter("coll,db1.c2,db1.c3,db2.*,db3.") == {
        "default": ["coll"],
        "db1": ["c2", "c3"],
        "db2": ["*"],
        "db3": [],
    }
    assert parse_filter("db1.a,db1.*") == {"db1": ["*"]}
    for bad in ("", "a-b", "db.*.x", "a.b.c", " , "):
        with pytest.raises(InvalidRequest, match="filter"):
            parse_filter(bad)
    assert filter_from_map({"": ["a"], "db": ["*"]}) == {"default": ["a"], "db": ["*"]}
    with pytest.raises(InvalidRequest, match=r'filter\.db\.colls: "\*"'):
        filter_from_map({"db": ["*", "a"]})
    with pytest.raises(InvalidRequest, match="bad collection name"):
        filter_from_map({"db": ["a/b"]})


def test_a_filter_picks_from_milvus_and_refuses_what_is_not_there():
    milvus = _FakeMilvus({"default": ["a", "b"], "shop": ["p", "q"], "empty": []})

    def pairs(text: str, **fields):
        return resolve_collections(milvus, BackupRequest(filter=parse_filter(text), **fields))

    assert pairs("a,shop.*") == [("default", "a"), ("shop", "p"), ("shop", "q")]
    assert pairs("shop.q,empty.") == [("shop", "q")]
    with pytest.raises(NotFound, match=r"the filter empty\. matches no collection"):
        pairs("empty.")
    with pytest.raises(NotFound, match="database nope of the filter"):
        pairs("nope.*")
    with pytest.raises(NotFound, match=r"collection shop\.x of the filter"):
        pairs("shop.x")
    with pytest.raises(InvalidRequest, match="either filter or collection names"):
        pairs("a", collections=["b"])


def _info() -> BackupInfo:
    def coll(db: str, name: str) -> Collection:
        return Collection(
            db_name=db,
            collection_name=name,
            shards_num=4,
            schema=Schema(name=name, description="old"),
            properties=[KeyValue("collection.ttl.seconds", "60"), KeyValue("keep", "1")],
        )

    return BackupInfo(name="b", collection_backups=[coll("default", "a"), coll("shop", "p"), coll("shop", "q")])


def _targets(**fields) -> list[tuple[str, str]]:
    return [(t.db, t.name) for t in plan_targets(_info(), RestoreRequest("b", **fields))]


def test_a_restore_plan_maps_filters_and_overrides():
    plan = RestorePlan(
        mapping=(
            DatabaseMapping("shop", "shop2", (CollectionMapping("p", "p2", CollectionOverride(2, "new")),)),
            DatabaseMapping("shop", "shop3"),
        ),
        filter={"shop2": ["*"], "shop3": ["q"], "default": ["a"]},
    )
    targets = plan_targets(_info(), RestoreRequest("b", plan=plan, skip_params=SkipParams(("keep",)), max_shard_num=3))
    assert [(t.db, t.name) for t in targets] == [("default", "a"), ("shop2", "p2"), ("shop2", "q"), ("shop3", "q")]
    p2 = targets[1]
    assert (p2.shards_num, p2.schema["description"], p2.properties) == (2, "new", [("collection.ttl.seconds", "60")])
    assert (targets[0].shards_num, targets[0].schema["description"]) == (3, "old")  # maxShardNum caps 4
    # the filter after a suffix matches the new names
    assert _targets(suffix="_r", filter={"shop": ["q_r"]}) == [("shop", "q_r")]


@pytest.mark.parametrize(
    "fields,error,words",
    [
        ({"plan": RestorePlan((DatabaseMapping("shop", ""),))}, InvalidRequest, r"mapping\[0\]: give both"),
        ({"plan": RestorePlan((DatabaseMapping("nope", "x"),))}, NotFound, r"holds no collection of database nope"),
        (
            {"plan": RestorePlan((DatabaseMapping("shop", "x", (CollectionMapping("zz", "y"),)),))},
            NotFound,
            r"colls\[0\]: collection shop\.zz is not in backup b",
        ),
        (
            {"plan": RestorePlan((DatabaseMapping("shop", "x", (CollectionMapping("p", ""),)),))},
            InvalidRequest,
            "give both the source and the target collection",
        ),
        ({"plan": RestorePlan(), "suffix": "_s"}, InvalidRequest, "either restorePlan or a suffix"),
        ({"plan": RestorePlan(filter={"x": ["*"]}), "filter": {"y": ["*"]}}, InvalidRequest, "filter of the targets"),
        ({"plan": RestorePlan(filter={"shop": ["zz"]})}, NotFound, "matches none of the restore's targets"),
        ({"suffix": "_r", "filter": {"shop": ["q"]}}, NotFound, r"after the suffix, renames or plan"),
        ({"plan": RestorePlan((DatabaseMapping("shop", "bad-db"),))}, InvalidRequest, "invalid target name"),
        ({"max_shard_num": -1}, InvalidRequest, "maxShardNum"),
    ],
)
def test_bad_plans_are_refused_with_one_line(fields, error, words):
    with pytest.raises(error, match=words):
        _targets(**fields)


# -- over HTTP, against the sandbox ---------------------------------------------------------------------

integration = pytest.mark.integration


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    srv = Server(sandbox.config_path, tmp_path_factory.mktemp("upstream")).start()
    yield srv
    srv.stop()


def _collections(uri: str) -> set[str]:
    client = MilvusClient(uri=uri)
    try:
        dbs = client.list_databases() if hasattr(client, "list_databases") else ["default"]
    finally:
        client.close()
    found = set()
    for db in dbs:
        c = MilvusClient(uri=uri, db_name=db)
        found |= {f"{db}.{n}" for n in c.list_collections()}
        c.close()
    return found


def _rows(info: dict) -> dict[str, int]:
    return {
        f"{c['db_name']}.{c['collection_name']}": sum(
            s["num_of_rows"] for p in c["partition_backups"] for s in p.get("segment_backups", [])
        )
        for c in info["collection_backups"]
    }


@pytest.fixture(scope="module")
def two_db_backup(server):
    name = f"up_{_uid()}"
    _ok(server.post("create", {"backup_name": name, "filter": {"shop": {"colls": ["*"]}, "": {"colls": ["books"]}}}))
    yield name
    server.call("DELETE", "delete", params={"backup_name": name})


@integration
def test_filter_on_create_backs_up_what_it_names(server, two_db_backup):
    info = _ok(server.get("get_backup", backup_name=two_db_backup, requestId="r-7"))
    assert sorted(_rows(info)) == ["default.books", "shop.products"]
    assert server.get("get_backup", backup_name=two_db_backup, requestId="r-7")["requestId"] == "r-7"


def _tool_log(config) -> str:
    """The tool's own log file (the server writes its job log and notes there, not on its terminal)."""
    with open(config.log.filename, encoding="utf-8") as f:
        return f.read()


@integration
def test_hints_are_accepted_and_logged(sandbox, server, two_db_backup, base_config):
    suffix = f"_h{_uid()}"
    try:
        done = _ok(
            server.post(
                "restore",
                {
                    "backup_name": two_db_backup,
                    "collection_suffix": suffix,
                    "collection_names": ["books"],
                    "useV2Restore": True,
                    "restoreIndex": True,
                    "load": True,
                    "skipImportDiskQuotaCheck": True,
                    "db_collections_after_rename": {"default": [f"books{suffix}"]},
                },
            )
        )
        assert [t["target_collection_name"] for t in done["collection_restore_tasks"]] == [f"books{suffix}"]
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", f"books{suffix}"), demo_collection("books"))
        assert "accepted as hints, no effect here: skipImportDiskQuotaCheck, useV2Restore" in _tool_log(base_config)
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", f"books{suffix}")


BAD = [
    # (path, body, code, words)
    ("create", {"backup_name": "x_bad", "strategy": "fastest"}, 400, "unknown strategy 'fastest'"),
    ("create", {"backup_name": "x_bad", "filter": {"shop": {"colls": []}}}, 404, "matches no collection"),
    ("create", {"backup_name": "x_bad", "filter": {"nope": {"colls": ["*"]}}}, 404, "database nope of the filter"),
    ("create", {"backup_name": "x_bad", "filter": {"shop": {"colz": ["*"]}}}, 400, "unknown field 'filter.shop.colz'"),
    ("create", {"backup_name": "x_bad", "filter": {"shop": ["*"]}}, 400, "filter.shop"),
    (
        "create",
        {"backup_name": "x_bad", "filter": {"": {"colls": ["books"]}}, "collection_names": ["books"]},
        400,
        "either filter or collection names",
    ),
    ("create", {"backup_name": "x_bad", "format": "snapshot"}, 1, "not supported: format snapshot"),
    ("create", {"backup_name": "x_bad", "format": "parquet"}, 400, "unknown format"),
    ("create", {"backup_name": "x_bad", "backup_root_path": "../up"}, 400, "invalid backup root"),
    (
        "create",
        {"backup_name": "x_bad", "backup_root_path": "backup/inner"},
        400,
        "overlaps the configured backup root",
    ),
    ("create", {"backup_name": "x_bad", "backup_root_path": "files"}, 400, "overlaps Milvus's root path"),
    ("create", {"backup_name": "x_bad", "gc_pause_address": "file:///etc"}, 400, "http:// or https://"),
    ("create", {"backup_name": "x_bad", "gc_pause_seconds": -1}, 400, "gc_pause_seconds"),
    (
        "create",
        {
            "backup_name": "x_bad",
            "strategy": "bulk_flush",
            "meta_only": True,
            "force": True,
            "collection_names": ["nope"],
        },
        404,
        "not found",
    ),  # strategy wins: no contradiction
    ("restore", {"backup_name": "B", "truncateBinlogByTs": True}, 1, "not supported: truncateBinlogByTs"),
    (
        "restore",
        {"backup_name": "B", "ezkMapping": {"a": "b"}, "bucket_name": "x"},
        1,
        "not supported: bucket_name, ezkMapping",
    ),
    ("restore", {"backup_name": "B", "path": "../x"}, 400, "invalid backup root"),
    ("restore", {"backup_name": "B", "path": "backup"}, 400, "overlaps the configured backup root"),
    ("restore", {"backup_name": "B", "restorePlan": {"mapping": [{"source": "shop"}]}}, 400, "give both the source"),
    (
        "restore",
        {"backup_name": "B", "restorePlan": {"mapping": [{"source": "zz", "target": "y"}]}},
        404,
        "holds no collection of database zz",
    ),
    (
        "restore",
        {"backup_name": "B", "restorePlan": {"filter": {"shop": {"colls": ["nope"]}}}},
        404,
        "matches none of the restore's targets",
    ),
    ("restore", {"backup_name": "B", "restorePlan": {}, "collection_suffix": "_x"}, 400, "either restorePlan"),
    (
        "restore",
        {
            "backup_name": "B",
            "restorePlan": {
                "mapping": [
                    {
                        "source": "shop",
                        "target": "x",
                        "colls": [{"source": "products", "target": "p", "override": {"shardNum": "two"}}],
                    }
                ]
            },
        },
        400,
        "shardNum",
    ),
    ("restore", {"backup_name": "B", "restorePlan": {"mappings": []}}, 400, "unknown field 'restorePlan.mappings'"),
    ("restore", {"backup_name": "B", "skipParams": {"collectionProperties": "a"}}, 400, "collectionProperties"),
    ("restore", {"backup_name": "B", "db_collections_after_rename": {"shop": ["x"]}}, 404, "matches none"),
    ("restore", {"backup_name": "B", "useV2Restore": "yes"}, 400, "useV2Restore"),
    ("restore", {"backup_name": "B", "collection_name": ["x"]}, 400, "unknown field 'collection_name'"),
]


@integration
@pytest.mark.parametrize("path,body,code,words", BAD, ids=[f"{p} {i}" for i, (p, *_r) in enumerate(BAD)])
def test_bad_fields_get_a_clear_answer_and_change_nothing(sandbox, server, two_db_backup, path, body, code, words):
    body = {k: (two_db_backup if v == "B" else v) for k, v in body.items()}
    before_keys, before_colls = _keys(sandbox, ""), _collections(sandbox.milvus_uri)
    answer = _envelope(server.call("POST", path, json=body))
    assert answer["code"] == code, answer
    assert words in answer["msg"], answer["msg"]
    assert "\n" not in answer["msg"]
    assert _keys(sandbox, "") == before_keys  # nothing written, anywhere in the bucket
    assert _collections(sandbox.milvus_uri) == before_colls  # nothing created


@integration
def test_get_backup_from_another_bucket_or_path_is_not_supported(server, two_db_backup):
    refused = _envelope(server.call("GET", "get_backup", params={"backup_name": two_db_backup, "path": "elsewhere"}))
    assert refused["code"] == 1 and refused["msg"].startswith("not supported: path")
    assert _ok(server.get("get_backup", backup_name=two_db_backup, without_detail="true"))["name"] == two_db_backup


@integration
def test_a_restore_plan_maps_databases_renames_and_overrides(sandbox, server, two_db_backup):
    db = f"plan_{_uid()}"
    uri = sandbox.milvus_uri
    before = _collections(uri)
    plan = {
        "mapping": [
            {
                "source": "shop",
                "target": db,
                "withProp": True,
                "colls": [
                    {"source": "products", "target": "prods", "override": {"shardNum": 3, "description": "by plan"}}
                ],
            },
            {"source": "default", "target": db, "colls": [{"source": "books", "target": "books_p"}]},
        ],
        "filter": {db: {"colls": ["prods", "books_p"]}},
    }
    try:
        body = {"backup_name": two_db_backup, "restorePlan": plan, "restoreIndex": True, "load": True}
        body["useAutoIndex"] = True
        done = _ok(server.post("restore", body))
        assert sorted((t["target_db_name"], t["target_collection_name"]) for t in done["collection_restore_tasks"]) == [
            (db, "books_p"),
            (db, "prods"),
        ]
        assert _collections(uri) - before == {f"{db}.prods", f"{db}.books_p"}
        client = MilvusClient(uri=uri, db_name=db)
        desc = client.describe_collection("prods")
        indexes = [client.describe_index("prods", name) for name in client.list_indexes("prods")]
        client.close()
        assert (desc["num_shards"], desc["description"]) == (3, "by plan")
        assert [i["index_type"] for i in indexes] == ["AUTOINDEX"]  # useAutoIndex: the vector index
        assert [i["metric_type"] for i in indexes] == [demo_collection("products").index["metric_type"]]
        assert_same_rows(fetch_rows(uri, db, "prods"), demo_collection("products"))
        assert_same_rows(fetch_rows(uri, db, "books_p"), demo_collection("books"))
    finally:
        drop_if_exists(uri, db, "prods", "books_p")


def _small_collection(uri: str, name: str, rows: range, **create) -> None:
    client = MilvusClient(uri=uri)
    try:
        if not client.has_collection(name):
            schema = MilvusClient.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
            client.create_collection(name, schema=schema, **create)
        client.insert(name, [{"id": i, "v": [i / 1024, 0.0, 0.0, 1.0]} for i in rows])  # no flush
    finally:
        client.close()


@integration
def test_strategies_decide_what_is_flushed(sandbox, server):
    """force (skip_flush) copies only what Milvus persisted; bulk_flush and serial_flush flush first; meta_only none."""
    uri, coll = sandbox.milvus_uri, f"strat_{_uid()}"
    names = []

    def backup(**fields) -> dict[str, int]:
        names.append(f"{coll}_{len(names)}")
        return _rows(_ok(server.post("create", {"backup_name": names[-1], "collection_names": [coll], **fields})))

    try:
        _small_collection(uri, coll, range(100))
        assert backup(force=True) == {f"default.{coll}": 0}  # the deprecated spelling of skip_flush
        assert backup(strategy="bulk_flush") == {f"default.{coll}": 100}
        _small_collection(uri, coll, range(100, 150))
        assert backup(strategy="skip_flush") == {f"default.{coll}": 100}
        assert backup(strategy="meta_only") == {f"default.{coll}": 0}
        assert backup(strategy="serial_flush") == {f"default.{coll}": 150}
    finally:
        for n in names:
            server.call("DELETE", "delete", params={"backup_name": n})
        drop_if_exists(uri, "default", coll)


@integration
def test_skip_params_and_max_shard_num_shape_the_new_collection(sandbox, server):
    uri, coll, name = sandbox.milvus_uri, f"skip_{_uid()}", f"skip_{_uid()}"
    try:
        _small_collection(uri, coll, range(10), num_shards=2, properties={"collection.ttl.seconds": "3600"})
        _ok(server.post("create", {"backup_name": name, "collection_names": [coll]}))
        common = {"backup_name": name, "maxShardNum": 1}
        _ok(server.post("restore", {**common, "collection_suffix": "_kept"}))
        _ok(
            server.post(
                "restore",
                {
                    **common,
                    "collection_suffix": "_skip",
                    "skipParams": {"collectionProperties": ["collection.ttl.seconds"]},
                },
            )
        )
        client = MilvusClient(uri=uri)
        kept, skipped = client.describe_collection(f"{coll}_kept"), client.describe_collection(f"{coll}_skip")
        client.close()
        assert kept["num_shards"] == skipped["num_shards"] == 1
        assert kept["properties"].get("collection.ttl.seconds") == "3600"
        assert "collection.ttl.seconds" not in skipped["properties"]
    finally:
        server.call("DELETE", "delete", params={"backup_name": name})
        drop_if_exists(uri, "default", coll, f"{coll}_kept", f"{coll}_skip")


@integration
def test_backup_root_path_puts_the_backup_beside_the_others(sandbox, server):
    name, root = f"root_{_uid()}", f"other_{_uid()}"
    try:
        info = _ok(
            server.post("create", {"backup_name": name, "collection_names": ["books"], "backup_root_path": root})
        )
        assert info["name"] == name and list(_rows(info)) == ["default.books"]
        assert f"{root}/{name}/meta/backup_meta.json" in _keys(sandbox, f"{root}/")
        assert not _keys(sandbox, f"backup/{name}/")
        assert name not in [b["name"] for b in _ok(server.get("list"))]  # the configured root's list
        before = _collections(sandbox.milvus_uri)
        missed = server.post("restore", {"backup_name": name, "collection_suffix": "_root"})
        assert missed["code"] == 404 and _collections(sandbox.milvus_uri) == before  # not under the config's root
        done = _ok(
            server.post(
                "restore",
                {"backup_name": name, "path": root, "collection_suffix": "_root", "restoreIndex": True, "load": True},
            )
        )
        assert done["collection_restore_tasks"][0]["target_collection_name"] == "books_root"
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", "books_root"), demo_collection("books"))
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", "books_root")
        for key in _keys(sandbox, f"{root}/"):
            _s3(sandbox).remove_object("a-bucket", key)


@integration
def test_gc_pause_is_asked_for_and_its_absence_in_milvus_2_3_5_logged(sandbox, server, base_config):
    name = f"gc_{_uid()}"
    address = base_config.backup.gc_pause_address
    try:
        job = _ok(
            server.post(
                "create",
                {
                    "backup_name": name,
                    "collection_names": ["books"],
                    "gc_pause_enable": True,
                    "gc_pause_seconds": 30,
                    "gc_pause_address": address,
                },
            )
        )
        assert job["state_code"] == 2
        log = _tool_log(base_config)  # written by the job before it answered
        assert f"Milvus at {address} did not pause its garbage collection" in log, log[-2000:]
    finally:
        server.call("DELETE", "delete", params={"backup_name": name})


@integration
def test_rbac_is_taken_on_create_and_restore(sandbox, server):
    """RBAC itself is backed up and restored by core/rbac.py; here: the field is carried out, not refused."""
    name = f"rbac_{_uid()}"
    try:
        created = server.post("create", {"backup_name": name, "collection_names": ["books"], "rbac": True})
        assert created["code"] == 0, created
        restored = server.post(
            "restore", {"backup_name": name, "rbac": True, "collection_suffix": "_rb", "metaOnly": True}
        )
        assert restored["code"] == 0, restored
    finally:
        server.call("DELETE", "delete", params={"backup_name": name})
        drop_if_exists(sandbox.milvus_uri, "default", "books_rb")


# -- the terminal app's restore dialog offers the same choices ---------------------------------------------


def _dialog_app(info: BackupInfo):
    from textual.app import App

    from milvus_backup.tui.dialogs import RestoreDialog

    class _Host(App[None]):
        def __init__(self) -> None:
            super().__init__()
            self.chosen: list = []

        def on_mount(self) -> None:
            self.push_screen(RestoreDialog(info, info.name, existing=set()), self.chosen.append)

    return _Host()


@pytest.mark.parametrize("with_rbac", [False, True])
def test_the_restore_dialog_filters_the_new_names_and_offers_rbac_when_the_backup_holds_it(with_rbac):
    import asyncio

    from textual.widgets import Button, Checkbox, Input, Static

    info = _info()
    info.rbac_meta = RBACMeta(users=[UserInfo(user="ann")], roles=[RoleEntity(name="reader")]) if with_rbac else None

    async def scenario() -> list:
        app = _dialog_app(info)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            dialog = app.screen
            dialog.query_one("#suffix", Input).value = "_r"
            dialog.query_one("#only", Input).value = "q"  # the old name: after the suffix it matches nothing
            await pilot.pause()
            assert "matches none of the restore's targets" in str(dialog.query_one("#preview", Static).render())
            assert dialog.query_one("#start", Button).disabled
            dialog.query_one("#only", Input).value = "shop.q_r"
            await pilot.pause()
            assert [p.target for p in dialog.preview] == ["shop.q_r"]
            rbac = dialog.query_one("#rbac", Checkbox)
            assert rbac.disabled is not with_rbac
            assert ("1 users, 1 roles" if with_rbac else "none") in str(rbac.label)
            if with_rbac:
                rbac.value = True
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            return app.chosen

    [request] = asyncio.run(scenario())
    assert (request.suffix, request.filter, request.rbac) == ("_r", {"shop": ["q_r"]}, with_rbac)


def test_skip_params_leave_keys_out_of_fields_and_indexes():
    from milvus_backup.core.meta import Field, IndexInfo

    info = _info()
    source = info.collection_backups[0]
    source.schema.fields = [
        Field(field_id=100, name="id", is_primary_key=True, data_type=5),
        Field(field_id=101, name="v", data_type=101, type_params=[KeyValue("dim", "4"), KeyValue("mmap.enabled", "1")]),
    ]
    index = IndexInfo(
        field_name="v", index_name="v_idx", params={"index_type": "IVF_FLAT", "metric_type": "IP", "nlist": "8"}
    )
    skip = SkipParams(field_type_params=("mmap.enabled",), index_params=("nlist",))
    [target] = plan_targets(info, RestoreRequest("b", collections=["a"], skip_params=skip))
    assert [f["type_params"] for f in target.schema["fields"]] == [[], [{"key": "dim", "value": "4"}]]
    assert target.index_params(index) == {"index_type": "IVF_FLAT", "metric_type": "IP"}
    [auto] = plan_targets(info, RestoreRequest("b", collections=["a"], use_auto_index=True))
    assert auto.index_params(index) == {"index_type": "AUTOINDEX", "metric_type": "IP"}
    scalar = IndexInfo(field_name="id", index_name="id_idx", params={"index_type": "STL_SORT"})
    assert auto.index_params(scalar) == {"index_type": "STL_SORT"}  # only vector indexes become AUTOINDEX
