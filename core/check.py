"""`check`: can this config back up and restore? Milvus answers, and both stores take a write, a copy
(within the store, and across the two as a backup and a restore do), a read-back and a delete.

Probe objects are files directly under each root (`core.paths.probe_key`), never folders, so nothing
is ever mistaken for a backup, and they are removed even when a step fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from milvus_backup.core.context import Context
from milvus_backup.core.errors import BackupToolError
from milvus_backup.core.paths import probe_key
from milvus_backup.core.storage import Storage, layout_root


@dataclass
class CheckStep:
    name: str
    ok: bool
    detail: str


@dataclass
class CheckReport:
    steps: list[CheckStep] = field(default_factory=list)
    milvus_version: str = ""
    milvus_bucket: str = ""
    milvus_root: str = ""
    backup_bucket: str = ""
    backup_root: str = ""

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "milvus_version": self.milvus_version,
            "milvus_bucket": self.milvus_bucket,
            "milvus_rootpath": self.milvus_root,
            "backup_bucket": self.backup_bucket,
            "backup_rootpath": self.backup_root,
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }


def run_check(ctx: Context) -> CheckReport:
    cfg = ctx.config
    report = CheckReport(
        milvus_bucket=cfg.storage.bucket_name if not cfg.storage.is_local else cfg.storage.root_path,
        milvus_root=cfg.storage.root_path,
        backup_bucket=(
            cfg.backup_storage.bucket_name if not cfg.backup_storage.is_local else cfg.backup_storage.root_path
        ),
        backup_root=cfg.backup_storage.root_path,
    )

    def step(name: str, fn: Callable[[], str | None]) -> bool:
        try:
            detail = fn() or "ok"
        except BackupToolError as exc:
            report.steps.append(CheckStep(name, False, str(exc)))
            return False
        report.steps.append(CheckStep(name, True, detail))
        return True

    def milvus() -> str:
        report.milvus_version = ctx.milvus.version()
        dbs = ctx.milvus.list_databases()
        return f"Milvus {report.milvus_version} at {cfg.milvus.address}:{cfg.milvus.port}, {len(dbs)} database(s)"

    step("milvus", milvus)
    stores = [
        ("milvus storage", ctx.milvus_storage, layout_root(cfg.storage)),
        ("backup storage", ctx.backup_storage, layout_root(cfg.backup_storage)),
    ]
    if not all(step(f"{label} bucket", store.check) for label, store, _ in stores):
        return report
    probe = uuid.uuid4().hex[:12]
    server_side = not cfg.cross_storage
    payload = f"milvus-backup probe {probe}\n".encode()
    written: list[tuple[Storage, str]] = []
    try:
        for label, store, root in stores:
            key, copy = probe_key(root, probe + "_w"), probe_key(root, probe + "_c")

            def write_copy_read(store: Storage = store, key: str = key, copy: str = copy) -> str:
                store.write(key, payload)
                written.append((store, key))
                store.copy_from(store, key, copy, len(payload), server_side=server_side)
                written.append((store, copy))
                if store.read(copy) != payload:
                    raise BackupToolError(f"{store.describe(copy)} reads back different bytes than were written")
                return f"wrote, copied and read back {store.describe(key)}"

            step(f"{label} write/copy", write_copy_read)
        if len(written) == 4:  # the copy a backup makes, and (reversed) a restore's staging
            m_store, m_key = written[0]
            b_store = ctx.backup_storage
            across = probe_key(layout_root(cfg.backup_storage), probe + "_x")

            def cross() -> str:
                b_store.copy_from(m_store, m_key, across, len(payload), server_side=server_side)
                written.append((b_store, across))
                if b_store.read(across) != payload:
                    raise BackupToolError(f"{b_store.describe(across)} reads back different bytes than were copied")
                return f"copied {m_store.describe(m_key)} to {b_store.describe(across)}"

            step("copy milvus storage -> backup storage", cross)
    finally:

        def delete() -> str:
            for store, key in written:
                store.delete(key)
            left = [store.describe(key) for store, key in written if store.exists(key)]
            if left:
                raise BackupToolError(f"probe objects still there after delete: {', '.join(left)}")
            return f"deleted {len(written)} probe object(s)"

        if written:
            step("delete", delete)
    return report
