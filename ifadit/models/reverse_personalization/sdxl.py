"""A local diffusers SDXL folder (plus the identity adapter) loaded for inversion: VAE, prompts, UNet.

Expected layout of the folder the user points `--model-dir` at (nothing is ever downloaded):

    model_index.json                         (optional; diffusers writes it, it is not read)
    unet/        config.json + diffusion_pytorch_model.safetensors   UNet2DConditionModel, "text_time"
    vae/         config.json + diffusion_pytorch_model.safetensors   AutoencoderKL
    text_encoder/    config.json + model.safetensors                 CLIPTextModel
    text_encoder_2/  config.json + model.safetensors                 CLIPTextModelWithProjection
    tokenizer/, tokenizer_2/                 CLIPTokenizer files (vocab.json, merges.txt, ...)
    scheduler/   scheduler_config.json       betas and prediction_type (epsilon or v_prediction)
    identity_adapter.safetensors + identity_adapter.json   (ifadit.models.reverse_personalization.identity_adapter)

Conditioning follows SDXL: the penultimate hidden states of both text encoders side by side, the pooled
projection of text_encoder_2 and the six size/crop ids (crop, crop, 0, 0, crop, crop); the identity tokens
are appended after the text tokens. Everything runs in float32.

Provenance: `folder_sha256` hashes every file of the folder (sorted relative path and each file's sha256), so
a manifest's model id `sdxl-identity-<12 hex>` names the exact weights, tokenizers and adapter used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from diffusers.utils import logging as diffusers_logging
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
from transformers.utils import logging as transformers_logging

from ifadit.errors import BackendUnavailable, ModelError
from ifadit.models.model_folder import model_id, sha256_file
from ifadit.models.reverse_personalization.identity_adapter import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    IdentityAdapter,
    load_identity_adapter,
)

SUBFOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
LAYOUT_HINT = "see docs/backends.md, 'Reverse Personalization', for the folder layout"


@dataclass(frozen=True)
class Condition:
    """A UNet condition for a batch: cross-attention context [N, L, C] and SDXL's added embeddings."""

    context: torch.Tensor  # text tokens, then identity tokens
    pooled: torch.Tensor  # [N, P] pooled text projection
    time_ids: torch.Tensor  # [N, 6]

    @staticmethod
    def stack(conditions: list[Condition]) -> Condition:
        """One batch of the given conditions, in order (for a single UNet call)."""
        return Condition(
            *(torch.cat([getattr(c, f) for c in conditions]) for f in ("context", "pooled", "time_ids"))
        )


def check_model_dir(folder: Path) -> None:
    """Raise `BackendUnavailable` naming `folder` and every part of the layout it lacks."""
    if not folder.is_dir():
        raise BackendUnavailable(
            f"reverse-personalization model folder {folder} does not exist", hint=LAYOUT_HINT
        )
    missing = [f"{name}/" for name in SUBFOLDERS if not (folder / name).is_dir()]
    missing += [name for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG) if not (folder / name).is_file()]
    if missing:
        raise BackendUnavailable(
            f"{folder} is not an SDXL + identity adapter folder: missing {', '.join(missing)}",
            hint=LAYOUT_HINT,
        )


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Without transformers' and diffusers' per-file loading bars (they would fill the CLI's stderr)."""
    libraries = (diffusers_logging, transformers_logging)
    enabled = [library.is_progress_bar_enabled() for library in libraries]
    for library in libraries:
        library.disable_progress_bar()
    try:
        yield
    finally:
        for library, was in zip(libraries, enabled, strict=True):
            if was:
                library.enable_progress_bar()


def folder_sha256(folder: Path) -> str:
    """Hex sha256 over every file under `folder`: its relative path and its own sha256, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _load(loader: Any, folder: Path) -> Any:
    try:
        with _quiet_loading():
            return loader.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{folder}: cannot be loaded as {loader.__name__} ({first})", hint=LAYOUT_HINT
        ) from None


class SdxlIdentityModel:
    """The SDXL parts plus the identity adapter, on one device, in eval mode."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        check_model_dir(folder)
        self.device = torch.device(device)
        self.unet: Any = _load(UNet2DConditionModel, folder / "unet").eval().to(self.device)
        self.vae: Any = _load(AutoencoderKL, folder / "vae").eval().to(self.device)
        self.text_encoder = _load(CLIPTextModel, folder / "text_encoder").eval().to(self.device)
        self.text_encoder_2 = (
            _load(CLIPTextModelWithProjection, folder / "text_encoder_2").eval().to(self.device)
        )
        self.tokenizer = _load(CLIPTokenizer, folder / "tokenizer")
        self.tokenizer_2 = _load(CLIPTokenizer, folder / "tokenizer_2")
        scheduler = _load(DPMSolverMultistepScheduler, folder / "scheduler")
        self.alphas_cumprod: torch.Tensor = scheduler.alphas_cumprod.double()
        self.prediction_type: str = scheduler.config.prediction_type
        self.adapter: IdentityAdapter = load_identity_adapter(folder).to(self.device)
        self._check(folder)
        self.sha256 = folder_sha256(folder)
        self.model_id = model_id("sdxl-identity", self.sha256)
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.native_size = int(self.unet.config.sample_size) * self.vae_factor  # SDXL: 128 x 8 = 1024
        self.size_multiple = self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def _check(self, folder: Path) -> None:
        width = self.text_encoder.config.hidden_size + self.text_encoder_2.config.hidden_size
        expected = {
            "unet addition_embed_type": (self.unet.config.addition_embed_type, "text_time"),
            "unet cross_attention_dim": (self.unet.config.cross_attention_dim, width),
            "adapter cross_attention_dim": (self.adapter.config.cross_attention_dim, width),
            "unet in_channels": (self.unet.config.in_channels, self.vae.config.latent_channels),
            "adapter embedding": (self.adapter.config.embedding, "torch-dlib"),
        }
        wrong = [
            f"{name} is {got!r}, expected {want!r}" for name, (got, want) in expected.items() if got != want
        ]
        if self.prediction_type not in ("epsilon", "v_prediction"):
            wrong.append(
                f"scheduler prediction_type is {self.prediction_type!r}, expected epsilon or v_prediction"
            )
        if wrong:
            raise ModelError(f"{folder}: parts do not fit together: {'; '.join(wrong)}", hint=LAYOUT_HINT)

    def encode_prompts(self, prompts: list[str], size: int) -> Condition:
        """SDXL text condition for each prompt at crop side `size` (no identity tokens yet)."""
        hidden, pooled = [], torch.empty(0)
        for tokenizer, encoder in (
            (self.tokenizer, self.text_encoder),
            (self.tokenizer_2, self.text_encoder_2),
        ):
            ids = tokenizer(
                prompts,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            out = encoder(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if isinstance(encoder, CLIPTextModelWithProjection):
                pooled = out.text_embeds
        time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32, device=self.device)
        return Condition(torch.cat(hidden, dim=-1), pooled, time_ids.repeat(len(prompts), 1))

    def unconditional(self, count: int, size: int) -> Condition:
        """SDXL's empty-prompt condition (zeros, as `force_zeros_for_empty_prompt`) for text guidance."""
        text = self.encode_prompts([""] * count, size)
        return Condition(torch.zeros_like(text.context), torch.zeros_like(text.pooled), text.time_ids)

    def with_identity(self, text: Condition, tokens: torch.Tensor) -> Condition:
        """`text` with the identity tokens [N, T, C] appended to its context."""
        return Condition(torch.cat([text.context, tokens], dim=1), text.pooled, text.time_ids)

    def predict_x0(self, x: torch.Tensor, timestep: int, condition: Condition) -> torch.Tensor:
        """The UNet's data prediction for latents `x` at training `timestep` under `condition`."""
        repeat = len(condition.context) // len(x)
        xs = x.repeat(repeat, 1, 1, 1)
        out = self.unet(
            xs,
            timestep,
            encoder_hidden_states=condition.context,
            added_cond_kwargs={"text_embeds": condition.pooled, "time_ids": condition.time_ids},
        ).sample
        cumprod = self.alphas_cumprod[timestep]
        alpha, sigma = float(cumprod.sqrt()), float((1 - cumprod).sqrt())
        if self.prediction_type == "epsilon":
            return (xs - sigma * out) / alpha
        return alpha * xs - sigma * out

    def encode_image(self, img: torch.Tensor) -> torch.Tensor:
        """`img` [N,3,S,S] in [-1,1] -> scaled latents (the posterior mean: deterministic)."""
        return self.vae.encode(img).latent_dist.mean * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> `img` [N,3,S,S] in [-1,1] (clamped)."""
        return self.vae.decode(latents / self.vae.config.scaling_factor).sample.clamp(-1, 1)
