"""Errors the engine raises. Each carries one line a user can act on (what failed, what to check)."""


class BackupToolError(Exception):
    """Base of every error the engine reports to a user."""


class ConfigError(BackupToolError):
    """A config key is missing, malformed or out of range."""


class StorageError(BackupToolError):
    """An object store or local folder refused an operation."""


class MilvusError(BackupToolError):
    """Milvus refused a call or is unreachable."""


class NotFound(BackupToolError):
    """A backup, collection or job that does not exist."""


class AlreadyExists(BackupToolError):
    """A backup name or restore target that is already taken."""


class InvalidRequest(BackupToolError):
    """A request that cannot be carried out as given (bad name, bad rename map...)."""


class Cancelled(BackupToolError):
    """A job was cancelled by its user between two units of work."""
