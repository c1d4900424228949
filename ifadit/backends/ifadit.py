"""The reversible iFADIT backend: recognizer → keyed flow F(.; c(k)) → mapper → StyleGAN2, on canonical crops.

`key` is the 32-byte material the vault unseals; the flow condition is `condition_from_key(material, model_id)`,
so a key means something only together with this exact model. Restoring with a wrong key renders a plausible
wrong face, never an error. The model is read from the shipped `ifadit-64/` (`ifadit.models.shipped`: the
checkout's or the installed package's, or `$IFADIT_PRETRAINED/ifadit-64`) or `model_dir`, through
`ifadit.models.ifadit.checkpoint`; when it is not there, `ModelError` says which file is missing and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ifadit.backends import crop_model
from ifadit.errors import ModelError
from ifadit.faces.align import check_crops
from ifadit.faces.blend import paste_in_crop
from ifadit.models.ifadit.checkpoint import load_ifadit
from ifadit.models.ifadit.flow import condition_from_key
from ifadit.models.ifadit.model import IfaditModel, Publish
from ifadit.models.shipped import INSTALL_HINT

MODEL_NAME = "ifadit-64"


def default_model_dir() -> Path:
    """The shipped `ifadit-64` folder (`ifadit.models.shipped`)."""
    return crop_model.default_model_dir(MODEL_NAME)


def _not_shipped(folder: Path, absent: str) -> ModelError:
    return ModelError(
        f"iFADIT model not found: {absent}",
        hint=f"{INSTALL_HINT}; or train one (`ifadit train encoder`, then `ifadit train flow`) into {folder}",
    )


def is_shipped(model_dir: Path | None = None) -> bool:
    """Whether the model files are in place (the default backend then runs; without them it is an error)."""
    try:
        folder = Path(model_dir) if model_dir is not None else default_model_dir()
    except ModelError:
        return False
    return crop_model.absent_files(folder) is None


def pasted_publish(mask_scale: float, colour_match: bool) -> Publish:
    """A `Publish` step for crops re-cut from a photo: each render pasted into its observed crop with the face
    ellipse at `mask_scale` (and colour matching), as `paste_back` pasted the surrogate. Restore refinements
    that publish their renders so read a re-cut photo crop the way it was made, where uint8 rounding alone
    misses the paste and the colour match (see docs/model.md, "Restore through a photo")."""

    def publish(renders: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        pasted = [
            paste_in_crop(seen, new, mask_scale=mask_scale, colour_match=colour_match)
            for seen, new in zip(
                crop_model.uint8_crops(observed), crop_model.uint8_crops(renders), strict=True
            )
        ]
        return torch.from_numpy(np.stack(pasted)).to(renders.device).permute(0, 3, 1, 2).float() / 127.5 - 1

    return publish


class IfaditBackend(crop_model.CropModelBackend[IfaditModel]):
    """Reversible anonymization of canonical crops with a trained `IfaditModel` (constructor: `CropModelBackend`:
    `model_dir` default `default_model_dir()`, `device`, or a loaded `model`)."""

    name = "ifadit"
    reversible = True
    colour_match = True  # generated faces get the frame's colours at the seam
    folder = crop_model.ModelFolder(MODEL_NAME, load_ifadit, _not_shipped)

    def condition(self, key: bytes | None) -> torch.Tensor:
        """The flow condition of 32-byte key material under this model's id (HKDF, see `condition_from_key`)."""
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("the ifadit backend needs the 32-byte key material of a vault key")
        return condition_from_key(key, self.model_id, self.model.config.flow.condition_size).to(self.device)

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        """[N,S,S,3] uint8 -> the same faces with surrogate identities under `key`."""
        check_crops(crops)
        c = self.condition(key)
        return self.map_crops(crops, lambda img: self.model.anonymize(img, c))

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        """Undo `anonymize_crops` with the same key (a wrong key gives another plausible face); with
        `pasted_at`, restore's refinements paste their renders into the crops as paste-back did at that scale."""
        check_crops(crops)
        c = self.condition(key)
        publish = None if pasted_at is None else pasted_publish(pasted_at, self.colour_match)
        return self.map_crops(crops, lambda img: self.model.restore(img, c, publish))
