"""Which Milvus versions this tool has been proven against, and the guard that refuses the others.

A physical backup depends on how a Milvus version lays out its binlogs. The tool is proven (tests on a
real server) on Milvus 2.3.x, and as a backup source on 2.2.x (the 2.2.16 sandbox: its backups restore
into 2.3); a restore into 2.2 is not. On 2.5 and later, deletes live in L0 segments that this tool does not
copy: deleted rows would come back on restore. So a backup from, or a restore into, any other version is
refused with one line, unless the user accepts the risk (`--allow-untested-milvus`, or the config key
`backup.allowUntestedMilvus`): then it warns, and a backup made with the guard off says so in its
meta (`"allow_untested_milvus": true` in full_meta.json; the Go tool ignores keys it does not know).

A restore also follows the Go tool's rule: a backup restores only into the same or a newer Milvus.
"""

from __future__ import annotations

import re

from milvus_backup.core.errors import InvalidRequest

PROVEN_SOURCES = ((2, 2), (2, 3))  # major.minor series the tests have backed up from
PROVEN_TARGETS = ((2, 3),)  # ... and restored into
OVERRIDE = "--allow-untested-milvus (config backup.allowUntestedMilvus)"
META_KEY = "allow_untested_milvus"  # in a backup's full meta when the guard was overridden
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class UntestedMilvus(InvalidRequest):
    """A Milvus version the tool has not been proven against, or a restore into an older Milvus."""


def parse_version(text: str) -> tuple[int, int, int] | None:
    """ "v2.3.5", "2.3.5-dev" -> (2, 3, 5); None when no version is in it."""
    found = _VERSION.search(text or "")
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def is_proven(version: str, series: tuple[tuple[int, int], ...] = PROVEN_TARGETS) -> bool:
    parsed = parse_version(version)
    return parsed is not None and parsed[:2] in series


def _range(series: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{major}.{minor}.x" for major, minor in series)


def _untested(version: str, what: str, series: tuple[tuple[int, int], ...]) -> str:
    shown = version or "of unknown version"
    return (
        f"{what} Milvus {shown}, a version this tool has not been proven against (supported: {_range(series)}); "
        f"to accept the risk use {OVERRIDE}"
    )


def check_backup_source(version: str, allow_untested: bool) -> list[str]:
    """Raise UntestedMilvus for a source outside PROVEN_SOURCES; with the override, return the warning instead."""
    if is_proven(version, PROVEN_SOURCES):
        return []
    message = _untested(version, "refusing to back up", PROVEN_SOURCES)
    if not allow_untested:
        raise UntestedMilvus(message)
    shown = version or "(version unknown)"
    return [f"warning: backing up Milvus {shown}, not proven (supported: {_range(PROVEN_SOURCES)})"]


def check_restore_target(target_version: str, backup_version: str, backup: str, allow_untested: bool) -> list[str]:
    """The same guard on the target (PROVEN_TARGETS), and: a backup restores only into the same or a newer Milvus."""
    problems = []
    if not is_proven(target_version, PROVEN_TARGETS):
        problems.append(_untested(target_version, "refusing to restore into", PROVEN_TARGETS))
    source, target = parse_version(backup_version), parse_version(target_version)
    if source and target and target < source:
        problems.append(
            f"backup {backup} was made on Milvus {backup_version}; it restores only into the same or a newer "
            f"Milvus, not {target_version}; to accept the risk use {OVERRIDE}"
        )
    if not problems:
        return []
    if not allow_untested:
        raise UntestedMilvus(problems[0])
    return [f"warning: {p.split('; to accept')[0]} (overridden)" for p in problems]
