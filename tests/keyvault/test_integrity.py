"""Security state the database cannot be talked out of: rows edited by SQL are refused, and so is a broken log tail.

Each test tampers as an insider with database access would (raw SQL through ``text()``, SQLite and
PostgreSQL), then shows the next action is refused with a one-line ``TamperedRow`` (exit 4) naming the
table, the row and the altered columns, audited as "refused", with nothing of the action committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from keyvault import access, integrity, keys, merkle
from keyvault.errors import IntegrityError, PermissionDenied, TamperedRow
from keyvault.records import RequestFile, inputs_digest
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, add_user, cheap_kdf, execute, table_rows, two_person

FILES = (RequestFile("released/cam1.png", "0f" * 32),)
EXACT = {"input_digest": inputs_digest(f.sha256 for f in FILES), "mode": "exact"}
TAGGED = ("ifadit_vault", "users", "keys", "key_versions", "restore_requests", "approvals")


def _entries(url: str) -> list[dict[str, Any]]:
    rows = sorted(table_rows(url, "audit_entries"), key=lambda r: r["seq"])
    return [json.loads(bytes(r["canonical"])) for r in rows]


def _assert_refused(url: str, action: str, error: str) -> None:
    """The newest entry records ``action`` refused with ``error`` (written in its own transaction)."""
    last = _entries(url)[-1]
    assert (last["action"], last["outcome"], last["details"]["error"]) == (action, "refused", error)


@pytest.fixture
def lab(vault: Vault) -> Iterator[tuple[Vault, str, dict[str, Vault]]]:
    """A key for C-7, an investigator and two approvers, each unlocked."""
    handle = keys.issue(vault, "C-7", "release").handle
    users = {
        name: add_user(vault, name, *roles)
        for name, roles in {"ivan": ("investigator",), "ann": ("approver",), "bob": ("approver",)}.items()
    }
    yield vault, handle, users
    for unlocked in users.values():
        unlocked.close()


def _request(users: dict[str, Vault]) -> str:
    return access.request_restore(users["ivan"], case="C-7", reason="r", files=FILES, mode="exact").handle


def test_an_untouched_vault_tags_every_row_and_works(lab) -> None:
    vault, handle, users = lab
    access.set_policy(vault, approvals=2)
    request = _request(users)
    access.approve(users["ann"], request)
    access.approve(users["bob"], request)
    key = keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request, **EXACT)
    assert key.version == 1 and access.show_request(vault, request).state == "used"
    keys.revoke(vault, handle, "case closed")
    keys.destroy(vault, handle, "case closed", window=timedelta(0))
    for table in TAGGED:
        rows = table_rows(vault.url, table)
        assert rows and all(row["tag"] is not None for row in rows), table


def test_role_escalation_is_refused_and_audited(vault: Vault) -> None:
    with add_user(vault, "olga", "operator") as olga:
        execute(vault.url, "UPDATE users SET roles = 'admin,operator' WHERE name = 'olga'")
        message = "users row 'olga': security fields altered outside the vault (roles): refused"
        with pytest.raises(TamperedRow) as caught:
            keys.issue(olga, "C-1", "escalated")
        assert str(caught.value) == message and caught.value.exit_code == 4
        _assert_refused(vault.url, "key.issue", message)
    assert table_rows(vault.url, "keys") == []  # nothing of the action committed
    with pytest.raises(TamperedRow, match="users row 'olga'"):
        open_vault(vault.url, "olga", b"olga")
    _assert_refused(vault.url, "vault.unlock", message)


def test_require_approval_switched_off_is_refused(lab) -> None:
    vault, handle, users = lab
    execute(vault.url, "UPDATE ifadit_vault SET require_approval = :off", off=False)
    message = f"ifadit_vault row '{vault.id}': security fields altered outside the vault (require_approval): refused"
    with pytest.raises(TamperedRow) as caught:
        keys.unseal_for_use(users["ivan"], handle, purpose="restore")
    assert str(caught.value) == message
    _assert_refused(vault.url, "key.use", message)


def test_lowered_quorum_is_refused(lab) -> None:
    vault, _, users = lab
    access.set_policy(vault, approvals=2)
    request = _request(users)
    execute(vault.url, "UPDATE ifadit_vault SET approvals_required = 1")
    with pytest.raises(TamperedRow, match=r"\(approvals_required\): refused") as caught:
        access.approve(users["ann"], request)
    assert table_rows(vault.url, "approvals") == []
    _assert_refused(vault.url, "restore.approve", str(caught.value))


def test_inserted_approval_row_is_refused(lab) -> None:
    vault, handle, users = lab
    request = _request(users)
    execute(
        vault.url,
        "INSERT INTO approvals (request_handle, approver, created, expires, input_digest, mode) "
        "VALUES (:r, 'bob', :now, :later, :d, 'exact')",
        r=request,
        now="2026-01-01 00:00:00",
        later="2099-01-01 00:00:00",
        d=EXACT["input_digest"],
    )
    message = f"approvals row 'bob on {request}': no integrity tag (written outside the vault): refused"
    with pytest.raises(TamperedRow) as caught:
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request, **EXACT)
    assert str(caught.value) == message
    _assert_refused(vault.url, "key.use", message)
    assert {r["handle"]: r["state"] for r in table_rows(vault.url, "restore_requests")}[request] == "pending"


def test_approval_copied_to_another_request_is_refused(lab) -> None:
    vault, handle, users = lab
    first, second = _request(users), _request(users)
    access.approve(users["ann"], first)
    execute(
        vault.url,
        "INSERT INTO approvals (request_handle, approver, created, expires, used, input_digest, mode, tag) "
        "SELECT :second, approver, created, expires, used, input_digest, mode, tag FROM approvals "
        "WHERE request_handle = :first",
        first=first,
        second=second,
    )
    with pytest.raises(TamperedRow, match=rf"approvals row 'ann on {second}': not written by the vault"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=second, **EXACT)
    states = {r["handle"]: r["state"] for r in table_rows(vault.url, "restore_requests")}
    assert states == {first: "approved", second: "pending"}


def test_destroyed_key_resurrected_from_a_backup_is_refused(lab) -> None:
    vault, handle, users = lab
    backup = table_rows(vault.url, "key_versions")[0]["material_sealed"]
    keys.revoke(vault, handle, "case closed")
    keys.destroy(vault, handle, "case closed", window=timedelta(0))
    execute(
        vault.url,
        "UPDATE key_versions SET state = 'active', material_sealed = :b, destroyed = NULL WHERE key_handle = :h",
        b=backup,
        h=handle,
    )
    execute(vault.url, "UPDATE keys SET state = 'active' WHERE handle = :h", h=handle)
    access.set_policy(vault, require_approval=False)
    with pytest.raises(TamperedRow, match=rf"keys row '{handle}': security fields altered .* \(state\)"):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore")
    execute(vault.url, "UPDATE keys SET state = 'destroyed' WHERE handle = :h", h=handle)
    with pytest.raises(
        TamperedRow, match=rf"key_versions row '{handle} v1': .*\(state, material_sealed, destroyed\)"
    ):
        keys.show(vault, handle)


def test_key_rows_rolled_back_from_a_backup_tags_and_all_meet_the_log(lab) -> None:
    """A backup's rows carry valid tags; the log's record of the revocation still refuses the key."""
    vault, handle, users = lab
    backup = {t: table_rows(vault.url, t) for t in ("keys", "key_versions")}
    keys.revoke(vault, handle, "case closed")
    keys.destroy(vault, handle, "case closed", window=timedelta(0))
    old_key, old_version = backup["keys"][0], backup["key_versions"][0]
    execute(
        vault.url,
        "UPDATE keys SET state = :s, tag = :t WHERE handle = :h",
        s="active",
        t=old_key["tag"],
        h=handle,
    )
    execute(
        vault.url,
        "UPDATE key_versions SET state = 'active', material_sealed = :m, destroyed = NULL, revoked = NULL, "
        "tag = :t WHERE key_handle = :h",
        m=old_version["material_sealed"],
        t=old_version["tag"],
        h=handle,
    )
    access.set_policy(vault, require_approval=False)
    with pytest.raises(
        TamperedRow, match=rf"keys row '{handle}': state active but audit log entry \d+ records key.revoke"
    ):
        keys.unseal_for_use(users["ivan"], handle, purpose="restore")
    _assert_refused(vault.url, "key.use", _entries(vault.url)[-1]["details"]["error"])


@pytest.mark.parametrize(
    ("column", "value"),
    [("mode", "model"), ("files", '[{"name": "other.png", "sha256": "' + "ab" * 32 + '"}]')],
)
def test_request_files_or_mode_changed_is_refused(lab, column: str, value: str) -> None:
    vault, handle, users = lab
    request = _request(users)
    execute(vault.url, f"UPDATE restore_requests SET {column} = :v WHERE handle = :h", v=value, h=request)
    with pytest.raises(TamperedRow, match=rf"restore_requests row '{request}': .*\({column}\): refused"):
        access.approve(users["ann"], request)
    assert table_rows(vault.url, "approvals") == []


def test_created_by_edited_to_dodge_the_two_person_rule_is_refused(vault: Vault) -> None:
    access.add_user(vault, "adam", ["admin", "approver"], b"adam", kdf=cheap_kdf())
    with open_vault(vault.url, "adam", b"adam") as adam:
        two_person(  # two admins now: the first approves
            lambda a: access.add_user(
                adam, "ivan", ["investigator"], b"ivan", kdf=cheap_kdf(), admin_action=a
            ),
            vault,
        )
        with open_vault(vault.url, "ivan", b"ivan") as ivan:
            request = access.request_restore(ivan, case="C-7", reason="r", files=FILES, mode="exact").handle
        with pytest.raises(PermissionDenied, match="two-person rule"):
            access.approve(adam, request)
        execute(vault.url, "UPDATE users SET created_by = :a WHERE name = 'ivan'", a=ADMIN)
        with pytest.raises(TamperedRow, match=r"users row 'ivan': .*\(created_by\): refused"):
            access.approve(adam, request)
    assert table_rows(vault.url, "approvals") == []


def test_stripped_tags_are_refused_at_unlock(vault: Vault) -> None:
    for table in TAGGED:
        execute(vault.url, f"UPDATE {table} SET tag = NULL")
    with pytest.raises(TamperedRow, match=rf"ifadit_vault row '{vault.id}': no integrity tag"):
        open_vault(vault.url, ADMIN, ADMIN_PASS)


def test_a_legacy_vault_is_sealed_in_by_the_first_admin_unlock(vault: Vault, monkeypatch) -> None:
    """Upgraded rows have NULL tags (the migration has no KEK): accepted until an admin's unlock tags them."""
    with add_user(vault, "olga", "operator"):
        pass
    for table in TAGGED:
        execute(vault.url, f"UPDATE {table} SET tag = NULL")
    monkeypatch.setattr(integrity, "MARK_BYTES", b"never in this log")  # as if no entry marked the vault
    with open_vault(vault.url, "olga", b"olga") as olga:
        assert olga.user.roles == ("operator",)  # not an admin: nothing tagged yet
    assert all(row["tag"] is None for row in table_rows(vault.url, "users"))
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as admin:
        keys.issue(admin, "C-2", "after seal-in")
    assert [e["details"]["rows"] for e in _entries(vault.url) if e["action"] == "vault.seal-in"] == [3]
    for table in TAGGED[:4]:
        assert all(row["tag"] is not None for row in table_rows(vault.url, table)), table
    execute(vault.url, "UPDATE users SET roles = 'admin' WHERE name = 'olga'")
    with pytest.raises(TamperedRow, match="users row 'olga'"):
        open_vault(vault.url, "olga", b"olga")


# ---------------------------------------------------------------- the log's tail, fail-closed


def _rewrite_entry(url: str, seq: int, old: bytes, new: bytes) -> None:
    """Edit one entry's bytes and recompute its leaf hash, as an insider who knows the format would."""
    row = next(r for r in table_rows(url, "audit_entries") if r["seq"] == seq)
    canonical = bytes(row["canonical"]).replace(old, new)
    execute(
        url,
        "UPDATE audit_entries SET canonical = :c, leaf_hash = :l WHERE seq = :s",
        c=canonical,
        l=merkle.leaf_hash(canonical),
        s=seq,
    )


def test_an_edited_tail_entry_refuses_the_next_action_and_commits_nothing(vault: Vault) -> None:
    keys.issue(vault, "C-1", "first")
    keys.issue(vault, "C-1", "second")  # entries 1..3, no tree head yet: all of it is the tail
    _rewrite_entry(vault.url, 2, b'"purpose":"first"', b'"purpose":"other"')
    before = len(_entries(vault.url))
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again, pytest.raises(IntegrityError) as caught:
        keys.issue(again, "C-1", "third")  # a new command: the chain from the head on is re-checked
    assert str(caught.value).startswith(
        "audit log entry 3: hash chain broken: every action is refused until an admin runs `ifadit audit verify`"
    )
    assert caught.value.exit_code == 4 and "\n" not in str(caught.value)
    with pytest.raises(IntegrityError, match="audit log entry 2: changed since the last check"):
        keys.issue(vault, "C-1", "third")  # the same vault remembers what it checked last
    assert len(_entries(vault.url)) == before and len(table_rows(vault.url, "keys")) == 2
    with pytest.raises(IntegrityError, match="audit log entry 3: hash chain broken"):
        vault.close()  # nor is a tree head signed over it


def test_an_entry_rewritten_under_a_signed_head_is_located(vault: Vault) -> None:
    keys.issue(vault, "C-1", "first")
    vault.checkpoint()
    _rewrite_entry(vault.url, 2, b'"purpose":"first"', b'"purpose":"other"')
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again, pytest.raises(IntegrityError) as caught:
        keys.issue(again, "C-1", "second")
    assert "audit log entry 2: rewritten under the newest signed tree head" in str(caught.value)
    assert len(table_rows(vault.url, "keys")) == 1


def test_a_used_request_rolled_back_from_a_backup_meets_the_log(lab) -> None:
    """Request and approval rows from a backup taken before the restore carry valid tags; the log's "ok"
    entry naming the request still refuses a second restore under it, and nothing of it commits."""
    vault, handle, users = lab
    request = _request(users)
    access.approve(users["ann"], request)
    backup = {t: table_rows(vault.url, t) for t in ("restore_requests", "approvals")}
    keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request, **EXACT)
    used = next(e for e in reversed(_entries(vault.url)) if e["action"] == "key.use")
    old_request, old_approval = backup["restore_requests"][0], backup["approvals"][0]
    execute(
        vault.url,
        "UPDATE restore_requests SET state = :s, tag = :t WHERE handle = :h",
        s=old_request["state"],
        t=old_request["tag"],
        h=request,
    )
    execute(vault.url, "UPDATE approvals SET used = NULL, tag = :t WHERE request_handle = :h",
            t=old_approval["tag"], h=request)  # fmt: skip
    assert access.show_request(vault, request).state == "approved"  # the rows alone pass their tags
    message = (
        f"restore_requests row '{request}': state approved but audit log entry {used['seq']} records its "
        "use by key.use (rows restored from a backup?): refused"
    )
    with pytest.raises(TamperedRow) as caught:
        keys.unseal_for_use(users["ivan"], handle, purpose="restore", request=request, **EXACT)
    assert str(caught.value) == message and caught.value.exit_code == 4
    _assert_refused(vault.url, "key.use", message)
    rows = {r["handle"]: r["state"] for r in table_rows(vault.url, "restore_requests")}
    assert rows == {request: "approved"} and table_rows(vault.url, "approvals")[0]["used"] is None
