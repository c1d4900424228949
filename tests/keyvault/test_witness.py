"""keyvault.witness: cosigns only checkpoints that extend the last one it cosigned; refuses truncated or rewritten logs.

Real vaults (SQLite and PostgreSQL), real Ed25519 keys; the log is truncated and rewritten with SQL.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from keyvault import auditor, checkpoint, keys, merkle, note, witness
from keyvault.errors import CheckpointError, WitnessRefused
from keyvault.vault import Vault
from tests.keyvault.support import execute, reopened, table_rows

NOW = 1_796_000_000


class Setup:
    """A witness (key and state in tmp_path) following one vault; ``round`` exports and cosigns."""

    def __init__(self, vault: Vault, folder: Path) -> None:
        self.vault, self.folder = vault, folder
        self.key, self.state = folder / "w1.key", folder / "w1.state"
        self.verifier = witness.keygen(self.key, "lab.example/w1")
        self.log_key = note.Verifier.decode(vault.checkpoint_verifier())

    def checkpoint_and_bundle(self, name: str) -> tuple[str, Path]:
        """The vault's checkpoint and bundle as a new process makes them (so a tampered log still exports)."""
        bundle = self.folder / f"{name}.jsonl"
        with reopened(self.vault) as fresh:
            kept = auditor.checkpoint(fresh)
            fresh.export_audit(bundle)
        return kept, bundle

    def cosign(self, kept: str, bundle: Path, now: int = NOW) -> checkpoint.SignedCheckpoint:
        return witness.cosign(self.state, self.key, kept, bundle, now=now, log_key=self.log_key)


def _issue(vault: Vault, count: int) -> None:
    for index in range(count):
        keys.issue(vault, "C-1", f"purpose {index}")


def test_keygen_writes_a_private_0600_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    verifier = witness.keygen(tmp_path / "w.key", "lab.example/w1")
    assert stat.S_IMODE(os.stat(tmp_path / "w.key").st_mode) == 0o600
    assert (tmp_path / "w.key").read_text().startswith("PRIVATE+KEY+lab.example/w1+")
    assert verifier.encode().startswith(f"lab.example/w1+{verifier.key_id.hex()}+")
    assert note.Verifier.decode(verifier.encode()) == verifier
    loaded, _ = witness.load_key(tmp_path / "w.key")
    assert loaded == verifier
    with pytest.raises(FileExistsError):
        witness.keygen(tmp_path / "w.key", "lab.example/w1")


def test_witness_cosigns_a_growing_log(vault: Vault, tmp_path: Path) -> None:
    w = Setup(vault, tmp_path)
    _issue(vault, 3)
    first = w.cosign(*w.checkpoint_and_bundle("b1"))
    assert checkpoint.cosigned_at(first, w.verifier) == NOW
    assert stat.S_IMODE(os.stat(w.state).st_mode) == 0o600
    _issue(vault, 4)
    second = w.cosign(*w.checkpoint_and_bundle("b2"), now=NOW + 60)
    assert second.size > first.size and checkpoint.cosigned_at(second, w.verifier) == NOW + 60
    state = json.loads(w.state.read_text())
    assert state["checkpoint"] == second.encode() and state["log"] == w.log_key.encode()
    again = w.cosign(second.encode(), tmp_path / "b2.jsonl", now=NOW + 120)  # same size: still consistent
    assert again.size == second.size


def test_witness_refuses_a_truncated_log(vault: Vault, tmp_path: Path) -> None:
    """Tail entries and their tree heads deleted in SQL, the checkpoint file emptied: the witness still remembers."""
    w = Setup(vault, tmp_path)
    _issue(vault, 6)
    cosigned = w.cosign(*w.checkpoint_and_bundle("b1"))
    saved = w.state.read_text()
    keep = cosigned.size - 4
    execute(vault.url, "DELETE FROM tree_heads WHERE size > :n", n=keep)
    execute(vault.url, "DELETE FROM audit_entries WHERE seq > :n", n=keep)
    vault.checkpoints.unlink()  # the insider also reaches the vault's own checkpoint file
    kept, bundle = w.checkpoint_and_bundle("cut")
    shorter = checkpoint.open_checkpoint(kept, w.log_key).size
    assert shorter < cosigned.size
    with pytest.raises(WitnessRefused) as caught:
        w.cosign(kept, bundle)
    message = str(caught.value)
    assert f"covers {shorter} entries but this witness cosigned {cosigned.size}" in message
    assert "history truncated" in message and "\n" not in message
    assert w.state.read_text() == saved  # nothing recorded


def test_witness_refuses_rewritten_history(vault: Vault, tmp_path: Path) -> None:
    """Entries rewritten with recomputed hashes, heads deleted, the log grown past the cosigned size."""
    w = Setup(vault, tmp_path)
    _issue(vault, 4)
    cosigned = w.cosign(*w.checkpoint_and_bundle("b1"))
    rows = sorted(table_rows(vault.url, "audit_entries"), key=lambda r: r["seq"])
    execute(vault.url, "DELETE FROM tree_heads")
    previous = bytes(rows[1]["leaf_hash"])
    for row in rows[2:]:
        data = json.loads(row["canonical"])
        data["prev_hash"] = previous.hex()
        if row["seq"] == 3:
            data["reason"] = "rewritten"
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        previous = merkle.leaf_hash(blob)
        execute(
            vault.url,
            "UPDATE audit_entries SET canonical = :c, leaf_hash = :h WHERE seq = :s",
            c=blob,
            h=previous,
            s=row["seq"],
        )
    vault.checkpoints.unlink()
    with reopened(vault) as fresh:  # the insider's next process: it has not seen the old tail
        _issue(fresh, 2)
    kept, bundle = w.checkpoint_and_bundle("rewritten")
    with pytest.raises(
        WitnessRefused, match=f"not consistent with the one of size {cosigned.size}.*history rewritten"
    ):
        w.cosign(kept, bundle)


def test_witness_refuses_another_log_and_a_short_bundle(vault: Vault, tmp_path: Path) -> None:
    w = Setup(vault, tmp_path)
    _issue(vault, 2)
    kept, bundle = w.checkpoint_and_bundle("b1")
    w.cosign(kept, bundle)
    other = note.Verifier(w.log_key.name, note.SIG_ED25519, bytes(range(32)))
    with pytest.raises(CheckpointError, match="this witness follows log key"):
        witness.cosign(w.state, w.key, kept, bundle, now=NOW, log_key=other)
    _issue(vault, 2)
    newer = auditor.checkpoint(vault)
    with pytest.raises(CheckpointError, match="fewer than the checkpoint's"):
        w.cosign(newer, bundle)
    with pytest.raises(CheckpointError, match="no witness state"):
        witness.cosign(tmp_path / "new.state", w.key, kept, bundle, now=NOW)
