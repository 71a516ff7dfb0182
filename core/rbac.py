"""RBAC in a backup: Milvus's users, roles and grants, as the upstream's RBACMeta (BackupInfo.rbac_meta).

Backed up only with `rbac` on create, restored only with `rbac` on restore. Milvus 2.3 has no
BackupRBAC/RestoreRBAC call (2.4.10 added them), so everything is read and recreated one call at a time.

Passwords: Milvus never hands one out, and the backup holds none. A user missing from the target
Milvus is created with the password the operator sets in `backup.rbac.userPassword` (environment
BACKUP_RBAC_USER_PASSWORD); without one it is not created and the restore's log names it as needing
one (set the key and restore with rbac again: what exists already is skipped).

A restore adds only what is missing, never changing what is there: a user or role that exists is kept
as it is (an existing user keeps its own role bindings), and a grant is added when the target lacks it,
also to a role that existed before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from milvus_backup.core.jobs import Phase, Reporter
from milvus_backup.core.meta import (
    GrantEntity,
    GrantorEntity,
    ObjectEntity,
    PrivilegeEntity,
    RBACMeta,
    RoleEntity,
    UserEntity,
    UserInfo,
)
from milvus_backup.core.milvus import Milvus

BUILTIN_ROLES = ("admin", "public")  # every Milvus has them: backed up for their grants and bindings, never created
PASSWORD_KEY = "backup.rbac.userPassword"


def backup_rbac(milvus: Milvus, reporter: Reporter) -> RBACMeta:
    """Every user (with its roles), every role but the built-in ones, and every grant of every role."""
    roles = milvus.list_roles()
    users = [UserInfo(user=u, roles=[RoleEntity(r) for r in milvus.user_roles(u)]) for u in milvus.list_users()]
    meta = RBACMeta(
        users=users,
        roles=[RoleEntity(r) for r in roles if r not in BUILTIN_ROLES],
        grants=list(_grants(milvus, roles).values()),
    )
    reporter.log(
        f"RBAC: {len(meta.users)} user(s) (no passwords), {len(meta.roles)} role(s), {len(meta.grants)} grant(s)"
    )
    return meta


def _grants(milvus: Milvus, roles: list[str]) -> dict[tuple[str, str, str, str, str], GrantEntity]:
    """The grants of `roles`, keyed by what they grant. Milvus lists grants one database at a time."""
    found: dict[tuple[str, str, str, str, str], GrantEntity] = {}
    databases = milvus.list_databases()
    for role in roles:
        for db in databases:
            for g in milvus.role_grants(role, db):
                grant = GrantEntity(
                    role=RoleEntity(g.role.name),
                    object=ObjectEntity(g.object.name),
                    object_name=g.object_name,
                    grantor=GrantorEntity(UserEntity(g.grantor.user.name), PrivilegeEntity(g.grantor.privilege.name)),
                    db_name=g.db_name,
                )
                found.setdefault(grant.key(), grant)
    return found


@dataclass
class RbacRestore:
    """What a restore with rbac did: created, kept, and the users left for the operator."""

    roles_created: list[str] = field(default_factory=list)
    grants_added: int = 0
    users_created: list[str] = field(default_factory=list)
    users_kept: list[str] = field(default_factory=list)
    users_need_password: list[str] = field(default_factory=list)


def restore_rbac(milvus: Milvus, meta: RBACMeta | None, password: str, reporter: Reporter) -> RbacRestore:
    """Recreate the roles, grants and users of `meta` that the target Milvus lacks (see the module's notes)."""
    done = RbacRestore()
    reporter.phase(Phase.CREATE, "", message="restoring users, roles and grants (rbac)")
    if meta is None:
        reporter.log("the backup holds no RBAC (it was made without rbac): no users, roles or grants to restore")
        return done
    existing_roles = set(milvus.list_roles())
    for role in meta.roles:
        if role.name not in existing_roles:
            milvus.create_role(role.name)
            existing_roles.add(role.name)
            done.roles_created.append(role.name)
    present = _grants(milvus, sorted({g.key()[0] for g in meta.grants} & existing_roles))
    for grant in meta.grants:
        if grant.key() not in present:
            milvus.grant(*grant.key())
            done.grants_added += 1
    existing_users = set(milvus.list_users())
    for user in meta.users:
        if user.user in existing_users:
            done.users_kept.append(user.user)
        elif not password:
            done.users_need_password.append(user.user)
        else:
            milvus.create_user(user.user, password)
            for role in user.roles:
                milvus.add_user_to_role(user.user, role.name)
            done.users_created.append(user.user)
    _report(done, reporter)
    return done


def _report(done: RbacRestore, reporter: Reporter) -> None:
    reporter.log(
        f"RBAC: created role(s) {', '.join(done.roles_created) or 'none'}, added {done.grants_added} grant(s), "
        f"created user(s) {', '.join(done.users_created) or 'none'}; kept existing user(s) "
        f"{', '.join(done.users_kept) or 'none'}"
    )
    if done.users_created:
        reporter.log(f"RBAC: the created users have the password of {PASSWORD_KEY}; have each user change it")
    if done.users_need_password:
        reporter.log(
            f"warning: RBAC: user(s) {', '.join(done.users_need_password)} not created: a backup holds no "
            f"passwords; set {PASSWORD_KEY} (or BACKUP_RBAC_USER_PASSWORD) and restore with rbac again"
        )
