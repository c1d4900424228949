"""Reverse Personalization: invert a face crop with SDXL, then regenerate it pushed away from its identity.

Per batch of canonical crops (steps numbered as in `anonymize_crops`):
  1. encode the crops with the VAE (posterior mean) and embed their identities with torch-dlib (128-D);
  2. invert the latents to noise with deterministic DPM-Solver++(2M) under the source prompt and the null
     identity, keeping the trajectory (ifadit.models.reverse_personalization.dpm_inversion);
  3. regenerate along the trajectory with guidance
        d = d(text, null) + identity_scale * (d(text, id) - d(text, null))
            [+ (text_guidance - 1) * (d(text, null) - d(empty, null))],
     where `text` is the attribute prompt when given (else the source prompt): a negative `identity_scale`
     pushes the prediction away from the source identity; pose, expression and background come from the
     trajectory;
  4. decode the regenerated latents.
Deterministic: no noise is sampled, so the same crops and options give the same output on the same device.
Not reversible; the key is ignored. The model folder layout is in ifadit.models.reverse_personalization.sdxl and docs/backends.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ifadit.backends.base import not_reversible
from ifadit.backends.crop_model import uint8_crops
from ifadit.errors import BackendUnavailable
from ifadit.faces.align import check_crops
from ifadit.faces.recognize import TorchDlibRecognizer, crops_to_img
from ifadit.models.reverse_personalization.dpm_inversion import Grid, invert, make_grid, regenerate
from ifadit.models.reverse_personalization.sdxl import LAYOUT_HINT, Condition, SdxlIdentityModel

MODEL_DIR_ENV = "IFADIT_SDXL_DIR"  # default --model-dir
SOURCE_PROMPT = "a close-up photo of a person's face"


class ReversePersonalizationBackend:
    """Identity removal by negative identity guidance along a DPM-Solver++ inversion of each crop."""

    name = "reverse-personalization"
    reversible = False
    colour_match = True  # regenerated faces get the frame's colours at the seam

    def __init__(
        self,
        model_dir: Path | None = None,  # SDXL + identity adapter folder; None: $IFADIT_SDXL_DIR
        identity_scale: float = -6.0,  # identity guidance; negative pushes away, 0 reconstructs
        attributes: str | None = None,  # prompt replacing the source prompt when regenerating
        steps: int = 25,  # inversion steps (model calls: 2 x steps + 1, times the guidance branches)
        text_guidance: float = 1.0,  # text guidance when regenerating; 1 adds no empty-prompt branch
        source_prompt: str = SOURCE_PROMPT,  # prompt of the inversion (and regeneration without attributes)
        crop_size: int | None = None,  # canonical crop side; None: the UNet's native size (SDXL: 1024)
        device: str = "cpu",
        batch_size: int = 4,  # crops per pass
    ) -> None:
        if model_dir is None:
            if not os.environ.get(MODEL_DIR_ENV):
                raise BackendUnavailable(
                    "backend 'reverse-personalization' needs a local SDXL folder with an identity adapter",
                    hint=f"pass --model-dir or set ${MODEL_DIR_ENV}; {LAYOUT_HINT}",
                )
            model_dir = Path(os.environ[MODEL_DIR_ENV])
        if batch_size < 1 or text_guidance < 0:
            raise ValueError(
                f"need batch_size >= 1 and text_guidance >= 0, got {batch_size}, {text_guidance}"
            )
        if attributes is not None and not attributes.strip():
            raise ValueError("attributes must be a non-empty prompt, e.g. 'an elderly man'")
        self.model = SdxlIdentityModel(Path(model_dir), device)
        self.model_id, self.model_sha256 = self.model.model_id, self.model.sha256  # cited by manifests
        self.crop_size = crop_size if crop_size is not None else self.model.native_size
        if self.crop_size < self.model.size_multiple or self.crop_size % self.model.size_multiple:
            raise ValueError(
                f"crop_size must be a positive multiple of {self.model.size_multiple}, got {self.crop_size}"
            )
        self.grid: Grid = make_grid(self.model.alphas_cumprod, steps)
        self.identity_scale = float(identity_scale)
        self.text_guidance = float(text_guidance)
        self.source_prompt = source_prompt
        self.target_prompt = attributes if attributes is not None else source_prompt
        self.batch_size = batch_size
        self.recognizer = TorchDlibRecognizer()
        self.recognizer.model.to(self.model.device)

    def _regeneration_condition(self, embeddings: torch.Tensor, null: torch.Tensor) -> Condition:
        """The batched guidance branches: (target, null), then (target, id) and (empty, null) when used."""
        count, size = len(embeddings), self.crop_size
        target = self.model.encode_prompts([self.target_prompt] * count, size)
        branches = [self.model.with_identity(target, null)]
        if self.identity_scale != 0:
            branches.append(self.model.with_identity(target, self.model.adapter(embeddings)))
        if self.text_guidance != 1:
            branches.append(self.model.with_identity(self.model.unconditional(count, size), null))
        return Condition.stack(branches)

    def _guided(self, predictions: torch.Tensor, count: int) -> torch.Tensor:
        base, *rest = predictions.split(count)
        out = base
        if self.identity_scale != 0:
            out = out + self.identity_scale * (rest.pop(0) - base)
        if self.text_guidance != 1:
            out = out + (self.text_guidance - 1) * (base - rest.pop(0))
        return out

    def _anonymize_batch(self, img: torch.Tensor, crops: np.ndarray, bar: tqdm) -> torch.Tensor:
        count, grid, model = len(img), self.grid, self.model
        latents = model.encode_image(img)  # 1
        embeddings = torch.from_numpy(self.recognizer.embed(crops)).to(model.device)
        null = model.adapter.null_tokens(count)
        source = model.with_identity(model.encode_prompts([self.source_prompt] * count, self.crop_size), null)

        def predict_source(x: torch.Tensor, i: int) -> torch.Tensor:
            bar.update()
            return model.predict_x0(x, int(grid.timesteps[i]), source)

        trajectory = invert(grid, latents, predict_source)  # 2
        guided = self._regeneration_condition(embeddings, null)

        def predict_guided(x: torch.Tensor, i: int) -> torch.Tensor:
            bar.update()
            return self._guided(model.predict_x0(x, int(grid.timesteps[i]), guided), count)

        return model.decode_latents(regenerate(grid, trajectory, predict_guided))  # 3, 4

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        """[N,S,S,3] uint8 -> the same faces regenerated away from their identities (key ignored)."""
        check_crops(crops)
        size, side = self.crop_size, crops.shape[1]
        out = []
        calls = -(-len(crops) // self.batch_size) * (2 * self.grid.steps + 1)
        with (
            torch.no_grad(),
            tqdm(total=calls, desc="reverse-personalization", unit="step", leave=False, disable=None) as bar,
        ):
            for start in range(0, len(crops), self.batch_size):
                chunk = crops[start : start + self.batch_size]
                if side != size:
                    img = F.interpolate(
                        crops_to_img(chunk), size=(size, size), mode="bilinear", antialias=True
                    )
                    chunk = ((img + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
                img = self._anonymize_batch(crops_to_img(chunk).to(self.model.device), chunk, bar)
                if side != size:
                    img = F.interpolate(img, size=(side, side), mode="bilinear", antialias=side < size)
                out.append(uint8_crops(img))
        return np.concatenate(out) if out else crops.copy()

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        raise not_reversible(self.name)
