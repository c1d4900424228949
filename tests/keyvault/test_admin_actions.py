"""Two-person rule for admin actions once a vault has two admins, and destroy's pending window (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from keyvault import access, admin_actions, keys
from keyvault.errors import ApprovalPending, KeyStateError, PermissionDenied, TamperedRow
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import ADMIN_PASS, FakeClock, add_user, cheap_kdf, execute, table_rows


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lab(vault: Vault, clock: FakeClock) -> Iterator[tuple[Vault, Vault]]:
    """The first admin (on the injected clock) and a second admin, ``bob``."""
    first = open_vault(vault.url, vault.user.name, ADMIN_PASS, clock=clock)
    with add_user(first, "bob", "admin") as bob:
        yield first, bob
    first.close()


def _filed(call: object) -> str:
    with pytest.raises(ApprovalPending, match=r"filed admin action (aa_[0-9a-f]{24})") as caught:
        call()  # type: ignore[operator]
    return str(caught.value).split("filed admin action ")[1].split()[0]


def _entries(vault: Vault) -> list[dict]:
    rows = sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    return [json.loads(r["canonical"]) for r in rows]


def test_one_admin_nothing_changes(vault: Vault) -> None:
    access.add_user(vault, "olga", ["operator"], b"olga", kdf=cheap_kdf())
    assert access.set_policy(vault, approvals=2).approvals == 2
    assert table_rows(vault.url, "admin_actions") == []


def test_add_user_needs_the_other_admin(lab: tuple[Vault, Vault]) -> None:
    first, bob = lab
    add = lambda action=None: access.add_user(  # noqa: E731
        first, "eve", ["approver"], b"eve", kdf=cheap_kdf(), admin_action=action
    )
    handle = _filed(add)
    assert [u.name for u in access.list_users(first)] == ["admin", "bob"]  # nothing added yet
    with pytest.raises(ApprovalPending, match=f"admin action {handle} awaits"):
        add(handle)
    with pytest.raises(PermissionDenied, match="filed admin action .*: approval refused"):
        admin_actions.approve(first, handle)
    assert admin_actions.approve(bob, handle).state == "approved"
    with pytest.raises(PermissionDenied, match="approves a different user.add"):  # other roles than approved
        access.add_user(first, "eve", ["admin"], b"eve", kdf=cheap_kdf(), admin_action=handle)
    assert add(handle).roles == ("approver",)
    assert admin_actions.show(first, handle).state == "used"
    with pytest.raises(Exception, match=f"admin action {handle} is used"):  # single use
        access.add_user(first, "eve2", ["approver"], b"e", kdf=cheap_kdf(), admin_action=handle)
    actions = [e["action"] for e in _entries(first) if e["outcome"] == "ok"]
    assert actions[-3:] == ["admin.file", "admin.approve", "user.add"]
    filing = next(i for i, e in enumerate(_entries(first)) if e["action"] == "admin.file")
    refused = _entries(first)[filing - 1]  # the lone attempt, audited, nothing of it committed
    assert (refused["action"], refused["outcome"], refused["actor"]) == ("user.add", "refused", "admin")


def test_policy_change_needs_the_other_admin_and_expires(lab: tuple[Vault, Vault], clock: FakeClock) -> None:
    first, bob = lab
    handle = _filed(lambda: access.set_policy(first, require_approval=False))
    assert first.policy().require_approval
    admin_actions.approve(bob, handle)
    clock.advance(admin_actions.DEFAULT_TTL)
    with pytest.raises(PermissionDenied, match=f"admin action {handle} expired"):
        access.set_policy(first, require_approval=False, admin_action=handle)
    assert first.policy().require_approval
    with pytest.raises(PermissionDenied, match="filed by admin, not bob"):
        access.set_policy(bob, require_approval=False, admin_action=handle)


def test_denied_action_cannot_run(lab: tuple[Vault, Vault]) -> None:
    first, bob = lab
    handle = _filed(lambda: access.set_policy(first, approvals=2))
    assert admin_actions.deny(bob, handle).state == "denied"
    with pytest.raises(Exception, match=f"admin action {handle} is denied"):
        access.set_policy(first, approvals=2, admin_action=handle)
    assert [a.handle for a in admin_actions.list_actions(bob, state="denied")] == [handle]


def test_tampered_pending_action_is_refused(lab: tuple[Vault, Vault]) -> None:
    first, bob = lab
    handle = _filed(lambda: access.add_user(first, "eve", ["operator"], b"eve", kdf=cheap_kdf()))
    params = json.dumps({"name": "eve", "roles": "admin"}, separators=(",", ":"))
    execute(first.url, "UPDATE admin_actions SET params = :p WHERE handle = :h", p=params, h=handle)
    with pytest.raises(TamperedRow, match=rf"admin_actions row '{handle}': .*\(params\)"):
        admin_actions.approve(bob, handle)
    execute(
        first.url,
        "UPDATE admin_actions SET params = :p, state = 'approved' WHERE handle = :h",
        p="{}",
        h=handle,
    )
    with pytest.raises(TamperedRow, match=rf"admin_actions row '{handle}'"):
        access.add_user(first, "eve", ["operator"], b"eve", kdf=cheap_kdf(), admin_action=handle)


def test_destroy_needs_the_other_admin(lab: tuple[Vault, Vault]) -> None:
    first, bob = lab
    handle = keys.issue(first, "C-1", "test").handle
    keys.revoke(first, handle, reason="closed")
    action = _filed(lambda: keys.destroy(first, handle, reason="retention over"))
    assert keys.show(first, handle).state == "revoked"
    admin_actions.approve(bob, action)
    with pytest.raises(PermissionDenied, match="approves a different key.destroy"):  # window not approved
        keys.destroy(first, handle, reason="retention over", window=timedelta(0), admin_action=action)
    assert (
        keys.destroy(first, handle, reason="retention over", admin_action=action).state == "pending-destroy"
    )


def test_destroy_pending_then_cancel(vault: Vault, clock: FakeClock) -> None:
    admin = open_vault(vault.url, vault.user.name, ADMIN_PASS, clock=clock)
    handle = keys.issue(admin, "C-1", "test").handle
    keys.revoke(admin, handle, reason="closed")
    pending = keys.destroy(admin, handle, reason="retention over")
    assert pending.state == "pending-destroy"
    assert all(v.destroyed == clock() + keys.DESTROY_WINDOW for v in pending.versions)
    clock.advance(keys.DESTROY_WINDOW - timedelta(seconds=1))
    cancelled = keys.cancel_destroy(admin, handle, reason="litigation hold")
    assert cancelled.state == "revoked" and all(v.destroyed is None for v in cancelled.versions)
    clock.advance(timedelta(days=30))
    assert keys.show(admin, handle).state == "revoked"
    assert all(r["material_sealed"] is not None for r in table_rows(vault.url, "key_versions"))
    assert [e["action"] for e in _entries(admin)][-2:] == ["key.schedule-destroy", "key.cancel-destroy"]
    admin.close()


def test_destroy_window_passes_material_erased_tombstone_kept(vault: Vault, clock: FakeClock) -> None:
    admin = open_vault(vault.url, vault.user.name, ADMIN_PASS, clock=clock)
    handle = keys.issue(admin, "C-1", "test").handle
    keys.rotate(admin, handle)
    keys.revoke(admin, handle, reason="closed")
    keys.destroy(admin, handle, reason="retention over", window=timedelta(days=1))
    clock.advance(timedelta(days=1))
    assert keys.list_keys(admin)[0].state == "destroyed"  # the first key action after the window
    rows = [r for r in table_rows(vault.url, "key_versions") if r["key_handle"] == handle]
    assert len(rows) == 2 and all(r["material_sealed"] is None and r["state"] == "destroyed" for r in rows)
    last = _entries(admin)[-1]
    assert (last["action"], last["outcome"], last["key_handle"]) == ("key.destroy", "ok", handle)
    with pytest.raises(KeyStateError, match=f"key {handle} is destroyed: cancel-destroy refused"):
        keys.cancel_destroy(admin, handle, reason="too late")
    admin.close()


def test_pending_destroy_key_refuses_use(vault: Vault) -> None:
    access.set_policy(vault, require_approval=False)
    handle = keys.issue(vault, "C-1", "test").handle
    keys.revoke(vault, handle, reason="closed")
    keys.destroy(vault, handle, reason="retention over")
    with add_user(vault, "ops", "operator", "investigator") as ops:
        for purpose in ("anonymize", "restore"):
            with pytest.raises(KeyStateError, match=f"key {handle} is pending-destroy: {purpose} refused"):
                keys.unseal_for_use(ops, handle, purpose=purpose)
    with pytest.raises(KeyStateError, match=f"key {handle} is pending-destroy: destroy refused"):
        keys.destroy(vault, handle, reason="again")
