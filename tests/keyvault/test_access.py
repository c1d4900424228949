"""Users and roles, the restore policy, restore requests and their approvals (quorum, single use, expiry,
deny and cancel, the two-person rule)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from keyvault import access, keys
from keyvault.errors import ApprovalPending, NotFound, PermissionDenied, VaultError
from keyvault.records import RequestFile, inputs_digest
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import (
    ADMIN,
    ADMIN_PASS,
    FakeClock,
    add_user,
    cheap_kdf,
    execute,
    retag,
    table_rows,
    two_person,
)

FILES = (RequestFile("released/cam1.png", "0f" * 32), RequestFile("released/cam2.png", "1e" * 32))
DIGEST = inputs_digest(f.sha256 for f in FILES)
EXACT = {"input_digest": DIGEST, "mode": "exact"}  # what a restore of FILES with --exact presents


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
    assert (users["ann"].created_by, users[ADMIN].created_by) == (ADMIN, None)  # the two-person rule's basis
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
        "approvals": 1,
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
        ivan, case="C-7", reason="court order 12/26", files=FILES, mode="exact", key=handle
    )
    assert request.handle.startswith("rq_") and request.state == "pending"
    with pytest.raises(ApprovalPending, match=f"request {request.handle} awaits approval") as pending:
        keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle, **EXACT)
    assert pending.value.exit_code == 3
    assert access.find_request(ivan, case="C-7", **EXACT).handle == request.handle
    approved = access.approve(ann, request.handle)
    assert approved.state == "approved" and approved.approvals[0].approver == "ann"
    assert approved.approvals[0].expires == clock.now + timedelta(hours=24)
    key = keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle, **EXACT)
    assert key.version == 1
    assert access.show_request(vault, request.handle).state == "used"
    with pytest.raises(PermissionDenied, match="already used: approvals are single-use"):
        keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle, **EXACT)
    with pytest.raises(PermissionDenied, match="already used"):
        access.approve(ann, request.handle)
    assert access.find_request(ivan, case="C-7", **EXACT) is None
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
    request = access.request_restore(iva, case="C-7", reason="r", files=FILES, mode="exact")
    with pytest.raises(PermissionDenied, match=f"iva made request {request.handle} and cannot approve it"):
        access.approve(iva, request.handle)
    assert access.show_request(vault, request.handle).state == "pending"
    assert _entries(vault)[-1]["outcome"] == "refused"


def test_approval_expires(restore_setup) -> None:
    _, clock, handle, users = restore_setup
    request = access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="exact")
    access.approve(users["ann"], request.handle)
    clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(ApprovalPending, match="expired"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle, **EXACT)
    access.approve(users["iva"], request.handle)  # a fresh approval revives it
    assert (
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle, **EXACT).version
        == 1
    )


def test_approval_is_bound_to_case_requester_and_input(restore_setup) -> None:
    vault, _, handle, users = restore_setup
    other_case = keys.issue(vault, "C-8", "other").handle
    request = access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="exact")
    access.approve(users["ann"], request.handle)
    with pytest.raises(PermissionDenied, match="is for case C-7, not C-8"):
        keys.unseal_for_use(users["ivan"], other_case, purpose="restore", request=request.handle, **EXACT)
    with pytest.raises(PermissionDenied, match="only the requester can use it"):
        keys.unseal_for_use(users["iva"], handle, purpose="restore", request=request.handle, **EXACT)
    with pytest.raises(PermissionDenied, match="approved for other inputs"):
        keys.unseal_for_use(
            users["ivan"],
            handle,
            purpose="restore",
            request=request.handle,
            input_digest="1" * 64,
            mode="exact",
        )
    with pytest.raises(PermissionDenied, match=f"key {other_case} does not belong to case C-7"):
        access.request_restore(
            users["ivan"], case="C-7", reason="r", files=FILES, mode="exact", key=other_case
        )
    with pytest.raises(NotFound, match="unknown restore request rq_x"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request="rq_x", **EXACT)
    assert access.show_request(vault, request.handle).state == "approved"  # refusals consumed nothing


def test_policy_without_approval(restore_setup) -> None:
    vault, _, handle, users = restore_setup
    access.set_policy(vault, require_approval=False)
    assert keys.unseal_for_use(users["ivan"], handle, purpose="restore").version == 1


def test_list_requests(restore_setup) -> None:
    vault, _, _, users = restore_setup
    first = access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="exact")
    access.request_restore(users["iva"], case="C-9", reason="r", files=FILES, mode="exact")
    assert [r.handle for r in access.list_requests(vault, case="C-7")] == [first.handle]
    assert len(access.list_requests(users["ann"], state="pending")) == 2
    with pytest.raises(ValueError, match="64 lower-case hex"):
        access.request_restore(
            users["ivan"], case="C-7", reason="r", files=[RequestFile("a.png", "sha256:abc")], mode="exact"
        )
    with pytest.raises(ValueError, match="mode must be one of exact, model"):
        access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="both")


@pytest.fixture
def lab_vault(vault: Vault):
    """The `vault` fixture (SQLite and PostgreSQL) with a key for C-7, an investigator and two approvers."""
    handle = keys.issue(vault, "C-7", "release").handle
    users = {name: add_user(vault, name, *roles) for name, roles in LAB_USERS.items()}
    yield vault, handle, users
    for unlocked in users.values():
        unlocked.close()


LAB_USERS = {"ivan": ("investigator",), "iris": ("investigator",), "ann": ("approver",), "bob": ("approver",)}


def test_quorum_needs_distinct_approvers_none_the_requester(lab_vault) -> None:
    vault, handle, users = lab_vault
    assert access.set_policy(vault, approvals=2).approvals == 2
    request = access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="exact")
    first = access.approve(users["ann"], request.handle)
    assert (first.state, first.approvals_counted, first.approvals_required) == ("pending", 1, 2)
    with pytest.raises(PermissionDenied, match=f"ann already approved request {request.handle}"):
        access.approve(users["ann"], request.handle)
    with pytest.raises(ApprovalPending, match=r"awaits approval \(1 of 2\)"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle, **EXACT)
    second = access.approve(users["bob"], request.handle)
    assert second.state == "approved" and {a.approver for a in second.approvals} == {"ann", "bob"}
    assert {(a.input_digest, a.mode) for a in second.approvals} == {(DIGEST, "exact")}
    with pytest.raises(VaultError, match="already approved"):
        access.approve(users["bob"], request.handle)
    key = keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle, **EXACT)
    assert key.version == 1 and all(a.used for a in access.show_request(vault, request.handle).approvals)
    with pytest.raises(ValueError, match="between 1 and 16"):
        access.set_policy(vault, approvals=0)


def test_an_approver_added_by_the_requester_cannot_approve(vault: Vault) -> None:
    """Issue 25: a lone admin adds a second account with the approver role and approves their own restore.

    With two admins each addition needs the other's approval (``two_person``); the relation is still refused.
    """
    keys.issue(vault, "C-7", "release")
    with add_user(vault, "ada", "admin", "investigator") as ada:  # the lab's only other person with admin
        two_person(
            lambda a: access.add_user(ada, "ada2", ["approver"], b"ada2", kdf=cheap_kdf(), admin_action=a),
            vault,
        )
        request = access.request_restore(ada, case="C-7", reason="mine", files=FILES, mode="exact")
        with open_vault(vault.url, "ada2", b"ada2") as ada2:
            with pytest.raises(PermissionDenied, match="ada2 was added by ada, .*two-person rule"):
                access.approve(ada2, request.handle)
            # the other way round: an admin-approver files under an investigator account they added
            two_person(
                lambda a: access.add_user(
                    ada, "puppet", ["investigator"], b"puppet", kdf=cheap_kdf(), admin_action=a
                ),
                vault,
            )
        with add_user(vault, "boss", "admin", "approver", approver=ada) as boss:
            two_person(
                lambda a: access.add_user(
                    boss, "puppet2", ["investigator"], b"puppet2", kdf=cheap_kdf(), admin_action=a
                ),
                vault,
            )
            with open_vault(vault.url, "puppet2", b"puppet2") as puppet:
                theirs = access.request_restore(puppet, case="C-7", reason="x", files=FILES, mode="exact")
            with pytest.raises(PermissionDenied, match="boss added the account of puppet2"):
                access.approve(boss, theirs.handle)
        assert access.show_request(vault, request.handle).approvals == ()
        refused = [e for e in _entries(vault) if e["action"] == "restore.approve"]
        assert [e["outcome"] for e in refused] == ["refused", "refused"]
        with add_user(
            vault, "carla", "approver", approver=ada
        ) as carla:  # an approver the admin added approves
            assert access.approve(carla, request.handle).state == "approved"


def test_deny_and_cancel_are_audited_and_final(lab_vault) -> None:
    vault, handle, users = lab_vault
    ivan, ann = users["ivan"], users["ann"]
    withdrawn = access.request_restore(ivan, case="C-7", reason="r", files=FILES, mode="model")
    with pytest.raises(PermissionDenied, match="only the requester can cancel it"):
        access.cancel(users["iris"], withdrawn.handle, "not mine")
    cancelled = access.cancel(ivan, withdrawn.handle, "wrong case folder")
    assert (cancelled.state, cancelled.closed_by, cancelled.closed_reason) == (
        "cancelled",
        "ivan",
        "wrong case folder",
    )
    with pytest.raises(PermissionDenied, match=f"{withdrawn.handle} was cancelled by ivan: approval refused"):
        access.approve(ann, withdrawn.handle)
    refused = access.request_restore(ivan, case="C-7", reason="r", files=FILES, mode="model")
    access.approve(ann, refused.handle)
    with pytest.raises(PermissionDenied, match="lacks the role approver"):
        access.deny(ivan, refused.handle, "no")
    assert access.deny(users["bob"], refused.handle, "warrant does not cover cam2").state == "denied"
    with pytest.raises(PermissionDenied, match="was denied by bob: restore refused"):
        keys.unseal_for_use(
            ivan, handle, purpose="restore", request=refused.handle, input_digest=DIGEST, mode="model"
        )
    with pytest.raises(ValueError, match="with a reason"):
        access.deny(ann, refused.handle, " ")
    closed = [e for e in _entries(vault) if e["action"] in ("restore.cancel", "restore.deny")]
    assert [(e["action"], e["actor"], e["outcome"], e.get("reason")) for e in closed] == [
        ("restore.cancel", "iris", "refused", "not mine"),
        ("restore.cancel", "ivan", "ok", "wrong case folder"),
        ("restore.deny", "ivan", "refused", "no"),
        ("restore.deny", "bob", "ok", "warrant does not cover cam2"),
    ]


def test_an_approval_names_the_inputs_and_the_mode(lab_vault) -> None:
    vault, handle, users = lab_vault
    ivan = users["ivan"]
    request = access.request_restore(ivan, case="C-7", reason="r", files=FILES, mode="model")
    access.approve(users["ann"], request.handle)
    with pytest.raises(PermissionDenied, match="approved for a model restore, not exact"):
        keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle, **EXACT)
    changed = inputs_digest(["0f" * 32, "2d" * 32])  # cam2.png is not the file the approver saw
    with pytest.raises(PermissionDenied, match="approved for other inputs"):
        keys.unseal_for_use(
            ivan, handle, purpose="restore", request=request.handle, input_digest=changed, mode="model"
        )
    shown = access.show_request(vault, request.handle)
    assert shown.state == "approved" and shown.files == FILES and shown.mode == "model"
    model = {"input_digest": DIGEST, "mode": "model"}
    assert keys.unseal_for_use(ivan, handle, purpose="restore", request=request.handle, **model).version == 1


def test_a_second_request_for_the_same_files_never_hides_the_approved_one(lab_vault) -> None:
    _, _, users = lab_vault
    ivan = users["ivan"]
    approved = access.request_restore(ivan, case="C-7", reason="r", files=FILES, mode="exact")
    access.approve(users["ann"], approved.handle)
    newer = access.request_restore(ivan, case="C-7", reason="again", files=FILES, mode="exact")
    assert newer.created >= approved.created
    assert access.find_request(ivan, case="C-7", **EXACT).handle == approved.handle
    assert access.find_request(ivan, case="C-7", input_digest=DIGEST, mode="model") is None


def test_a_request_filed_before_schema_0002_is_never_usable(lab_vault) -> None:
    """Rows migrated from 0001 keep NULL mode: neither approved nor used (their approvals named no mode)."""
    vault, handle, users = lab_vault
    request = access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="exact")
    access.approve(users["ann"], request.handle)
    execute(
        vault.url, "UPDATE restore_requests SET mode = NULL, files = NULL WHERE handle = :h", h=request.handle
    )
    execute(vault.url, "UPDATE approvals SET mode = NULL, input_digest = NULL")
    retag(vault)  # the edit stands for rows migrated from 0001, sealed in by an admin's unlock
    with pytest.raises(PermissionDenied, match="filed before requests named their mode"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request.handle, **EXACT)
    with pytest.raises(PermissionDenied, match="filed before requests named their mode: approval refused"):
        access.approve(users["bob"], request.handle)
    assert access.show_request(vault, request.handle).approvals_counted == 0
