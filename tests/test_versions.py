"""The version guard: unit tests with made-up versions, and the CLI's --allow-untested-milvus on the sandbox."""

from __future__ import annotations

import io
import json

import pytest
from minio import Minio

from milvus_backup.core.paths import BACKUP_META
from milvus_backup.core.versions import (
    META_KEY,
    UntestedMilvus,
    check_backup_source,
    check_restore_target,
    parse_version,
)
from milvus_backup.sandbox.demo import demo_collection
from tests.conftest import assert_same_rows, drop_if_exists, fetch_rows, run_cli
from tests.test_crash import BUCKET


@pytest.mark.parametrize(
    ("text", "want"), [("v2.3.5", (2, 3, 5)), ("2.3.12-dev", (2, 3, 12)), ("v2.5.0-beta", (2, 5, 0)), ("", None)]
)
def test_versions_are_read_from_what_milvus_answers(text, want):
    assert parse_version(text) == want


@pytest.mark.parametrize("version", ["v2.3.0", "v2.3.5", "2.3.99"])
def test_a_proven_milvus_passes_without_a_word(version):
    assert check_backup_source(version, allow_untested=False) == []
    assert check_restore_target(version, "v2.3.0", "b", allow_untested=False) == []


def test_milvus_2_2_is_proven_as_a_backup_source_only():
    assert check_backup_source("v2.2.16", allow_untested=False) == []
    assert check_restore_target("v2.3.5", "v2.2.16", "b", allow_untested=False) == []  # the upgrade path
    with pytest.raises(UntestedMilvus, match=r"restore into Milvus v2\.2\.16.*supported: 2\.3\.x\)"):
        check_restore_target("v2.2.16", "v2.2.16", "b", allow_untested=False)


@pytest.mark.parametrize("version", ["v2.5.4", "v2.4.0", "v3.0.0", "nonsense", ""])
def test_an_untested_milvus_is_refused_in_one_line_naming_it_and_the_range(version):
    for check in (
        lambda allow: check_backup_source(version, allow),
        lambda allow: check_restore_target(version, "v2.3.5", "b", allow),
    ):
        with pytest.raises(UntestedMilvus) as refused:
            check(False)
        line = str(refused.value)
        assert "\n" not in line and "2.3.x" in line and "--allow-untested-milvus" in line
        assert (version or "unknown version") in line
        warnings = check(True)
        assert warnings and all(w.startswith("warning: ") for w in warnings)


def test_a_backup_restores_only_into_the_same_or_a_newer_milvus():
    assert check_restore_target("v2.3.5", "v2.3.5", "b", False) == []
    assert check_restore_target("v2.3.8", "v2.3.5", "b", False) == []
    with pytest.raises(UntestedMilvus, match=r"made on Milvus v2\.3\.9; it restores only into the same or a newer"):
        check_restore_target("v2.3.5", "v2.3.9", "b", False)
    assert "made on Milvus v2.3.9" in check_restore_target("v2.3.5", "v2.3.9", "b", True)[0]


@pytest.mark.integration
def test_the_cli_flag_is_recorded_in_the_meta_and_overrides_the_newer_backup_rule(sandbox):
    name, target = "versions_cli", "books_versions"
    s3 = Minio(sandbox.s3_endpoint, "minioadmin", "minioadmin", secure=False)
    drop_if_exists(sandbox.milvus_uri, "default", target)
    try:
        made = run_cli(sandbox.config_path, "create", "-n", name, "-c", "books", "--allow-untested-milvus")
        assert made.returncode == 0, made.stderr
        full = json.loads(s3.get_object(BUCKET, f"backup/{name}/meta/full_meta.json").read())
        assert full[META_KEY] is True and full["milvus_version"].startswith("v2.3.")
        # Pretend the backup came from a newer 2.3 (same length: sizes still match): into this one is a downgrade.
        version = full["milvus_version"]
        major, minor, patch = parse_version(version) or (0, 0, 0)
        newer_version = version.replace(f"{major}.{minor}.{patch}", f"{major}.{minor}.{'9' * len(str(patch))}", 1)
        assert parse_version(newer_version) > parse_version(version)
        for key in (f"backup/{name}/meta/full_meta.json", f"backup/{name}/meta/{BACKUP_META}"):
            raw = s3.get_object(BUCKET, key).read()
            newer = raw.replace(version.encode(), newer_version.encode())
            s3.put_object(BUCKET, key, io.BytesIO(newer), len(newer))

        args = ("restore", "-n", name, "-s", "_versions", "--restore_index", "--load", "--verify", "quick")
        refused = run_cli(sandbox.config_path, *args)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert "it restores only into the same or a newer Milvus" in refused.stderr
        allowed = run_cli(sandbox.config_path, *args, "--allow-untested-milvus")
        assert allowed.returncode == 0, allowed.stderr
        assert f"warning: backup versions_cli was made on Milvus {newer_version}" in allowed.stderr
        assert_same_rows(fetch_rows(sandbox.milvus_uri, "default", target), demo_collection("books"))
    finally:
        drop_if_exists(sandbox.milvus_uri, "default", target)
        run_cli(sandbox.config_path, "delete", "-n", name)
