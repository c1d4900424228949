"""Issue 25's insider table, row by row, through a real vault service on loopback (SQLite and PostgreSQL).

Each test lets an insider do what the row says (SQL on the service's own database, a file edited on the
workstation), then runs the CLI with `--vault URL`: the command is refused with one line naming what is
wrong (exit 4 for tampering, 1 for a refusal), or the change is detected and located, and nothing of it
is committed or written. Every test then scans what the CLI printed, every HTTP answer it received (job
archives unpacked) and every file it wrote for the passphrases, the unseal shares, the tokens, the KEK,
the audit signing key and every key's material (raw, hex, base64): none is there.

| row | what the insider did | test |
|---|---|---|
| 1 | an auditor reads the database with her own passphrase | `tests/keyvault/service/test_service.py::test_an_insider_with_their_passphrase_and_the_database_recovers_nothing` |
| 2 | `UPDATE users SET roles=...`, then issues a key | `tests/keyvault/service/test_service_integrity.py::test_a_role_escalated_in_the_database_is_refused_by_the_service` |
| 3 | `require_approval=0` in the vault row | `tests/keyvault/service/test_service_integrity.py::test_policy_switched_off_in_the_database_is_refused_by_the_service` |
| 4 | inserts an approval attributed to another user (untagged, or with a tag copied from her real one) | `test_an_approval_inserted_in_another_users_name_restores_nothing` |
| 5 | a destroyed key's rows copied back from a backup, old tags and all | `test_a_destroyed_key_copied_back_from_a_backup_restores_nothing` |
| 5 | a used request and its approval rolled back from a backup and used again | `test_a_used_request_rolled_back_from_a_backup_restores_nothing` |
| 6 | deletes the newest entries, the tree heads over them and the published checkpoints | `test_a_deleted_tail_is_caught_by_a_kept_checkpoint` |
| 7 | edits an entry and recomputes its leaf hash | `test_an_entry_rewritten_with_its_leaf_hash_refuses_the_next_command` |
| 8 | edits `audit_entries.case_id` | `test_an_edited_case_id_is_located_by_live_verify` |
| 9 | a lone admin adds an approver account and approves their own restore | `test_an_approver_added_by_the_requester_cannot_approve` |
| 10 | moves a sealed region 40 px in an output's manifest (signature kept, or forged with her own key) | `test_a_moved_sealed_region_restores_nothing` |
| 11 | reads an exported audit bundle | `test_an_exported_bundle_names_the_original_only_by_keyed_digests` |
| 12 | reads `vault.db` | `test_a_service_vault_file_is_owner_only` |
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import Result
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from ifadit.media.digests import file_sha256, list_digest
from ifadit.media.image import read_image, write_image
from ifadit.media.manifest import Manifest, embedding_for, read_manifest, sign_manifest
from ifadit.pipeline.anonymize import MANIFEST_PURPOSE
from keyvault import envelope, merkle
from keyvault import keys as vault_keys
from keyvault.envelope import generate_signing_key, sign
from keyvault.schema import KeyRow, KeyVersionRow
from keyvault.service import tokenfile
from keyvault.vault import detached_bytes
from tests.cli.test_service_cli import error, login, ok, run, service, shares, unseal  # noqa: F401
from tests.cli.test_service_jobs_cli import CASE, PASSPHRASES, _lab
from tests.keyvault.service.support import RunningService
from tests.keyvault.support import ADMIN, execute, table_rows, vault_url  # noqa: F401  (fixture)
from tests.keyvault.test_stolen_database import _forms

STATE_TABLES = (
    "ifadit_vault",
    "users",
    "keys",
    "key_versions",
    "restore_requests",
    "approvals",
    "admin_actions",
)
IVAN, ANN, OLGA = ("--user", "ivan"), ("--user", "ann"), ("--user", "olga")


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every HTTP answer any client in this test received: headers and body, a job archive's members too."""
    seen: list[bytes] = []
    send = httpx.Client.send

    def keep(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = send(self, request, **kwargs)
        body = response.read()
        seen.append(str(response.headers).encode() + body)
        if body.startswith(b"PK"):
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                seen.extend(archive.read(name) for name in archive.namelist())
        return response

    monkeypatch.setattr(httpx.Client, "send", keep)
    return seen


def _state(url: str) -> dict[str, list[str]]:
    """Every security table's rows, read straight from the database (to show nothing changed)."""
    return {
        table: sorted(repr(sorted(row.items())) for row in table_rows(url, table)) for table in STATE_TABLES
    }


def _entries(url: str) -> list[dict[str, Any]]:
    rows = sorted(table_rows(url, "audit_entries"), key=lambda r: r["seq"])
    return [json.loads(bytes(r["canonical"])) for r in rows]


def _nothing_committed(url: str, before: dict[str, list[str]], seq: int) -> None:
    """No security row changed since ``before``; entries after ``seq`` only record refusals or failures."""
    assert _state(url) == before
    assert [e["outcome"] for e in _entries(url) if e["seq"] > seq and e["outcome"] == "ok"] == []


def _vault_secrets(service: RunningService) -> list[bytes]:  # noqa: F811
    """The KEK, the audit signing key and every key version's material: what stays in the service."""
    kek = service.state.kek()
    with service.state.vault_for(ADMIN) as vault:
        found = [kek, vault._signing_key.reveal()]
    engine = create_engine(service.state.url)
    with Session(engine) as session:
        purposes = {row.handle: row.purpose for row in session.scalars(select(KeyRow))}
        for row in session.scalars(select(KeyVersionRow)):
            if row.material_sealed is not None:
                aad = vault_keys.material_aad(
                    service.state.vault_id, row.key_handle, row.version, purposes[row.key_handle]
                )
                found.append(envelope.unseal(kek, bytes(row.material_sealed), aad))
    engine.dispose()
    return found


def _no_secret(
    results: list[Result],
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    received: list[bytes],
    tmp_path: Path,
) -> None:
    """No passphrase, share, token or vault secret in what the CLI printed, received or wrote.

    Written files: everything under ``tmp_path`` but the token files (``home/``, the user's own
    credential), the custodians' share files and the service's database and checkpoint files.
    """
    names = (*PASSPHRASES, "ada", "ada2")
    tokens = [token.encode() for name in names if (token := tokenfile.load(service.url, name))]
    secrets = [s.encode() for s in (*PASSPHRASES.values(), "ada-pass", "ada2-pass", *shares)] + tokens
    secrets += _vault_secrets(service)
    written = [
        path.read_bytes()
        for path in tmp_path.rglob("*")
        if path.is_file()
        and "home" not in path.relative_to(tmp_path).parts
        and not path.name.startswith(("share", "vault.sqlite3"))
        and not path.name.endswith(".checkpoints")
    ]
    assert received
    printed_or_written = [*(r.stdout_bytes + r.stderr_bytes for r in results), *written]
    for number, secret in enumerate(secrets):  # failures name the secret's index, never the secret
        for form in _forms(secret):
            assert not any(form in blob for blob in printed_or_written), f"secret {number}"
            if secret not in tokens:  # a login's answer is the user's token
                assert not any(form in blob for blob in received), f"secret {number}"


def _anonymized(tmp_path: Path, astronaut: np.ndarray, url: list[str]) -> tuple[Path, Result]:
    """The astronaut anonymized (pixelate, sealed original) by olga through the service."""
    write_image(tmp_path / "in.png", astronaut)
    out = tmp_path / "anon.png"
    result = run(
        "anonymize", str(tmp_path / "in.png"), "-o", str(out), "--case", CASE, "--backend", "pixelate",
        "--seal-original", *url, *OLGA,
    )  # fmt: skip
    ok(result)
    return out, result


def _restore(source: Path, out: Path, url: list[str], *user: str) -> Result:
    return run("restore", str(source), "-o", str(out), "--case", CASE, "--reason", "warrant 2026/114",
               "--exact", *url, *(user or IVAN))  # fmt: skip


def _pending(result: Result) -> str:
    """The request a restore that awaits approval names (exit 3)."""
    assert result.exit_code == 3, (result.stdout, result.stderr)
    return result.stderr.split("request ")[1].split()[0]


def _last_seq(url: str) -> int:
    return max(e["seq"] for e in _entries(url))


# ---------------------------------------------------------------- row 4


def test_an_approval_inserted_in_another_users_name_restores_nothing(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    astronaut: np.ndarray,
    received: list[bytes],
) -> None:
    url = _lab(service, shares, tmp_path)
    anonymized, made = _anonymized(tmp_path, astronaut, url)
    results = [made, _restore(anonymized, tmp_path / "r.png", url)]
    request = _pending(results[-1])
    (row,) = [r for r in table_rows(vault_url, "restore_requests") if r["handle"] == request]
    execute(
        vault_url,
        "INSERT INTO approvals (request_handle, approver, created, expires, input_digest, mode) "
        "VALUES (:r, 'ann', :now, :later, :d, 'exact')",
        r=request,
        now="2026-01-01 00:00:00",
        later="2099-01-01 00:00:00",
        d=row["input_digest"],
    )
    before, seq = _state(vault_url), _last_seq(vault_url)
    results.append(_restore(anonymized, tmp_path / "r.png", url))
    assert error(results[-1], 4) == (
        f"Error: approvals row 'ann on {request}': no integrity tag (written outside the vault): refused"
    )
    assert not (tmp_path / "r.png").exists()
    _nothing_committed(vault_url, before, seq)

    # ann's real approval of another request, tag and all, copied onto this one
    execute(vault_url, "DELETE FROM approvals WHERE request_handle = :r", r=request)
    other = ok(run("restore", str(anonymized), "-o", str(tmp_path / "o.png"), "--case", CASE, "--reason", "x",
                   "--exact", "--request-only", *url, *IVAN)).strip()  # fmt: skip
    results += [run("requests", "approve", other, *url, *ANN)]
    results += [run("requests", "cancel", other, "--reason", "filed twice", *url, *IVAN)]
    execute(
        vault_url,
        "INSERT INTO approvals (request_handle, approver, created, expires, used, input_digest, mode, tag) "
        "SELECT :mine, approver, created, expires, used, input_digest, mode, tag FROM approvals "
        "WHERE request_handle = :other",
        mine=request,
        other=other,
    )
    before, seq = _state(vault_url), _last_seq(vault_url)
    results.append(_restore(anonymized, tmp_path / "r.png", url))
    line = error(results[-1], 4)
    assert line.startswith(f"Error: approvals row 'ann on {request}': not written by the vault")
    assert not (tmp_path / "r.png").exists()
    _nothing_committed(vault_url, before, seq)
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 5


def test_a_destroyed_key_copied_back_from_a_backup_restores_nothing(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    astronaut: np.ndarray,
    received: list[bytes],
) -> None:
    url = _lab(service, shares, tmp_path)
    anonymized, made = _anonymized(tmp_path, astronaut, url)
    backup = {table: table_rows(vault_url, table) for table in ("keys", "key_versions")}
    (key,), (version,) = backup["keys"], backup["key_versions"]
    handle = key["handle"]
    results = [made, run("keys", "revoke", handle, "--reason", "case closed", "--yes", *url)]
    results.append(run("keys", "destroy", handle, "--reason", "retention", "--window", "0", "--yes", *url))
    assert "destroyed" in ok(results[-1])
    execute(vault_url, "UPDATE keys SET state = :s, tag = :t WHERE handle = :h", s=key["state"], t=key["tag"],
            h=handle)  # fmt: skip
    execute(
        vault_url,
        "UPDATE key_versions SET state = :s, material_sealed = :m, destroyed = NULL, revoked = NULL, tag = :t "
        "WHERE key_handle = :h",
        s=version["state"],
        m=version["material_sealed"],
        t=version["tag"],
        h=handle,
    )
    before, seq = _state(vault_url), _last_seq(vault_url)
    results.append(_restore(anonymized, tmp_path / "r.png", url))
    line = error(results[-1], 4)
    assert line.startswith(f"Error: keys row '{handle}': state active but audit log entry ")
    assert line.endswith("records key.revoke (rows restored from a backup?): refused")
    assert not (tmp_path / "r.png").exists()
    _nothing_committed(vault_url, before, seq)  # no request filed for the key either
    ok(run("vault", "policy", *url, "--require-approval", "no"))  # nor does it open without approval
    before, seq = _state(vault_url), _last_seq(vault_url)
    results.append(_restore(anonymized, tmp_path / "r.png", url))
    assert error(results[-1], 4) == line
    assert not (tmp_path / "r.png").exists()
    _nothing_committed(vault_url, before, seq)
    _no_secret(results, service, shares, received, tmp_path)


def test_a_used_request_rolled_back_from_a_backup_restores_nothing(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    astronaut: np.ndarray,
    received: list[bytes],
) -> None:
    url = _lab(service, shares, tmp_path)
    anonymized, made = _anonymized(tmp_path, astronaut, url)
    results = [made, _restore(anonymized, tmp_path / "r.png", url)]
    request = _pending(results[-1])
    results.append(run("requests", "approve", request, *url, *ANN))
    backup = {table: table_rows(vault_url, table) for table in ("restore_requests", "approvals")}
    results.append(_restore(anonymized, tmp_path / "r.png", url))
    assert f"under request {request}" in ok(results[-1])
    (old_request,), (old_approval,) = backup["restore_requests"], backup["approvals"]
    execute(vault_url, "UPDATE restore_requests SET state = :s, tag = :t WHERE handle = :h",
            s=old_request["state"], t=old_request["tag"], h=request)  # fmt: skip
    execute(vault_url, "UPDATE approvals SET used = NULL, tag = :t WHERE request_handle = :h",
            t=old_approval["tag"], h=request)  # fmt: skip
    used = [e for e in _entries(vault_url) if e["action"] == "restore" and e["outcome"] == "ok"]
    before, seq = _state(vault_url), _last_seq(vault_url)
    results.append(_restore(anonymized, tmp_path / "again.png", url))
    assert error(results[-1], 4) == (
        f"Error: restore_requests row '{request}': state approved but audit log entry {used[0]['seq']} records "
        "its use by restore (rows restored from a backup?): refused"
    )
    assert not (tmp_path / "again.png").exists()
    _nothing_committed(vault_url, before, seq)
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 6


def test_a_deleted_tail_is_caught_by_a_kept_checkpoint(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    received: list[bytes],
) -> None:
    unseal(service, shares, tmp_path)
    login(service, ADMIN, PASSPHRASES[ADMIN])
    url = ["--vault", service.url]
    results = [run("keys", "issue", "--case", case, "--purpose", "p", *url) for case in ("C-1", "C-2") * 3]
    kept, public = tmp_path / "kept.cp", tmp_path / "vault.pub"
    results.append(run("audit", "checkpoint", *url, "-o", str(kept)))
    results.append(
        run("audit", "export", *url, "-o", str(tmp_path / "before.jsonl"), "--public-key-out", str(public))
    )
    size = int(ok(results[-2]).splitlines()[1])
    keep = size - 4
    execute(vault_url, "DELETE FROM tree_heads WHERE size > :n", n=keep)
    execute(vault_url, "DELETE FROM audit_entries WHERE seq > :n", n=keep)
    assert service.state.checkpoints is not None
    service.state.checkpoints.unlink()  # the published checkpoints go too

    cut = tmp_path / "cut.jsonl"
    results.append(run("audit", "export", *url, "-o", str(cut)))
    ok(results[-1])
    count = len(table_rows(vault_url, "audit_entries"))
    results.append(run("audit", "verify", str(cut), "--public-key", str(public)))
    assert ok(results[-1]).startswith(f"audit log intact: {count} entries")  # the bundle alone cannot tell
    results.append(run("audit", "verify", str(cut), "--public-key", str(public), "--since", str(kept)))
    line = error(results[-1], 4)
    assert f"the bundle has {count} entries but the checkpoint" in line
    assert f"covers {size}: history truncated" in line
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 7


def test_an_entry_rewritten_with_its_leaf_hash_refuses_the_next_command(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    received: list[bytes],
) -> None:
    unseal(service, shares, tmp_path)
    login(service, ADMIN, PASSPHRASES[ADMIN])
    url = ["--vault", service.url]
    results = [run("keys", "issue", "--case", "C-1", "--purpose", "first", *url)]
    results.append(run("keys", "list", *url))  # the service has checked the newest head since
    ok(results[-1])
    (target,) = [
        r for r in table_rows(vault_url, "audit_entries") if b'"purpose":"first"' in bytes(r["canonical"])
    ]
    _rewrite_entry(vault_url, target["seq"], b'"purpose":"first"', b'"purpose":"other"')
    before, entries = _state(vault_url), len(table_rows(vault_url, "audit_entries"))
    results.append(run("keys", "issue", "--case", "C-1", "--purpose", "second", *url))
    assert error(results[-1], 4).startswith(
        f"Error: audit log entry {target['seq']}: rewritten under the newest signed tree head: every action is "
        "refused until an admin runs `ifadit audit verify`"
    )
    assert _state(vault_url) == before and len(table_rows(vault_url, "audit_entries")) == entries
    _no_secret(results, service, shares, received, tmp_path)


def _rewrite_entry(url: str, seq: int, old: bytes, new: bytes) -> None:
    """Edit one entry's canonical bytes and store the leaf hash they now give (as an insider could)."""
    (row,) = [r for r in table_rows(url, "audit_entries") if r["seq"] == seq]
    canonical = bytes(row["canonical"]).replace(old, new)
    execute(url, "UPDATE audit_entries SET canonical = :c, leaf_hash = :h WHERE seq = :s",
            c=canonical, h=merkle.leaf_hash(canonical), s=seq)  # fmt: skip


# ---------------------------------------------------------------- row 8


def test_an_edited_case_id_is_located_by_live_verify(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    received: list[bytes],
) -> None:
    unseal(service, shares, tmp_path)
    login(service, ADMIN, PASSPHRASES[ADMIN])
    url = ["--vault", service.url]
    results = [run("keys", "issue", "--case", case, "--purpose", "p", *url) for case in ("C-1", "C-2", "C-1")]
    target = next(r for r in sorted(table_rows(vault_url, "audit_entries"), key=lambda r: r["seq"])
                  if r["case_id"] == "C-2")  # fmt: skip
    execute(vault_url, "UPDATE audit_entries SET case_id = 'x' WHERE seq = :s", s=target["seq"])
    results.append(run("audit", "show", "--case", "C-2", *url, "--json"))
    assert target["seq"] not in [e["seq"] for e in json.loads(ok(results[-1]))]  # hidden from the case
    results.append(run("audit", "verify", *url))
    line = error(results[-1], 4)
    assert f"entry {target['seq']}: case_id column 'x' does not match the entry ('C-2')" in line
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 9


def test_an_approver_added_by_the_requester_cannot_approve(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    astronaut: np.ndarray,
    received: list[bytes],
) -> None:
    url = _lab(service, shares, tmp_path)
    anonymized, made = _anonymized(tmp_path, astronaut, url)
    results = [made, run("users", "add", "ada", "--role", "admin", "--role", "investigator", *url,
                         env={"IFADIT_NEW_PASSPHRASE": "ada-pass"})]  # fmt: skip
    ok(results[-1])
    login(service, "ada", "ada-pass")
    add = ("users", "add", "ada2", "--role", "approver", *url, "--user", "ada")
    results.append(run(*add, env={"IFADIT_NEW_PASSPHRASE": "ada2-pass"}))  # two admins: filed
    action = error(results[-1], 3).split("filed admin action ")[1].split()[0].rstrip(":;,.")
    results.append(run("admin-actions", "approve", action, *url))
    ok(results[-1])
    results.append(run(*add, "--action", action, env={"IFADIT_NEW_PASSPHRASE": "ada2-pass"}))
    ok(results[-1])
    login(service, "ada2", "ada2-pass")
    results.append(_restore(anonymized, tmp_path / "r.png", url, "--user", "ada"))
    request = _pending(results[-1])
    before, seq = _state(vault_url), _last_seq(vault_url)
    results.append(run("requests", "approve", request, *url, "--user", "ada2"))
    assert error(results[-1], 1).startswith(
        f"Error: user ada2 was added by ada, who made request {request}: approval refused (two-person rule)"
    )
    _nothing_committed(vault_url, before, seq)
    results.append(_restore(anonymized, tmp_path / "r.png", url, "--user", "ada"))
    assert results[-1].exit_code == 3 and "awaits approval (0 of 1)" in results[-1].stderr
    assert not (tmp_path / "r.png").exists()
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 10


def _rewrite_manifest(path: Path, manifest: Manifest) -> None:
    write_image(path, read_image(path), **embedding_for(path, manifest))


def test_a_moved_sealed_region_restores_nothing(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    astronaut: np.ndarray,
    received: list[bytes],
) -> None:
    url = _lab(service, shares, tmp_path)
    anonymized, made = _anonymized(tmp_path, astronaut, url)
    manifest = read_manifest(anonymized)
    assert manifest is not None and manifest.faces[0].sealed is not None
    sealed = manifest.faces[0].sealed
    x0, y0, x1, y1 = sealed.region
    moved = replace(
        manifest,
        faces=(replace(manifest.faces[0], sealed=replace(sealed, region=(x0 + 40, y0, x1 + 40, y1))),),
    )
    own_private, _ = generate_signing_key()  # the only signing key the insider holds
    forged = sign_manifest(moved, lambda data: sign(own_private, detached_bytes(MANIFEST_PURPOSE, data)))
    results = [made]
    for edited in (moved, forged):  # the service's signature kept over the moved box, or her own
        _rewrite_manifest(anonymized, edited)
        before, seq = _state(vault_url), _last_seq(vault_url)
        results.append(_restore(anonymized, tmp_path / "r.png", url))
        line = error(results[-1], 4)
        assert "manifest signature does not verify" in line, line
        assert not (tmp_path / "r.png").exists()
        _nothing_committed(vault_url, before, seq)  # no request filed either
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 11


def test_an_exported_bundle_names_the_original_only_by_keyed_digests(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    astronaut: np.ndarray,
    received: list[bytes],
) -> None:
    url = _lab(service, shares, tmp_path)
    ok(run("vault", "policy", *url, "--require-approval", "no"))
    anonymized, made = _anonymized(tmp_path, astronaut, url)
    results = [made, _restore(anonymized, tmp_path / "r.png", url)]
    ok(results[-1])
    original = tmp_path / "in.png"
    sha = file_sha256(original)
    assert file_sha256(tmp_path / "r.png") == sha  # bit-exact: an unkeyed output digest would leak it too
    bundle = tmp_path / "bundle.jsonl"
    results.append(run("audit", "export", *url, "-o", str(bundle)))
    ok(results[-1])
    results.append(run("audit", "digest", str(original), *url, *IVAN))
    keyed = ok(results[-1]).split()[0]
    text = bundle.read_text()
    for unkeyed in (sha, list_digest([sha])):
        assert unkeyed not in text
    entries = [json.loads(line) for line in text.splitlines()]
    anonymize = [e for e in entries if e.get("action") == "anonymize"]
    restore = [e for e in entries if e.get("action") == "restore" and e.get("outcome") == "ok"]
    assert anonymize[0]["digests"]["inputs"] == restore[0]["digests"]["output"] == keyed
    assert keyed.startswith("hmac-sha256:")
    _no_secret(results, service, shares, received, tmp_path)


# ---------------------------------------------------------------- row 12


@pytest.mark.parametrize("vault_url", ["sqlite"], indirect=True)
def test_a_service_vault_file_is_owner_only(
    service: RunningService,  # noqa: F811
    shares: list[str],  # noqa: F811
    tmp_path: Path,
    vault_url: str,  # noqa: F811
    received: list[bytes],
) -> None:
    unseal(service, shares, tmp_path)
    login(service, ADMIN, PASSPHRASES[ADMIN])
    results = [run("keys", "issue", "--case", "C-1", "--purpose", "p", "--vault", service.url)]
    ok(results[-1])
    path = Path(vault_url.removeprefix("sqlite:///"))
    files = sorted(path.parent.glob(path.name + "*"))
    assert path in files
    for file in files:  # the database, its -wal and -shm, the published checkpoints
        assert stat.S_IMODE(os.stat(file).st_mode) == 0o600, file
    _no_secret(results, service, shares, received, tmp_path)
