"""Anonymization-key lifecycle after NIST SP 800-57 Part 1: issue, rotate, suspend, resume, revoke, destroy.

States: active → (suspended ⇄ active) → revoked → pending-destroy (⇄ revoked) → destroyed. Rotation
adds a version; anonymizing always uses the newest version of an active, unexpired key; restoring accepts
any version of an active key (expired or not) until the key is revoked. Destroy schedules the erasure
after a pending window (default 7 days, cancellable, as AWS KMS ScheduleKeyDeletion), so one mistaken
or malicious command cannot shred evidence at once; the first key action after the window erases every
version's sealed material (crypto-shredding) and keeps the rows as tombstones. With two enabled admins,
destroy also needs a second admin's approval (``keyvault.admin_actions``). Material is 32 random bytes sealed with
AES-256-GCM under the vault KEK, bound to vault id, key handle, version and purpose; it leaves this
module only inside an ``UnsealedKey`` whose repr hides it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyvault import access, admin_actions, ledger
from keyvault.envelope import random_key
from keyvault.errors import KeyStateError, NotFound, PermissionDenied, TamperedRow, VaultError
from keyvault.material import KeyMaterial
from keyvault.records import KeyInfo, VersionInfo
from keyvault.schema import ROLES, KeyRow, KeyVersionRow
from keyvault.vault import Action, Vault, aad

READ_ROLES = ("admin", "operator", "investigator", "auditor")
USE_ROLES = {"anonymize": "operator", "restore": "investigator"}
DESTROY_WINDOW = timedelta(days=7)  # default pending window of ``destroy``

# verb -> (states it may start from, state it leads to); rotate keeps the key active
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "rotate": (frozenset({"active"}), "active"),
    "suspend": (frozenset({"active"}), "suspended"),
    "resume": (frozenset({"suspended"}), "active"),
    "revoke": (frozenset({"active", "suspended"}), "revoked"),
}
HINTS = {
    "active": "suspend or revoke it first",
    "suspended": "resume it first",
    "revoked": "a revoked key can only be destroyed",
    "pending-destroy": "it is scheduled for destruction; `ifadit keys cancel-destroy` stops that within the window",
    "destroyed": "its material was erased; nothing can use it any more",
}


@dataclass(frozen=True, kw_only=True)
class UnsealedKey(KeyMaterial):
    """Key material in memory for the pipeline, with the key version it came from."""

    handle: str
    version: int
    case_id: str


def new_handle() -> str:
    """An opaque key handle: ``kh_`` and 24 random hex digits (never derived from the case or material)."""
    return f"kh_{secrets.token_hex(12)}"


def material_aad(vault_id: str, handle: str, version: int, purpose: str) -> bytes:
    """Associated data binding sealed material to its vault, key, version and purpose."""
    return aad("key-material", vault=vault_id, key=handle, version=version, purpose=purpose)


def _load(session: Session, handle: str) -> KeyRow:
    row = session.get(KeyRow, handle)
    if row is None:
        raise NotFound(f"unknown key {handle}", hint="`ifadit keys list` shows the keys")
    return row


def _versions(session: Session, handle: str) -> list[KeyVersionRow]:
    query = select(KeyVersionRow).where(KeyVersionRow.key_handle == handle).order_by(KeyVersionRow.version)
    return list(session.scalars(query))


def _infos(session: Session, rows: list[KeyRow]) -> list[KeyInfo]:
    """Public facts of ``rows`` with their versions, in one query (the sealed material is never shown)."""
    versions: dict[str, list[VersionInfo]] = {row.handle: [] for row in rows}
    if rows:  # ORM rows, so each one is checked against its integrity tag as it loads
        query = (
            select(KeyVersionRow)
            .where(KeyVersionRow.key_handle.in_(list(versions)))
            .order_by(KeyVersionRow.key_handle, KeyVersionRow.version)
        )
        for v in session.scalars(query):
            versions[v.key_handle].append(VersionInfo(v.version, v.state, v.created, v.revoked, v.destroyed))
    return [
        KeyInfo(
            handle=row.handle,
            case_id=row.case_id,
            purpose=row.purpose,
            state=row.state,
            created=row.created,
            created_by=row.created_by,
            expires=row.expires,
            versions=tuple(versions[row.handle]),
        )
        for row in rows
    ]


def _info(session: Session, row: KeyRow) -> KeyInfo:
    return _infos(session, [row])[0]


def _new_version(vault: Vault, session: Session, row: KeyRow, version: int) -> None:
    sealed = vault.seal_secret(random_key(), material_aad(vault.id, row.handle, version, row.purpose))
    session.add(
        KeyVersionRow(
            key_handle=row.handle,
            version=version,
            material_sealed=sealed,
            state="active",
            created=vault.clock(),
        )
    )


def issue(vault: Vault, case: str, purpose: str, expires: datetime | None = None) -> KeyInfo:
    """Create an active key with version 1 for ``case``; admin only."""
    if not case.strip() or not purpose.strip():
        raise ValueError("a key needs a non-empty case id and purpose")
    now = vault.clock()
    if expires is not None and expires <= now:
        raise VaultError(
            f"expiry {expires.isoformat()} is not in the future", hint="pass a later --expires date"
        )
    handle = new_handle()
    destroy_due(vault)
    with vault.action(
        "key.issue",
        role="admin",
        case=case,
        details={"purpose": purpose, "expires": expires.isoformat() if expires else None},
    ) as act:
        act.key_handle, act.key_version = handle, 1
        row = KeyRow(
            handle=handle,
            case_id=case,
            purpose=purpose,
            state="active",
            expires=expires,
            created=now,
            created_by=vault.user.name,
        )
        act.session.add(row)
        act.session.flush()
        _new_version(vault, act.session, row, 1)
        act.session.flush()
        return _info(act.session, row)


def _transition(vault: Vault, verb: str, handle: str, reason: str | None) -> KeyInfo:
    allowed, target = TRANSITIONS[verb]
    destroy_due(vault)
    with vault.action(f"key.{verb}", role="admin", key=handle, reason=reason) as act:
        row = _load(act.session, handle)
        act.case_id = row.case_id
        if row.state not in allowed:
            raise KeyStateError(f"key {handle} is {row.state}: {verb} refused", hint=HINTS[row.state])
        versions = _versions(act.session, handle)
        now = vault.clock()
        if verb == "rotate":
            for version in versions:
                if version.state == "active":
                    version.state = "superseded"
            _new_version(vault, act.session, row, versions[-1].version + 1)
            act.key_version = versions[-1].version + 1
        elif verb == "revoke":
            for version in versions:
                version.state, version.revoked = "revoked", now
        row.state = target
        act.session.flush()
        return _info(act.session, row)


def rotate(vault: Vault, handle: str) -> KeyInfo:
    """Add a new version; the newest one is used for anonymizing from now on."""
    return _transition(vault, "rotate", handle, None)


def suspend(vault: Vault, handle: str, reason: str | None = None) -> KeyInfo:
    """Temporarily block every use of the key (reversible with ``resume``)."""
    return _transition(vault, "suspend", handle, reason)


def resume(vault: Vault, handle: str, reason: str | None = None) -> KeyInfo:
    """Lift a suspension."""
    return _transition(vault, "resume", handle, reason)


def revoke(vault: Vault, handle: str, reason: str) -> KeyInfo:
    """Permanently stop all use of the key (anonymize and restore); the material is kept until destroyed."""
    if not (reason and reason.strip()):
        raise ValueError("revoking a key needs a reason")
    return _transition(vault, "revoke", handle, reason)


def destroy(
    vault: Vault,
    handle: str,
    reason: str,
    *,
    window: timedelta = DESTROY_WINDOW,
    admin_action: str | None = None,
) -> KeyInfo:
    """Schedule the erasure of a revoked key's material after ``window``; anonymizations become permanent.

    The key turns ``pending-destroy`` (every use refused; ``cancel_destroy`` stops it within the window)
    and each version's ``destroyed`` time says when the first key action after it erases the material
    (``destroy_due``). ``window`` 0 erases at once. With two enabled admins it needs another admin's
    approval of exactly this handle, reason and window (``keyvault.admin_actions``).
    """
    if not (reason and reason.strip()):
        raise ValueError("destroying a key needs a reason")
    if window < timedelta(0):
        raise ValueError("the destroy window cannot be negative")
    params = {"key": handle, "reason": reason, "window_s": int(window.total_seconds())}
    destroy_due(vault)
    return admin_actions.guarded(
        vault, "key.destroy", params, lambda: _schedule_destroy(vault, handle, reason, window, admin_action)
    )


def _schedule_destroy(
    vault: Vault, handle: str, reason: str, window: timedelta, admin_action: str | None
) -> KeyInfo:
    params = {"key": handle, "reason": reason, "window_s": int(window.total_seconds())}
    name = "key.destroy" if window == timedelta(0) else "key.schedule-destroy"
    details = {"window_s": params["window_s"]}
    with vault.action(name, role="admin", key=handle, reason=reason, details=details) as act:
        admin_actions.consume(vault, act, "key.destroy", params, admin_action)
        row = _load(act.session, handle)
        act.case_id = row.case_id
        if row.state != "revoked":
            raise KeyStateError(f"key {handle} is {row.state}: destroy refused", hint=HINTS[row.state])
        due = vault.clock() + window
        if window == timedelta(0):
            _erase(row, _versions(act.session, handle), due)
        else:
            row.state = "pending-destroy"
            for version in _versions(act.session, handle):
                version.destroyed = due
            act.details["due"] = due.isoformat()
        act.session.flush()
        return _info(act.session, row)


def _erase(row: KeyRow, versions: list[KeyVersionRow], now: datetime) -> None:
    for version in versions:
        version.state, version.destroyed, version.material_sealed = "destroyed", now, None
    row.state = "destroyed"


def cancel_destroy(vault: Vault, handle: str, reason: str) -> KeyInfo:
    """Cancel a scheduled destruction within its window: the key is revoked again, its material kept."""
    if not (reason and reason.strip()):
        raise ValueError("cancelling a destruction needs a reason")
    destroy_due(vault)
    with vault.action("key.cancel-destroy", role="admin", key=handle, reason=reason) as act:
        row = _load(act.session, handle)
        act.case_id = row.case_id
        if row.state != "pending-destroy":
            raise KeyStateError(
                f"key {handle} is {row.state}: cancel-destroy refused", hint="only a pending-destroy key"
            )
        for version in _versions(act.session, handle):
            version.destroyed = None
        row.state = "revoked"
        act.session.flush()
        return _info(act.session, row)


def destroy_due(vault: Vault) -> list[str]:
    """Erase every pending-destroy key whose window has ended, each as its own audited ``key.destroy``.

    Run at the start of every key action (by whoever acts: the destruction was approved when scheduled);
    returns the handles erased.
    """
    now = vault.clock()
    query = (
        select(KeyVersionRow.key_handle)
        .join(KeyRow, KeyRow.handle == KeyVersionRow.key_handle)
        .where(KeyRow.state == "pending-destroy", KeyVersionRow.destroyed <= now)
        .distinct()
    )
    with vault.engine.connect() as connection:  # a read: no write lock, no commit (the action verifies rows)
        due = sorted(connection.scalars(query))
    for handle in due:
        with vault.action("key.destroy", role=ROLES, key=handle, details={"scheduled": True}) as act:
            row = _load(act.session, handle)
            act.case_id = row.case_id
            versions = _versions(act.session, handle)
            if row.state == "pending-destroy" and all(v.destroyed and v.destroyed <= now for v in versions):
                _erase(row, versions, now)
    return due


def list_keys(vault: Vault, *, case: str | None = None, state: str | None = None) -> list[KeyInfo]:
    """Keys (newest first), optionally one case's or one state's; never material."""
    destroy_due(vault)
    with vault.action("key.list", role=READ_ROLES, case=case, record=False) as act:
        query = select(KeyRow).order_by(KeyRow.created.desc(), KeyRow.handle)
        if case is not None:
            query = query.where(KeyRow.case_id == case)
        if state is not None:
            query = query.where(KeyRow.state == state)
        return _infos(act.session, list(act.session.scalars(query)))


def show(vault: Vault, handle: str) -> KeyInfo:
    """One key's facts and versions; never material."""
    destroy_due(vault)
    with vault.action("key.show", role=READ_ROLES, key=handle, record=False) as act:
        return _info(act.session, _load(act.session, handle))


def check_restorable(act: Action, handles: Iterable[str], *, case: str) -> None:
    """Inside a restore's action: refuse keys of another case, not active, or retired in the log, by name
    (before a request is filed or awaited, so a revoked key is reported as such, not as an approval to
    wait for, and no request is filed for a key rolled back from a backup)."""
    for handle in sorted(set(handles)):
        row = _load(act.session, handle)
        if row.case_id != case:
            act.key_handle = handle
            raise PermissionDenied(f"key {handle} does not belong to case {case}")
        if row.state != "active":
            act.key_handle = handle
            raise KeyStateError(f"key {handle} is {row.state}: restore refused", hint=HINTS[row.state])
        act.key_handle = handle
        _check_not_retired(act.session, row)


def unseal_for_use(
    vault: Vault,
    handle: str,
    *,
    purpose: str,
    version: int | None = None,
    action: Action | None = None,
    request: str | None = None,
    input_digest: str | None = None,
    mode: str | None = None,
) -> UnsealedKey:
    """The 32-byte material of one version, for anonymizing (newest version) or restoring (any version).

    Inside ``action`` (the pipeline's own audited action) the key use is recorded on that entry;
    otherwise it runs as its own audited action ``key.use``. Restoring under a policy that requires
    approval consumes ``request`` (single use; bound to the case, ``input_digest`` and ``mode``, with its
    quorum of approvals: ``access.consume_approval``) in the same transaction.
    """
    if purpose not in USE_ROLES:
        raise ValueError(f"purpose must be one of {', '.join(USE_ROLES)}, not {purpose!r}")
    if action is not None:
        return _unseal(vault, action, handle, purpose, version, (request, input_digest, mode))
    destroy_due(vault)
    with vault.action("key.use", role=USE_ROLES[purpose], key=handle, details={"purpose": purpose}) as act:
        return _unseal(vault, act, handle, purpose, version, (request, input_digest, mode))


def _check_not_retired(session: Session, row: KeyRow) -> None:
    """Refuse an active key the audit log says was revoked or destroyed (its rows rolled back from a backup)."""
    retired = ledger.retirement(session, row.case_id, row.handle)
    if retired is not None:
        seq, action = retired
        raise TamperedRow(
            f"keys row '{row.handle}': state {row.state} but audit log entry {seq} records {action} "
            "(rows restored from a backup?): refused"
        )


def _unseal(
    vault: Vault,
    act: Action,
    handle: str,
    purpose: str,
    version: int | None,
    approval: tuple[str | None, str | None, str | None],  # request, input digest, mode
) -> UnsealedKey:
    row = _load(act.session, handle)
    if purpose == "restore" and act.case_id is not None and act.case_id != row.case_id:
        act.key_handle = handle  # the entry keeps the case the restore was asked under
        raise PermissionDenied(f"key {handle} does not belong to case {act.case_id}")
    act.key_handle, act.case_id = handle, row.case_id
    if row.state != "active":
        raise KeyStateError(f"key {handle} is {row.state}: {purpose} refused", hint=HINTS[row.state])
    _check_not_retired(act.session, row)
    versions = {v.version: v for v in _versions(act.session, handle)}
    newest = max(versions)
    if purpose == "anonymize":
        if row.expires is not None and vault.clock() >= row.expires:
            raise KeyStateError(
                f"key {handle} expired on {row.expires.date().isoformat()}: anonymize refused",
                hint="issue a new key for the case",
            )
        if version not in (None, newest):
            raise KeyStateError(
                f"key {handle} version {version} is superseded by {newest}: anonymize refused",
                hint="anonymizing always uses the newest version",
            )
    chosen = newest if version is None else version
    if chosen not in versions:
        raise NotFound(f"key {handle} has no version {chosen} (newest: {newest})")
    if purpose == "restore" and vault.policy(act.session).require_approval:
        request, input_digest, mode = approval
        if request is not None and (input_digest is None or mode is None):
            raise ValueError("restoring under a request needs the inputs' digest and the mode")
        access.consume_approval(
            vault, act.session, request, case=row.case_id, input_digest=input_digest or "", mode=mode or ""
        )
        act.details["request"] = request
    act.key_version = chosen
    sealed = versions[chosen].material_sealed
    if sealed is None:
        raise KeyStateError(f"key {handle} version {chosen} is destroyed: {purpose} refused")
    material = vault.unseal_secret(sealed, material_aad(vault.id, handle, chosen, row.purpose))
    return UnsealedKey(handle=handle, version=chosen, case_id=row.case_id, material=material)
