"""Who may do what: users and roles, the restore policy, restore requests and their quorum of approvals.

Roles: admin (users, keys, policy), operator (anonymize), investigator (request and run restores),
approver (approve or deny another user's restore request), auditor (read and verify the log). Every
change here is an audited action; a refusal is audited too (see ``Vault.action``).

A restore request covers a batch: one file or a whole case, listed by name and SHA-256, in one mode
(exact or model). It is pending until the policy's quorum of distinct approvers approve it (which
approvals count: ``keyvault.approvals``), then approved; a restore uses it once (used). The requester
may cancel it and an approver deny it while it is open (pending or approved); both are audited with a
reason. An approval names the request, its inputs' digest and its mode, and expires after the TTL.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault import admin_actions, ledger
from keyvault.approvals import check_not_related, counting
from keyvault.envelope import KdfParams
from keyvault.errors import ApprovalPending, NotFound, PermissionDenied, TamperedRow, VaultError
from keyvault.records import (
    OPEN_STATES,
    REQUEST_STATES,
    ApprovalInfo,
    Policy,
    RequestFile,
    RequestInfo,
    UserInfo,
    inputs_digest,
    split_roles,
)
from keyvault.schema import (
    RESTORE_MODES,
    ApprovalRow,
    KeyRow,
    RestoreRequestRow,
    UserRow,
    VaultRow,
)
from keyvault.vault import USER_NAME, Vault, check_unlock_delay, join_roles

DIGEST = re.compile(r"[0-9a-f]{64}")
REQUEST_READERS = ("investigator", "approver", "admin", "auditor")
MAX_APPROVALS = 16


# ---------------------------------------------------------------- users


def add_user(
    vault: Vault,
    name: str,
    roles: tuple[str, ...] | list[str],
    passphrase: bytes,
    *,
    kdf: KdfParams | None = None,
    admin_action: str | None = None,
) -> UserInfo:
    """Create a user with ``roles`` and a keyslot under ``passphrase``; admin only.

    With two enabled admins it needs another admin's approval (``keyvault.admin_actions``): the first call
    files an admin action binding the name and roles and raises ``ApprovalPending``; once approved, the
    same call with ``admin_action`` runs it.
    """
    if not USER_NAME.fullmatch(name):
        raise ValueError(
            f"user name {name!r} must be 1-128 letters, digits or _.@- (starting with a letter or digit)"
        )
    stored_roles = join_roles(tuple(roles))
    if not passphrase:
        raise ValueError("a new user needs a non-empty passphrase")
    params = {"name": name, "roles": stored_roles}
    return admin_actions.guarded(
        vault, "user.add", params, lambda: _add_user(vault, name, stored_roles, passphrase, kdf, admin_action)
    )


def _add_user(
    vault: Vault,
    name: str,
    stored_roles: str,
    passphrase: bytes,
    kdf: KdfParams | None,
    admin_action: str | None,
) -> UserInfo:
    params = {"name": name, "roles": stored_roles}
    with vault.action("user.add", role="admin", details={"user": name, "roles": stored_roles}) as act:
        admin_actions.consume(vault, act, "user.add", params, admin_action)
        if act.session.scalar(select(UserRow).where(UserRow.name == name)) is not None:
            raise VaultError(f"user {name} already exists", hint="pick another name")
        row = UserRow(
            name=name, roles=stored_roles, disabled=False, created=vault.clock(), created_by=vault.user.name
        )
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
            active = act.session.scalars(select(UserRow).where(UserRow.disabled.is_(False)))  # rows verified
            admins = sum("admin" in split_roles(user.roles) for user in active)
            if admins <= 1:
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
    approvals: int | None = None,
    admin_action: str | None = None,
) -> Policy:
    """Change the vault policy (restore approvals and their quorum, unlock delay); admin only.

    Unset arguments stay as they are. ``approvals`` is the quorum T: distinct approvers per request.
    With two enabled admins the change needs another admin's approval of exactly these values
    (``keyvault.admin_actions``), as ``add_user`` does.
    """
    if approval_ttl is not None and approval_ttl <= timedelta(0):
        raise ValueError("approval TTL must be positive")
    if approvals is not None and not 1 <= approvals <= MAX_APPROVALS:
        raise ValueError(f"the approval quorum must be between 1 and {MAX_APPROVALS}")
    if unlock_delay is not None:
        check_unlock_delay(unlock_delay)
    params = {
        "require_approval": require_approval,
        "approval_ttl_s": None if approval_ttl is None else int(approval_ttl.total_seconds()),
        "unlock_delay_ms": None if unlock_delay is None else round(unlock_delay.total_seconds() * 1000),
        "approvals": approvals,
    }
    return admin_actions.guarded(
        vault, "vault.policy", params, lambda: _set_policy(vault, params, admin_action)
    )


def _set_policy(vault: Vault, params: dict[str, Any], admin_action: str | None) -> Policy:
    with vault.action("vault.policy", role="admin") as act:
        admin_actions.consume(vault, act, "vault.policy", params, admin_action)
        row = act.session.scalars(select(VaultRow)).one()
        if params["require_approval"] is not None:
            row.require_approval = params["require_approval"]
        if params["approval_ttl_s"] is not None:
            row.approval_ttl_s = params["approval_ttl_s"]
        if params["unlock_delay_ms"] is not None:
            row.unlock_delay_ms = params["unlock_delay_ms"]
        if params["approvals"] is not None:
            row.approvals_required = params["approvals"]
        act.details.update(
            require_approval=row.require_approval,
            approval_ttl_s=row.approval_ttl_s,
            unlock_delay_ms=row.unlock_delay_ms,
            approvals=row.approvals_required,
        )
        return Policy.from_row(row)


# ---------------------------------------------------------------- restore requests and approvals


def _request_info(vault: Vault, session: Session, row: RestoreRequestRow) -> RequestInfo:
    approvals = tuple(
        ApprovalInfo(
            approver=a.approver,
            created=a.created,
            expires=a.expires,
            used=a.used,
            input_digest=a.input_digest,
            mode=a.mode,
        )
        for a in session.scalars(
            select(ApprovalRow).where(ApprovalRow.request_handle == row.handle).order_by(ApprovalRow.id)
        )
    )
    counted = len(counting(session, row, vault.clock())) if row.state in OPEN_STATES else 0
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
        mode=row.mode,
        files=tuple(RequestFile(name=f["name"], sha256=f["sha256"]) for f in row.files or ()),
        approvals_required=vault.policy(session).approvals,
        approvals_counted=counted,
        closed_by=row.closed_by,
        closed_reason=row.closed_reason,
    )


def _load_request(session: Session, handle: str) -> RestoreRequestRow:
    row = session.get(RestoreRequestRow, handle)
    if row is None:
        raise NotFound(f"unknown restore request {handle}", hint="`ifadit requests list` shows them")
    return row


def _check_open(row: RestoreRequestRow, verb: str) -> None:
    """Refuse to act on a request that was used, denied or cancelled, naming its state."""
    if row.state == "used":
        raise PermissionDenied(
            f"request {row.handle} was already used: approvals are single-use", hint="file a new request"
        )
    if row.state not in OPEN_STATES:
        raise PermissionDenied(
            f"request {row.handle} was {row.state} by {row.closed_by}: {verb} refused",
            hint="file a new request",
        )


def _check_files(files: Sequence[RequestFile]) -> None:
    if not files:
        raise ValueError("a restore request lists at least one file")
    for file in files:
        if not DIGEST.fullmatch(file.sha256):
            raise ValueError(f"{file.name}: a file's digest must be its SHA-256 as 64 lower-case hex digits")


def request_restore(
    vault: Vault,
    *,
    case: str,
    reason: str,
    files: Sequence[RequestFile],
    mode: str,
    key: str | None = None,
) -> RequestInfo:
    """Record an investigator's request to restore ``files`` (names and SHA-256s) in ``mode`` under ``case``."""
    if not case.strip() or not reason.strip():
        raise ValueError("a restore request needs a case id and a reason")
    if mode not in RESTORE_MODES:
        raise ValueError(f"mode must be one of {', '.join(RESTORE_MODES)}, not {mode!r}")
    _check_files(files)
    digest = inputs_digest(file.sha256 for file in files)
    handle = f"rq_{secrets.token_hex(12)}"
    with vault.action(
        "restore.request",
        role="investigator",
        key=key,
        case=case,
        reason=reason,
        digests={"input": digest},
        details={"request": handle, "mode": mode, "files": len(files)},
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
            input_digest=digest,
            key_handle=key,
            state="pending",
            created=vault.clock(),
            mode=mode,
            files=[{"name": file.name, "sha256": file.sha256} for file in files],
        )
        act.session.add(row)
        act.session.flush()
        return _request_info(vault, act.session, row)


def approve(vault: Vault, handle: str) -> RequestInfo:
    """Add the acting approver's approval to another user's open request; approved once the quorum is met.

    Refused for the requester, an approver tied to the requester by the two-person rule
    (``keyvault.approvals``), a second approval by the same approver, and a used, denied or cancelled request.
    """
    with vault.action("restore.approve", role="approver", details={"request": handle}) as act:
        row = _load_request(act.session, handle)
        act.case_id, act.key_handle, act.digests = row.case_id, row.key_handle, {"input": row.input_digest}
        act.details["mode"] = row.mode
        check_not_related(act.session, row, vault.user.name)
        _check_open(row, "approval")
        if row.mode is None:
            raise PermissionDenied(
                f"request {handle} was filed before requests named their mode: approval refused",
                hint="the requester files a new request",
            )
        now, policy = vault.clock(), vault.policy(act.session)
        counted = counting(act.session, row, now)
        if any(approval.approver == vault.user.name for approval in counted):
            raise PermissionDenied(
                f"user {vault.user.name} already approved request {handle}",
                hint=f"the quorum needs {policy.approvals} distinct approvers",
            )
        if len(counted) >= policy.approvals:
            raise VaultError(f"request {handle} is already approved")
        act.session.add(
            ApprovalRow(
                request_handle=handle,
                approver=vault.user.name,
                created=now,
                expires=now + policy.approval_ttl,
                input_digest=row.input_digest,
                mode=row.mode,
            )
        )
        act.session.flush()
        reached = len(counted) + 1
        row.state = "approved" if reached >= policy.approvals else "pending"
        act.details.update(approvals=reached, required=policy.approvals)
        act.session.flush()
        return _request_info(vault, act.session, row)


def _close(vault: Vault, handle: str, reason: str, *, verb: str, role: str, state: str) -> RequestInfo:
    """Deny or cancel an open request (one audited action holding the reason)."""
    if not reason.strip():
        raise ValueError(f"a request is {state} with a reason (--reason)")
    with vault.action(f"restore.{verb}", role=role, reason=reason, details={"request": handle}) as act:
        row = _load_request(act.session, handle)
        act.case_id, act.key_handle, act.digests = row.case_id, row.key_handle, {"input": row.input_digest}
        mine = row.requester == vault.user.name
        if verb == "deny" and mine:
            raise PermissionDenied(
                f"user {vault.user.name} made request {handle} and cannot deny it",
                hint=f"withdraw it with `ifadit requests cancel {handle}`",
            )
        if verb == "cancel" and not mine:
            raise PermissionDenied(
                f"request {handle} was made by {row.requester}; only the requester can cancel it",
                hint=f"an approver refuses it with `ifadit requests deny {handle}`",
            )
        _check_open(row, verb)
        row.state, row.closed_by, row.closed_reason = state, vault.user.name, reason
        act.session.flush()
        return _request_info(vault, act.session, row)


def deny(vault: Vault, handle: str, reason: str) -> RequestInfo:
    """Refuse another user's open request (approver role; audited with ``reason``); it can no longer be used."""
    return _close(vault, handle, reason, verb="deny", role="approver", state="denied")


def cancel(vault: Vault, handle: str, reason: str) -> RequestInfo:
    """Withdraw one's own open request (the requester; audited with ``reason``)."""
    return _close(vault, handle, reason, verb="cancel", role="investigator", state="cancelled")


def list_requests(vault: Vault, *, case: str | None = None, state: str | None = None) -> list[RequestInfo]:
    """Restore requests, newest first, optionally one case's or one state's (one of ``REQUEST_STATES``)."""
    if state is not None and state not in REQUEST_STATES:
        raise ValueError(f"state must be one of {', '.join(REQUEST_STATES)}, not {state!r}")
    with vault.action("restore.list", role=REQUEST_READERS, case=case, record=False) as act:
        query = select(RestoreRequestRow).order_by(RestoreRequestRow.created.desc())
        if case is not None:
            query = query.where(RestoreRequestRow.case_id == case)
        if state is not None:
            query = query.where(RestoreRequestRow.state == state)
        return [_request_info(vault, act.session, row) for row in act.session.scalars(query)]


def show_request(vault: Vault, handle: str) -> RequestInfo:
    """One restore request, its files and its approvals."""
    with vault.action("restore.show", role=REQUEST_READERS, record=False) as act:
        return request_in(vault, act.session, handle)


def request_in(vault: Vault, session: Session, handle: str) -> RequestInfo:
    """One restore request and its approvals, read inside the caller's action (e.g. right after consuming it)."""
    return _request_info(vault, session, _load_request(session, handle))


def find_request(vault: Vault, *, case: str, input_digest: str, mode: str) -> RequestInfo | None:
    """The acting user's open request for exactly these inputs and mode: one whose quorum is met, else the newest.

    So filing a second request for the same files never hides one that is already approved.
    """
    with vault.action("restore.list", role="investigator", case=case, record=False) as act:
        query = (
            select(RestoreRequestRow)
            .where(
                RestoreRequestRow.requester == vault.user.name,
                RestoreRequestRow.case_id == case,
                RestoreRequestRow.input_digest == input_digest,
                RestoreRequestRow.mode == mode,
                RestoreRequestRow.state.in_(OPEN_STATES),
            )
            .order_by(RestoreRequestRow.created.desc())
        )
        found = [_request_info(vault, act.session, row) for row in act.session.scalars(query)]
    ready = [request for request in found if request.approvals_counted >= request.approvals_required]
    candidates = ready or found
    return candidates[0] if candidates else None


def consume_approval(
    vault: Vault, session: Session, handle: str | None, *, case: str, input_digest: str, mode: str
) -> None:
    """Use up request ``handle`` inside the caller's action; refuse anything that does not fit.

    The request must be the acting user's, for ``case``, these inputs and this ``mode``, and hold the
    quorum now. A batch restore unseals several keys in one action: the request is consumed once per
    action (the session remembers it), not once per key.
    """
    consumed: set[str] = session.info.setdefault("consumed_requests", set())
    if handle is not None and handle in consumed:
        return
    if handle is None:
        raise ApprovalPending(
            f"restore under case {case} needs an approved request (policy: require approval)",
            hint="file one with the restore command, then ask an approver",
        )
    row = _load_request(session, handle)
    _check_use(vault, row, case=case, input_digest=input_digest, mode=mode)
    _check_not_consumed(session, row)
    now = vault.clock()
    approvals, required = counting(session, row, now), vault.policy(session).approvals
    if len(approvals) < required:
        expired = row.state == "approved"
        raise ApprovalPending(
            f"the approvals of request {handle} expired or no longer count ({len(approvals)} of {required})"
            if expired
            else f"request {handle} awaits approval ({len(approvals)} of {required})",
            hint=f"an approver runs `ifadit requests approve {handle}`",
        )
    for approval in approvals:
        approval.used = now
    row.state = "used"
    consumed.add(handle)
    session.flush()


def _check_not_consumed(session: Session, row: RestoreRequestRow) -> None:
    """Refuse an open request the audit log says was already used (its rows rolled back from a backup)."""
    used = ledger.consumption(session, row.case_id, row.handle)
    if used is not None:
        seq, action = used
        raise TamperedRow(
            f"restore_requests row '{row.handle}': state {row.state} but audit log entry {seq} records its "
            f"use by {action} (rows restored from a backup?): refused"
        )


def _check_use(vault: Vault, row: RestoreRequestRow, *, case: str, input_digest: str, mode: str) -> None:
    """Refuse a request that is another case's, another user's, closed, or for other inputs or another mode."""
    if row.case_id != case:
        raise PermissionDenied(f"request {row.handle} is for case {row.case_id}, not {case}")
    if row.requester != vault.user.name:
        raise PermissionDenied(
            f"request {row.handle} was made by {row.requester}; only the requester can use it"
        )
    _check_open(row, "restore")
    if row.mode is None:
        raise PermissionDenied(
            f"request {row.handle} was filed before requests named their mode", hint="file a new request"
        )
    if row.mode != mode:
        raise PermissionDenied(
            f"request {row.handle} was approved for a {row.mode} restore, not {mode}",
            hint=f"file a new request for a {mode} restore",
        )
    if row.input_digest != input_digest:
        raise PermissionDenied(
            f"request {row.handle} was approved for other inputs: files changed, added or missing",
            hint="`ifadit requests show` lists its files; file a new request for these",
        )
