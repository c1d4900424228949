"""Key lifecycle (NIST SP 800-57 states), versions, expiry, unseal for use, and refusals naming the state."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from keyvault import access, keys
from keyvault.errors import KeyStateError, NotFound, PermissionDenied, VaultError
from keyvault.vault import Vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, FakeClock, add_user, cheap_kdf, table_rows


def _last_entry(vault: Vault) -> dict:
    rows = sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    return json.loads(rows[-1]["canonical"])


@pytest.fixture
def operator(vault: Vault) -> Vault:
    with add_user(vault, "olga", "operator") as unlocked:
        yield unlocked


@pytest.fixture
def investigator(vault: Vault) -> Vault:
    access.set_policy(vault, require_approval=False)
    with add_user(vault, "ivan", "investigator") as unlocked:
        yield unlocked


def test_issue_list_show(vault: Vault) -> None:
    first = keys.issue(vault, "C-17", "CCTV release")
    second = keys.issue(vault, "C-18", "bodycam")
    assert first.handle.startswith("kh_") and len(first.handle) == 27 and first.handle != second.handle
    assert "C-17" not in first.handle
    assert (first.state, first.current_version, first.created_by) == ("active", 1, ADMIN)
    assert {k.handle for k in keys.list_keys(vault)} == {first.handle, second.handle}
    assert [k.handle for k in keys.list_keys(vault, case="C-18")] == [second.handle]
    assert keys.show(vault, first.handle) == first
    assert "material" not in repr(first)


def test_unknown_handle(vault: Vault) -> None:
    with pytest.raises(NotFound, match="unknown key kh_nope"):
        keys.show(vault, "kh_nope")
    with pytest.raises(NotFound, match="unknown key kh_nope"):
        keys.revoke(vault, "kh_nope", reason="x")
    assert (_last_entry(vault)["action"], _last_entry(vault)["outcome"]) == ("key.revoke", "refused")


def test_full_lifecycle_and_tombstone(vault: Vault, operator: Vault, investigator: Vault) -> None:
    handle = keys.issue(vault, "C-1", "test").handle
    v1 = keys.unseal_for_use(operator, handle, purpose="anonymize")
    assert v1.version == 1 and "material" not in repr(v1) and v1.material.hex() not in repr(v1)
    keys.rotate(vault, handle)
    v2 = keys.unseal_for_use(operator, handle, purpose="anonymize")
    assert v2.version == 2 and v2.material != v1.material
    assert keys.unseal_for_use(investigator, handle, purpose="restore", version=1).material == v1.material
    assert [v.state for v in keys.show(vault, handle).versions] == ["superseded", "active"]

    assert keys.suspend(vault, handle, reason="leak suspected").state == "suspended"
    for unlocked, purpose in ((operator, "anonymize"), (investigator, "restore")):
        with pytest.raises(KeyStateError, match=f"key {handle} is suspended: {purpose} refused"):
            keys.unseal_for_use(unlocked, handle, purpose=purpose)
    assert keys.resume(vault, handle).state == "active"
    assert keys.unseal_for_use(operator, handle, purpose="anonymize").material == v2.material

    revoked = keys.revoke(vault, handle, reason="case closed")
    assert revoked.state == "revoked" and all(v.revoked is not None for v in revoked.versions)
    with pytest.raises(KeyStateError, match=f"key {handle} is revoked: restore refused"):
        keys.unseal_for_use(investigator, handle, purpose="restore", version=1)

    destroyed = keys.destroy(vault, handle, reason="retention period over", window=timedelta(0))
    assert destroyed.state == "destroyed" and [v.state for v in destroyed.versions] == ["destroyed"] * 2
    tombstones = [r for r in table_rows(vault.url, "key_versions") if r["key_handle"] == handle]
    assert len(tombstones) == 2 and all(r["material_sealed"] is None for r in tombstones)
    with pytest.raises(KeyStateError, match=f"key {handle} is destroyed: restore refused"):
        keys.unseal_for_use(investigator, handle, purpose="restore")


ILLEGAL = [
    ("active", "resume"),
    ("active", "destroy"),
    ("suspended", "suspend"),
    ("suspended", "rotate"),
    ("suspended", "destroy"),
    ("revoked", "resume"),
    ("revoked", "suspend"),
    ("revoked", "rotate"),
    ("revoked", "revoke"),
    ("destroyed", "destroy"),
    ("destroyed", "resume"),
    ("destroyed", "revoke"),
]
PATH = {"active": [], "suspended": ["suspend"], "revoked": ["revoke"], "destroyed": ["revoke", "destroy"]}


def _apply(vault: Vault, verb: str, handle: str) -> None:
    if verb == "destroy":
        keys.destroy(vault, handle, reason="test", window=timedelta(0))
    elif verb == "revoke":
        getattr(keys, verb)(vault, handle, reason="test")
    else:
        getattr(keys, verb)(vault, handle)


@pytest.mark.parametrize(("state", "verb"), ILLEGAL, ids=[f"{s}-{v}" for s, v in ILLEGAL])
def test_illegal_transition_names_the_state_and_is_audited(vault: Vault, state: str, verb: str) -> None:
    handle = keys.issue(vault, "C-1", "test").handle
    for step in PATH[state]:
        _apply(vault, step, handle)
    with pytest.raises(KeyStateError, match=f"key {handle} is {state}: {verb} refused"):
        _apply(vault, verb, handle)
    entry = _last_entry(vault)
    assert (entry["action"], entry["outcome"], entry["key_handle"]) == (f"key.{verb}", "refused", handle)
    assert keys.show(vault, handle).state == state


def test_anonymize_uses_only_the_newest_version(vault: Vault, operator: Vault, investigator: Vault) -> None:
    handle = keys.issue(vault, "C-1", "test").handle
    keys.rotate(vault, handle)
    with pytest.raises(KeyStateError, match="version 1 is superseded by 2: anonymize refused"):
        keys.unseal_for_use(operator, handle, purpose="anonymize", version=1)
    with pytest.raises(NotFound, match="has no version 5"):
        keys.unseal_for_use(investigator, handle, purpose="restore", version=5)


def test_expiry_blocks_anonymize_but_not_restore(tmp_path) -> None:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    with Vault.init(url, ADMIN, ADMIN_PASS, kdf=cheap_kdf(), clock=clock) as vault:
        with pytest.raises(VaultError, match="is not in the future"):
            keys.issue(vault, "C-1", "test", expires=clock.now - timedelta(days=1))
        handle = keys.issue(vault, "C-1", "test", expires=clock.now + timedelta(days=30)).handle
        access.set_policy(vault, require_approval=False)
        operator = add_user(vault, "olga", "operator", "investigator")
        before = keys.unseal_for_use(operator, handle, purpose="anonymize").material
        clock.advance(timedelta(days=31))
        with pytest.raises(KeyStateError, match=f"key {handle} expired on 2026-02-14: anonymize refused"):
            keys.unseal_for_use(operator, handle, purpose="anonymize")
        assert keys.unseal_for_use(operator, handle, purpose="restore").material == before
        operator.close()


def test_only_admins_manage_keys_and_refusals_are_audited(vault: Vault, operator: Vault) -> None:
    handle = keys.issue(vault, "C-1", "test").handle
    with pytest.raises(PermissionDenied, match="olga lacks the role admin"):
        keys.revoke(operator, handle, reason="not mine to revoke")
    entry = _last_entry(vault)
    assert (entry["actor"], entry["action"], entry["outcome"], entry["role"]) == (
        "olga",
        "key.revoke",
        "refused",
        "admin",
    )
    assert keys.show(vault, handle).state == "active"
    with pytest.raises(PermissionDenied, match="lacks the role investigator"):
        keys.unseal_for_use(operator, handle, purpose="restore")


def test_pipeline_records_key_use_on_its_own_entry(vault: Vault, operator: Vault) -> None:
    handle = keys.issue(vault, "C-5", "test").handle
    digest = "ab" * 32
    with operator.action("anonymize", role="operator", digests={"input": digest}) as act:
        key = keys.unseal_for_use(operator, handle, purpose="anonymize", action=act)
    entry = _last_entry(vault)
    assert (entry["action"], entry["key_handle"], entry["key_version"], entry["case_id"]) == (
        "anonymize",
        handle,
        key.version,
        "C-5",
    )
    assert entry["digests"] == {"input": digest}
