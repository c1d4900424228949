"""Users and roles, the restore policy, restore requests and four-eyes approvals (single use, expiry)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from keyvault import access, keys
from keyvault.errors import ApprovalPending, NotFound, PermissionDenied, VaultError
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, FakeClock, add_user, cheap_kdf, table_rows

DIGEST = "0f" * 32


def _entries(vault: Vault) -> list[dict]:
    return [
        json.loads(r["canonical"])
        for r in sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    ]


def test_add_list_users_with_several_roles(vault: Vault) -> None:
    access.add_user(vault, "ann", ["auditor", "approver"], b"pw-ann", kdf=cheap_kdf())
    users = {u.name: u for u in access.list_users(vault)}
    assert users["ann"].roles == ("approver", "auditor") and not users["ann"].disabled
    assert users[ADMIN].roles == ("admin",)
    with open_vault(vault.url, "ann", b"pw-ann") as ann:
        assert ann.user.roles == ("approver", "auditor")
    with pytest.raises(VaultError, match="user ann already exists"):
        access.add_user(vault, "ann", ["operator"], b"x", kdf=cheap_kdf())
    with pytest.raises(ValueError, match="unknown role"):
        access.add_user(vault, "bob", ["janitor"], b"x", kdf=cheap_kdf())
    entry = [e for e in _entries(vault) if e["action"] == "user.add"][0]
    assert entry["details"] == {"user": "ann", "roles": "approver,auditor"}
    assert "pw-ann" not in json.dumps(_entries(vault))


def test_non_admin_cannot_add_users_and_is_audited(vault: Vault) -> None:
    with (
        add_user(vault, "olga", "operator") as olga,
        pytest.raises(PermissionDenied, match="lacks the role admin"),
    ):
        access.add_user(olga, "eve", ["admin"], b"x", kdf=cheap_kdf())
    assert [u.name for u in access.list_users(vault)] == [ADMIN, "olga"]
    last = _entries(vault)[-1]
    assert (last["actor"], last["action"], last["outcome"]) == ("olga", "user.add", "refused")


def test_disable_user_and_last_admin_guard(vault: Vault) -> None:
    with pytest.raises(PermissionDenied, match="last active admin"):
        access.disable_user(vault, ADMIN)
    olga = add_user(vault, "olga", "operator")
    assert access.disable_user(vault, "olga", reason="left").disabled
    with pytest.raises(PermissionDenied, match="olga is disabled"):
        keys.list_keys(olga)  # an already unlocked session loses its rights at once
    olga.close()
    with pytest.raises(NotFound, match="unknown user zed"):
        access.disable_user(vault, "zed")


def test_policy_is_admin_only_and_audited(vault: Vault) -> None:
    assert vault.policy().require_approval and vault.policy().approval_ttl == timedelta(hours=24)
    policy = access.set_policy(vault, require_approval=False, approval_ttl=timedelta(hours=2))
    assert not policy.require_approval and policy.approval_ttl == timedelta(hours=2)
    assert _entries(vault)[-1]["details"] == {
        "require_approval": False,
        "approval_ttl_s": 7200,
        "unlock_delay_ms": 0,
    }
    with add_user(vault, "ann", "approver") as ann, pytest.raises(PermissionDenied):
        access.set_policy(ann, require_approval=True)
    assert not vault.policy().require_approval


@pytest.fixture
def restore_setup(tmp_path):
    """A SQLite vault on a fake clock with an investigator, two approvers and a key."""
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    vault = Vault.init(url, ADMIN, ADMIN_PASS, kdf=cheap_kdf(), clock=clock)
    handle = keys.issue(vault, "C-7", "release").handle
    users = {
        name: add_user(vault, name, *roles)
        for name, roles in {
            "ivan": ("investigator",),
            "ann": ("approver",),
            "iva": ("investigator", "approver"),
        }.items()
    }
    yield vault, clock, handle, users
    for unlocked in users.values():
        unlocked.close()
    vault.close()


def test_four_eyes_restore(restore_setup) -> None:
    vault, clock, handle, users = restore_setup
    ivan, ann = users["ivan"], users["ann"]
    with pytest.raises(ApprovalPending, match="needs an approved request"):
        keys.unseal_for_use(ivan, handle, purpose="restore")
    request = access.request_restore(
        ivan, case="C-7", reason="court order 12/26", input_digest=DIGEST, key=handle
    )
    assert request.handle.startswith("rq_") and request.state == "pending"
    with pytest.raises(ApprovalPending, match=f"request {request.handle} awaits approval") as pending:
        keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle)
    assert pending.value.exit_code == 3
    assert access.find_open_request(ivan, case="C-7", input_digest=DIGEST).handle == request.handle
    approved = access.approve(ann, request.handle)
    assert approved.state == "approved" and approved.approvals[0].approver == "ann"
    assert approved.approvals[0].expires == clock.now + timedelta(hours=24)
    key = keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle, input_digest=DIGEST)
    assert key.version == 1
    assert access.show_request(vault, request.handle).state == "used"
    with pytest.raises(PermissionDenied, match="already used: approvals are single-use"):
        keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle)
    with pytest.raises(PermissionDenied, match="already used"):
        access.approve(ann, request.handle)
    assert access.find_open_request(ivan, case="C-7", input_digest=DIGEST) is None
    outcomes = [(e["action"], e["actor"], e["outcome"]) for e in _entries(vault) if e["action"] != "user.add"]
    assert outcomes[-7:] == [
        ("key.use", "ivan", "refused"),
        ("restore.request", "ivan", "ok"),
        ("key.use", "ivan", "refused"),
        ("restore.approve", "ann", "ok"),
        ("key.use", "ivan", "ok"),
        ("key.use", "ivan", "refused"),
        ("restore.approve", "ann", "refused"),
    ]


def test_requester_cannot_approve_own_request(restore_setup) -> None:
    vault, _, handle, users = restore_setup
    iva = users["iva"]
    request = access.request_restore(iva, case="C-7", reason="r", input_digest=DIGEST)
    with pytest.raises(PermissionDenied, match=f"iva made request {request.handle} and cannot approve it"):
        access.approve(iva, request.handle)
    assert access.show_request(vault, request.handle).state == "pending"
    assert _entries(vault)[-1]["outcome"] == "refused"


def test_approval_expires(restore_setup) -> None:
    _, clock, handle, users = restore_setup
    request = access.request_restore(users["ivan"], case="C-7", reason="r", input_digest=DIGEST)
    access.approve(users["ann"], request.handle)
    clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(ApprovalPending, match="expired"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle)
    access.approve(users["iva"], request.handle)  # a fresh approval revives it
    assert keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle).version == 1


def test_approval_is_bound_to_case_requester_and_input(restore_setup) -> None:
    vault, _, handle, users = restore_setup
    other_case = keys.issue(vault, "C-8", "other").handle
    request = access.request_restore(users["ivan"], case="C-7", reason="r", input_digest=DIGEST)
    access.approve(users["ann"], request.handle)
    with pytest.raises(PermissionDenied, match="is for case C-7, not C-8"):
        keys.unseal_for_use(users["ivan"], other_case, purpose="restore", request=request.handle)
    with pytest.raises(PermissionDenied, match="only the requester can use it"):
        keys.unseal_for_use(users["iva"], handle, purpose="restore", request=request.handle)
    with pytest.raises(PermissionDenied, match="approved for another input"):
        keys.unseal_for_use(
            users["ivan"], handle, purpose="restore", request=request.handle, input_digest="1" * 64
        )
    with pytest.raises(PermissionDenied, match=f"key {other_case} does not belong to case C-7"):
        access.request_restore(users["ivan"], case="C-7", reason="r", input_digest=DIGEST, key=other_case)
    with pytest.raises(NotFound, match="unknown restore request rq_x"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request="rq_x")
    assert access.show_request(vault, request.handle).state == "approved"  # refusals consumed nothing


def test_policy_without_approval(restore_setup) -> None:
    vault, _, handle, users = restore_setup
    access.set_policy(vault, require_approval=False)
    assert keys.unseal_for_use(users["ivan"], handle, purpose="restore").version == 1


def test_list_requests(restore_setup) -> None:
    vault, _, _, users = restore_setup
    first = access.request_restore(users["ivan"], case="C-7", reason="r", input_digest=DIGEST)
    access.request_restore(users["iva"], case="C-9", reason="r", input_digest=DIGEST)
    assert [r.handle for r in access.list_requests(vault, case="C-7")] == [first.handle]
    assert len(access.list_requests(users["ann"], state="pending")) == 2
    with pytest.raises(ValueError, match="64 lower-case hex"):
        access.request_restore(users["ivan"], case="C-7", reason="r", input_digest="sha256:abc")
