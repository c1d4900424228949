"""Two-person rule for security-relevant admin actions once a vault has two enabled admins.

Adding a user, changing the policy and destroying a key each let one admin widen who can see identities
or erase evidence for good, so with two or more enabled admins none of them runs on one admin's word:

1. the first admin's call is refused (audited) and files a pending admin action (``aa_...``) binding
   the kind, the canonical JSON of exactly what will be done and the filer, and raises
   ``ApprovalPending`` (exit 3) naming it;
2. a different enabled admin approves (or any admin denies) it before it expires (default 24 h);
3. the filer runs the same call again with ``admin_action=`` that id: inside the call's own audited
   transaction ``consume`` checks the row against the parameters and marks it used (single use).

The action runs on the filer's re-run, not on approval, so secrets the action needs (a new user's
passphrase) never wait in the database, and each step is its own audit entry. Rows are tagged by
``keyvault.integrity``: an edited pending action is refused. With one enabled admin nothing changes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault.errors import ApprovalPending, NotFound, PermissionDenied, VaultError
from keyvault.records import AdminActionInfo, split_roles
from keyvault.schema import ADMIN_ACTION_STATES, AdminActionRow, UserRow
from keyvault.vault import Action, Vault

KINDS = ("user.add", "vault.policy", "key.destroy")
STATES = ADMIN_ACTION_STATES  # pending | approved | denied | used
DEFAULT_TTL = timedelta(hours=24)
READ_ROLES = ("admin", "auditor")
T = TypeVar("T")


def canonical(params: Mapping[str, Any]) -> str:
    """The canonical JSON an admin action binds (sorted keys, no spaces, UTF-8 as is)."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def admins(session: Session) -> list[str]:
    """Names of the enabled admins (rows verified against their tags as they load)."""
    enabled = session.scalars(select(UserRow).where(UserRow.disabled.is_(False)))
    return sorted(user.name for user in enabled if "admin" in split_roles(user.roles))


class SecondAdminNeeded(ApprovalPending):
    """Raised inside an action run without an approved admin action while two admins are enabled."""


def guarded(vault: Vault, kind: str, params: Mapping[str, Any], run: Callable[[], T]) -> T:
    """Run ``run`` (whose action calls ``consume``); when it needs a second admin, file an admin action.

    The refused attempt is audited under ``kind`` (nothing of it committed); the filing is then its own
    audited action (``admin.file``) and ``ApprovalPending`` names the new ``aa_...``. With one enabled admin
    or an approved action this costs nothing beyond ``run``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    try:
        return run()
    except SecondAdminNeeded:
        pass
    handle = f"aa_{secrets.token_hex(12)}"
    with vault.action("admin.file", role="admin", details={"admin_action": handle, "kind": kind}) as act:
        now = vault.clock()
        act.session.add(
            AdminActionRow(
                handle=handle,
                kind=kind,
                params=canonical(params),
                filer=vault.user.name,
                created=now,
                expires=now + DEFAULT_TTL,
                state="pending",
            )
        )
    raise ApprovalPending(
        f"{kind} needs a second admin's approval: filed admin action {handle}",
        hint=f"another admin runs `ifadit admin-actions approve {handle}`, then re-run with --action {handle}",
    )


def consume(
    vault: Vault, act: Action, kind: str, params: Mapping[str, Any], admin_action: str | None
) -> None:
    """Inside ``kind``'s own action: pass with one admin, else use up the approved ``admin_action``.

    Refused: no id while two admins are enabled (``SecondAdminNeeded``, which ``guarded`` turns into a
    filing), another filer, another kind or other parameters, not approved, expired, or approved by
    someone who is the filer or no longer an enabled admin.
    """
    enabled = admins(act.session)
    if admin_action is None:
        if len(enabled) >= 2:
            raise SecondAdminNeeded(
                f"{kind} needs a second admin's approval (the vault has {len(enabled)} admins)"
            )
        return
    row = _load(act.session, admin_action)
    act.details["admin_action"] = admin_action
    if row.filer != vault.user.name:
        raise PermissionDenied(f"admin action {admin_action} was filed by {row.filer}, not {vault.user.name}")
    _check_open(vault, row, approved=True)
    if row.kind != kind or row.params != canonical(params):
        raise PermissionDenied(
            f"admin action {admin_action} approves a different {row.kind}: refused",
            hint=f"`ifadit admin-actions show {admin_action}` shows what was approved",
        )
    if row.decided_by is None or row.decided_by == row.filer or row.decided_by not in enabled:
        raise PermissionDenied(f"admin action {admin_action} is not approved by another enabled admin")
    row.state = "used"


def _load(session: Session, handle: str) -> AdminActionRow:
    row = session.get(AdminActionRow, handle)
    if row is None:
        raise NotFound(f"unknown admin action {handle}", hint="`ifadit admin-actions list` shows them")
    return row


def _check_open(vault: Vault, row: AdminActionRow, *, approved: bool) -> None:
    wanted = "approved" if approved else "pending"
    if row.state != wanted:
        if row.state == "pending":
            raise ApprovalPending(
                f"admin action {row.handle} awaits a second admin's approval",
                hint=f"another admin runs `ifadit admin-actions approve {row.handle}`",
            )
        raise VaultError(f"admin action {row.handle} is {row.state}", hint="file a new one")
    if vault.clock() >= row.expires:
        raise PermissionDenied(
            f"admin action {row.handle} expired on {row.expires.isoformat()}", hint="file a new one"
        )


def _decide(vault: Vault, handle: str, verb: str) -> AdminActionInfo:
    with vault.action(f"admin.{verb}", role="admin", details={"admin_action": handle}) as act:
        row = _load(act.session, handle)
        act.details["kind"] = row.kind
        if verb == "approve" and row.filer == vault.user.name:
            raise PermissionDenied(
                f"user {vault.user.name} filed admin action {handle}: approval refused",
                hint="another admin approves it",
            )
        _check_open(vault, row, approved=False)
        row.state = "approved" if verb == "approve" else "denied"
        row.decided_by, row.decided = vault.user.name, vault.clock()
        act.session.flush()
        return AdminActionInfo.from_row(row)


def approve(vault: Vault, handle: str) -> AdminActionInfo:
    """Approve another admin's pending action; the filer then runs it once."""
    return _decide(vault, handle, "approve")


def deny(vault: Vault, handle: str) -> AdminActionInfo:
    """Deny a pending action (any admin, the filer included, to withdraw it)."""
    return _decide(vault, handle, "deny")


def list_actions(vault: Vault, *, state: str | None = None) -> list[AdminActionInfo]:
    """Filed admin actions, newest first, optionally one state's."""
    with vault.action("admin.list", role=READ_ROLES, record=False) as act:
        query = select(AdminActionRow).order_by(AdminActionRow.created.desc(), AdminActionRow.handle)
        if state is not None:
            query = query.where(AdminActionRow.state == state)
        return [AdminActionInfo.from_row(row) for row in act.session.scalars(query)]


def show(vault: Vault, handle: str) -> AdminActionInfo:
    """One filed admin action."""
    with vault.action("admin.show", role=READ_ROLES, record=False) as act:
        return AdminActionInfo.from_row(_load(act.session, handle))
