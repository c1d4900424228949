"""`ifadit admin-actions`, `--action`, `keys destroy --window` and `keys cancel-destroy` on real vaults."""

from __future__ import annotations

import json
import re

from tests.cli.test_admin_cli import Ifadit, _error, _ok, ifadit  # noqa: F401  (fixture)
from tests.keyvault.support import table_rows, vault_url  # noqa: F401  (fixture)

BOB = {"IFADIT_NEW_PASSPHRASE": "bob-pass"}


def _filed(message: str) -> str:
    match = re.search(r"filed admin action (aa_[0-9a-f]{24})", message)
    assert match is not None, message
    return match[1]


def test_two_admins_add_a_user_and_destroy_a_key(ifadit: Ifadit) -> None:  # noqa: F811
    assert "added bob (admin)" in _ok(ifadit("users", "add", "bob", "--role", "admin", env=BOB))  # one admin
    eve = {"IFADIT_NEW_PASSPHRASE": "eve-pass"}
    action = _filed(_error(ifadit("users", "add", "eve", "--role", "operator", env=eve), 3))
    assert "approval refused" in _error(ifadit("admin-actions", "approve", action), 1)  # the filer
    assert f"{action} (user.add) is approved" in _ok(
        ifadit("admin-actions", "approve", action, user="bob", passphrase="bob-pass")
    )
    assert "added eve (operator)" in _ok(
        ifadit("users", "add", "eve", "--role", "operator", "--action", action, env=eve)
    )

    handle = _ok(ifadit("keys", "issue", "--case", "C-1", "--purpose", "test")).strip()
    _ok(ifadit("keys", "revoke", handle, "--reason", "closed", "--yes"))
    destroy = ("keys", "destroy", handle, "--reason", "retention over", "--window", "1", "--yes")
    action = _filed(_error(ifadit(*destroy), 3))
    _ok(ifadit("admin-actions", "approve", action, user="bob", passphrase="bob-pass"))
    assert f"{handle} is pending-destroy" in _ok(ifadit(*destroy, "--action", action))
    assert f"{handle} is revoked" in _ok(ifadit("keys", "cancel-destroy", handle, "--reason", "hold"))
    assert all(r["material_sealed"] is not None for r in table_rows(ifadit.url, "key_versions"))
    listed = json.loads(_ok(ifadit("admin-actions", "list", "--json")))
    assert [(a["kind"], a["state"], a["filer"], a["decided_by"]) for a in listed] == [
        ("key.destroy", "used", "admin", "bob"),
        ("user.add", "used", "admin", "bob"),
    ]
