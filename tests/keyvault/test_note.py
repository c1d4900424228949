"""keyvault.note: C2SP signed notes against the reference vector, strict parsing, key encodings.

The C2SP signed-note spec gives an example note but not its key, so the known-answer vector is the
reference implementation's (golang.org/x/mod/sumdb/note, note_test.go, BSD-3-Clause): the
"PeterNeumann" key pair and its signed note. Ed25519 is deterministic, so our signer must
reproduce the published signature byte for byte.
"""

from __future__ import annotations

import base64

import pytest

from keyvault import envelope, note
from keyvault.errors import CheckpointError

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann " + GO_SIG + "\n"


def test_reference_vector_key_id_signature_and_encodings() -> None:
    verifier = note.Verifier.decode(GO_VKEY)
    assert (verifier.name, verifier.sig_type, verifier.key_id.hex()) == (
        "PeterNeumann",
        note.SIG_ED25519,
        "c74f20a3",
    )
    assert verifier.key_id == note.key_id("PeterNeumann", 0x01, verifier.public_key)
    assert verifier.encode() == GO_VKEY
    signer, private = note.decode_signer(GO_SKEY)
    assert signer == verifier
    assert note.encode_signer("PeterNeumann", note.SIG_ED25519, private) == GO_SKEY
    assert note.sign(GO_TEXT, "PeterNeumann", private).encode() == GO_NOTE  # byte for byte
    parsed = note.parse(GO_NOTE)
    assert parsed.text == GO_TEXT and parsed.encode() == GO_NOTE
    note.verify(parsed, verifier)


@pytest.mark.parametrize(
    "tampered",
    [
        GO_NOTE.replace("cryptography", "cryptographY"),
        GO_NOTE.replace("problem is.", "problem was."),
        GO_NOTE.replace("JnAM=", "JnAE="),
    ],
)
def test_tampered_reference_note_is_refused(tampered: str) -> None:
    with pytest.raises(CheckpointError, match="does not verify"):
        note.verify(note.parse(tampered), note.Verifier.decode(GO_VKEY))


def test_signature_of_an_unknown_key_is_not_trusted() -> None:
    private, public = envelope.generate_signing_key()
    stranger = note.Verifier("PeterNeumann", note.SIG_ED25519, public)  # same name, other key
    with pytest.raises(CheckpointError, match="no signature by PeterNeumann"):
        note.verify(note.parse(GO_NOTE), stranger)
    both = note.parse(GO_NOTE).with_signature(note.sign(GO_TEXT, "PeterNeumann", private).signatures[0])
    note.verify(both, stranger)
    note.verify(both, note.Verifier.decode(GO_VKEY))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GO_TEXT, "no blank line"),
        (GO_NOTE[:-1], "no final newline"),
        (GO_NOTE.replace("\u2014 ", "- "), "malformed"),
        (GO_NOTE.replace(GO_SIG, GO_SIG + " "), "malformed"),
        (GO_NOTE.replace(GO_SIG, GO_SIG[:-1]), "base64"),
        (GO_NOTE.replace("problem,", "problem,\t"), "control character"),
        (GO_TEXT + "\n\u2014 PeterNeumann AAAA\n", "base64"),
        (GO_TEXT + "\n" + "\u2014 a " + GO_SIG + "\n" * 1 + ("\u2014 a " + GO_SIG + "\n") * 40, "more than"),
    ],
)
def test_malformed_notes_are_refused(data: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        note.parse(data)


def test_mangled_verifier_keys_are_refused() -> None:
    for bad in (
        GO_VKEY[:-1],
        GO_VKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY.replace("PeterNeumann", "Peter Neumann"),
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
    ):
        with pytest.raises(CheckpointError):
            note.Verifier.decode(bad)


def test_signer_key_errors_do_not_echo_the_key() -> None:
    broken = GO_SKEY.replace("c74f20a3", "00000000")
    with pytest.raises(CheckpointError) as caught:
        note.decode_signer(broken)
    assert "AYEKFALV" not in str(caught.value)
