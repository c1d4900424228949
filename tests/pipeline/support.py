"""Test-only helpers for the pipeline tests: a keyed, invertible toy backend, vault/CLI plumbing, and identity
distances between a photo's face and the same region of its outputs.

`KeyedColourBackend` is NOT a product backend and is never registered outside a test: it proves that the
key travels from the vault to `anonymize_crops` and `restore_crops` before the real reversible model
exists. Per key it permutes the colour channels and maps each through a keyed affine ramp; the face
stays detectable (restore re-detects it from pixels, as the real model's restore does), the right key
inverts it up to rounding, a wrong key gives wrongly coloured faces.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from ifadit.backends import base
from ifadit.faces.align import align_face, check_crops
from ifadit.faces.registry import get_detector, get_recognizer
from ifadit_cli.main import cli
from keyvault import access, auditor, keys
from keyvault.audit import AuditEntry
from keyvault.vault import Vault, open_vault
from tests.keyvault.support import ADMIN_PASS, cheap_kdf

TEST_BACKEND = "keyed-test"
_PERMUTATIONS = list(itertools.permutations(range(3)))


def _transform(key: bytes | None) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    if key is None or len(key) != 32:
        raise ValueError("the keyed test backend needs 32 bytes of key material")
    digest = hashlib.sha256(b"keyed-test-backend\0" + key).digest()
    permutation = _PERMUTATIONS[1 + digest[0] % 5]  # never the identity
    gain = 0.5 + 0.3 * np.frombuffer(digest[1:4], dtype=np.uint8) / 255.0
    offset = (255.0 * (1.0 - gain)) * np.frombuffer(digest[4:7], dtype=np.uint8) / 255.0
    return permutation, gain, offset


@dataclass(frozen=True)
class KeyedColourBackend:
    """Keyed invertible colour transform on canonical crops (tests only)."""

    crop_size: int = 128
    name: str = TEST_BACKEND
    reversible: bool = True
    colour_match: bool = False  # matching colours at the seam would undo the keyed colours
    model_id: str = "keyed-test/1"
    model_sha256: str = "0" * 64

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        check_crops(crops)
        permutation, gain, offset = _transform(key)
        out = crops[..., list(permutation)].astype(np.float64) * gain + offset
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        check_crops(crops)
        permutation, gain, offset = _transform(key)
        plain = np.clip(np.round((crops.astype(np.float64) - offset) / gain), 0, 255).astype(np.uint8)
        return plain[..., list(np.argsort(permutation))]


@pytest.fixture
def keyed_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Register the keyed test backend under TEST_BACKEND for one test."""
    monkeypatch.setitem(base.BACKENDS, TEST_BACKEND, f"{__name__}:KeyedColourBackend")
    yield TEST_BACKEND


# ---------------------------------------------------------------- a lab vault with one user per role

CASE = "C-17"
USERS = {"olga": ("operator",), "ivan": ("investigator",), "alice": ("approver",), "audrey": ("auditor",)}


@dataclass
class Lab:
    """A SQLite vault in tmp_path (cheap Argon2id) with a user per role and one active key for CASE.

    Every user's passphrase is their name; the admin is "admin".
    """

    url: str
    key: str

    def open(self, user: str) -> Vault:
        """The vault unlocked as `user` (close it, or use it as a context manager)."""
        return open_vault(self.url, user, (ADMIN_PASS if user == "admin" else user.encode()))

    def cli(self, *args: str | Path, user: str = "olga") -> Result:
        """Run `ifadit ARGS` through click's runner as `user` against this vault."""
        passphrase = ADMIN_PASS.decode() if user == "admin" else user
        env = {"IFADIT_VAULT": self.url, "IFADIT_USER": user, "IFADIT_PASSPHRASE": passphrase}
        return CliRunner(env=env).invoke(cli, [str(arg) for arg in args], catch_exceptions=False)

    def require_approval(self, required: bool) -> None:
        """Set the vault's restore policy."""
        with self.open("admin") as vault:
            access.set_policy(vault, require_approval=required)


def make_lab(tmp_path: Path, url: str | None = None) -> Lab:
    """Create the lab vault at `url` (a `vault_url` fixture's), else a SQLite file in `tmp_path`."""
    url = url or f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    with Vault.init(url, "admin", ADMIN_PASS, kdf=cheap_kdf()) as vault:
        for name, roles in USERS.items():
            access.add_user(vault, name, list(roles), name.encode(), kdf=cheap_kdf())
        key = keys.issue(vault, CASE, "pipeline tests").handle
    return Lab(url=url, key=key)


def audit_entries(lab: Lab, action: str | None = None) -> list[AuditEntry]:
    """The lab's audit entries (optionally one action's), read as the auditor."""
    with lab.open("audrey") as vault:
        found = auditor.entries(vault)
    return [entry for entry in found if action is None or entry.action == action]


def issue_with_material(lab: Lab, purpose: str, material: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    """A vault key whose material is `material` instead of fresh random bytes, so the test does not depend on
    which keys the OS draws (what a shipped model does with one photo varies from key to key)."""
    with monkeypatch.context() as patch:
        patch.setattr("keyvault.keys.random_key", lambda: material)
        with lab.open("admin") as vault:
            return keys.issue(vault, CASE, purpose).handle


def identity_distance(original: np.ndarray, *others: np.ndarray) -> list[float]:  # torch-dlib, dlib's scale
    """torch-dlib distances between the original's face and the same aligned region of each other image."""
    face = get_detector("hog").detect(original)[0]
    recognizer = get_recognizer("torch-dlib")
    crops = [align_face(image, face.landmarks, size=64).crop for image in (original, *others)]
    embeddings = recognizer.embed(np.stack(crops))
    return [float(np.linalg.norm(embeddings[0] - e)) for e in embeddings[1:]]
