"""The tool's settings: `configs/backup.yaml` (the Go milvus-backup's keys), then environment overrides.

`load_config` reads the file, checks every key against one schema table, applies the environment
table on top, lets unset `minio.backup*` keys inherit the Milvus-side value, and returns frozen
dataclasses. Every mistake becomes a one-line ConfigError naming the key path; secret values are
never echoed, never shown in a repr, and come out of `Config.redacted()` as "***".
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from milvus_backup.core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("configs") / "backup.yaml"

STORAGE_TYPES = ("minio", "s3", "local", "aws", "gcp", "ali", "tc", "azure", "gcpnative")
SUPPORTED_STORAGE_TYPES = ("minio", "s3", "local")
S3_STORAGE_TYPES = ("minio", "s3")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "panic", "fatal")
REDACTED = "***"


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    console: bool = True
    filename: str = "logs/backup.log"


@dataclass(frozen=True)
class MilvusConfig:
    address: str = "localhost"
    port: int = 19530
    user: str = ""
    password: str = field(default="", repr=False)
    tls_mode: int = 0  # 0 plain, 1 server TLS, 2 mutual TLS
    ca_cert_path: str = ""
    server_name: str = ""
    mtls_cert_path: str = ""
    mtls_key_path: str = ""

    @property
    def uri(self) -> str:
        scheme = "https" if self.tls_mode > 0 else "http"
        return f"{scheme}://{self.address}:{self.port}"


@dataclass(frozen=True)
class StorageConfig:
    """One object store. For storage_type "local", root_path is a filesystem folder."""

    storage_type: str = "minio"
    address: str = "localhost"
    port: int = 9000
    region: str = ""
    access_key_id: str = "minioadmin"
    secret_access_key: str = field(default="minioadmin", repr=False)
    token: str = field(default="", repr=False)
    use_ssl: bool = False
    use_iam: bool = False
    iam_endpoint: str = ""
    bucket_name: str = "a-bucket"
    root_path: str = "files"

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def is_local(self) -> bool:
        return self.storage_type == "local"


@dataclass(frozen=True)
class BackupSettings:
    copydata: int = 128
    backup_collection: int = 4
    backup_segment: int = 1024
    restore_collection: int = 2
    import_job: int = 768
    keep_temp_files: bool = False
    gc_pause_enable: bool = True
    gc_pause_address: str = "http://localhost:9091"


@dataclass(frozen=True)
class Config:
    log: LogConfig
    milvus: MilvusConfig
    storage: StorageConfig  # the Milvus bucket side
    backup_storage: StorageConfig  # where backups go, after inheritance
    # True when copies must stream through this tool: set in the file, or implied by two storage types
    cross_storage: bool
    multipart_copy_threshold_mib: int
    backup: BackupSettings

    def redacted(self) -> dict[str, Any]:
        """The config as the nested YAML keys a user knows, with every non-empty secret as '***'."""
        values = _flatten(self)
        for path in _SECRET_PATHS:
            if values[path]:
                values[path] = REDACTED
        return _nest(values)


# --------------------------------------------------------------------------- the schema


class _BadValue(ValueError):
    """A value that does not fit its key; the message says what is expected."""


_INHERIT = object()  # default of a minio.backup* key: take the Milvus-side value


@dataclass(frozen=True)
class _Key:
    path: str
    parse: Callable[[Any], Any]
    default: Any
    secret: bool = False
    inherits: str | None = None  # the Milvus-side key a backup* key falls back to


def _parse_str(value: Any) -> str:
    # YAML turns `password: 123456` into an int; the Go tool reads it as text, so do we.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _BadValue("must be a string (quote it in YAML)")


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise _BadValue("must be true or false")


def _parse_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise _BadValue("must be an integer")


def _parse_port(value: Any) -> int:
    try:
        port = _parse_int(value)
    except _BadValue:
        port = 0
    if not 1 <= port <= 65535:
        raise _BadValue("must be a port number, an integer 1-65535")
    return port


def _parse_positive(value: Any) -> int:
    number = _parse_int(value)
    if number < 1:
        raise _BadValue("must be an integer of at least 1")
    return number


def _parse_tls_mode(value: Any) -> int:
    try:
        mode = _parse_int(value)
    except _BadValue:
        mode = -1
    if mode not in (0, 1, 2):
        raise _BadValue("must be 0 (no TLS), 1 (server TLS) or 2 (mutual TLS)")
    return mode


def _parse_host(value: Any) -> str:
    host = _parse_str(value).strip()
    if not host:
        raise _BadValue("must name a host")
    if "://" in host or "/" in host:
        raise _BadValue("must be a bare host name or IP, without scheme or path (TLS is a separate key)")
    return host


def _parse_storage_type(value: Any) -> str:
    kind = _parse_str(value).strip().lower()
    supported = ", ".join(SUPPORTED_STORAGE_TYPES)
    if kind not in STORAGE_TYPES:
        raise _BadValue(f"must be one of {supported}")
    if kind not in SUPPORTED_STORAGE_TYPES:
        raise _BadValue(
            f"must be one of {supported}: this tool does not support the Go tool's {kind!r} "
            "storage (any S3-compatible service works as s3)"
        )
    return kind


def _parse_log_level(value: Any) -> str:
    level = _parse_str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise _BadValue(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


_KEYS: tuple[_Key, ...] = (
    _Key("log.level", _parse_log_level, "info"),
    _Key("log.console", _parse_bool, True),
    _Key("log.file.filename", _parse_str, "logs/backup.log"),
    _Key("milvus.address", _parse_host, "localhost"),
    _Key("milvus.port", _parse_port, 19530),
    _Key("milvus.user", _parse_str, ""),
    _Key("milvus.password", _parse_str, "", secret=True),
    _Key("milvus.tlsMode", _parse_tls_mode, 0),
    _Key("milvus.caCertPath", _parse_str, ""),
    _Key("milvus.serverName", _parse_str, ""),
    _Key("milvus.mtlsCertPath", _parse_str, ""),
    _Key("milvus.mtlsKeyPath", _parse_str, ""),
    _Key("minio.storageType", _parse_storage_type, "minio"),
    _Key("minio.address", _parse_host, "localhost"),
    _Key("minio.port", _parse_port, 9000),
    _Key("minio.region", _parse_str, ""),
    _Key("minio.accessKeyID", _parse_str, "minioadmin"),
    _Key("minio.secretAccessKey", _parse_str, "minioadmin", secret=True),
    _Key("minio.token", _parse_str, "", secret=True),
    _Key("minio.useSSL", _parse_bool, False),
    _Key("minio.useIAM", _parse_bool, False),
    _Key("minio.iamEndpoint", _parse_str, ""),
    _Key("minio.bucketName", _parse_str, "a-bucket"),
    _Key("minio.rootPath", _parse_str, "files"),
    _Key("minio.backupStorageType", _parse_storage_type, _INHERIT, inherits="minio.storageType"),
    _Key("minio.backupAddress", _parse_host, _INHERIT, inherits="minio.address"),
    _Key("minio.backupPort", _parse_port, _INHERIT, inherits="minio.port"),
    _Key("minio.backupRegion", _parse_str, _INHERIT, inherits="minio.region"),
    _Key("minio.backupAccessKeyID", _parse_str, _INHERIT, inherits="minio.accessKeyID"),
    _Key("minio.backupSecretAccessKey", _parse_str, _INHERIT, secret=True, inherits="minio.secretAccessKey"),
    _Key("minio.backupToken", _parse_str, _INHERIT, secret=True, inherits="minio.token"),
    _Key("minio.backupUseSSL", _parse_bool, _INHERIT, inherits="minio.useSSL"),
    _Key("minio.backupUseIAM", _parse_bool, _INHERIT, inherits="minio.useIAM"),
    _Key("minio.backupIamEndpoint", _parse_str, _INHERIT, inherits="minio.iamEndpoint"),
    _Key("minio.backupBucketName", _parse_str, _INHERIT, inherits="minio.bucketName"),
    _Key("minio.backupRootPath", _parse_str, "backup"),
    _Key("minio.crossStorage", _parse_bool, False),
    _Key("minio.multipartCopyThresholdMiB", _parse_positive, 500),
    _Key("backup.parallelism.copydata", _parse_positive, 128),
    _Key("backup.parallelism.backupCollection", _parse_positive, 4),
    _Key("backup.parallelism.backupSegment", _parse_positive, 1024),
    _Key("backup.parallelism.restoreCollection", _parse_positive, 2),
    _Key("backup.parallelism.importJob", _parse_positive, 768),
    _Key("backup.keepTempFiles", _parse_bool, False),
    _Key("backup.gcPause.enable", _parse_bool, True),
    _Key("backup.gcPause.address", _parse_str, "http://localhost:9091"),
)
_BY_PATH = {key.path: key for key in _KEYS}
_SECRET_PATHS = tuple(key.path for key in _KEYS if key.secret)
_SECTIONS = frozenset(".".join(key.path.split(".")[:i]) for key in _KEYS for i in range(1, key.path.count(".") + 1))
# Keys of the Go tool's config that mean nothing here. Accepted (its example file must load) and ignored.
_IGNORED = frozenset(
    {
        "cloud",
        "milvus.rpcChannelName",
        "milvus.etcd",
        "minio.gcpCredentialJSON",
        "minio.backupGcpCredentialJSON",
        "minio.cloudProvider",
    }
)

# Environment variable -> key path. Empty variables are ignored, as the Go tool does. When two names
# for one key are both set, the one listed first wins (this project's names before the Go tool's).
ENV_OVERRIDES: tuple[tuple[str, str], ...] = (
    ("MILVUS_ADDRESS", "milvus.address"),
    ("MILVUS_PORT", "milvus.port"),
    ("MILVUS_USER", "milvus.user"),
    ("MILVUS_PASSWORD", "milvus.password"),
    ("MILVUS_TLS_MODE", "milvus.tlsMode"),
    ("MILVUS_CA_CERT_PATH", "milvus.caCertPath"),
    ("MILVUS_SERVER_NAME", "milvus.serverName"),
    ("MILVUS_MTLS_CERT_PATH", "milvus.mtlsCertPath"),
    ("MILVUS_MTLS_KEY_PATH", "milvus.mtlsKeyPath"),
    ("MINIO_ADDRESS", "minio.address"),
    ("MINIO_PORT", "minio.port"),
    ("MINIO_REGION", "minio.region"),
    ("MINIO_ACCESS_KEY", "minio.accessKeyID"),
    ("MINIO_SECRET_KEY", "minio.secretAccessKey"),
    ("MINIO_TOKEN", "minio.token"),
    ("MINIO_USE_SSL", "minio.useSSL"),
    ("MINIO_USE_IAM", "minio.useIAM"),
    ("MINIO_IAM_ENDPOINT", "minio.iamEndpoint"),
    ("MINIO_BUCKET_NAME", "minio.bucketName"),
    ("MINIO_ROOT_PATH", "minio.rootPath"),
    ("BACKUP_STORAGE_TYPE", "minio.backupStorageType"),
    ("BACKUP_ADDRESS", "minio.backupAddress"),
    ("BACKUP_PORT", "minio.backupPort"),
    ("BACKUP_ACCESS_KEY", "minio.backupAccessKeyID"),
    ("BACKUP_SECRET_KEY", "minio.backupSecretAccessKey"),
    ("BACKUP_BUCKET_NAME", "minio.backupBucketName"),
    ("BACKUP_ROOT_PATH", "minio.backupRootPath"),
    # The Go tool's names for the same keys, so its operators' environments keep working.
    ("MINIO_BACKUP_ADDRESS", "minio.backupAddress"),
    ("MINIO_BACKUP_PORT", "minio.backupPort"),
    ("MINIO_BACKUP_REGION", "minio.backupRegion"),
    ("MINIO_BACKUP_ACCESS_KEY", "minio.backupAccessKeyID"),
    ("MINIO_BACKUP_SECRET_KEY", "minio.backupSecretAccessKey"),
    ("MINIO_BACKUP_TOKEN", "minio.backupToken"),
    ("MINIO_BACKUP_USE_SSL", "minio.backupUseSSL"),
    ("MINIO_BACKUP_USE_IAM", "minio.backupUseIAM"),
    ("MINIO_BACKUP_IAM_ENDPOINT", "minio.backupIamEndpoint"),
    ("MINIO_BACKUP_BUCKET_NAME", "minio.backupBucketName"),
    ("MINIO_BACKUP_ROOT_PATH", "minio.backupRootPath"),
    ("BACKUP_PARALLELISM_COPYDATA", "backup.parallelism.copydata"),
    ("BACKUP_PARALLELISM_BACKUP_COLLECTION", "backup.parallelism.backupCollection"),
    ("BACKUP_PARALLELISM_RESTORE_COLLECTION", "backup.parallelism.restoreCollection"),
    ("BACKUP_KEEP_TEMP_FILES", "backup.keepTempFiles"),
    ("BACKUP_GC_PAUSE_ENABLE", "backup.gcPause.enable"),
    ("BACKUP_GC_PAUSE_ADDRESS", "backup.gcPause.address"),
)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file (or the built-in defaults), apply environment overrides, validate.

    `path` None means `configs/backup.yaml` under the working directory when it exists, else the
    defaults alone. `env` None means `os.environ`. Raises ConfigError with one line on any mistake.
    """
    env = os.environ if env is None else env
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    values: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
        for key_path, raw_value in _walk(raw, "", source):
            values[key_path] = _parse(key_path, raw_value, f"in {source}")
    values.update(_from_env(env))
    return _build(_resolve(values))


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {_one_line(str(exc))}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error in {path}{where}: {_one_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error in {path}: {_one_line(str(exc))}") from None


def _walk(node: Any, section: str, source: str):
    """Yield (canonical key path, raw value) for every leaf; reject keys the schema does not know."""
    if node is None:
        return
    if not isinstance(node, dict):
        what = f"config key {section}" if section else "the config file"
        raise ConfigError(f"{what} must be a mapping of keys in {source}")
    for name, value in node.items():
        written = f"{section}.{name}" if section else str(name)
        key_path = _canonical(written)
        if key_path is None:
            raise ConfigError(f"unknown config key {written}{_suggestion(written)} in {source}")
        if key_path in _IGNORED:
            log.debug("config key %s is not used by this tool; ignored", key_path)
        elif key_path in _SECTIONS:
            yield from _walk(value, key_path, source)
        elif isinstance(value, dict):
            raise ConfigError(f"config key {key_path} takes a value, not a section, in {source}")
        elif value is not None:  # `key:` with no value leaves the default (or the inherited value)
            yield key_path, value


def _canonical(written: str) -> str | None:
    """The schema's spelling of a key path; keys match case-insensitively, as in the Go tool (viper)."""
    lowered = written.lower()
    for known in (*_BY_PATH, *_SECTIONS, *_IGNORED):
        if known.lower() == lowered:
            return known
    for ignored in _IGNORED:  # anything below an ignored section, e.g. milvus.etcd.endpoints
        if lowered.startswith(ignored.lower() + "."):
            return ignored
    return None


def _suggestion(written: str) -> str:
    candidates = [*_BY_PATH, *_SECTIONS]
    match = difflib.get_close_matches(written, candidates, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in candidates}
        found = difflib.get_close_matches(written.lower(), list(lowered), n=1, cutoff=0.6)
        match = [lowered[found[0]]] if found else []
    return f" (did you mean {match[0]}?)" if match else ""


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, key_path in ENV_OVERRIDES:
        raw = env.get(name, "")
        if raw != "" and key_path not in values:
            values[key_path] = _parse(key_path, raw, f"from environment variable {name}")
    return values


def _parse(key_path: str, raw: Any, where: str) -> Any:
    key = _BY_PATH[key_path]
    try:
        return key.parse(raw)
    except _BadValue as exc:
        shown = "(value hidden)" if key.secret else _show(raw)
        raise ConfigError(f"invalid value {shown} for config key {key_path} {where}: {exc}") from None


def _resolve(values: dict[str, Any]) -> dict[str, Any]:
    """Every key with a value: given, else inherited from the Milvus side, else the default."""
    resolved: dict[str, Any] = {}
    for key in _KEYS:
        if key.path in values:
            resolved[key.path] = values[key.path]
        elif key.default is _INHERIT:
            resolved[key.path] = resolved[key.inherits]  # the Milvus-side keys come first in _KEYS
        else:
            resolved[key.path] = key.default
    return resolved


def _build(v: dict[str, Any]) -> Config:
    storage = StorageConfig(
        storage_type=v["minio.storageType"],
        address=v["minio.address"],
        port=v["minio.port"],
        region=v["minio.region"],
        access_key_id=v["minio.accessKeyID"],
        secret_access_key=v["minio.secretAccessKey"],
        token=v["minio.token"],
        use_ssl=v["minio.useSSL"],
        use_iam=v["minio.useIAM"],
        iam_endpoint=v["minio.iamEndpoint"],
        bucket_name=v["minio.bucketName"],
        root_path=v["minio.rootPath"],
    )
    backup_storage = StorageConfig(
        storage_type=v["minio.backupStorageType"],
        address=v["minio.backupAddress"],
        port=v["minio.backupPort"],
        region=v["minio.backupRegion"],
        access_key_id=v["minio.backupAccessKeyID"],
        secret_access_key=v["minio.backupSecretAccessKey"],
        token=v["minio.backupToken"],
        use_ssl=v["minio.backupUseSSL"],
        use_iam=v["minio.backupUseIAM"],
        iam_endpoint=v["minio.backupIamEndpoint"],
        bucket_name=v["minio.backupBucketName"],
        root_path=v["minio.backupRootPath"],
    )
    _check_storage(storage, "minio.storageType", "minio.bucketName", "minio.rootPath")
    _check_storage(backup_storage, "minio.backupStorageType", "minio.backupBucketName", "minio.backupRootPath")
    return Config(
        log=LogConfig(level=v["log.level"], console=v["log.console"], filename=v["log.file.filename"]),
        milvus=MilvusConfig(
            address=v["milvus.address"],
            port=v["milvus.port"],
            user=v["milvus.user"],
            password=v["milvus.password"],
            tls_mode=v["milvus.tlsMode"],
            ca_cert_path=v["milvus.caCertPath"],
            server_name=v["milvus.serverName"],
            mtls_cert_path=v["milvus.mtlsCertPath"],
            mtls_key_path=v["milvus.mtlsKeyPath"],
        ),
        storage=storage,
        backup_storage=backup_storage,
        # As in the Go tool: two different storage types can only be bridged by streaming.
        cross_storage=v["minio.crossStorage"] or storage.storage_type != backup_storage.storage_type,
        multipart_copy_threshold_mib=v["minio.multipartCopyThresholdMiB"],
        backup=BackupSettings(
            copydata=v["backup.parallelism.copydata"],
            backup_collection=v["backup.parallelism.backupCollection"],
            backup_segment=v["backup.parallelism.backupSegment"],
            restore_collection=v["backup.parallelism.restoreCollection"],
            import_job=v["backup.parallelism.importJob"],
            keep_temp_files=v["backup.keepTempFiles"],
            gc_pause_enable=v["backup.gcPause.enable"],
            gc_pause_address=v["backup.gcPause.address"],
        ),
    )


def _check_storage(cfg: StorageConfig, type_key: str, bucket_key: str, root_key: str) -> None:
    """Checks that need two keys at once: what a storage type requires of the others."""
    if cfg.is_local and not cfg.root_path.strip():
        raise ConfigError(f"config key {root_key} must name a folder when {type_key} is local")
    if not cfg.is_local and not cfg.bucket_name.strip():
        raise ConfigError(f"config key {bucket_key} must name a bucket when {type_key} is {cfg.storage_type}")


# --------------------------------------------------------------------------- helpers


def _flatten(cfg: Config) -> dict[str, Any]:
    """Config -> {key path: value}, with the backup* keys as resolved."""
    s, b, m, bk = cfg.storage, cfg.backup_storage, cfg.milvus, cfg.backup
    return {
        "log.level": cfg.log.level,
        "log.console": cfg.log.console,
        "log.file.filename": cfg.log.filename,
        "milvus.address": m.address,
        "milvus.port": m.port,
        "milvus.user": m.user,
        "milvus.password": m.password,
        "milvus.tlsMode": m.tls_mode,
        "milvus.caCertPath": m.ca_cert_path,
        "milvus.serverName": m.server_name,
        "milvus.mtlsCertPath": m.mtls_cert_path,
        "milvus.mtlsKeyPath": m.mtls_key_path,
        "minio.storageType": s.storage_type,
        "minio.address": s.address,
        "minio.port": s.port,
        "minio.region": s.region,
        "minio.accessKeyID": s.access_key_id,
        "minio.secretAccessKey": s.secret_access_key,
        "minio.token": s.token,
        "minio.useSSL": s.use_ssl,
        "minio.useIAM": s.use_iam,
        "minio.iamEndpoint": s.iam_endpoint,
        "minio.bucketName": s.bucket_name,
        "minio.rootPath": s.root_path,
        "minio.backupStorageType": b.storage_type,
        "minio.backupAddress": b.address,
        "minio.backupPort": b.port,
        "minio.backupRegion": b.region,
        "minio.backupAccessKeyID": b.access_key_id,
        "minio.backupSecretAccessKey": b.secret_access_key,
        "minio.backupToken": b.token,
        "minio.backupUseSSL": b.use_ssl,
        "minio.backupUseIAM": b.use_iam,
        "minio.backupIamEndpoint": b.iam_endpoint,
        "minio.backupBucketName": b.bucket_name,
        "minio.backupRootPath": b.root_path,
        "minio.crossStorage": cfg.cross_storage,
        "minio.multipartCopyThresholdMiB": cfg.multipart_copy_threshold_mib,
        "backup.parallelism.copydata": bk.copydata,
        "backup.parallelism.backupCollection": bk.backup_collection,
        "backup.parallelism.backupSegment": bk.backup_segment,
        "backup.parallelism.restoreCollection": bk.restore_collection,
        "backup.parallelism.importJob": bk.import_job,
        "backup.keepTempFiles": bk.keep_temp_files,
        "backup.gcPause.enable": bk.gc_pause_enable,
        "backup.gcPause.address": bk.gc_pause_address,
    }


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key_path, value in flat.items():
        *sections, leaf = key_path.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return nested


def _show(value: Any) -> str:
    text = _one_line(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
