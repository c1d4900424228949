"""keyvault.verify: offline bundle verification finds and locates every kind of tampering."""

from __future__ import annotations

import ast
import base64
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyvault import envelope, merkle
from keyvault import verify as keyvault_verify
from keyvault.audit import (
    AuditEntry,
    TreeHead,
    chain_next,
    prove_consistency,
    prove_inclusion,
    sign_tree_head,
)
from keyvault.audit import write_bundle as write_audit_bundle
from keyvault.errors import AuditVerificationError
from keyvault.verify import (
    format_public_key,
    load_public_key,
    verify_bundle,
    verify_consistency_between,
    verify_inclusion_proof,
)

T0 = "2026-03-04T05:06:07.000000Z"
VAULT = "vault-test"
PRIVATE, PUBLIC = envelope.generate_signing_key()
EVERY = tuple(range(1, 11))  # a signed tree head after every entry
SPARSE = (3, 6, 10)  # heads after "commands" of several entries


def make_entries(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            chain_next(
                entries[-1] if entries else None,
                time=T0,
                actor="alice",
                role="admin",
                action="key.issue",
                outcome="ok",
                key_handle=f"kh_{i:04x}",
                key_version=1,
                case_id="case-1",
                reason=f"entry {i + 1}",
            )
        )
    return entries


def heads_for(
    entries: Sequence[AuditEntry | bytes], sizes: Sequence[int], private: bytes = PRIVATE
) -> list[TreeHead]:
    leaves = [merkle.leaf_hash(e if isinstance(e, bytes) else e.canonical_bytes()) for e in entries]
    return [sign_tree_head(private, VAULT, s, merkle.root(leaves[:s]), T0) for s in sizes]


def write(path: Path, entries: Sequence[AuditEntry | bytes], heads: Sequence[TreeHead]) -> Path:
    write_audit_bundle(path, VAULT, PUBLIC, entries, heads)
    return path


def rechain(entries: list[AuditEntry], start: int, renumber: bool = True) -> list[AuditEntry]:
    """What an attacker without the signing key can do: renumber and relink entries from index ``start``."""
    result = list(entries[:start])
    for entry in entries[start:]:
        previous = result[-1] if result else None
        seq = (previous.seq + 1 if previous else 1) if renumber else entry.seq
        prev_hash = previous.leaf_hash().hex() if previous else entry.prev_hash
        result.append(dataclasses.replace(entry, seq=seq, prev_hash=prev_hash))
    return result


def edited(entry: AuditEntry, **changes: object) -> AuditEntry:
    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


def fails(path: Path, public_key: bytes | None = None, *, strict: bool = False) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as info:
        verify_bundle(path, public_key, strict=strict)
    assert info.value.exit_code == 4
    return info.value


@pytest.mark.parametrize("strict", [False, True])
def test_intact_bundle_verifies(tmp_path: Path, strict: bool) -> None:
    entries = make_entries(10)
    report = verify_bundle(
        write(tmp_path / "a.jsonl", entries, heads_for(entries, SPARSE)), PUBLIC, strict=strict
    )
    assert (report.entries, report.last_seq, report.tree_heads, report.signed_size) == (10, 10, 3, 10)
    assert report.root == merkle.root([e.leaf_hash() for e in entries]).hex()
    assert report.vault_id == VAULT
    assert report.key_fingerprint == __import__("hashlib").sha256(PUBLIC).hexdigest()
    assert report.summary().startswith("audit log intact: 10 entries, 3 signed tree heads;")


@pytest.mark.parametrize("sizes", [EVERY, SPARSE], ids=["head-per-entry", "sparse-heads"])
@pytest.mark.parametrize("k", range(1, 11))
def test_edited_entry_is_named(tmp_path: Path, sizes: tuple[int, ...], k: int) -> None:
    entries = make_entries(10)
    heads = heads_for(entries, sizes)
    entries[k - 1] = edited(entries[k - 1], reason="nothing to see here")
    error = fails(write(tmp_path / "b.jsonl", entries, heads))
    if k < 10 or sizes == EVERY:
        assert error.seq == k, error
    else:  # the last entry has no successor to vouch for it: the first untrusted entry after head 6
        assert error.seq == 7 and "entry 10 does not match" in str(error)


@pytest.mark.parametrize("k", [1, 2, 5, 9, 10])
def test_edited_prev_hash_is_named(tmp_path: Path, k: int) -> None:
    entries = make_entries(10)
    heads = heads_for(entries, EVERY)
    entries[k - 1] = edited(entries[k - 1], prev_hash="1" * 64)
    assert fails(write(tmp_path / "c.jsonl", entries, heads)).seq == k


@pytest.mark.parametrize("k", [1, 4, 9])
def test_deleted_entry_is_named(tmp_path: Path, k: int) -> None:
    entries = make_entries(10)
    heads = heads_for(entries, SPARSE)
    kept = entries[: k - 1] + entries[k:]
    assert fails(write(tmp_path / "d1.jsonl", kept, heads)).seq == k
    # renumbered after the deletion, links left alone; when the renumbered entry is the last one, nothing
    # after it vouches for it, and an edit of the entry before explains the broken link just as well
    renumbered = kept[: k - 1] + [edited(e, seq=e.seq - 1) for e in kept[k - 1 :]]
    assert fails(write(tmp_path / "d2.jsonl", renumbered, heads)).seq == (k - 1 if k == 9 else k)
    # renumbered and relinked: only the signed heads can tell; per-entry heads name it exactly
    relinked = rechain(kept, k - 1)
    assert fails(write(tmp_path / "d3.jsonl", relinked, heads_for(entries, EVERY))).seq == k
    # with sparse heads: the first entry after the last matching head; deleting 9 of 10 looks like truncation
    expected = 10 if k == 9 else max(s for s in (0, *SPARSE) if s < k) + 1
    assert fails(write(tmp_path / "d4.jsonl", relinked, heads)).seq == expected


def test_reordered_entries_are_named(tmp_path: Path) -> None:
    entries = make_entries(10)
    heads = heads_for(entries, SPARSE)
    swapped = entries[:4] + [entries[5], entries[4]] + entries[6:]
    assert fails(write(tmp_path / "r1.jsonl", swapped, heads)).seq == 5
    renumbered = entries[:4] + [edited(entries[5], seq=5), edited(entries[4], seq=6)] + entries[6:]
    assert fails(write(tmp_path / "r2.jsonl", renumbered, heads)).seq == 5


def test_inserted_entry_is_named(tmp_path: Path) -> None:
    entries = make_entries(10)
    heads = heads_for(entries, SPARSE)
    forged = chain_next(entries[3], time=T0, action="key.destroy", outcome="ok", reason="forged")  # seq 5
    duplicate_seq = entries[:4] + [forged] + entries[4:]
    error = fails(write(tmp_path / "i1.jsonl", duplicate_seq, heads))
    assert error.seq == 5 and "appears again" in str(error)
    renumbered = entries[:4] + [forged] + [edited(e, seq=e.seq + 1) for e in entries[4:]]
    error = fails(write(tmp_path / "i2.jsonl", renumbered, heads))
    assert error.seq == 5 and "inserted" in str(error)
    relinked = rechain(entries[:4] + [forged] + entries[4:], 4)
    assert fails(write(tmp_path / "i3.jsonl", relinked, heads_for(entries, EVERY))).seq == 5


@pytest.mark.parametrize("keep", [0, 3, 8, 9])
def test_truncation_is_named(tmp_path: Path, keep: int) -> None:
    entries = make_entries(10)
    error = fails(write(tmp_path / "t.jsonl", entries[:keep], heads_for(entries, SPARSE)))
    assert error.seq == keep + 1 if keep not in SPARSE else keep + 1
    assert "missing" in str(error)


def test_forged_and_edited_tree_heads_are_refused(tmp_path: Path) -> None:
    entries = make_entries(10)
    good = heads_for(entries, SPARSE)
    other_private, _ = envelope.generate_signing_key()
    forgeries = [
        heads_for(entries, [10], private=other_private)[0],
        dataclasses.replace(good[2], root=good[1].root),
        dataclasses.replace(good[2], size=9),
        dataclasses.replace(good[2], time="2027-01-01T00:00:00.000000Z"),
        dataclasses.replace(good[2], signature=bytes(64)),
    ]
    for forged in forgeries:
        error = fails(write(tmp_path / "f.jsonl", entries, [*good[:2], forged]))
        assert "line 14: the tree head of size" in str(error) and "invalid signature" in str(error)
        assert error.seq is None
    wrong_vault = sign_tree_head(PRIVATE, "vault-other", 10, good[2].root, T0)
    assert "belongs to vault 'vault-other'" in str(fails(write(tmp_path / "v.jsonl", entries, [wrong_vault])))


def test_signed_head_with_wrong_root_is_named(tmp_path: Path) -> None:
    entries = make_entries(10)
    heads = heads_for(entries, SPARSE)
    wrong = sign_tree_head(PRIVATE, VAULT, 10, heads[1].root, T0)  # validly signed, but not these entries
    error = fails(write(tmp_path / "w.jsonl", entries, [*heads[:2], wrong]))
    assert error.seq == 7 and "entry 10 does not match the signed tree head at line 14" in str(error)


def test_no_tree_head_is_refused(tmp_path: Path) -> None:
    assert "no signed tree head" in str(fails(write(tmp_path / "n.jsonl", make_entries(3), [])))


def test_pinned_public_key(tmp_path: Path) -> None:
    entries = make_entries(4)
    path = write(tmp_path / "k.jsonl", entries, heads_for(entries, [4]))
    key_file = tmp_path / "audit.pub"
    key_file.write_text(format_public_key(PUBLIC))
    assert verify_bundle(path, load_public_key(key_file)).entries == 4
    error = fails(path, envelope.generate_signing_key()[1])
    assert "not by the pinned key" in str(error)
    # an attacker who re-signs everything with their own key is caught only by the pin
    attacker_private, attacker_public = envelope.generate_signing_key()
    write_audit_bundle(
        path, VAULT, attacker_public, entries, heads_for(entries, [4], private=attacker_private)
    )
    assert verify_bundle(path).entries == 4
    fails(path, PUBLIC)


@pytest.mark.parametrize("form", ["raw", "hex", "base64"])
def test_load_public_key_forms(tmp_path: Path, form: str) -> None:
    data = {"raw": PUBLIC, "hex": PUBLIC.hex().encode() + b"\n", "base64": base64.b64encode(PUBLIC)}[form]
    (tmp_path / "key").write_bytes(data)
    assert load_public_key(tmp_path / "key") == PUBLIC


def test_load_public_key_errors(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("not a key\n")
    with pytest.raises(AuditVerificationError, match="not an Ed25519 public key"):
        load_public_key(tmp_path / "key")
    with pytest.raises(AuditVerificationError, match="cannot read the public key"):
        load_public_key(tmp_path / "missing")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


@pytest.mark.parametrize(
    ("mutate", "message", "seq"),
    [
        (lambda ls: [ls[0], ls[1], b"not json", *ls[3:]], "line 3: not an audit entry", 2),
        (lambda ls: [ls[0], ls[1], b"", *ls[3:]], "line 3: not an audit entry", 2),
        (lambda ls: [ls[0], *ls[1:4], ls[-1], ls[4]], "line 6: expected a tree head line", None),
        (
            lambda ls: [ls[0].replace(b"bundle/1", b"bundle/2"), *ls[1:]],
            "line 1: unsupported bundle format",
            None,
        ),
        (lambda ls: [b"[]", *ls[1:]], "line 1: not an audit bundle header", None),
        (
            lambda ls: [ls[0].replace(b'"public_key":"', b'"public_key":"AA'), *ls[1:]],
            "line 1: the embedded public key",
            None,
        ),
        (lambda ls: [*ls[:-1], b'{"tree_head":{"size":1}}'], "line 6: tree head is malformed", None),
        (lambda ls: [*ls[:-1], b'{"tree_head":'], "line 6: not a valid JSON tree head line", None),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, mutate, message: str, seq: int | None) -> None:
    entries = make_entries(4)
    path = write(tmp_path / "m.jsonl", entries, heads_for(entries, [4]))
    path.write_bytes(b"\n".join(mutate(_lines(path))) + b"\n")
    error = fails(path)
    assert message in str(error) and error.seq == seq


def test_cut_file_and_empty_file(tmp_path: Path) -> None:
    entries = make_entries(4)
    path = write(tmp_path / "cut.jsonl", entries, heads_for(entries, [4]))
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\n", data.index(b"\n") + 1) + 30])
    assert "line 3: the file ends inside a line" in str(fails(path))
    path.write_bytes(b"")
    assert "empty" in str(fails(path))
    assert "cannot read the audit bundle" in str(fails(tmp_path / "missing.jsonl"))


def test_unsigned_tail_is_reported_and_checked_field_by_field(tmp_path: Path) -> None:
    entries = make_entries(6)
    heads = heads_for(entries, [4])
    report = verify_bundle(write(tmp_path / "u.jsonl", entries, heads), PUBLIC)
    assert (report.entries, report.signed_size) == (6, 4)
    assert "2 newest entries covered by the hash chain only" in report.summary()
    # a non-canonical tail entry that still links correctly is caught by the field check
    spaced = entries[5].canonical_bytes().replace(b'"seq":6', b'"seq": 6')
    error = fails(write(tmp_path / "u2.jsonl", [*entries[:5], spaced], heads))
    assert error.seq == 6 and "line 7" in str(error) and "canonical" in str(error)


@pytest.mark.filterwarnings("ignore")
@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_single_bit_flip_is_detected(tmp_path: Path, data: st.DataObject) -> None:
    entries = make_entries(5)
    path = write(tmp_path / "flip.jsonl", entries, heads_for(entries, [2, 5]))
    blob = bytearray(path.read_bytes())
    position = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    blob[position] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    path.write_bytes(bytes(blob))
    fails(path)


def test_inclusion_proof_for_audit_prove(tmp_path: Path) -> None:
    entries = make_entries(10)
    leaves = [e.leaf_hash() for e in entries]
    head = heads_for(entries, [10])[0]
    proof = prove_inclusion(leaves, entries[6].canonical_bytes(), 7, head)
    assert verify_inclusion_proof(proof, PUBLIC) == entries[6]
    with pytest.raises(AuditVerificationError, match="not included") as info:
        verify_inclusion_proof(
            dataclasses.replace(proof, entry=edited(entries[6], reason="x").canonical_bytes()), PUBLIC
        )
    assert info.value.seq == 7
    with pytest.raises(AuditVerificationError, match="names entry 6"):
        verify_inclusion_proof(dataclasses.replace(proof, seq=6), PUBLIC)
    with pytest.raises(AuditVerificationError, match="invalid signature"):
        verify_inclusion_proof(proof, envelope.generate_signing_key()[1])


def test_consistency_between_tree_heads() -> None:
    entries = make_entries(10)
    leaves = [e.leaf_hash() for e in entries]
    old, new = heads_for(entries, [4, 10])
    verify_consistency_between(old, new, prove_consistency(leaves, 4, 10), PUBLIC)
    # history rewritten after the old head was published: the new head cannot extend it
    rewritten = rechain([*entries[:2], edited(entries[2], reason="rewritten"), *entries[3:]], 2)
    rewritten_leaves = [e.leaf_hash() for e in rewritten]
    forged_new = heads_for(rewritten, [10])[0]  # signed: the vault itself was made to rewrite
    with pytest.raises(AuditVerificationError, match="history was rewritten") as info:
        verify_consistency_between(old, forged_new, prove_consistency(rewritten_leaves, 4, 10), PUBLIC)
    assert info.value.seq == 5
    with pytest.raises(AuditVerificationError, match="invalid signature"):
        verify_consistency_between(
            old, dataclasses.replace(new, size=11), prove_consistency(leaves, 4, 10), PUBLIC
        )


def test_offline_modules_import_no_database_code() -> None:
    """verify.py, the checkpoint and witness modules and what they import use only the standard library
    and the pure keyvault modules (an auditor or a witness needs no database)."""
    pure = ("verify", "audit", "merkle", "digests", "note", "checkpoint", "anchor", "witness", "excerpt")
    allowed = {"keyvault.envelope", "keyvault.errors", "keyvault"} | {f"keyvault.{name}" for name in pure}
    package = Path(keyvault_verify.__file__).parent
    for name in pure:
        tree = ast.parse((package / f"{name}.py").read_text())
        imported = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        third_party = {
            m for m in imported if m.split(".")[0] not in sys.stdlib_module_names and m not in allowed
        }
        assert third_party == set(), f"keyvault/{name}.py imports {third_party}"
