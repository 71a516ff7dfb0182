"""Config loading: defaults, the file, backup* inheritance, environment overrides, one-line errors, secrets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from milvus_backup.core.config import ENV_OVERRIDES, Config, MilvusConfig, StorageConfig, load_config
from milvus_backup.core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "configs" / "backup.yaml"
UPSTREAM = Path("/work/shared/reference/upstream-backup.yaml")
SECRET = "s3cr3t-Value-XYZ"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "backup.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def config_error(path: Path | None = None, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


# --------------------------------------------------------------------------- defaults


def test_defaults_match_interfaces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/backup.yaml here: built-in defaults
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cfg = load_config(env={})
    assert (cfg.milvus.address, cfg.milvus.port, cfg.milvus.uri) == ("localhost", 19530, "http://localhost:19530")
    s = cfg.storage
    assert (s.storage_type, s.address, s.port, s.endpoint) == ("minio", "localhost", 9000, "localhost:9000")
    assert (s.access_key_id, s.secret_access_key.get_secret_value()) == ("minioadmin", "minioadmin")
    assert (s.bucket_name, s.root_path, s.use_ssl, s.region) == ("a-bucket", "files", False, "")
    assert s.token.get_secret_value() == ""
    b = cfg.backup_storage
    assert (b.storage_type, b.endpoint, b.bucket_name, b.root_path) == ("minio", "localhost:9000", "a-bucket", "backup")
    assert (b.access_key_id, b.secret_access_key.get_secret_value()) == ("minioadmin", "minioadmin")
    assert cfg.backup.copydata == 128
    assert (
        cfg.backup.backup_collection,
        cfg.backup.backup_segment,
        cfg.backup.restore_collection,
        cfg.backup.import_job,
    ) == (4, 1024, 2, 768)
    assert (cfg.backup.keep_temp_files, cfg.backup.gc_pause_enable) == (False, True)
    assert cfg.backup.gc_pause_address == "http://localhost:9091"
    assert (cfg.cross_storage, cfg.multipart_copy_threshold_mib) == (False, 500)
    log_file = str(tmp_path / "state" / "milvus-backup" / "backup.log")
    assert (cfg.log.level, cfg.log.console, cfg.log.filename) == ("info", True, log_file)


def test_default_log_file_is_per_user_state_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    home_default = str(tmp_path / "home" / ".local" / "state" / "milvus-backup" / "backup.log")
    assert load_config(env={}).log.filename == home_default
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # XDG: a relative value is invalid and ignored
    assert load_config(env={}).log.filename == home_default
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert load_config(env={}).log.filename == str(tmp_path / "xdg" / "milvus-backup" / "backup.log")
    # the shipped file leaves the default alone; a filename given in a file is kept as given
    assert load_config(SHIPPED, env={}).log.filename == str(tmp_path / "xdg" / "milvus-backup" / "backup.log")
    given = write(tmp_path, "log:\n  file:\n    filename: logs/backup.log\n")
    assert load_config(given, env={}).log.filename == "logs/backup.log"
    assert load_config(write(tmp_path, "log:\n  file:\n    filename: ''\n"), env={}).log.filename == ""


def test_shipped_file_equals_builtin_defaults(tmp_path, monkeypatch):
    from_file = load_config(SHIPPED, env={})
    monkeypatch.chdir(tmp_path)
    assert from_file == load_config(env={})


def test_default_path_is_configs_backup_yaml_under_cwd(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "backup.yaml").write_text("milvus:\n  port: 29530\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).milvus.port == 29530


def test_upstream_example_config_loads():
    if not UPSTREAM.exists():
        pytest.skip("reference file not present")
    cfg = load_config(UPSTREAM, env={})  # cloud, milvus.etcd, gcpCredentialJSON...: accepted and ignored
    assert cfg.milvus.user == "root" and cfg.milvus.password.get_secret_value() == "Milvus"
    assert cfg.backup_storage.root_path == "backup" and cfg.storage.bucket_name == "a-bucket"


# --------------------------------------------------------------------------- file values and inheritance


def test_file_values(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
        log:
          level: debug
          file:
            filename: /var/log/x.log
        milvus:
          address: milvus.example
          port: 29530
          user: admin
          password: pw
          tlsMode: 1
        minio:
          address: 10.0.0.5
          port: 9100
          bucketName: milvus-bucket
          rootPath: data
          useSSL: true
          multipartCopyThresholdMiB: 64
        backup:
          parallelism:
            copydata: 16
            importJob: 3
          keepTempFiles: true
          gcPause:
            enable: false
    """,
        ),
        env={},
    )
    assert cfg.log.level == "debug" and cfg.log.filename == "/var/log/x.log"
    assert cfg.milvus.uri == "https://milvus.example:29530"
    assert (cfg.milvus.user, cfg.milvus.password.get_secret_value(), cfg.milvus.tls_mode) == ("admin", "pw", 1)
    assert cfg.storage.endpoint == "10.0.0.5:9100" and cfg.storage.use_ssl is True
    assert (cfg.storage.bucket_name, cfg.storage.root_path) == ("milvus-bucket", "data")
    assert cfg.multipart_copy_threshold_mib == 64
    assert (cfg.backup.copydata, cfg.backup.import_job, cfg.backup.backup_collection) == (16, 3, 4)
    assert cfg.backup.keep_temp_files is True and cfg.backup.gc_pause_enable is False


def test_unset_backup_keys_inherit_the_milvus_side(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
        minio:
          storageType: s3
          address: s3.example
          port: 443
          region: eu-west-1
          accessKeyID: AK
          secretAccessKey: SK
          token: TK
          useSSL: true
          bucketName: milvus-bucket
          rootPath: files
          backupBucketName: backups
          backupAddress:
    """,
        ),
        env={},
    )
    b = cfg.backup_storage
    assert (b.storage_type, b.address, b.port, b.region) == ("s3", "s3.example", 443, "eu-west-1")
    secrets = (b.secret_access_key.get_secret_value(), b.token.get_secret_value())
    assert (b.access_key_id, *secrets, b.use_ssl) == ("AK", "SK", "TK", True)
    assert (b.bucket_name, b.root_path) == ("backups", "backup")
    assert cfg.storage.bucket_name == "milvus-bucket"
    assert cfg.cross_storage is False


def test_backup_keys_override_and_local_type_implies_cross_storage(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            f"""
        minio:
          backupStorageType: local
          backupRootPath: {tmp_path / "backups"}
    """,
        ),
        env={},
    )
    assert cfg.backup_storage.storage_type == "local" and cfg.backup_storage.is_local
    assert cfg.backup_storage.root_path == str(tmp_path / "backups")
    assert cfg.cross_storage is True  # two different storage types can only be bridged by streaming


def test_keys_match_case_insensitively_like_the_go_tool(tmp_path):
    cfg = load_config(write(tmp_path, "minio:\n  backupaccesskeyid: other\n  BUCKETNAME: bkt\n"), env={})
    assert cfg.backup_storage.access_key_id == "other" and cfg.storage.bucket_name == "bkt"


def test_empty_file_and_empty_sections_mean_defaults(tmp_path):
    assert load_config(write(tmp_path, ""), env={}).milvus.port == 19530
    assert load_config(write(tmp_path, "minio:\nbackup:\n"), env={}).storage.port == 9000


# --------------------------------------------------------------------------- environment


def test_env_overrides_win_over_the_file(tmp_path):
    path = write(
        tmp_path,
        """
        milvus:
          address: from-file
          port: 1111
        minio:
          accessKeyID: file-ak
          backupBucketName: file-bucket
    """,
    )
    cfg = load_config(
        path,
        env={
            "MILVUS_ADDRESS": "from-env",
            "MILVUS_PORT": "2222",
            "MILVUS_PASSWORD": "envpw",
            "MINIO_ACCESS_KEY": "env-ak",
            "MINIO_SECRET_KEY": "env-sk",
            "MINIO_USE_SSL": "true",
            "BACKUP_BUCKET_NAME": "env-bucket",
            "BACKUP_ROOT_PATH": "bk",
            "BACKUP_PORT": "9999",
        },
    )
    assert (cfg.milvus.address, cfg.milvus.port, cfg.milvus.password.get_secret_value()) == ("from-env", 2222, "envpw")
    s = cfg.storage
    assert (s.access_key_id, s.secret_access_key.get_secret_value(), s.use_ssl) == ("env-ak", "env-sk", True)
    b = cfg.backup_storage
    # backup* keys not set anywhere still inherit the (overridden) Milvus-side values
    assert (b.access_key_id, b.secret_access_key.get_secret_value(), b.use_ssl) == ("env-ak", "env-sk", True)
    assert (b.bucket_name, b.root_path, b.port) == ("env-bucket", "bk", 9999)


def test_every_documented_env_var_is_in_the_table():
    names = {name for name, _ in ENV_OVERRIDES}
    assert {
        "MILVUS_ADDRESS",
        "MILVUS_PORT",
        "MILVUS_USER",
        "MILVUS_PASSWORD",
        "MINIO_ADDRESS",
        "MINIO_PORT",
        "MINIO_ACCESS_KEY",
        "MINIO_SECRET_KEY",
        "MINIO_BUCKET_NAME",
        "MINIO_ROOT_PATH",
        "MINIO_USE_SSL",
        "BACKUP_STORAGE_TYPE",
        "BACKUP_ADDRESS",
        "BACKUP_PORT",
        "BACKUP_ACCESS_KEY",
        "BACKUP_SECRET_KEY",
        "BACKUP_BUCKET_NAME",
        "BACKUP_ROOT_PATH",
    } <= names


def _sample(key_path: str) -> tuple[str, object]:
    """An environment value for a key, and what the config should then hold."""
    leaf = key_path.rsplit(".", 1)[1].lower()
    if leaf.endswith("port"):
        return "4321", 4321
    if leaf.endswith(("usessl", "useiam", "keeptempfiles", "enable", "allowuntestedmilvus")):
        return "true", True
    if leaf.endswith("storagetype"):
        return "s3", "s3"
    if leaf == "tlsmode":
        return "2", 2
    if key_path.startswith("backup.parallelism"):
        return "7", 7
    return "v1", "v1"


def test_env_table_reaches_every_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, key_path in ENV_OVERRIDES:
        raw, expected = _sample(key_path)
        flat: dict = {}
        _flatten_into(flat, "", load_config(env={name: raw}).redacted())
        shown = flat[key_path]
        assert shown == expected or (
            key_path.lower().endswith(("password", "secretaccesskey", "token")) and shown == "***"
        ), (name, key_path, shown)


def _flatten_into(flat: dict, prefix: str, node) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten_into(flat, f"{prefix}.{key}" if prefix else key, value)
    else:
        flat[prefix] = node


def test_empty_env_vars_are_ignored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        load_config(env={"MILVUS_PORT": "", "MINIO_SECRET_KEY": ""}).storage.secret_access_key.get_secret_value()
        == "minioadmin"
    )


def test_project_env_name_wins_over_go_tool_alias(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={"MINIO_BACKUP_BUCKET_NAME": "alias", "BACKUP_BUCKET_NAME": "ours"})
    assert cfg.backup_storage.bucket_name == "ours"
    assert load_config(env={"MINIO_BACKUP_BUCKET_NAME": "alias"}).backup_storage.bucket_name == "alias"


def test_load_config_reads_os_environ_when_env_is_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MILVUS_PORT", "12345")
    assert load_config().milvus.port == 12345
    assert load_config(env={}).milvus.port == 19530  # a mapping given, even empty, replaces os.environ


# --------------------------------------------------------------------------- errors: one line, naming the key


def test_unknown_key_suggests_the_right_one(tmp_path):
    path = write(tmp_path, "minio:\n  bakupPort: 9000\n")
    assert config_error(path) == f"unknown config key minio.bakupPort (did you mean minio.backupPort?) in {path}"


def test_unknown_section(tmp_path):
    message = config_error(write(tmp_path, "mlivus:\n  port: 1\n"))
    assert "unknown config key mlivus" in message and "milvus" in message


def test_unknown_nested_key(tmp_path):
    assert "backup.parallelism.copyData2" in config_error(
        write(
            tmp_path,
            """
        backup:
          parallelism:
            copyData2: 3
    """,
        )
    )


@pytest.mark.parametrize(
    "text, key, shown",
    [
        ("milvus:\n  port: abc\n", "milvus.port", "'abc'"),
        ("milvus:\n  port: 70000\n", "milvus.port", "70000"),
        ("minio:\n  port: 0\n", "minio.port", "0"),
        ("minio:\n  backupPort: true\n", "minio.backupPort", "True"),
        ("minio:\n  port: 9000.5\n", "minio.port", "9000.5"),
        ("backup:\n  parallelism:\n    copydata: 0\n", "backup.parallelism.copydata", "0"),
        ("backup:\n  parallelism:\n    importJob: -2\n", "backup.parallelism.importJob", "-2"),
        ("minio:\n  storageType: ftp\n", "minio.storageType", "'ftp'"),
        ("minio:\n  useSSL: maybe\n", "minio.useSSL", "'maybe'"),
        ("milvus:\n  tlsMode: 3\n", "milvus.tlsMode", "3"),
        ("log:\n  level: loud\n", "log.level", "'loud'"),
        ("minio:\n  address: http://host\n", "minio.address", "'http://host'"),
        ("minio:\n  bucketName: [a, b]\n", "minio.bucketName", "['a', 'b']"),
    ],
)
def test_bad_values_name_key_and_value(tmp_path, text, key, shown):
    message = config_error(write(tmp_path, text))
    assert key in message and shown in message, message


@pytest.mark.parametrize("kind", ["aws", "gcp", "ali", "tc", "azure"])
def test_storage_types_we_do_not_support_say_so(tmp_path, kind):
    message = config_error(write(tmp_path, f"minio:\n  backupStorageType: {kind}\n"))
    assert "minio.backupStorageType" in message and "not support" in message and kind in message


def test_section_given_a_value_and_key_given_a_section(tmp_path):
    assert "minio" in config_error(write(tmp_path, "minio: 5\n"))
    assert "milvus.port" in config_error(write(tmp_path, "milvus:\n  port:\n    x: 1\n"))


def test_local_storage_needs_a_folder_and_s3_a_bucket(tmp_path):
    assert "minio.backupRootPath" in config_error(
        write(tmp_path, "minio:\n  backupStorageType: local\n  backupRootPath: ''\n")
    )
    assert "minio.bucketName" in config_error(write(tmp_path, "minio:\n  bucketName: ''\n"))


def test_bad_env_value_names_variable_and_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = config_error(env={"BACKUP_PORT": "http"})
    assert "BACKUP_PORT" in message and "minio.backupPort" in message and "'http'" in message


def test_missing_file_given_explicitly(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert config_error(missing) == f"config file not found: {missing}"


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    message = config_error(write(tmp_path, "milvus:\n  port: 1\n  address: [oops\nminio:\n  port: 2\n"))
    assert str(tmp_path / "backup.yaml") in message and "line " in message and "YAML" in message


def test_top_level_must_be_a_mapping(tmp_path):
    assert "mapping" in config_error(write(tmp_path, "- a\n- b\n"))


# --------------------------------------------------------------------------- secrets


def test_secret_values_are_never_echoed_in_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for section, key in (
        ("minio", "secretAccessKey"),
        ("minio", "backupSecretAccessKey"),
        ("minio", "token"),
        ("minio", "backupToken"),
        ("milvus", "password"),
    ):
        message = config_error(write(tmp_path, f"{section}:\n  {key}: [{SECRET}]\n"))
        assert SECRET not in message and "hidden" in message and f"{section}.{key}" in message
    assert SECRET not in config_error(write(tmp_path, f"milvus:\n  password: {{x: {SECRET}}}\n"))


def test_secrets_not_in_repr_or_str(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            f"""
        milvus:
          password: {SECRET}1
        minio:
          secretAccessKey: {SECRET}2
          token: {SECRET}3
          backupSecretAccessKey: {SECRET}4
          backupToken: {SECRET}5
    """,
        ),
        env={},
    )
    assert cfg.milvus.password.get_secret_value() == f"{SECRET}1"
    assert cfg.backup_storage.token.get_secret_value() == f"{SECRET}5"
    for text in (repr(cfg), str(cfg), repr(cfg.storage), repr(cfg.backup_storage), repr(cfg.milvus)):
        assert SECRET not in text


def test_models_built_by_keyword_take_plain_strings_and_keep_secrets_hidden():
    storage = StorageConfig(address="127.0.0.1", port="9100", secret_access_key=SECRET, token=SECRET)
    assert isinstance(storage.secret_access_key, SecretStr) and storage.secret_access_key.get_secret_value() == SECRET
    assert storage.port == 9100 and SECRET not in repr(storage) and SECRET not in str(storage)
    assert MilvusConfig(password=SECRET).password.get_secret_value() == SECRET
    with pytest.raises(ValidationError) as info:
        StorageConfig(secret_access_key=[SECRET], port=0)
    assert SECRET not in str(info.value) and "port" in str(info.value)


def test_redacted_hides_every_non_empty_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cfg = load_config(
        write(
            tmp_path,
            f"""
        milvus:
          password: {SECRET}
        minio:
          secretAccessKey: {SECRET}
          token: {SECRET}
          backupToken: ""
    """,
        ),
        env={"BACKUP_SECRET_KEY": SECRET},
    )
    data = cfg.redacted()
    assert SECRET not in repr(data)
    assert data["milvus"]["password"] == "***"
    assert data["minio"]["secretAccessKey"] == "***" and data["minio"]["token"] == "***"
    assert data["minio"]["backupSecretAccessKey"] == "***"
    assert data["minio"]["backupToken"] == ""  # empty stays empty: nothing to hide
    # non-secrets are plain data with the YAML key names
    assert data["minio"]["backupRootPath"] == "backup" and data["backup"]["parallelism"]["copydata"] == 128
    assert data["log"]["file"]["filename"] == str(tmp_path / "state" / "milvus-backup" / "backup.log")


def test_config_is_frozen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg: Config = load_config(env={})
    with pytest.raises(AttributeError):
        cfg.milvus.port = 1  # type: ignore[misc]
