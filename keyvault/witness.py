"""An auditor-held witness: cosigns a vault's checkpoint only when it extends the last one it cosigned.

The witness owns two small files, both written 0600 and replaced atomically:

- its key, a signer-key string ``PRIVATE+KEY+<name>+<key ID>+<base64(0x04 ‖ seed)>`` (the format of
  Go's sumdb/note, type 0x04 = tlog-cosignature v1); ``keygen`` prints the matching verifier key,
  which auditors pin to check cosignatures (``audit verify --since … --witness VKEY``);
- its state, JSON ``{"format": "ifadit-witness-state/1", "log": <log verifier key>, "checkpoint":
  <the last note it cosigned>}``. The log key is pinned on first use (or given with ``--log-key``),
  so a witness never follows a vault whose key changed.

Before cosigning, the witness verifies the log's signature, then an RFC 6962 consistency proof from
its last cosigned checkpoint to the new one. The proof is computed from an exported bundle of the
log, which the witness does not trust: the proof must verify against the root the witness cosigned
and the root the vault signed, so a bundle can only help a consistent log. A smaller tree, or one
whose prefix no longer hashes to the cosigned root, is refused with ``WitnessRefused`` naming
both sizes, and the state is left as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from keyvault import checkpoint, envelope, merkle, note
from keyvault.anchor import bundle_leaves
from keyvault.errors import CheckpointError, WitnessRefused
from keyvault.verify import verify_bundle

STATE_FORMAT = "ifadit-witness-state/1"


def keygen(path: Path, name: str) -> note.Verifier:
    """Create a witness key file at ``path`` (refuses to overwrite one); return its verifier key."""
    private, public = envelope.generate_signing_key()
    checkpoint.write_private(path, note.encode_signer(name, note.SIG_COSIGNATURE_V1, private) + "\n")
    return note.Verifier(name, note.SIG_COSIGNATURE_V1, public)


def load_key(path: Path) -> tuple[note.Verifier, bytes]:
    """The witness's verifier and private seed from its key file; errors never show the key."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: cannot read the witness key file") from None
    verifier, private = note.decode_signer(text)
    if verifier.sig_type != note.SIG_COSIGNATURE_V1:
        raise CheckpointError(f"{path}: not a witness key (type 0x04 expected)")
    return verifier, private


@dataclass(frozen=True)
class WitnessState:
    """What a witness remembers of one log: the log's key and the last checkpoint it cosigned."""

    log: note.Verifier
    last: checkpoint.SignedCheckpoint | None

    def to_json(self) -> str:
        data = {
            "format": STATE_FORMAT,
            "log": self.log.encode(),
            "checkpoint": self.last.encode() if self.last else None,
        }
        return json.dumps(data, indent=2) + "\n"


def load_state(path: Path, log_key: note.Verifier | None) -> WitnessState:
    """Read the state (or start one pinned to ``log_key``); refuses a log key that differs from the pinned one."""
    if not path.exists():
        if log_key is None:
            raise CheckpointError(
                f"{path}: no witness state yet", hint="pass --log-key once to pin the vault's checkpoint key"
            )
        return WitnessState(log_key, None)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError("not a witness state file")
        pinned = note.Verifier.decode(str(data["log"]))
        text = data["checkpoint"]
    except (OSError, ValueError, KeyError):
        raise CheckpointError(f"{path}: not a readable witness state file") from None
    if log_key is not None and log_key != pinned:
        raise CheckpointError(
            f"{path}: this witness follows log key {pinned.encode()}, not {log_key.encode()}",
            hint="a vault whose key changed needs a new witness state",
        )
    last = checkpoint.open_checkpoint(text, pinned) if text else None
    return WitnessState(pinned, last)


def cosign(
    state_path: Path,
    key_path: Path,
    new_note: str,
    bundle: Path,
    *,
    now: int,
    log_key: note.Verifier | None = None,
) -> checkpoint.SignedCheckpoint:
    """Cosign ``new_note`` after checking it extends the last cosigned checkpoint; save and return it.

    ``bundle`` is an export of the log holding at least the new checkpoint's entries; it is verified
    against the pinned log key, then its entries give the consistency proof. ``now`` is the POSIX
    time written into the cosignature.
    """
    witness, private = load_key(key_path)
    state = load_state(state_path, log_key)
    new = checkpoint.open_checkpoint(new_note, state.log)
    if state.last is not None and new.size < state.last.size:
        raise WitnessRefused(
            f"refusing to cosign: the checkpoint covers {new.size} entries but this witness cosigned "
            f"{state.last.size}{_when(state.last, witness)}: history truncated"
        )
    verify_bundle(bundle, state.log.public_key)
    exported = bundle_leaves(bundle)
    if checkpoint.origin_for(exported.vault_id) != state.log.name:
        raise CheckpointError(f"{bundle} is the log of vault {exported.vault_id}, not of {state.log.name}")
    leaf_hashes = exported.leaves
    size = new.size
    if size > len(leaf_hashes):
        raise CheckpointError(
            f"the bundle holds {len(leaf_hashes)} entries, fewer than the checkpoint's {size}",
            hint="export the bundle after taking the checkpoint",
        )
    leaves = leaf_hashes[:size]
    if merkle.root(leaves) != new.checkpoint.root:
        raise WitnessRefused(
            f"refusing to cosign: the bundle's first {size} entries do not hash to the checkpoint's root",
            hint="the bundle and the checkpoint come from different histories",
        )
    last = state.last
    if last is not None:
        _check_extends(last, new, leaves, witness)
    cosigned = checkpoint.cosign(new, witness, private, now)
    checkpoint.write_private(state_path, WitnessState(state.log, cosigned).to_json(), overwrite=True)
    return cosigned


def _check_extends(
    last: checkpoint.SignedCheckpoint,
    new: checkpoint.SignedCheckpoint,
    leaves: list[bytes],
    witness: note.Verifier,
) -> None:
    old_size, size = last.size, new.size
    when = _when(last, witness)
    proof = merkle.consistency_proof(leaves, old_size) if old_size else []
    consistent = old_size == 0 or merkle.verify_consistency(
        old_size, size, last.checkpoint.root, new.checkpoint.root, proof
    )
    if not consistent:
        raise WitnessRefused(
            f"refusing to cosign: the checkpoint of size {size} is not consistent with the one of size {old_size} "
            f"this witness cosigned{when}: history rewritten"
        )


def _when(signed: checkpoint.SignedCheckpoint, witness: note.Verifier) -> str:
    try:
        return f" at {checkpoint.describe_time(checkpoint.cosigned_at(signed, witness))}"
    except CheckpointError:
        return ""
