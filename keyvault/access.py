"""Who may do what: users and roles, the restore policy, restore requests and four-eyes approvals.

Roles: admin (users, keys, policy), operator (anonymize), investigator (request and run restores),
approver (approve another user's restore request), auditor (read and verify the log). Every change
here is an audited action; a refusal is audited too (see ``Vault.action``). An approval is bound to
one request (case, requester, input digest), is single-use and expires after the policy's TTL.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keyvault.envelope import KdfParams
from keyvault.errors import ApprovalPending, NotFound, PermissionDenied, VaultError
from keyvault.schema import ApprovalRow, KeyRow, RestoreRequestRow, UserRow, VaultRow
from keyvault.vault import USER_NAME, Policy, UserInfo, Vault, check_unlock_delay, join_roles, split_roles

DIGEST = re.compile(r"[0-9a-f]{64}")
REQUEST_READERS = ("investigator", "approver", "admin", "auditor")


@dataclass(frozen=True)
class ApprovalInfo:
    """One approval of a request."""

    approver: str
    created: datetime
    expires: datetime
    used: datetime | None


@dataclass(frozen=True)
class RequestInfo:
    """A restore request and its approvals."""

    handle: str
    requester: str
    case_id: str
    reason: str
    input_digest: str  # SHA-256 hex of the input to restore
    key_handle: str | None
    state: str  # pending | approved | used
    created: datetime
    approvals: tuple[ApprovalInfo, ...]


# ---------------------------------------------------------------- users


def add_user(
    vault: Vault,
    name: str,
    roles: tuple[str, ...] | list[str],
    passphrase: bytes,
    *,
    kdf: KdfParams | None = None,
) -> UserInfo:
    """Create a user with ``roles`` and a keyslot under ``passphrase``; admin only."""
    if not USER_NAME.fullmatch(name):
        raise ValueError(
            f"user name {name!r} must be 1-128 letters, digits or _.@- (starting with a letter or digit)"
        )
    stored_roles = join_roles(tuple(roles))
    if not passphrase:
        raise ValueError("a new user needs a non-empty passphrase")
    with vault.action("user.add", role="admin", details={"user": name, "roles": stored_roles}) as act:
        if act.session.scalar(select(UserRow).where(UserRow.name == name)) is not None:
            raise VaultError(f"user {name} already exists", hint="pick another name")
        row = UserRow(name=name, roles=stored_roles, disabled=False, created=vault.clock())
        act.session.add(row)
        act.session.flush()
        vault.wrap_for_user(act.session, row, passphrase, kdf)
        return UserInfo.from_row(row)


def list_users(vault: Vault) -> list[UserInfo]:
    """Every user (admins and auditors may list them)."""
    with vault.action("user.list", role=("admin", "auditor"), record=False) as act:
        return [UserInfo.from_row(row) for row in act.session.scalars(select(UserRow).order_by(UserRow.name))]


def disable_user(vault: Vault, name: str, reason: str | None = None) -> UserInfo:
    """Disable a user (their keyslot stays but no longer unlocks); refuses to disable the last admin."""
    with vault.action("user.disable", role="admin", reason=reason, details={"user": name}) as act:
        row = act.session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"unknown user {name}", hint="`ifadit users list` shows the users")
        if row.disabled:
            raise VaultError(f"user {name} is already disabled")
        if "admin" in split_roles(row.roles):
            admins = act.session.scalar(
                select(func.count())
                .select_from(UserRow)
                .where(UserRow.disabled.is_(False), UserRow.roles.like("%admin%"))
            )
            if admins is not None and admins <= 1:
                raise PermissionDenied(
                    f"user {name} is the last active admin: disable refused", hint="add another admin first"
                )
        row.disabled = True
        return UserInfo.from_row(row)


# ---------------------------------------------------------------- policy


def set_policy(
    vault: Vault,
    *,
    require_approval: bool | None = None,
    approval_ttl: timedelta | None = None,
    unlock_delay: timedelta | None = None,
) -> Policy:
    """Change the vault policy (restore approvals, unlock delay); admin only. Unset arguments stay as they are."""
    if approval_ttl is not None and approval_ttl <= timedelta(0):
        raise ValueError("approval TTL must be positive")
    if unlock_delay is not None:
        check_unlock_delay(unlock_delay)
    with vault.action("vault.policy", role="admin") as act:
        row = act.session.scalars(select(VaultRow)).one()
        if require_approval is not None:
            row.require_approval = require_approval
        if approval_ttl is not None:
            row.approval_ttl_s = int(approval_ttl.total_seconds())
        if unlock_delay is not None:
            row.unlock_delay_ms = round(unlock_delay.total_seconds() * 1000)
        act.details.update(
            require_approval=row.require_approval,
            approval_ttl_s=row.approval_ttl_s,
            unlock_delay_ms=row.unlock_delay_ms,
        )
        return Policy.from_row(row)


# ---------------------------------------------------------------- restore requests and approvals


def _request_info(session: Session, row: RestoreRequestRow) -> RequestInfo:
    approvals = tuple(
        ApprovalInfo(approver=a.approver, created=a.created, expires=a.expires, used=a.used)
        for a in session.scalars(
            select(ApprovalRow).where(ApprovalRow.request_handle == row.handle).order_by(ApprovalRow.id)
        )
    )
    return RequestInfo(
        handle=row.handle,
        requester=row.requester,
        case_id=row.case_id,
        reason=row.reason,
        input_digest=row.input_digest,
        key_handle=row.key_handle,
        state=row.state,
        created=row.created,
        approvals=approvals,
    )


def _load_request(session: Session, handle: str) -> RestoreRequestRow:
    row = session.get(RestoreRequestRow, handle)
    if row is None:
        raise NotFound(f"unknown restore request {handle}", hint="`ifadit requests list` shows them")
    return row


def request_restore(
    vault: Vault, *, case: str, reason: str, input_digest: str, key: str | None = None
) -> RequestInfo:
    """Record an investigator's request to restore the input with SHA-256 ``input_digest`` under ``case``."""
    if not case.strip() or not reason.strip():
        raise ValueError("a restore request needs a case id and a reason")
    if not DIGEST.fullmatch(input_digest):
        raise ValueError("input_digest must be the input's SHA-256 as 64 lower-case hex digits")
    handle = f"rq_{secrets.token_hex(12)}"
    with vault.action(
        "restore.request",
        role="investigator",
        key=key,
        case=case,
        reason=reason,
        digests={"input": input_digest},
        details={"request": handle},
    ) as act:
        if key is not None:
            key_row = act.session.get(KeyRow, key)
            if key_row is None:
                raise NotFound(f"unknown key {key}", hint="`ifadit keys list` shows the keys")
            if key_row.case_id != case:
                raise PermissionDenied(f"key {key} does not belong to case {case}")
        row = RestoreRequestRow(
            handle=handle,
            requester=vault.user.name,
            case_id=case,
            reason=reason,
            input_digest=input_digest,
            key_handle=key,
            state="pending",
            created=vault.clock(),
        )
        act.session.add(row)
        act.session.flush()
        return _request_info(act.session, row)


def approve(vault: Vault, handle: str) -> RequestInfo:
    """Approve another user's pending request (approver role; never the requester)."""
    with vault.action("restore.approve", role="approver", details={"request": handle}) as act:
        row = _load_request(act.session, handle)
        act.case_id, act.key_handle, act.digests = row.case_id, row.key_handle, {"input": row.input_digest}
        if row.requester == vault.user.name:
            raise PermissionDenied(
                f"user {vault.user.name} made request {handle} and cannot approve it",
                hint="another user with the approver role must approve",
            )
        now = vault.clock()
        if row.state == "used":
            raise PermissionDenied(
                f"request {handle} was already used: approvals are single-use", hint="file a new request"
            )
        if _valid_approval(act.session, handle, now) is not None:
            raise VaultError(f"request {handle} is already approved")
        ttl = vault.policy(act.session).approval_ttl
        act.session.add(
            ApprovalRow(request_handle=handle, approver=vault.user.name, created=now, expires=now + ttl)
        )
        row.state = "approved"
        act.session.flush()
        return _request_info(act.session, row)


def _valid_approval(session: Session, handle: str, now: datetime) -> ApprovalRow | None:
    query = select(ApprovalRow).where(ApprovalRow.request_handle == handle, ApprovalRow.used.is_(None))
    return next((a for a in session.scalars(query) if a.expires > now), None)


def list_requests(vault: Vault, *, case: str | None = None, state: str | None = None) -> list[RequestInfo]:
    """Restore requests, newest first, optionally one case's or one state's."""
    with vault.action("restore.list", role=REQUEST_READERS, case=case, record=False) as act:
        query = select(RestoreRequestRow).order_by(RestoreRequestRow.created.desc())
        if case is not None:
            query = query.where(RestoreRequestRow.case_id == case)
        if state is not None:
            query = query.where(RestoreRequestRow.state == state)
        return [_request_info(act.session, row) for row in act.session.scalars(query)]


def show_request(vault: Vault, handle: str) -> RequestInfo:
    """One restore request and its approvals."""
    with vault.action("restore.show", role=REQUEST_READERS, record=False) as act:
        return request_in(act.session, handle)


def request_in(session: Session, handle: str) -> RequestInfo:
    """One restore request and its approvals, read inside the caller's action (e.g. right after consuming it)."""
    return _request_info(session, _load_request(session, handle))


def find_open_request(vault: Vault, *, case: str, input_digest: str) -> RequestInfo | None:
    """The acting user's newest unused request for this case and input (so a repeated restore reuses it)."""
    with vault.action("restore.list", role="investigator", case=case, record=False) as act:
        query = (
            select(RestoreRequestRow)
            .where(
                RestoreRequestRow.requester == vault.user.name,
                RestoreRequestRow.case_id == case,
                RestoreRequestRow.input_digest == input_digest,
                RestoreRequestRow.state != "used",
            )
            .order_by(RestoreRequestRow.created.desc())
            .limit(1)
        )
        row = act.session.scalars(query).first()
        return _request_info(act.session, row) if row is not None else None


def consume_approval(
    vault: Vault, session: Session, handle: str | None, *, case: str, input_digest: str | None = None
) -> None:
    """Use up the approval of request ``handle`` inside the caller's action; refuse anything that does not fit."""
    if handle is None:
        raise ApprovalPending(
            f"restore under case {case} needs an approved request (policy: require approval)",
            hint="file one with the restore command, then ask an approver",
        )
    row = _load_request(session, handle)
    if row.case_id != case:
        raise PermissionDenied(f"request {handle} is for case {row.case_id}, not {case}")
    if row.requester != vault.user.name:
        raise PermissionDenied(f"request {handle} was made by {row.requester}; only the requester can use it")
    if input_digest is not None and row.input_digest != input_digest:
        raise PermissionDenied(f"request {handle} was approved for another input", hint="file a new request")
    if row.state == "used":
        raise PermissionDenied(
            f"request {handle} was already used: approvals are single-use", hint="file a new request"
        )
    now = vault.clock()
    approval = _valid_approval(session, handle, now)
    if approval is None:
        expired = row.state == "approved"
        raise ApprovalPending(
            f"the approval of request {handle} expired" if expired else f"request {handle} awaits approval",
            hint=f"an approver runs `ifadit approve {handle}`",
        )
    approval.used = now
    row.state = "used"
    session.flush()
