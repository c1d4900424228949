"""The two-person rule, destroy's window and the audit proofs through a real vault service (issue 25).

On SQLite and PostgreSQL, with two admins logged in to a service on loopback: `users add`, `vault policy`
and `keys destroy` file an admin action (exit 3); the filer cannot approve it, through the service as
locally, and the refusal commits nothing but its audit entry; the other admin approves or denies it
(`admin-actions`); the filer runs it with `--action`, which the service refuses for other parameters,
for another user and a second time. `keys destroy --window` and `keys cancel-destroy` run there too.
`audit prove|consistency` hand out proofs the client checks again; `audit digest` sends the files'
SHA-256 only, never their bytes, and prints what the library computes over the same vault.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from ifadit.media.digests import list_digest
from ifadit.pipeline.outputs import keyed_list_digest
from keyvault.service import tokenfile
from keyvault.service.client import VaultClient
from tests.cli.test_service_cli import error, login, ok, run, service, shares, unseal  # noqa: F401
from tests.keyvault.service.support import RunningService
from tests.keyvault.support import table_rows, vault_url  # noqa: F401  (fixture: SQLite file or PostgreSQL schema)

BOB = ("--user", "bob")
EVE: dict[str, str | None] = {"IFADIT_NEW_PASSPHRASE": "eve-pass"}


def _two_admins(service: RunningService, shares: list[str], tmp_path: Path) -> list[str]:  # noqa: F811
    """Unseal, add bob as a second admin (one admin: nothing filed), both logged in; the --vault args."""
    unseal(service, shares, tmp_path)
    login(service, "admin", "admin-pass")
    url = ["--vault", service.url]
    ok(run("users", "add", "bob", "--role", "admin", *url, env={"IFADIT_NEW_PASSPHRASE": "bob-pass"}))
    login(service, "bob", "bob-pass")
    return url


def _filed(line: str) -> str:
    match = re.search(r"filed admin action (aa_[0-9a-f]{24})", line)
    assert match is not None, line
    return match[1]


def _state(vault_url: str, action: str) -> tuple[str, str | None]:  # noqa: F811
    """The admin action's state and decider, read straight from the database."""
    (row,) = [r for r in table_rows(vault_url, "admin_actions") if r["handle"] == action]
    return row["state"], row["decided_by"]


def _audited(url: list[str]) -> list[tuple[str, str, str]]:
    entries = json.loads(ok(run("audit", "show", *url, "--json")))
    return [(e["actor"], e["action"], e["outcome"]) for e in entries]


def test_adding_a_user_needs_the_other_admin_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
) -> None:
    url = _two_admins(service, shares, tmp_path)
    add = ("users", "add", "eve", "--role", "operator", *url)
    action = _filed(error(run(*add, env=EVE), 3))
    listed = json.loads(ok(run("admin-actions", "list", *url, *BOB, "--state", "pending", "--json")))
    assert [(a["handle"], a["kind"], a["filer"], a["params"]) for a in listed] == [
        (action, "user.add", "admin", {"name": "eve", "roles": "operator"})
    ]
    assert "kind: user.add" in ok(run("admin-actions", "show", action, *url, *BOB))

    refused = error(run("admin-actions", "approve", action, *url), 1)  # the filer, through the service
    assert refused.startswith(f"Error: user admin filed admin action {action}: approval refused")
    assert _state(vault_url, action) == ("pending", None)  # nothing of the refusal committed
    assert f"{action} (user.add) is approved" in ok(run("admin-actions", "approve", action, *url, *BOB))
    assert _state(vault_url, action) == ("approved", "bob")

    other = error(run("users", "add", "eve", "--role", "admin", *url, "--action", action, env=EVE), 1)
    assert f"admin action {action} approves a different user.add: refused" in other
    assert f"admin action {action} was filed by admin, not bob" in error(
        run(*add, *BOB, "--action", action, env=EVE), 1
    )
    assert _state(vault_url, action) == ("approved", "bob")  # the refused runs used nothing up
    assert "eve" not in {row["name"] for row in table_rows(vault_url, "users")}

    assert "added eve (operator)" in ok(run(*add, "--action", action, env=EVE))
    assert _state(vault_url, action) == ("used", "bob")
    assert f"admin action {action} is used" in error(run(*add, "--action", action, env=EVE), 1)
    login(service, "eve", "eve-pass")  # the passphrase given at the re-run is hers
    audited = _audited(url)
    for expected in (
        ("admin", "user.add", "refused"),  # the lone attempt, before the filing
        ("admin", "admin.file", "ok"),
        ("admin", "admin.approve", "refused"),
        ("bob", "admin.approve", "ok"),
        ("admin", "user.add", "ok"),
    ):
        assert expected in audited


def test_policy_and_destroy_with_a_window_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
) -> None:
    url = _two_admins(service, shares, tmp_path)
    policy = ("vault", "policy", *url, "--approvals", "2")
    denied = _filed(error(run(*policy), 3))
    assert f"{denied} (vault.policy) is denied" in ok(run("admin-actions", "deny", denied, *url, *BOB))
    assert f"admin action {denied} is denied" in error(run(*policy, "--action", denied), 1)
    assert "approvers per request: 1" in ok(run("vault", "policy", *url))
    action = _filed(error(run(*policy), 3))
    ok(run("admin-actions", "approve", action, *url, *BOB))
    assert "approvers per request: 2" in ok(run(*policy, "--action", action))

    handle = ok(run("keys", "issue", *url, "--case", "C-1", "--purpose", "p")).strip()
    ok(run("keys", "revoke", handle, *url, "--reason", "closed", "--yes"))
    destroy = ("keys", "destroy", handle, *url, "--reason", "retention over", "--yes")
    action = _filed(error(run(*destroy, "--window", "1"), 3))
    ok(run("admin-actions", "approve", action, *url, *BOB))
    at_once = error(run(*destroy, "--window", "0", "--action", action), 1)  # not the approved window
    assert f"admin action {action} approves a different key.destroy" in at_once
    assert json.loads(ok(run("keys", "show", handle, *url, "--json")))["state"] == "revoked"
    assert f"{handle} is pending-destroy" in ok(run(*destroy, "--window", "1", "--action", action))
    assert f"{handle} is revoked" in ok(run("keys", "cancel-destroy", handle, *url, "--reason", "hold"))
    assert f"key {handle} is revoked: cancel-destroy refused" in error(
        run("keys", "cancel-destroy", handle, *url, "--reason", "again"), 1
    )
    assert all(row["material_sealed"] is not None for row in table_rows(vault_url, "key_versions"))
    entries = json.loads(ok(run("audit", "show", *url, "--json")))
    (scheduled,) = [e for e in entries if e["action"] == "key.schedule-destroy" and e["outcome"] == "ok"]
    assert scheduled["details"]["window_s"] == 86_400 and scheduled["details"]["admin_action"] == action
    listed = json.loads(ok(run("admin-actions", "list", *url, "--json")))
    assert sorted((a["kind"], a["state"]) for a in listed) == [
        ("key.destroy", "used"),
        ("vault.policy", "denied"),
        ("vault.policy", "used"),
    ]


def test_audit_proofs_and_digests_through_the_service(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unseal(service, shares, tmp_path)
    login(service, "admin", "admin-pass")
    url = ["--vault", service.url]
    handle = ok(run("keys", "issue", *url, "--case", "C-9", "--purpose", "p")).strip()
    ok(run("keys", "rotate", *url, handle))
    public = tmp_path / "lab.pub"
    ok(run("audit", "export", *url, "-o", str(tmp_path / "b.jsonl"), "--public-key-out", str(public)))
    proof = tmp_path / "p.json"
    assert "wrote the proof of entry 3" in ok(run("audit", "prove", "3", *url, "-o", str(proof)))
    assert ok(run("audit", "verify", "--proof", str(proof), "--public-key", str(public))).startswith(
        "entry 3 is included"
    )
    assert "audit entry 999 is not covered" in error(run("audit", "prove", "999", *url), 1)
    sizes = [h["size"] for h in json.loads(ok(run("audit", "show", *url, "--heads", "--json")))]
    assert f"extends the one of size {sizes[0]}" in ok(run("audit", "consistency", str(sizes[0]), *url))
    both = json.loads(ok(run("audit", "consistency", str(sizes[0]), str(sizes[-1]), *url, "--json")))
    assert (both["old"]["size"], both["new"]["size"]) == (sizes[0], sizes[-1]) and both["proof"]
    assert "no signed tree head of size 777" in error(run("audit", "consistency", "777", *url), 1)

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"pretend these are the bytes of an original photo")
    sha256 = hashlib.sha256(photo.read_bytes()).hexdigest()
    sent = _spy_on_requests(monkeypatch)
    first = ok(run("audit", "digest", str(photo), *url)).strip()
    assert [body for path, body in sent if path == "/v1/audit/digest"] == [
        {"sha256": list_digest([sha256]), "files": 1}
    ]  # the SHA-256 of the list of the one file's SHA-256: never its bytes
    with service.state.vault_for("admin") as vault:
        assert first == keyed_list_digest(vault, [sha256])  # what a run on the vault itself records
    assert ok(run("audit", "digest", str(photo), str(photo), *url)).strip() != first
    entries = json.loads(ok(run("audit", "show", *url, "--json")))
    digests = [(e["details"]["files"], e["digests"]) for e in entries if e["action"] == "audit.digest"]
    assert digests[0] == (1, {"files": first}) and digests[1][0] == 2

    ok(run("users", "add", "oscar", "--role", "operator", *url, env={"IFADIT_NEW_PASSPHRASE": "oscar-pass"}))
    login(service, "oscar", "oscar-pass")
    assert ok(run("audit", "digest", str(photo), *url, "--user", "oscar")).strip() == first  # any role
    assert "lacks the role auditor or admin" in error(run("audit", "prove", "3", *url, "--user", "oscar"), 1)
    _hand_made_requests(service)


def _hand_made_requests(service: RunningService) -> None:  # noqa: F811
    """The new routes check roles in the service whatever the body says, and refuse malformed arguments."""

    def call(user: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokenfile.load(service.url, user)}"}
        return httpx.request(method, f"{service.url}{path}", json=body, headers=headers, timeout=5)

    claims = {"user": "admin", "role": "admin", "reason": "r", "seq": 1}
    for method, path in (
        ("GET", "/v1/admin-actions"),
        ("GET", "/v1/admin-actions/aa_00"),
        ("POST", "/v1/admin-actions/aa_00/approve"),
        ("POST", "/v1/keys/kh_00/destroy"),
        ("POST", "/v1/keys/kh_00/cancel-destroy"),
        ("POST", "/v1/audit/prove"),
        ("GET", "/v1/audit/consistency?old=1"),
    ):
        answer = call("oscar", method, path, claims)
        assert answer.status_code == 403 and answer.json()["error"]["type"] == "PermissionDenied", path
    unknown = call("admin", "POST", "/v1/admin-actions/aa_00/run")
    assert unknown.status_code == 404 and unknown.json()["error"]["hint"] == "one of: approve, deny"
    for body in ({"sha256": "zz" * 32}, {"sha256": "a" * 65}, {"sha256": "a" * 64, "files": 0}):
        assert call("admin", "POST", "/v1/audit/digest", body).status_code == 422, body
    window = call("admin", "POST", "/v1/keys/kh_00/destroy", {"reason": "r", "window_s": -1})
    assert window.status_code == 422


def _spy_on_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Record the path and JSON body of every request a ``VaultClient`` sends."""
    sent: list[tuple[str, Any]] = []
    original = VaultClient._request

    def spy(self: VaultClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        sent.append((path, kwargs.get("json")))
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(VaultClient, "_request", spy)
    return sent
