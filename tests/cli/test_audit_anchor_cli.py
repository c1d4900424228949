"""`ifadit audit checkpoint|witness` and `audit verify --since` through click's runner, on SQLite and PostgreSQL.

The insider deletes the newest audit entries and the tree heads covering them with SQL: plain
`audit verify` of the next export says intact, `--since` the kept checkpoint and the witness refuse.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keyvault import checkpoint, note
from tests.cli.test_admin_cli import CHEAP_KDF, Ifadit, _error, _ok
from tests.keyvault.support import execute, table_rows, vault_url  # noqa: F401  (fixture)


@pytest.fixture
def lab(vault_url: str, tmp_path: Path) -> Ifadit:  # noqa: F811
    run = Ifadit(vault_url)
    _ok(run("vault", "init", *CHEAP_KDF))
    for case in ("C-1", "C-2", "C-1", "C-2", "C-1", "C-2"):
        _ok(run("keys", "issue", "--case", case, "--purpose", "test"))
    return run


def _checkpoint_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("*.checkpoints"))


def test_checkpoint_witness_and_since_catch_a_deleted_tail(lab: Ifadit, tmp_path: Path) -> None:
    kept_text = _ok(lab("audit", "checkpoint", "-o", str(tmp_path / "kept.cp")))
    assert stat.S_IMODE(os.stat(tmp_path / "kept.cp").st_mode) == 0o600
    assert (tmp_path / "kept.cp").read_text() == kept_text
    log_key = _ok(lab("audit", "checkpoint", "--verifier-key")).strip()
    signed = checkpoint.open_checkpoint(kept_text, note.Verifier.decode(log_key))
    [published] = _checkpoint_files(tmp_path)
    assert checkpoint.read_all(published)[-1] == kept_text  # the vault published what it printed

    w_vkey = _ok(lab("audit", "witness", "keygen", "-o", str(tmp_path / "w.key"), "--name", "lab.example/w1"))
    assert "already exists" not in w_vkey and stat.S_IMODE(os.stat(tmp_path / "w.key").st_mode) == 0o600
    bundle, pub = tmp_path / "b.jsonl", tmp_path / "lab.pub"
    _ok(lab("audit", "export", "-o", str(bundle), "--public-key-out", str(pub)))
    witness = ["--key", str(tmp_path / "w.key"), "--state", str(tmp_path / "w.state")]
    cosigned = _ok(
        lab(
            "audit",
            "witness",
            "cosign",
            str(tmp_path / "kept.cp"),
            "--bundle",
            str(bundle),
            *witness,
            "--log-key",
            log_key,
            "-o",
            str(tmp_path / "cosigned.cp"),
            passphrase=None,
        )
    )
    assert cosigned.startswith(kept_text) and "\u2014 lab.example/w1 " in cosigned
    since = ["--since", str(tmp_path / "cosigned.cp"), "--witness", w_vkey.strip()]
    intact = _ok(lab("audit", "verify", str(bundle), "--public-key", str(pub), *since, passphrase=None))
    assert f"extends 1 kept checkpoint (newest at size {signed.size}, cosigned by lab.example/w1)" in intact

    keep = signed.size - 4
    execute(lab.url, "DELETE FROM tree_heads WHERE size > :n", n=keep)
    execute(lab.url, "DELETE FROM audit_entries WHERE seq > :n", n=keep)
    refused = _error(lab("keys", "issue", "--case", "C-3", "--purpose", "after"), 4)
    assert f"the audit log holds {keep + 1} entries but the checkpoint published in {published}" in refused
    published.unlink()  # an insider on the vault host removes the external anchor too
    cut = tmp_path / "cut.jsonl"
    _ok(lab("audit", "export", "-o", str(cut)))
    count = len([r for r in table_rows(lab.url, "audit_entries")])
    plain = _ok(lab("audit", "verify", str(cut), "--public-key", str(pub), passphrase=None))
    assert plain.startswith(f"audit log intact: {count} entries")  # the bundle alone cannot tell
    caught = _error(lab("audit", "verify", str(cut), "--public-key", str(pub), *since, passphrase=None), 4)
    assert f"the bundle has {count} entries but the checkpoint cosigned at " in caught
    assert f"covers {signed.size}: history truncated" in caught
    live = _error(lab("audit", "verify", "--since", str(tmp_path / "cosigned.cp")), 4)
    assert "history truncated" in live

    _ok(lab("audit", "checkpoint", "-o", str(tmp_path / "new.cp")))
    refusal = _error(
        lab(
            "audit",
            "witness",
            "cosign",
            str(tmp_path / "new.cp"),
            "--bundle",
            str(cut),
            *witness,
            passphrase=None,
        ),
        4,
    )
    assert f"but this witness cosigned {signed.size} at " in refusal and "history truncated" in refusal


def test_live_verify_names_an_edited_case_id(lab: Ifadit) -> None:
    rows = sorted(table_rows(lab.url, "audit_entries"), key=lambda r: r["seq"])
    target = next(r for r in rows if r["case_id"] == "C-2")
    execute(lab.url, "UPDATE audit_entries SET case_id = 'x' WHERE seq = :s", s=target["seq"])
    shown = _ok(lab("audit", "show", "--case", "C-2")).splitlines()
    assert str(target["seq"]) not in [row.split()[0] for row in shown]  # hidden from the case's listing
    message = _error(lab("audit", "verify"), 4)
    assert f"entry {target['seq']}: case_id column 'x' does not match the entry ('C-2')" in message


def test_witness_usage_errors(lab: Ifadit, tmp_path: Path) -> None:
    _ok(lab("audit", "witness", "keygen", "-o", str(tmp_path / "w.key"), "--name", "w1"))
    assert "exists" in _error(
        lab("audit", "witness", "keygen", "-o", str(tmp_path / "w.key"), "--name", "w1"), 2
    )
    assert "name" in _error(
        lab("audit", "witness", "keygen", "-o", str(tmp_path / "x.key"), "--name", "a b"), 2
    )
    assert "--witness needs --since" in _error(lab("audit", "verify", "--witness", "w1+00000000+AA=="), 2)
    tampered = tmp_path / "t.cp"
    tampered.write_text(_ok(lab("audit", "checkpoint")).replace("\n", "\n\n", 0))
    text = tampered.read_text().splitlines(keepends=True)
    text[1] = str(int(text[1]) + 1) + "\n"
    tampered.write_text("".join(text))
    _ok(lab("audit", "export", "-o", str(tmp_path / "b.jsonl")))
    assert "does not verify" in _error(
        lab("audit", "verify", str(tmp_path / "b.jsonl"), "--since", str(tampered), passphrase=None), 4
    )
