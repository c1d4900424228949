"""The admin and key commands through a real vault service on loopback (`--vault http://127.0.0.1:PORT`).

`vault init --service` prints the shares once; custodians unseal with `vault operator unseal`; users
`login` (token file 0600) and run `users`, `keys` and `vault policy` against the service, which holds
the database; commands not routed yet stop with a clear error instead of reaching for a database.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ifadit.pipeline.service_jobs import JOBS
from ifadit_cli.main import cli
from keyvault.service import tokenfile
from tests.cli.test_admin_cli import CHEAP_KDF
from tests.keyvault.service.support import RunningService, running_service
from tests.keyvault.support import vault_url  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    environ: dict[str, str | None] = {
        "IFADIT_PASSPHRASE": None,
        "IFADIT_NEW_PASSPHRASE": None,
        "IFADIT_TOKEN": None,
    }
    return CliRunner(env={**environ, **(env or {})}).invoke(cli, list(args), catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ")
    return line


@pytest.fixture
def shares(vault_url: str) -> list[str]:  # noqa: F811
    created = run(
        "vault",
        "init",
        "--service",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--vault",
        vault_url,
        *CHEAP_KDF,
        env={"IFADIT_PASSPHRASE": "admin-pass"},
    )
    text = ok(created)
    assert "UNSEAL SHARES: any 2 of these 3" in text and "shown this once" in text
    printed = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("share ")]
    assert len(printed) == 3 and all(s.startswith("ifadit-share:") for s in printed)
    return printed


@pytest.fixture
def service(
    vault_url: str,  # noqa: F811
    shares: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningService]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))  # token files of this test only
    with running_service(vault_url, jobs=JOBS) as running:  # as `ifadit vault serve` runs it
        yield running


def assert_no_secret(texts: list[str], url: str, shares: list[str], passphrases: dict[str, str]) -> None:
    """No passphrase, unseal share or login token (of the users in ``passphrases``) appears in ``texts``."""
    tokens = [token for name in passphrases if (token := tokenfile.load(url, name))]
    for secret in [*passphrases.values(), *shares, *tokens]:
        assert not any(secret in text for text in texts)


def unseal(service: RunningService, shares: list[str], tmp_path: Path) -> None:
    for number, share in enumerate(shares[:2]):
        path = tmp_path / f"share{number}"
        path.write_text(share + "\n")
        out = ok(run("vault", "operator", "unseal", "--vault", service.url, "--share-file", str(path)))
        assert ("sealed, 1 of 2 shares" in out) if number == 0 else ("unsealed" in out)


def login(service: RunningService, user: str, passphrase: str) -> None:
    out = ok(run("login", "--vault", service.url, "--user", user, env={"IFADIT_PASSPHRASE": passphrase}))
    assert f"logged in to {service.url} as {user}" in out


def staff(
    service: RunningService,
    shares: list[str],
    tmp_path: Path,
    roles: dict[str, tuple[str, ...]],
    passphrases: dict[str, str],
) -> list[str]:
    """Unseal; the admin (``passphrases["admin"]``) adds each user with their roles; everyone logged in.
    Returns the ``--vault`` arguments."""
    unseal(service, shares, tmp_path)
    login(service, "admin", passphrases["admin"])
    url = ["--vault", service.url]
    for name, held in roles.items():
        role = [arg for r in held for arg in ("--role", r)]
        ok(run("users", "add", name, *role, *url, env={"IFADIT_NEW_PASSPHRASE": passphrases[name]}))
        login(service, name, passphrases[name])
    return url


def test_status_unseal_and_login(service: RunningService, shares: list[str], tmp_path: Path) -> None:
    assert "sealed, 0 of 2 shares submitted" in ok(run("vault", "status", "--vault", service.url))
    assert "sealed" in error(run("login", "--vault", service.url, env={"IFADIT_PASSPHRASE": "admin-pass"}), 1)
    unseal(service, shares, tmp_path)
    status = json.loads(ok(run("vault", "status", "--vault", service.url, "--json")))
    assert status["sealed"] is False and status["threshold"] == 2
    assert "not logged in to" in error(run("keys", "list", "--vault", service.url), 1)
    assert "unknown user or wrong passphrase" in error(
        run("login", "--vault", service.url, env={"IFADIT_PASSPHRASE": "nope"}), 1
    )
    login(service, "admin", "admin-pass")
    path = tokenfile.token_path(service.url, "admin")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    ok(run("keys", "list", "--vault", service.url))
    assert "logged out" in ok(run("logout", "--vault", service.url))
    assert not path.exists()
    assert "not logged in" in error(run("keys", "list", "--vault", service.url), 1)


def test_keys_and_users_lifecycle_through_the_service(
    service: RunningService, shares: list[str], tmp_path: Path
) -> None:
    unseal(service, shares, tmp_path)
    login(service, "admin", "admin-pass")
    url = ["--vault", service.url]
    handle = ok(run("keys", "issue", *url, "--case", "C-17", "--purpose", "CCTV")).strip()
    assert handle.startswith("kh_")
    assert handle in ok(run("keys", "list", *url, "--case", "C-17"))
    assert f"{handle} rotated to version 2" in ok(run("keys", "rotate", *url, handle))
    assert f"{handle} is suspended" in ok(run("keys", "suspend", *url, handle, "--reason", "seized"))
    assert f"{handle} is active" in ok(run("keys", "resume", *url, handle))
    error(run("keys", "destroy", *url, handle, "--reason", "early", "--yes"), 1)  # only a revoked key
    assert f"{handle} is revoked" in ok(run("keys", "revoke", *url, handle, "--reason", "closed", "--yes"))
    assert f"{handle} is pending-destroy" in ok(  # erased after the 7-day window
        run("keys", "destroy", *url, handle, "--reason", "retention", "--yes")
    )
    shown = json.loads(ok(run("keys", "show", *url, handle, "--json")))
    assert shown["state"] == "pending-destroy" and [v["state"] for v in shown["versions"]] == [
        "revoked",
        "revoked",
    ]
    assert "added olga (operator)" in ok(
        run("users", "add", "olga", "--role", "operator", *url, env={"IFADIT_NEW_PASSPHRASE": "olga-pass"})
    )
    assert "olga" in ok(run("users", "list", *url))
    assert "require approval: no" in ok(run("vault", "policy", *url, "--require-approval", "no"))
    login(service, "olga", "olga-pass")
    denied = error(
        run(
            "users",
            "add",
            "eve",
            "--role",
            "admin",
            *url,
            "--user",
            "olga",
            env={"IFADIT_NEW_PASSPHRASE": "x"},
        ),
        1,
    )
    assert (
        denied
        == "Error: user olga lacks the role admin (holds: operator; ask an admin for an account with that role)"
    )
    assert "revoked 1 token(s) of olga" in ok(run("vault", "operator", "revoke-tokens", "olga", *url))
    assert "expired or revoked" in error(run("keys", "list", *url, "--user", "olga"), 1)
    ok(run("users", "disable", "olga", *url, "--reason", "left", "--yes"))
    assert "disabled" in ok(run("users", "list", *url))


def test_what_the_service_never_serves_is_refused_and_touches_no_database(
    service: RunningService, shares: list[str], tmp_path: Path
) -> None:
    unseal(service, shares, tmp_path)
    login(service, "admin", "admin-pass")
    out = tmp_path / "eval"
    refused = run("eval", "run", "--data", str(tmp_path), "--backend", "blur", "-o", str(out), "--key", "kh_x",
                  "--vault", service.url)  # fmt: skip
    assert "--key would unseal the key's material in this process" in error(refused, 2)
    assert not out.exists()
    assert (
        "vault init runs on the vault server"
        in run("vault", "init", "--service", "--vault", service.url).stderr
    )


def test_audit_commands_through_the_service(
    service: RunningService, shares: list[str], tmp_path: Path
) -> None:
    unseal(service, shares, tmp_path)
    login(service, "admin", "admin-pass")
    url = ["--vault", service.url]
    handle = ok(run("keys", "issue", *url, "--case", "C-9", "--purpose", "p")).strip()
    kept = tmp_path / "kept.checkpoint"
    note = ok(run("audit", "checkpoint", *url, "-o", str(kept)))
    assert note.startswith("ifadit.vault/") and kept.read_text() == note
    assert ok(run("audit", "checkpoint", *url, "--verifier-key")).startswith("ifadit.vault/")
    shown = ok(run("audit", "show", *url, "--case", "C-9"))
    assert "key.issue" in shown and handle in shown
    entries = json.loads(ok(run("audit", "show", *url, "--json")))
    assert [e["action"] for e in entries][:2] == ["vault.init", "service.login"]
    assert ok(run("audit", "show", *url, "--heads")).startswith("SIZE")
    ok(run("keys", "rotate", *url, handle))
    bundle, public = tmp_path / "lab.audit.jsonl", tmp_path / "lab.pub"
    assert "entries to" in ok(
        run("audit", "export", *url, "-o", str(bundle), "--public-key-out", str(public))
    )
    assert "audit log intact" in ok(run("audit", "verify", str(bundle), "--public-key", str(public)))
    live = ok(run("audit", "verify", *url, "--public-key", str(public), "--since", str(kept)))
    assert "audit log intact" in live and "extends" in live
    ok(run("users", "add", "oscar", "--role", "operator", *url, env={"IFADIT_NEW_PASSPHRASE": "oscar-pass"}))
    login(service, "oscar", "oscar-pass")
    assert "lacks the role auditor or admin" in error(run("audit", "show", *url, "--user", "oscar"), 1)


def test_plain_http_off_loopback_is_refused(service: RunningService) -> None:
    line = error(run("vault", "status", "--vault", "http://192.0.2.1:8200"), 1)
    assert "refusing plain HTTP to 192.0.2.1" in line
