"""The ID²Face backend: identity-decoupled conditional diffusion on canonical crops (not reversible).

Each face keeps its attributes (the attribute encoder's code) and gets a new identity: a draw from the identity
VAE's prior made orthogonal to the source identity (`ifadit.models.id2face.model`). The draw and the diffusion
noise come from one 63-bit seed, HKDF-SHA256 of the key material (info names the purpose and the model id), or
a fixed seed for runs without a key: same face + same key + same model -> same output bytes, another key ->
another surrogate. Nothing in the output lets the key undo it, so `restore_crops` refuses; `--seal-original`
keeps such runs restorable exactly.

The model is read from the shipped `id2face-64/` (`ifadit.models.shipped`), or `model_dir`;
when it is not there, `BackendUnavailable` says how to train one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ifadit.backends import crop_model
from ifadit.backends.base import not_reversible
from ifadit.errors import BackendUnavailable
from ifadit.faces.align import check_crops
from ifadit.models.id2face.checkpoint import load_id2face
from ifadit.models.id2face.model import Id2FaceModel
from keyvault import KeyMaterial

MODEL_NAME = "id2face-64"
SEED_INFO = b"ifadit/id2face/seed/v1"  # HKDF info prefix; the model id follows after "|"
UNKEYED = b"ifadit/id2face/no-key"  # stands in for key material in runs without a key


def default_model_dir() -> Path:
    """The shipped `id2face-64` folder (`ifadit.models.shipped`)."""
    return crop_model.default_model_dir(MODEL_NAME)


def _not_found(folder: Path, absent: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"ID²Face model not found: {absent}",
        hint="train one with `ifadit train id2face --data cache/celeba-train-64.npz --out runs/id2face64` "
        f"and copy runs/id2face64/model to {folder}",
    )


def seed_from_key(key: bytes | None, model_id: str) -> int:
    """The 63-bit sampling seed for `key` (any bytes; None = the fixed unkeyed seed) under one model."""
    material = UNKEYED if key is None else key
    if not isinstance(material, bytes) or not material:
        raise ValueError("the id2face backend needs key bytes (or None for a run without a key)")
    stream = KeyMaterial(material).derive(SEED_INFO + b"|" + model_id.encode("utf-8"), 8)
    return int.from_bytes(stream, "big") >> 1


class Id2FaceBackend(crop_model.CropModelBackend[Id2FaceModel]):
    """Non-reversible anonymization of canonical crops with a trained `Id2FaceModel`."""

    name = "id2face"
    reversible = False
    colour_match = True  # generated faces get the frame's colours at the seam
    folder = crop_model.ModelFolder(MODEL_NAME, load_id2face, _not_found)

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "cpu",
        steps: int | None = None,
        model: tuple[Id2FaceModel, str, str] | None = None,
    ) -> None:
        """`CropModelBackend`'s model (from `model_dir`, default `default_model_dir()`, or a loaded `model`)
        and `steps`: DDIM steps (default: the model config's)."""
        super().__init__(model_dir, device, model)
        self.steps = steps

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        """[N,S,S,3] uint8 -> the same faces (attributes) with new identities drawn under `key`."""
        check_crops(crops)
        seed = seed_from_key(key, self.model_id)
        return self.map_crops(crops, lambda img: self.model.anonymize(img, seed, self.steps))

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        """Always refuses: the source identity is not in the output (use --seal-original for exact restore)."""
        raise not_reversible(self.name)
