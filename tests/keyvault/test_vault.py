"""Vault creation, unlock, the one-transaction action contract, checkpoints and foreign or damaged databases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from keyvault import access, keys
from keyvault.errors import (
    AuthenticationError,
    IntegrityError,
    PermissionDenied,
    SealedDataError,
    VaultError,
    VaultNotFound,
)
from keyvault.schema import KeyRow
from keyvault.vault import Vault, open_vault
from keyvault.verify import verify_bundle
from tests.keyvault.support import ADMIN, ADMIN_PASS, add_user, cheap_kdf, execute, table_rows


def _entries(url: str) -> list[dict]:
    return [
        json.loads(row["canonical"])
        for row in sorted(table_rows(url, "audit_entries"), key=lambda r: r["seq"])
    ]


def test_init_then_unlock_round_trip(vault: Vault) -> None:
    handle = keys.issue(vault, "C-1", "CCTV release").handle
    material = keys.unseal_for_use(add_user(vault, "olga", "operator"), handle, purpose="anonymize").material
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again:
        assert again.id == vault.id and again.public_key == vault.public_key
        assert again.user.roles == ("admin",)
        assert keys.show(again, handle).state == "active"
    with open_vault(vault.url, "olga", b"olga") as operator:
        assert keys.unseal_for_use(operator, handle, purpose="anonymize").material == material
    assert len(material) == 32


def test_second_init_on_the_same_database_is_refused(vault: Vault) -> None:
    with pytest.raises(VaultError, match="a vault already exists"):
        Vault.init(vault.url, "other", b"x", kdf=cheap_kdf())


def test_repr_shows_no_secret(vault: Vault) -> None:
    text = repr(vault) + repr(vars(vault))
    assert vault._kek.reveal().hex() not in text and "redacted" in text
    assert vault._signing_key.reveal().hex() not in text


def test_wrong_passphrase_and_unknown_user_give_one_error_and_are_audited(vault: Vault) -> None:
    add_user(vault, "ivan", "investigator").close()
    with pytest.raises(AuthenticationError) as wrong:
        open_vault(vault.url, "ivan", b"not ivan")
    with pytest.raises(AuthenticationError) as unknown:
        open_vault(vault.url, "mallory", b"anything")
    assert str(wrong.value) == str(unknown.value) == "authentication failed: unknown user or wrong passphrase"
    failed = [e for e in _entries(vault.url) if e["action"] == "vault.unlock"]
    assert [(e["actor"], e["outcome"]) for e in failed] == [("ivan", "failed"), ("mallory", "failed")]
    assert all("not ivan" not in json.dumps(e) and "anything" not in json.dumps(e) for e in failed)
    for odd in ("bad\nname", "\udc80", "x" * 5000, ""):
        with pytest.raises(AuthenticationError):
            open_vault(vault.url, odd, b"anything")
    assert [e["actor"] for e in _entries(vault.url)[-4:]] == [None] * 4


def test_failed_unlock_waits_the_policy_delay(vault: Vault, tmp_path) -> None:
    waited: list[float] = []
    with pytest.raises(AuthenticationError):
        open_vault(vault.url, ADMIN, b"guess", sleep=waited.append)
    assert waited == [0.0]
    access.set_policy(vault, unlock_delay=timedelta(milliseconds=1500))
    assert vault.policy().unlock_delay == timedelta(seconds=1.5)
    with pytest.raises(AuthenticationError):
        open_vault(vault.url, "nobody", b"guess", sleep=waited.append)
    with open_vault(vault.url, ADMIN, ADMIN_PASS, sleep=waited.append):
        pass
    assert waited == [0.0, 1.5]  # a successful unlock does not wait
    with pytest.raises(ValueError, match="between 0 and 60 seconds"):
        access.set_policy(vault, unlock_delay=timedelta(minutes=5))
    default = Vault.init(f"sqlite:///{tmp_path / 'd.sqlite3'}", ADMIN, ADMIN_PASS, kdf=cheap_kdf())
    assert default.policy().unlock_delay == timedelta(seconds=1)
    default.close()


def test_missing_database_is_not_found(tmp_path) -> None:
    with pytest.raises(VaultNotFound):
        open_vault(str(tmp_path / "nope.db"), ADMIN, ADMIN_PASS)


def test_failed_action_leaves_no_writes_and_is_audited(vault: Vault) -> None:
    before = len(table_rows(vault.url, "keys"))
    with pytest.raises(ZeroDivisionError), vault.action("key.import", role="admin") as act:
        act.session.add(
            KeyRow(
                handle="kh_x",
                case_id="C",
                purpose="p",
                state="active",
                created=vault.clock(),
                created_by=ADMIN,
            )
        )
        act.session.flush()
        raise ZeroDivisionError
    assert len(table_rows(vault.url, "keys")) == before
    last = _entries(vault.url)[-1]
    assert (last["action"], last["outcome"], last["details"]["error"]) == (
        "key.import",
        "failed",
        "ZeroDivisionError",
    )


def test_every_successful_action_has_exactly_one_entry(vault: Vault) -> None:
    handle = keys.issue(vault, "C-2", "test").handle
    keys.rotate(vault, handle)
    keys.suspend(vault, handle)
    actions = [e["action"] for e in _entries(vault.url)]
    assert actions == ["vault.init", "key.issue", "key.rotate", "key.suspend"]
    assert [e["seq"] for e in _entries(vault.url)] == [1, 2, 3, 4]


def test_close_writes_a_signed_tree_head_covering_every_entry(vault: Vault, tmp_path) -> None:
    keys.issue(vault, "C-3", "test")
    vault.close()
    heads = table_rows(vault.url, "tree_heads")
    assert max(h["size"] for h in heads) == len(table_rows(vault.url, "audit_entries"))
    with open_vault(vault.url, ADMIN, ADMIN_PASS) as again:
        again.export_audit(tmp_path / "bundle.jsonl")
    report = verify_bundle(tmp_path / "bundle.jsonl", vault.public_key, strict=True)
    assert report.entries == report.signed_size == 3  # init, issue, audit.export


def test_disabled_user_cannot_unlock_and_the_refusal_is_audited(vault: Vault) -> None:
    from keyvault import access

    add_user(vault, "dora", "operator").close()
    access.disable_user(vault, "dora", reason="left the lab")
    with pytest.raises(PermissionDenied, match="dora is disabled"):
        open_vault(vault.url, "dora", b"dora")
    last = _entries(vault.url)[-1]
    assert (last["action"], last["actor"], last["outcome"]) == ("vault.unlock", "dora", "refused")


def test_corrupted_sealed_material_is_one_opaque_error_and_audited(vault: Vault) -> None:
    handle = keys.issue(vault, "C-4", "test").handle
    row = table_rows(vault.url, "key_versions")[0]
    blob = bytearray(row["material_sealed"])
    blob[20] ^= 0x01
    execute(
        vault.url, "UPDATE key_versions SET material_sealed = :b WHERE id = :i", b=bytes(blob), i=row["id"]
    )
    with add_user(vault, "olga", "operator") as operator, pytest.raises(SealedDataError) as caught:
        keys.unseal_for_use(operator, handle, purpose="anonymize")
    assert str(caught.value) == "sealed data failed authentication"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    last = _entries(vault.url)[-1]
    assert (last["action"], last["outcome"], last["key_handle"]) == ("key.use", "failed", handle)


def test_corrupted_keyslot_refuses_unlock(vault: Vault) -> None:
    slot = table_rows(vault.url, "keyslots")[0]
    wrapped = bytearray(slot["wrapped_kek"])
    wrapped[-1] ^= 0x80
    execute(vault.url, "UPDATE keyslots SET wrapped_kek = :w WHERE id = :i", w=bytes(wrapped), i=slot["id"])
    with pytest.raises(AuthenticationError):
        open_vault(vault.url, ADMIN, ADMIN_PASS)


def test_material_moved_from_another_vault_does_not_open(vault: Vault, tmp_path) -> None:
    """A sealed row copied from another vault's database fails: vault id and KEK are bound in."""
    other_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    with Vault.init(other_url, ADMIN, ADMIN_PASS, kdf=cheap_kdf()) as other:
        foreign = keys.issue(other, "C-9", "elsewhere").handle
    mine = keys.issue(vault, "C-9", "elsewhere").handle
    sealed = next(r for r in table_rows(other_url, "key_versions") if r["key_handle"] == foreign)[
        "material_sealed"
    ]
    execute(vault.url, "UPDATE key_versions SET material_sealed = :b WHERE key_handle = :h", b=sealed, h=mine)
    with pytest.raises(SealedDataError):
        keys.unseal_for_use(add_user(vault, "olga", "operator"), mine, purpose="anonymize")
    with pytest.raises(IntegrityError, match="holds vault"):
        open_vault(vault.url, ADMIN, ADMIN_PASS, expected_vault_id="0" * 32)


def test_action_is_lost_with_its_entry_when_the_append_fails(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the audit append fails after the key rows were flushed; nothing of the action remains."""
    from keyvault import ledger

    real_append, calls = ledger.append, []

    def failing_once(*args, **kwargs):
        calls.append(kwargs["action"])
        if len(calls) == 1:
            raise OSError("disk full")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(ledger, "append", failing_once)
    with pytest.raises(OSError, match="disk full"):
        keys.issue(vault, "C-5", "test")
    assert table_rows(vault.url, "keys") == [] and table_rows(vault.url, "key_versions") == []
    last = _entries(vault.url)[-1]
    assert (last["action"], last["outcome"], last["details"]["error"]) == ("key.issue", "failed", "OSError")
    assert calls == ["key.issue", "key.issue"]
