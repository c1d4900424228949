"""`ifadit vault|users|keys` through click's runner on real vaults: results on stdout, one error line, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ifadit_cli.main import cli
from keyvault import merkle
from tests.keyvault.support import (
    execute,
    table_rows,
    vault_url,  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)
)

CHEAP_KDF = ["--kdf-memory-kib", "8192", "--kdf-iterations", "1", "--kdf-lanes", "1", "--unlock-delay", "0"]


class Ifadit:
    """Runs `ifadit` against one vault as one user (passphrase through IFADIT_PASSPHRASE)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(
        self,
        *args: str,
        user: str = "admin",
        passphrase: str | None = "admin-pass",
        env: dict[str, str] | None = None,
    ) -> Result:
        environ = {
            "IFADIT_VAULT": self.url,
            "IFADIT_USER": user,
            "IFADIT_PASSPHRASE": passphrase,
            "IFADIT_NEW_PASSPHRASE": None,
            **(env or {}),
        }
        return CliRunner(env=environ).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def ifadit(vault_url: str) -> Ifadit:  # noqa: F811
    run = Ifadit(vault_url)
    created = run("vault", "init", *CHEAP_KDF)
    assert created.exit_code == 0, created.stderr
    assert "created" in created.stdout and "fingerprint" in created.stdout
    return run


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ")
    return lines[-1]


def test_key_lifecycle(ifadit: Ifadit) -> None:
    handle = _ok(
        ifadit("keys", "issue", "--case", "C-17", "--purpose", "CCTV release", "--expires", "2099-12-31")
    ).strip()
    assert handle.startswith("kh_") and "\n" not in handle
    _ok(ifadit("keys", "rotate", handle))
    shown = json.loads(_ok(ifadit("keys", "show", handle, "--json")))
    assert shown["case_id"] == "C-17" and shown["expires"] == "2099-12-31T00:00:00Z"
    assert [v["state"] for v in shown["versions"]] == ["superseded", "active"]
    assert "material" not in json.dumps(shown)
    assert "suspended" in _ok(ifadit("keys", "suspend", handle, "--reason", "checking"))
    assert "active" in _ok(ifadit("keys", "resume", handle))
    header, row = _ok(ifadit("keys", "list", "--case", "C-17")).splitlines()
    assert header.split() == ["KEY", "STATE", "VERSION", "CASE", "EXPIRES", "(UTC)", "PURPOSE"]
    assert row.split()[:4] == [handle, "active", "v2", "C-17"] and row.endswith("CCTV release")
    assert row.index("active") == header.index("STATE")  # columns line up under their names
    (alone,) = _ok(ifadit("keys", "list", "--state", "revoked")).splitlines()  # no keys: the header only
    assert alone.split() == header.split()

    assert "--yes" in _error(ifadit("keys", "revoke", handle, "--reason", "closed"), 2)
    assert "Missing option '--reason'" in ifadit("keys", "revoke", handle, "--yes").stderr
    assert "revoked" in _ok(ifadit("keys", "revoke", handle, "--reason", "closed", "--yes"))
    assert "is revoked: resume refused" in _error(ifadit("keys", "resume", handle), 1)
    destroyed = json.loads(
        _ok(ifadit("keys", "destroy", handle, "--reason", "retention over", "--yes", "--json"))
    )
    assert destroyed["state"] == "pending-destroy"  # erased after the 7-day window (test_admin_actions.py)
    assert "is pending-destroy: rotate refused" in _error(ifadit("keys", "rotate", handle), 1)


def test_unknown_handle_is_one_line(ifadit: Ifadit) -> None:
    assert (
        _error(ifadit("keys", "show", "kh_000"), 1)
        == "Error: unknown key kh_000 (`ifadit keys list` shows the keys)"
    )


def test_users_and_roles(ifadit: Ifadit, tmp_path: Path) -> None:
    added = ifadit(
        "users",
        "add",
        "bob",
        "--role",
        "investigator",
        "--role",
        "auditor",
        env={"IFADIT_NEW_PASSPHRASE": "bob-pass"},
    )
    assert "added bob (auditor, investigator)" in _ok(added)
    users = {u["name"]: u for u in json.loads(_ok(ifadit("users", "list", "--json")))}
    assert users["bob"]["roles"] == ["auditor", "investigator"]
    refused = _error(
        ifadit("keys", "issue", "--case", "C", "--purpose", "p", user="bob", passphrase="bob-pass"), 1
    )
    assert refused.startswith("Error: user bob lacks the role admin")
    (tmp_path / "pass").write_text("bob-pass\n")
    listed = ifadit(
        "users", "list", "--user", "bob", "--passphrase-file", str(tmp_path / "pass"), passphrase=None
    )
    header, *rows = _ok(listed).splitlines()
    assert header.split() == ["USER", "ROLES", "STATE", "ADDED", "BY"]
    assert ["bob", "auditor,investigator", "active", "admin"] in [r.split() for r in rows]
    assert "--yes" in _error(ifadit("users", "disable", "bob"), 2)
    _ok(ifadit("users", "disable", "bob", "--reason", "left", "--yes"))
    assert "bob is disabled" in _error(ifadit("keys", "list", user="bob", passphrase="bob-pass"), 1)
    assert "no passphrase for carol" in _error(ifadit("users", "add", "carol", "--role", "operator"), 2)
    assert "already exists" in _error(
        ifadit("users", "add", "bob", "--role", "operator", env={"IFADIT_NEW_PASSPHRASE": "x"}), 1
    )


def test_wrong_passphrase_unknown_user_and_missing_passphrase(ifadit: Ifadit) -> None:
    wrong = _error(ifadit("keys", "list", passphrase="nope"), 1)
    unknown = _error(ifadit("keys", "list", user="mallory", passphrase="nope"), 1)
    assert wrong == unknown == "Error: authentication failed: unknown user or wrong passphrase"
    assert "IFADIT_PASSPHRASE" in _error(ifadit("keys", "list", passphrase=None), 2)


def test_policy(ifadit: Ifadit) -> None:
    changed = ifadit(
        "vault",
        "policy",
        "--require-approval",
        "no",
        "--approval-ttl",
        "8",
        "--unlock-delay",
        "2",
        "--approvals",
        "2",
        "--json",
    )
    policy = json.loads(_ok(changed))
    assert policy == {
        "require_approval": False,
        "approval_ttl": 8 * 3600.0,
        "unlock_delay": 2.0,
        "approvals": 2,
    }
    shown = _ok(ifadit("vault", "policy"))
    assert (
        "require approval: no; approvers per request: 2; approval valid for 8 h; failed unlocks wait 2 s"
        in shown
    )
    assert "Invalid value for '--unlock-delay'" in ifadit("vault", "policy", "--unlock-delay", "500").stderr


def test_upgrade_and_missing_vault(ifadit: Ifadit, tmp_path: Path) -> None:
    assert "schema already at 0005" in _ok(ifadit("vault", "upgrade"))
    missing = Ifadit(str(tmp_path / "absent.sqlite3"))
    assert "no vault at" in _error(missing("keys", "list"), 1)
    assert "a vault already exists" in _error(ifadit("vault", "init", *CHEAP_KDF), 1)


def test_an_escalated_role_exits_4_with_one_line(ifadit: Ifadit) -> None:
    """`UPDATE users SET roles=...` in the database: the next command is refused (exit 4), never obeyed."""
    _ok(ifadit("users", "add", "olga", "--role", "operator", env={"IFADIT_NEW_PASSPHRASE": "olga-pass"}))
    execute(ifadit.url, "UPDATE users SET roles = 'admin,operator' WHERE name = 'olga'")
    issued = ifadit("keys", "issue", "--case", "C", "--purpose", "p", user="olga", passphrase="olga-pass")
    assert _error(issued, 4) == (
        "Error: users row 'olga': security fields altered outside the vault (roles): refused"
    )
    assert json.loads(_ok(ifadit("keys", "list", "--json"))) == []


def test_a_broken_log_tail_exits_4_and_commits_nothing(ifadit: Ifadit) -> None:
    """An entry edited with its leaf hash recomputed: the next command exits 4 and its action is not committed."""
    _ok(ifadit("keys", "issue", "--case", "C", "--purpose", "first"))
    rows = sorted(table_rows(ifadit.url, "audit_entries"), key=lambda row: row["seq"])
    canonical = bytes(rows[-1]["canonical"]).replace(b'"purpose":"first"', b'"purpose":"other"')
    execute(
        ifadit.url,
        "UPDATE audit_entries SET canonical = :c, leaf_hash = :l WHERE seq = :s",
        c=canonical,
        l=merkle.leaf_hash(canonical),
        s=rows[-1]["seq"],
    )
    refused = _error(ifadit("keys", "issue", "--case", "C", "--purpose", "second"), 4)
    assert refused.startswith(f"Error: audit log entry {rows[-1]['seq']}: rewritten under the newest signed")
    assert len(table_rows(ifadit.url, "keys")) == 1
    assert len(table_rows(ifadit.url, "audit_entries")) == len(rows)
