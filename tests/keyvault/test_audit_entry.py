"""keyvault.audit: canonical entry bytes, strict parsing, the hash chain, signed tree heads, bundle writing."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyvault import envelope, merkle
from keyvault.audit import (
    BUNDLE_FORMAT,
    GENESIS_HASH,
    AuditEntry,
    InclusionProof,
    TreeHead,
    chain_next,
    key_fingerprint,
    prove_inclusion,
    sign_tree_head,
    thin_tree_heads,
    utc_timestamp,
    verify_tree_head,
    write_bundle,
)
from keyvault.errors import AuditVerificationError

T0 = "2026-01-02T03:04:05.000006Z"
DIGEST = "ab" * 32


def make_entry(**overrides: object) -> AuditEntry:
    values: dict[str, object] = {
        "seq": 1,
        "time": T0,
        "actor": "alice",
        "role": "admin",
        "action": "key.issue",
        "outcome": "ok",
        "key_handle": "kh_00ff",
        "key_version": 1,
        "case_id": "case-7",
        "reason": "Ünïcode reason",
        "digests": {"input": DIGEST},
        "details": {"faces": 2, "tags": ["a", None, True]},
        "prev_hash": GENESIS_HASH,
    }
    values.update(overrides)
    return AuditEntry(**values)  # type: ignore[arg-type]


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    entry = make_entry()
    expected = (
        '{"action":"key.issue","actor":"alice","case_id":"case-7","details":{"faces":2,"tags":["a",null,true]},'
        f'"digests":{{"input":"{DIGEST}"}},"key_handle":"kh_00ff","key_version":1,"outcome":"ok",'
        f'"prev_hash":"{GENESIS_HASH}","reason":"Ünïcode reason","role":"admin","seq":1,"time":"{T0}"}}'
    ).encode()
    assert entry.canonical_bytes() == expected
    assert entry.leaf_hash() == merkle.leaf_hash(expected)
    assert AuditEntry.from_canonical(expected) == entry
    assert b"\n" not in make_entry(reason="two\nlines").canonical_bytes()


def test_utc_timestamp_normalises_to_utc() -> None:
    moment = datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))
    assert utc_timestamp(moment) == T0
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_timestamp(datetime(2026, 1, 2))


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"seq": 0}, ValueError, "seq"),
        ({"seq": True}, ValueError, "seq"),
        ({"time": "2026-01-02T03:04:05Z"}, ValueError, "UTC time"),
        ({"time": "2026-02-30T03:04:05.000000Z"}, ValueError, "day is out of range"),
        ({"action": "Key Issue"}, ValueError, "action"),
        ({"outcome": "maybe"}, ValueError, "outcome"),
        ({"actor": 5}, TypeError, "actor"),
        ({"reason": "\ud800"}, UnicodeEncodeError, "surrogate"),
        ({"key_version": 0}, ValueError, "key_version"),
        ({"digests": {"input": "XYZ"}}, ValueError, "digests"),
        ({"details": {"ratio": 0.5}}, TypeError, "float"),
        ({"details": {"blob": "x" * 5000}}, ValueError, "4096 bytes"),
        ({"details": {1: "x"}}, TypeError, "keys"),
        ({"prev_hash": "00"}, ValueError, "prev_hash"),
    ],
)
def test_invalid_fields_are_refused(
    overrides: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_entry(**overrides)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.replace(b'"seq":1', b'"seq": 1'), "canonical"),
        (lambda b: b.replace(b'"faces":2', b'"faces":2.0'), "non-integer"),
        (lambda b: b.replace(b'"faces":2', b'"faces":NaN'), "non-integer"),
        (lambda b: b[:-1] + b',"seq":1}', "duplicate"),
        (lambda b: b[:-1] + b',"extra":1}', "unexpected"),
        (lambda b: b.replace(b'"actor":"alice",', b""), "missing"),
        (lambda b: b"[1,2]", "JSON object"),
        (lambda b: b"\xff" + b, "malformed"),
        (lambda b: b"[" * 100_000, "malformed"),
        (lambda b: b.replace(b"\xc3\x9c", b"\\u00dc"), "canonical"),
    ],
)
def test_from_canonical_rejects_every_other_byte_form(mutate, message: str) -> None:
    with pytest.raises(AuditVerificationError, match=message):
        AuditEntry.from_canonical(mutate(make_entry().canonical_bytes()))


_text = st.text(max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(
    reason=st.none() | _text,
    actor=st.none() | _text,
    details=st.dictionaries(_text, _json, max_size=4),
    seq=st.integers(min_value=1, max_value=2**62),
)
@settings(max_examples=80, deadline=None)
def test_canonical_round_trip(reason: str | None, actor: str | None, details: dict, seq: int) -> None:
    try:
        entry = make_entry(reason=reason, actor=actor, details=details, seq=seq)
    except UnicodeEncodeError:
        return  # lone surrogates have no UTF-8 form: refused by design (test_invalid_fields_are_refused)
    data = entry.canonical_bytes()
    assert b"\n" not in data
    assert AuditEntry.from_canonical(data) == entry
    assert json.loads(data) == entry.to_dict()


def test_chain_next_links_entries() -> None:
    first = chain_next(None, time=T0, action="vault.init", outcome="ok")
    second = chain_next(first, time=T0, action="key.issue", outcome="refused", actor="bob")
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.leaf_hash().hex())


def test_tree_head_sign_verify_and_tamper() -> None:
    private_raw, public_raw = envelope.generate_signing_key()
    root = merkle.root([merkle.leaf_hash(b"x")])
    head = sign_tree_head(private_raw, "vault-1", 1, root, T0)
    assert head.root == root.hex() and verify_tree_head(public_raw, head)
    assert TreeHead.from_dict(head.to_dict()) == head
    assert head.signing_bytes().startswith(b"ifadit-tree-head/1\n")
    for forged in (
        TreeHead("vault-2", 1, head.root, T0, head.signature),
        TreeHead("vault-1", 2, head.root, T0, head.signature),
        TreeHead("vault-1", 1, "00" * 32, T0, head.signature),
        TreeHead("vault-1", 1, head.root, "2026-01-02T03:04:05.000007Z", head.signature),
        TreeHead("vault-1", 1, head.root, T0, head.signature[:-1] + bytes([head.signature[-1] ^ 1])),
    ):
        assert not verify_tree_head(public_raw, forged)
    assert not verify_tree_head(envelope.generate_signing_key()[1], head)
    assert key_fingerprint(public_raw) == hashlib.sha256(public_raw).hexdigest()


@pytest.mark.parametrize(
    "broken",
    [
        None,
        [],
        {"size": 1},
        {"root": "00" * 32, "signature": "!!", "size": 1, "time": T0, "vault_id": "v"},
        {"root": "00" * 32, "signature": "", "size": -1, "time": T0, "vault_id": "v"},
        {"root": "zz", "signature": "", "size": 1, "time": T0, "vault_id": "v"},
    ],
)
def test_tree_head_from_dict_rejects_malformed(broken: object) -> None:
    with pytest.raises(AuditVerificationError, match="tree head is malformed"):
        TreeHead.from_dict(broken)


def test_inclusion_proof_round_trip() -> None:
    private_raw, _ = envelope.generate_signing_key()
    entries = [chain_next(None, time=T0, action="vault.init", outcome="ok")]
    for _ in range(4):
        entries.append(chain_next(entries[-1], time=T0, action="key.issue", outcome="ok"))
    leaves = [e.leaf_hash() for e in entries]
    head = sign_tree_head(private_raw, "v", 5, merkle.root(leaves), T0)
    proof = prove_inclusion(leaves, entries[2].canonical_bytes(), 3, head)
    assert InclusionProof.from_dict(json.loads(json.dumps(proof.to_dict()))) == proof
    assert merkle.verify_inclusion(leaves[2], 2, 5, proof.path, merkle.root(leaves))
    with pytest.raises(ValueError, match="not covered"):
        prove_inclusion(leaves, entries[2].canonical_bytes(), 6, head)
    with pytest.raises(AuditVerificationError, match="inclusion proof is malformed"):
        InclusionProof.from_dict({"seq": 1, "entry": "{}", "tree_head": head.to_dict(), "path": ["zz"]})


def test_write_bundle_layout_and_atomicity(tmp_path: Path) -> None:
    private_raw, public_raw = envelope.generate_signing_key()
    entries = [chain_next(None, time=T0, action="vault.init", outcome="ok")]
    entries.append(chain_next(entries[0], time=T0, action="key.issue", outcome="ok"))
    leaves = [e.leaf_hash() for e in entries]
    heads = [sign_tree_head(private_raw, "v", s, merkle.root(leaves[:s]), T0) for s in (2, 1)]
    target = tmp_path / "audit.jsonl"
    assert write_bundle(target, "v", public_raw, [entries[0], entries[1].canonical_bytes()], heads) == 2
    lines = target.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 6
    assert json.loads(lines[0]) == {
        "format": BUNDLE_FORMAT,
        "public_key": base64.b64encode(public_raw).decode(),
        "vault_id": "v",
    }
    assert lines[1:3] == [e.canonical_bytes() for e in entries]
    assert [json.loads(line)["tree_head"]["size"] for line in lines[3:5]] == [1, 2]
    # a failing writer leaves the previous bundle untouched and no temporary file behind
    with pytest.raises(ValueError, match="newline"):
        write_bundle(target, "v", public_raw, [b"bad\nentry"], [])
    assert target.read_bytes().split(b"\n")[1] == entries[0].canonical_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl"]


def test_entry_times_are_utc() -> None:
    entry = chain_next(None, time=utc_timestamp(datetime.now(UTC)), action="vault.init", outcome="ok")
    assert entry.time.endswith("Z") and len(entry.time) == len(T0)


def test_thin_tree_heads_keeps_one_per_interval_and_the_newest() -> None:
    private_raw, _ = envelope.generate_signing_key()
    sizes = [1, 2, 3, 5, 9, 10, 11, 12, 19, 21, 23]
    heads = [sign_tree_head(private_raw, "v", s, "00" * 32, T0) for s in reversed(sizes)]
    assert [h.size for h in thin_tree_heads(heads, every=10)] == [10, 21, 23]
    assert [h.size for h in thin_tree_heads(heads, every=1)] == sizes
    assert [h.size for h in thin_tree_heads(heads[-3:], every=100)] == [3]
    assert thin_tree_heads([], every=5) == []
