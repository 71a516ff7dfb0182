"""The tool's settings: `configs/backup.yaml` (the Go milvus-backup's keys), then environment overrides.

Each setting is declared once, as a field of the frozen models below: its type checks the value (a
secret is a SecretStr, kept out of every repr, str, error and log) and `_key(...)` gives its YAML key
path, default and environment variables. `load_config` reads those declarations from the file and then
from the environment on top, checking each value as it is read; unset `minio.backup*` keys inherit the
Milvus-side value. Every mistake is a one-line ConfigError naming the key; `Config.redacted()` shows
secrets as "***".

Plain pydantic models, not pydantic-settings: this file's own two readers (the Go tool's key paths and
variable names) were all it used of pydantic-settings, whose import (asyncio, dotenv, every cloud
source) cost every CLI command about 0.15 s of its start.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NamedTuple, cast

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from milvus_backup.core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("configs") / "backup.yaml"

STORAGE_TYPES = ("minio", "s3", "local", "aws", "gcp", "ali", "tc", "azure", "gcpnative")
SUPPORTED_STORAGE_TYPES = ("minio", "s3", "local")
S3_STORAGE_TYPES = ("minio", "s3")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "panic", "fatal")
REDACTED = "***"
# libyaml's loader where PyYAML was built with it (the wheels are): the same safe subset, parsed in C
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------- value types
# A check raises ValueError saying what the key expects; that text ends the ConfigError's line.


def _text(value: Any) -> str:
    # YAML turns `password: 123456` into an int; the Go tool reads it as text, so do we.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("must be a string (quote it in YAML)")
    return value


def _flag(value: Any) -> bool:
    word = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(value, bool) and word not in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        raise ValueError("must be true or false")
    return value if isinstance(value, bool) else word in ("true", "1", "yes", "on")


def _integer(value: Any, expected: str = "must be an integer", low: float = -math.inf, high: float = math.inf) -> int:
    if isinstance(value, str) and value.strip().removeprefix("-").isdecimal():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(expected)
    return value


def _host(value: Any) -> str:
    host = _text(value).strip()
    if not host:
        raise ValueError("must name a host")
    if "://" in host or "/" in host:
        raise ValueError("must be a bare host name or IP, without scheme or path (TLS is a separate key)")
    return host


def _storage_type(value: Any) -> str:
    kind, supported = _text(value).strip().lower(), ", ".join(SUPPORTED_STORAGE_TYPES)
    if kind not in STORAGE_TYPES:
        raise ValueError(f"must be one of {supported}")
    if kind not in SUPPORTED_STORAGE_TYPES:
        raise ValueError(
            f"must be one of {supported}: this tool does not support the Go tool's {kind!r} "
            "storage (any S3-compatible service works as s3)"
        )
    return kind


def _log_level(value: Any) -> str:
    if (level := _text(value).strip().lower()) not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


Text = Annotated[str, BeforeValidator(_text)]
Secret = Annotated[SecretStr, BeforeValidator(lambda v: _text(v.get_secret_value() if isinstance(v, SecretStr) else v))]
Flag = Annotated[bool, BeforeValidator(_flag)]
Port = Annotated[int, BeforeValidator(lambda v: _integer(v, "must be a port number, an integer 1-65535", 1, 65535))]
TlsMode = Annotated[
    int, BeforeValidator(lambda v: _integer(v, "must be 0 (no TLS), 1 (server TLS) or 2 (mutual TLS)", 0, 2))
]
Count = Annotated[int, BeforeValidator(lambda v: _integer(_integer(v), "must be an integer of at least 1", 1))]
Host = Annotated[str, BeforeValidator(_host)]
StorageType = Annotated[str, BeforeValidator(_storage_type)]
LogLevel = Annotated[str, BeforeValidator(_log_level)]


# --------------------------------------------------------------------------- the declarations

_INHERIT: Any = object()


class _Key(NamedTuple):
    path: str  # in backup.yaml
    env: tuple[str, ...]  # environment variables, the first one set winning
    backup_env: tuple[str, ...]  # those of the minio.backup* twin, for a StorageConfig field
    backup_default: Any  # the twin's default; _INHERIT: the Milvus-side value


def _key(path: str, default: Any, env: str = "", backup_env: str = "", backup_default: Any = _INHERIT) -> Any:
    """A field's default (a function: its factory), carrying the _Key the sources read; variables space-separated.

    A StorageConfig field also stands for its minio.backup* twin (address: minio.backupAddress), whose
    variables list this project's names before the Go tool's.
    """
    field: FieldInfo = Field(default_factory=default) if callable(default) else Field(default)
    field.metadata.append(_Key(path, tuple(env.split()), tuple(backup_env.split()), backup_default))
    return field


def _default_log_file() -> str:
    # Never under the working directory: the user's XDG state folder ($XDG_STATE_HOME only if absolute).
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return str(base / "milvus-backup" / "backup.log")


class _Frozen:
    """Setting an attribute raises AttributeError, as on a frozen dataclass (pydantic's frozen raises a ValueError)."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")


# validate_default: the declared defaults go through the checks too (a plain-string secret becomes a SecretStr).
_MODELS = ConfigDict(frozen=True, extra="forbid", validate_default=True, hide_input_in_errors=True)


class LogConfig(_Frozen, BaseModel):
    model_config = _MODELS

    level: LogLevel = _key("log.level", "info")
    console: Flag = _key("log.console", True)
    filename: Text = _key("log.file.filename", _default_log_file)  # "" writes no log file


class MilvusConfig(_Frozen, BaseModel):
    model_config = _MODELS

    address: Host = _key("milvus.address", "localhost", "MILVUS_ADDRESS")
    port: Port = _key("milvus.port", 19530, "MILVUS_PORT")
    user: Text = _key("milvus.user", "", "MILVUS_USER")
    password: Secret = _key("milvus.password", "", "MILVUS_PASSWORD")
    tls_mode: TlsMode = _key("milvus.tlsMode", 0, "MILVUS_TLS_MODE")  # 0 plain, 1 server TLS, 2 mutual TLS
    ca_cert_path: Text = _key("milvus.caCertPath", "", "MILVUS_CA_CERT_PATH")
    server_name: Text = _key("milvus.serverName", "", "MILVUS_SERVER_NAME")
    mtls_cert_path: Text = _key("milvus.mtlsCertPath", "", "MILVUS_MTLS_CERT_PATH")
    mtls_key_path: Text = _key("milvus.mtlsKeyPath", "", "MILVUS_MTLS_KEY_PATH")

    @property
    def uri(self) -> str:
        scheme = "https" if self.tls_mode > 0 else "http"
        return f"{scheme}://{self.address}:{self.port}"


class StorageConfig(_Frozen, BaseModel):
    """One object store. For storage_type "local", root_path is a filesystem folder."""

    model_config = _MODELS

    storage_type: StorageType = _key("minio.storageType", "minio", backup_env="BACKUP_STORAGE_TYPE")
    address: Host = _key("minio.address", "localhost", "MINIO_ADDRESS", "BACKUP_ADDRESS MINIO_BACKUP_ADDRESS")
    port: Port = _key("minio.port", 9000, "MINIO_PORT", "BACKUP_PORT MINIO_BACKUP_PORT")
    region: Text = _key("minio.region", "", "MINIO_REGION", "MINIO_BACKUP_REGION")
    access_key_id: Text = _key(
        "minio.accessKeyID", "minioadmin", "MINIO_ACCESS_KEY", "BACKUP_ACCESS_KEY MINIO_BACKUP_ACCESS_KEY"
    )
    secret_access_key: Secret = _key(
        "minio.secretAccessKey", "minioadmin", "MINIO_SECRET_KEY", "BACKUP_SECRET_KEY MINIO_BACKUP_SECRET_KEY"
    )
    token: Secret = _key("minio.token", "", "MINIO_TOKEN", "MINIO_BACKUP_TOKEN")
    use_ssl: Flag = _key("minio.useSSL", False, "MINIO_USE_SSL", "MINIO_BACKUP_USE_SSL")
    use_iam: Flag = _key("minio.useIAM", False, "MINIO_USE_IAM", "MINIO_BACKUP_USE_IAM")
    iam_endpoint: Text = _key("minio.iamEndpoint", "", "MINIO_IAM_ENDPOINT", "MINIO_BACKUP_IAM_ENDPOINT")
    bucket_name: Text = _key(
        "minio.bucketName", "a-bucket", "MINIO_BUCKET_NAME", "BACKUP_BUCKET_NAME MINIO_BACKUP_BUCKET_NAME"
    )
    root_path: Text = _key(
        "minio.rootPath", "files", "MINIO_ROOT_PATH", "BACKUP_ROOT_PATH MINIO_BACKUP_ROOT_PATH", backup_default="backup"
    )

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def is_local(self) -> bool:
        return self.storage_type == "local"


class BackupSettings(_Frozen, BaseModel):
    model_config = _MODELS

    copydata: Count = _key("backup.parallelism.copydata", 128, "BACKUP_PARALLELISM_COPYDATA")
    backup_collection: Count = _key("backup.parallelism.backupCollection", 4, "BACKUP_PARALLELISM_BACKUP_COLLECTION")
    backup_segment: Count = _key("backup.parallelism.backupSegment", 1024)
    restore_collection: Count = _key("backup.parallelism.restoreCollection", 2, "BACKUP_PARALLELISM_RESTORE_COLLECTION")
    import_job: Count = _key("backup.parallelism.importJob", 768)
    keep_temp_files: Flag = _key("backup.keepTempFiles", False, "BACKUP_KEEP_TEMP_FILES")
    # the record of a job that ended longer ago than this is removed (core.job_records)
    job_records_keep_days: Count = _key("backup.jobRecordsKeepDays", 30)
    # a restore whose imports Milvus has not started after this many seconds says it is queued
    import_queued_notice: Count = _key("backup.importQueuedNoticeSeconds", 30)
    # back up from / restore into a Milvus version this tool has not been proven against (core.versions)
    allow_untested_milvus: Flag = _key("backup.allowUntestedMilvus", False, "BACKUP_ALLOW_UNTESTED_MILVUS")
    gc_pause_enable: Flag = _key("backup.gcPause.enable", True, "BACKUP_GC_PAUSE_ENABLE")
    gc_pause_address: Text = _key("backup.gcPause.address", "http://localhost:9091", "BACKUP_GC_PAUSE_ADDRESS")
    # the password of each user a restore with rbac creates (a backup holds none); empty: users are not created
    rbac_user_password: Secret = _key("backup.rbac.userPassword", "", "BACKUP_RBAC_USER_PASSWORD")


class Config(_Frozen, BaseModel):
    """Every setting, as `load_config()` reads them."""

    model_config = _MODELS

    log: LogConfig = Field(default_factory=LogConfig)
    milvus: MilvusConfig = Field(default_factory=MilvusConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)  # the Milvus bucket side
    backup_storage: StorageConfig  # where backups go: the minio.backup* keys, filled in by _inherit
    # True when copies must stream through this tool: set in the file, or implied by two storage types
    cross_storage: Flag = _key("minio.crossStorage", False)
    multipart_copy_threshold_mib: Count = _key("minio.multipartCopyThresholdMiB", 500)
    backup: BackupSettings = Field(default_factory=BackupSettings)

    @model_validator(mode="before")
    @classmethod
    def _inherit(cls, data: Any) -> Any:
        """A minio.backup* key not given takes the Milvus-side value given (file or environment), as in the Go tool."""
        if not isinstance(data, dict) or isinstance(data.get("backup_storage"), StorageConfig):
            return data
        given = data.get("storage") or {}
        given = dict(given) if isinstance(given, StorageConfig) else given
        backup = dict(data.get("backup_storage") or {})
        for name, field in StorageConfig.model_fields.items():
            own = _key_of(field).backup_default
            if name not in backup and (own is not _INHERIT or name in given):
                backup[name] = given[name] if own is _INHERIT else own
        return {**data, "backup_storage": backup}

    @field_validator("cross_storage")
    @classmethod
    def _implied(cls, value: bool, info: ValidationInfo) -> bool:
        # As in the Go tool: two different storage types can only be bridged by streaming.
        storage, backup = info.data.get("storage"), info.data.get("backup_storage")
        return value or (storage is not None and backup is not None and storage.storage_type != backup.storage_type)

    @model_validator(mode="after")
    def _storage_needs(self) -> Config:
        """Checks that need two keys at once: what a storage type requires of the others."""
        for side in ("storage", "backup_storage"):
            cfg, kind = getattr(self, side), _PATHS[side, "storage_type"]
            if cfg.is_local and not cfg.root_path.strip():
                raise ConfigError(f"config key {_PATHS[side, 'root_path']} must name a folder when {kind} is local")
            if not cfg.is_local and not cfg.bucket_name.strip():
                raise ConfigError(
                    f"config key {_PATHS[side, 'bucket_name']} must name a bucket when {kind} is {cfg.storage_type}"
                )
        return self

    def redacted(self) -> dict[str, Any]:
        """The config as the nested YAML keys a user knows, with every non-empty secret as '***'."""
        values = []
        for setting in _SETTINGS:
            value: Any = self
            for name in setting.loc:
                value = getattr(value, name)
            if isinstance(value, SecretStr):
                value = REDACTED if value.get_secret_value() else ""
            values.append((tuple(setting.path.split(".")), value))
        return _nest(values)


# --------------------------------------------------------------------------- the keys, flattened


@dataclass(frozen=True)
class _Setting:
    """One key of backup.yaml: its place in Config (`loc`), its variables, and the check of a value for it."""

    path: str
    loc: tuple[str, ...]
    env: tuple[str, ...]
    field: FieldInfo

    def parse(self, raw: Any, where: str) -> Any:
        checks = tuple(m for m in self.field.metadata if not isinstance(m, _Key))
        try:
            return _adapter(cast(Any, self.field.annotation), checks).validate_python(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            reason = error.get("ctx", {}).get("error", error["msg"])
            shown = "(value hidden)" if self.field.annotation is SecretStr else _show(raw)
            raise ConfigError(f"invalid value {shown} for config key {self.path} {where}: {reason}") from None


@functools.cache
def _adapter(annotation: Any, checks: tuple[Any, ...]) -> TypeAdapter[Any]:
    """The check of a value of one type (Port, Secret...), built once for all the keys of that type."""
    return TypeAdapter(cast(Any, Annotated)[(annotation, *checks)])


def _key_of(field: FieldInfo) -> _Key:
    return next(m for m in field.metadata if isinstance(m, _Key))


def _flatten() -> Iterator[_Setting]:
    for name, field in Config.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            yield _Setting(_key_of(field).path, (name,), _key_of(field).env, field)
            continue
        for sub, sub_field in model.model_fields.items():
            key = _key_of(sub_field)
            if name == "backup_storage":  # minio.address -> minio.backupAddress
                section, leaf = key.path.rsplit(".", 1)
                yield _Setting(f"{section}.backup{leaf[0].upper()}{leaf[1:]}", (name, sub), key.backup_env, sub_field)
            else:
                yield _Setting(key.path, (name, sub), key.env, sub_field)


_SETTINGS = tuple(_flatten())
_BY_PATH = {s.path: s for s in _SETTINGS}
_PATHS = {s.loc: s.path for s in _SETTINGS}
_SECTIONS = frozenset(p.rsplit(".", i)[0] for p in _BY_PATH for i in range(1, p.count(".") + 1))
# Keys of the Go tool's config that mean nothing here. Accepted (its example file must load) and ignored.
_IGNORED = frozenset(
    [
        "cloud",
        "milvus.rpcChannelName",
        "milvus.etcd",
        "minio.cloudProvider",
        "minio.gcpCredentialJSON",
        "minio.backupGcpCredentialJSON",
    ]
)
_CANONICAL = {known.lower(): known for known in (*_BY_PATH, *_SECTIONS, *_IGNORED)}

# (environment variable, key path) for every variable read; empty variables are ignored, as the Go tool does.
ENV_OVERRIDES: tuple[tuple[str, str], ...] = tuple((name, s.path) for s in _SETTINGS for name in s.env)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file (or the built-in defaults), apply environment overrides, validate.

    `path` None means `configs/backup.yaml` under the working directory when it exists, else the
    defaults alone. `env` None means `os.environ`. Raises ConfigError with one line on any mistake.
    """
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    # The file is read first, so that its mistakes are the ones reported; a variable set wins over the file.
    values = _nest(_checked(_from_file(path)))
    _merge(values, _nest(_checked(_from_env(os.environ if env is None else env))))
    try:
        return Config.model_validate(values)
    except ValidationError as exc:  # every value was checked as it was read, so only a bug lands here
        error = exc.errors()[0]
        raise ConfigError(f"invalid config {'.'.join(map(str, error['loc']))}: {error['msg']}") from None


def _checked(found: Iterable[tuple[_Setting, Any, str]]) -> Iterator[tuple[tuple[str, ...], Any]]:
    return ((setting.loc, setting.parse(raw, where)) for setting, raw, where in found)


def _merge(into: dict[str, Any], over: Mapping[str, Any]) -> None:
    """Lay the nested values of `over` onto `into`, section by section."""
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(name), dict):
            _merge(into[name], value)
        else:
            into[name] = value


def _from_file(path: str | Path | None) -> Iterator[tuple[_Setting, Any, str]]:
    if path is not None:
        for key_path, raw in _walk(_read_yaml(Path(path)), "", f"in {path}"):
            yield _BY_PATH[key_path], raw, f"in {path}"


def _from_env(env: Mapping[str, str]) -> Iterator[tuple[_Setting, Any, str]]:
    for setting in _SETTINGS:
        if name := next((name for name in setting.env if env.get(name, "") != ""), None):
            yield setting, env[name], f"from environment variable {name}"


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {_one_line(str(exc))}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"YAML syntax error in {path}{where}: {_one_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error in {path}: {_one_line(str(exc))}") from None


def _walk(node: Any, section: str, where: str) -> Iterator[tuple[str, Any]]:
    """Yield (declared key path, raw value) for every leaf; reject keys the declarations do not know."""
    if node is None:
        return
    if not isinstance(node, dict):
        what = f"config key {section}" if section else "the config file"
        raise ConfigError(f"{what} must be a mapping of keys {where}")
    for name, value in node.items():
        written = f"{section}.{name}" if section else str(name)
        # Keys match case-insensitively, as in the Go tool (viper); below an ignored section, all is ignored.
        ignored = (known for known in _IGNORED if written.lower().startswith(known.lower() + "."))
        key_path = _CANONICAL.get(written.lower()) or next(ignored, None)
        if key_path is None:
            raise ConfigError(f"unknown config key {written}{_suggestion(written)} {where}")
        if key_path in _IGNORED:
            log.debug("config key %s is not used by this tool; ignored", key_path)
        elif key_path in _SECTIONS:
            yield from _walk(value, key_path, where)
        elif isinstance(value, dict):
            raise ConfigError(f"config key {key_path} takes a value, not a section, {where}")
        elif value is not None:  # `key:` with no value leaves the default (or the inherited value)
            yield key_path, value


def _suggestion(written: str) -> str:
    import difflib  # only for a mistake: not paid by every start

    known = {c.lower(): c for c in (*_BY_PATH, *_SECTIONS)}
    match = difflib.get_close_matches(written, list(known.values()), 1, 0.6) or [
        known[found] for found in difflib.get_close_matches(written.lower(), list(known), 1, 0.6)
    ]
    return f" (did you mean {match[0]}?)" if match else ""


def _nest(items: Iterable[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for (*sections, leaf), value in items:
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
