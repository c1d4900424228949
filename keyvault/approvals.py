"""Which approvals of a restore request count: the quorum, the inputs they are bound to, the two-person rule.

A request names its inputs by one digest (``keyvault.records.inputs_digest``: SHA-256 over the sorted SHA-256s of its
files) and its mode (exact or model). An approval copies both when it is given; it counts toward the
policy's quorum T only while it is unused and unexpired, still names the request's digest and mode, and
its approver still holds the approver role, is not the requester, and is not tied to the requester by
the two-person rule. T approvals by T distinct such approvers make the request usable, once.

Two-person rule (``check_not_related``): an approver may not approve a request when either of the two
added the other's account. A lone admin who adds an account with the approver role cannot approve their
own restore with it, and an admin-approver cannot file a request under an investigator account they
added and approve it. Accounts added before schema 0002 carry no creator and are not tied by the rule.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault.errors import PermissionDenied
from keyvault.records import split_roles
from keyvault.schema import ApprovalRow, RestoreRequestRow, UserRow


def _user(session: Session, name: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.name == name))


def check_not_related(session: Session, request: RestoreRequestRow, approver: str) -> None:
    """Refuse (PermissionDenied) the requester, and an approver tied to the requester by the two-person rule."""
    if approver == request.requester:
        raise PermissionDenied(
            f"user {approver} made request {request.handle} and cannot approve it",
            hint="another user with the approver role must approve",
        )
    approver_row, requester_row = _user(session, approver), _user(session, request.requester)
    if approver_row is not None and approver_row.created_by == request.requester:
        raise PermissionDenied(
            f"user {approver} was added by {request.requester}, who made request {request.handle}: "
            "approval refused (two-person rule)",
            hint="an approver whose account the requester did not add must approve",
        )
    if requester_row is not None and requester_row.created_by == approver:
        raise PermissionDenied(
            f"user {approver} added the account of {request.requester}, who made request {request.handle}: "
            "approval refused (two-person rule)",
            hint="an approver who did not add the requester's account must approve",
        )


def _still_approver(session: Session, name: str) -> bool:
    row = _user(session, name)
    return row is not None and not row.disabled and "approver" in split_roles(row.roles)


def counting(session: Session, request: RestoreRequestRow, now: datetime) -> list[ApprovalRow]:
    """The approvals that count toward the quorum now: one per distinct eligible approver, oldest first."""
    if request.mode is None:
        return []  # filed before requests named their mode: never usable
    query = (
        select(ApprovalRow)
        .where(ApprovalRow.request_handle == request.handle, ApprovalRow.used.is_(None))
        .order_by(ApprovalRow.id)
    )
    chosen: dict[str, ApprovalRow] = {}
    for approval in session.scalars(query):
        if approval.approver in chosen or approval.expires <= now:
            continue
        if approval.input_digest != request.input_digest or approval.mode != request.mode:
            continue
        if not _still_approver(session, approval.approver):
            continue
        try:
            check_not_related(session, request, approval.approver)
        except PermissionDenied:
            continue
        chosen[approval.approver] = approval
    return list(chosen.values())
