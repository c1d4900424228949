"""ID²Face: identity-decoupled conditional diffusion for non-reversible face anonymization (see `model`)."""

from ifadit.models.id2face.checkpoint import load_id2face, save_id2face
from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.identity import IdentityVAE, keyed_rotation, orthogonal_identity_mapping
from ifadit.models.id2face.model import Id2FaceModel

__all__ = [
    "Id2FaceConfig",
    "Id2FaceModel",
    "IdentityVAE",
    "keyed_rotation",
    "load_id2face",
    "orthogonal_identity_mapping",
    "save_id2face",
]
