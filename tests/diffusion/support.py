"""A tiny randomly initialised SDXL-shaped model folder, built with diffusers' and transformers' classes.

The layout is a real diffusers SDXL folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/,
tokenizer_2/, scheduler/) plus the identity adapter files, so the backend's loading path is the one a user's
real SDXL folder takes. Sizes: 64 px crops -> 8x8x4 latents (VAE factor 8, as SDXL), 32-wide cross-attention
(16 + 16 from the two text encoders), 4 identity tokens. The tokenizer is a character-level CLIP BPE written
to disk from a tiny vocabulary: nothing is downloaded.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ifadit.models.reverse_personalization.identity_adapter import (
    IdentityAdapter,
    IdentityAdapterConfig,
    save_identity_adapter,
)

CROP_SIZE = 64  # unet sample_size 8 x VAE factor 8
TEXT_LENGTH = 16  # tokenizer model_max_length and text encoder positions
TEXT_WIDTH = 16  # hidden size of each text encoder; cross-attention width is twice this
POOLED_WIDTH = 16  # projection_dim of text_encoder_2
TIME_EMBED = 8  # addition_time_embed_dim


def write_tokenizer(folder: Path) -> None:
    """A character-level CLIP tokenizer: every printable letter/digit alone and as a word end, no merges."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + "'.,-")
    tokens = ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=TEXT_LENGTH
    ).save_pretrained(folder)


def _text_config(vocab_size: int, projection: bool) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_WIDTH,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=TEXT_LENGTH,
        projection_dim=POOLED_WIDTH if projection else TEXT_WIDTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )


def write_tiny_sdxl(folder: Path, seed: int = 0, adapter: bool = True) -> Path:
    """Write a seeded tiny SDXL-shaped diffusers folder (+ identity adapter unless `adapter` is False)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=CROP_SIZE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 1),
        use_linear_projection=True,
        norm_num_groups=8,
        cross_attention_dim=2 * TEXT_WIDTH,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=6 * TIME_EMBED + POOLED_WIDTH,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=CROP_SIZE,
        scaling_factor=0.13025,
    )
    write_tokenizer(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer_2")
    vocab = len(json.loads((folder / "tokenizer" / "vocab.json").read_text()))
    CLIPTextModel(_text_config(vocab, projection=False)).save_pretrained(folder / "text_encoder")
    CLIPTextModelWithProjection(_text_config(vocab, projection=True)).save_pretrained(
        folder / "text_encoder_2"
    )
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    DPMSolverMultistepScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000
    ).save_pretrained(folder / "scheduler")
    if adapter:
        config = IdentityAdapterConfig(embedding_dim=128, cross_attention_dim=2 * TEXT_WIDTH, num_tokens=4)
        save_identity_adapter(IdentityAdapter(config), folder)
    return folder
