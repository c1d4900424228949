"""keyvault.checkpoint: C2SP checkpoints and cosignatures round-trip, tampering is refused, the vault publishes them.

Vault tests run on SQLite and PostgreSQL with real Ed25519 keys; the database is tampered with SQL,
as an insider with write access could.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from keyvault import checkpoint, envelope, keys, ledger, merkle, note
from keyvault.errors import CheckpointError, IntegrityError, VaultError
from keyvault.vault import Vault, checkpoints_path, open_vault
from tests.keyvault.support import ADMIN, ADMIN_PASS, cheap_kdf, execute, table_rows

PRIVATE, PUBLIC = envelope.generate_signing_key()
VAULT_ID = "0123456789abcdef0123456789abcdef"
ROOT = merkle.root([merkle.leaf_hash(b"entry %d" % i) for i in range(45)])
LOG = checkpoint.log_verifier(VAULT_ID, PUBLIC)


def _note(size: int = 45, root: bytes = ROOT) -> str:
    return checkpoint.sign_checkpoint(PRIVATE, VAULT_ID, size, root)


def test_checkpoint_round_trips_through_parse_and_verify() -> None:
    text = _note()
    origin = f"ifadit.vault/{VAULT_ID}"
    assert text.startswith(f"{origin}\n45\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {origin} ")
    signed = checkpoint.open_checkpoint(text, LOG)
    assert (signed.checkpoint.origin, signed.size, signed.checkpoint.root) == (origin, 45, ROOT)
    assert signed.encode() == text
    signature = base64.b64decode(text.split(" ")[-1])
    assert signature[:4] == note.key_id(origin, 0x01, PUBLIC) and len(signature) == 68


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("\n45\n", "\n44\n", 1),
        lambda t: t.replace("\n45\n", "\n045\n", 1),
        lambda t: t.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode()),
        lambda t: t.replace("ifadit.vault/0123", "ifadit.vault/f123"),
        lambda t: t[: t.index("\n\n")] + "\nextension line\n" + t[t.index("\n\n") :],
        lambda t: t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:],
    ],
    ids=["size", "leading-zero", "root", "origin", "extension", "signature"],
)
def test_tampered_checkpoint_is_refused(edit) -> None:
    with pytest.raises(CheckpointError):
        checkpoint.open_checkpoint(edit(_note()), LOG)


def test_checkpoint_of_another_vault_key_is_refused() -> None:
    _, other = envelope.generate_signing_key()
    with pytest.raises(CheckpointError, match="no signature"):
        checkpoint.open_checkpoint(_note(), checkpoint.log_verifier(VAULT_ID, other))


def test_cosignature_round_trip_and_tamper() -> None:
    private, public = envelope.generate_signing_key()
    witness = note.Verifier("lab.example/w1", note.SIG_COSIGNATURE_V1, public)
    cosigned = checkpoint.cosign(checkpoint.open_checkpoint(_note(), LOG), witness, private, 1_796_000_000)
    reopened = checkpoint.open_checkpoint(cosigned.encode(), LOG)  # the log signature still verifies
    assert checkpoint.cosigned_at(reopened, witness) == 1_796_000_000
    line = cosigned.encode().splitlines()[-1]
    raw = base64.b64decode(line.split(" ")[-1])
    assert raw[:4] == note.key_id("lab.example/w1", 0x04, public) and len(raw) == 4 + 8 + 64
    assert envelope.verify_signature(
        public, raw[12:], b"cosignature/v1\ntime 1796000000\n" + reopened.note.text.encode()
    )
    forged = raw[:4] + (1_796_000_001).to_bytes(8, "big") + raw[12:]  # the time moved
    moved = cosigned.encode().replace(line.split(" ")[-1], base64.b64encode(forged).decode())
    with pytest.raises(CheckpointError, match="does not verify"):
        checkpoint.cosigned_at(checkpoint.open_checkpoint(moved, LOG), witness)


def test_checkpoint_file_is_0600_append_only_and_survives_a_torn_record(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "vault.checkpoints"
    assert checkpoint.read_latest(path) is None
    checkpoint.append(path, _note(10))
    checkpoint.append(path, _note(20))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [checkpoint.open_checkpoint(t, LOG).size for t in checkpoint.read_all(path)] == [10, 20]
    with path.open("ab") as handle:
        handle.write(_note(30).encode()[:70])  # a crash in the middle of a write
    assert checkpoint.open_checkpoint(checkpoint.read_latest(path) or "", LOG).size == 20
    checkpoint.append(path, _note(40))
    assert [checkpoint.open_checkpoint(t, LOG).size for t in checkpoint.read_all(path)] == [10, 20, 40]


def _busy(vault: Vault, count: int = 4) -> None:
    for index in range(count):
        keys.issue(vault, "C-1", f"purpose {index}")
        vault.checkpoint()


def test_vault_publishes_every_tree_head(vault: Vault) -> None:
    _busy(vault)
    published = [checkpoint.open_checkpoint(t, LOG_OF(vault)) for t in checkpoint.read_all(vault.checkpoints)]
    heads = table_rows(vault.url, "tree_heads")
    assert [c.size for c in published] == sorted(h["size"] for h in heads)
    assert [c.checkpoint.root for c in published] == [
        bytes(h["root"]) for h in sorted(heads, key=lambda h: h["id"])
    ]
    assert stat.S_IMODE(os.stat(vault.checkpoints).st_mode) == 0o600
    if vault.url.startswith("sqlite"):
        assert vault.checkpoints.name == "vault.sqlite3.checkpoints"


def LOG_OF(vault: Vault) -> note.Verifier:  # noqa: N802  (reads like the constant above)
    return checkpoint.log_verifier(vault.id, vault.public_key)


def test_vault_refuses_to_sign_after_its_tail_and_heads_were_deleted(vault: Vault) -> None:
    """The insider deletes the newest entries and every tree head covering them: the published checkpoint remains."""
    _busy(vault, 5)
    vault.close()
    published = checkpoint.open_checkpoint(checkpoint.read_latest(vault.checkpoints) or "", LOG_OF(vault))
    keep = published.size - 3
    execute(vault.url, "DELETE FROM tree_heads WHERE size > :n", n=keep)
    execute(vault.url, "DELETE FROM audit_entries WHERE seq > :n", n=keep)
    with (
        pytest.raises(
            IntegrityError, match=f"holds {keep + 1} entries but the checkpoint published in .* covers"
        ),
        open_vault(vault.url, ADMIN, ADMIN_PASS) as again,
    ):
        keys.issue(again, "C-2", "after the deletion")  # its tree head is refused at close
    rows = table_rows(vault.url, "tree_heads")
    assert max(r["size"] for r in rows) <= keep  # nothing signed over the shortened log


def test_vault_refuses_when_the_newest_published_checkpoint_is_forged(vault: Vault) -> None:
    _busy(vault, 1)
    with vault.checkpoints.open("a") as handle:
        handle.write(
            checkpoint.sign_checkpoint(envelope.generate_signing_key()[0], vault.id, 1, bytes(32)) + "\n"
        )
    with pytest.raises(IntegrityError, match="does not verify"):
        vault.checkpoint()


def test_init_refuses_a_checkpoint_file_of_another_vault(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    (tmp_path / "v.db.checkpoints").write_text(_note())
    with pytest.raises(VaultError, match="another vault"):
        Vault.init(url, ADMIN, ADMIN_PASS, kdf=cheap_kdf())
    assert not (tmp_path / "v.db").exists()


def test_checkpoints_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IFADIT_CHECKPOINTS", raising=False)
    assert checkpoints_path(f"sqlite:///{tmp_path}/a.db", "v1") == tmp_path / "a.db.checkpoints"
    assert checkpoints_path("postgresql+psycopg://h/db", "v1").name == "v1.checkpoints"
    monkeypatch.setenv("IFADIT_CHECKPOINTS", str(tmp_path))
    assert checkpoints_path(f"sqlite:///{tmp_path}/a.db", "v1") == tmp_path / "v1.checkpoints"
    assert checkpoints_path("x", "v1", tmp_path / "f.txt") == tmp_path / "f.txt"


def test_ledger_times_never_go_backwards(vault: Vault) -> None:
    later = vault.clock()
    keys.issue(vault, "C-1", "now")
    vault.clock = lambda: later.replace(year=later.year - 1)  # the clock stepped back
    keys.issue(vault, "C-1", "a year earlier by the clock")
    with vault.transaction() as session:
        times = [entry.time for entry in ledger.entries(session)]
    assert times == sorted(times)


def test_unpublishable_checkpoint_is_refused_and_rolled_back(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    target = tmp_path / "a-file" / "vault.checkpoints"
    url = f"sqlite:///{tmp_path / 'v.db'}"
    created = Vault.init(url, ADMIN, ADMIN_PASS, kdf=cheap_kdf(), checkpoints=target)
    with pytest.raises(VaultError, match=r"vault\.checkpoints.*\(Not a directory\)"):
        created.close()
    assert table_rows(url, "tree_heads") == []  # the head was not stored without its checkpoint


def test_newest_record_is_found_past_the_first_read_window(tmp_path: Path) -> None:
    path = tmp_path / "long.checkpoints"
    for size in range(1, 41):  # about 10 KB: more than the first window read from the end
        checkpoint.append(path, _note(size))
    with path.open("ab") as handle:
        handle.write(_note(41).encode()[:-20])  # torn
    assert checkpoint.open_checkpoint(checkpoint.read_latest(path) or "", LOG).size == 40
    assert len(checkpoint.read_all(path)) == 40
