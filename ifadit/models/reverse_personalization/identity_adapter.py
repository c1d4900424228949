"""Identity adapter: a 128-D identity embedding -> `num_tokens` image-prompt tokens for an SDXL UNet.

IP-Adapter-FaceID-style projection (Linear -> GELU -> Linear -> per-token LayerNorm). Its tokens are
concatenated after the text tokens in the UNet's cross-attention context, so a stock diffusers
`UNet2DConditionModel` takes them without new attention processors. The null identity is the projection of
the zero embedding (as IP-Adapter's unconditional image embedding). Files, beside the SDXL folders:

    identity_adapter.safetensors   fc1.weight/bias, fc2.weight/bias, norm.weight/bias (float32)
    identity_adapter.json          IdentityAdapterConfig fields, "format": "ifadit-identity-adapter/1"
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ifadit.errors import ModelError

ADAPTER_WEIGHTS = "identity_adapter.safetensors"
ADAPTER_CONFIG = "identity_adapter.json"
ADAPTER_FORMAT = "ifadit-identity-adapter/1"


@dataclass(frozen=True)
class IdentityAdapterConfig:
    """Shape of the adapter; `embedding` names the recognizer whose embeddings it was trained on."""

    embedding_dim: int = 128  # length of the identity embedding (torch-dlib: 128)
    cross_attention_dim: int = 2048  # width of the UNet's cross-attention context (SDXL: 768 + 1280)
    num_tokens: int = 4  # image-prompt tokens appended to the 77 text tokens
    hidden_dim: int = 1024  # width of the hidden layer
    embedding: str = "torch-dlib"  # ifadit.faces.recognize registry name


class IdentityAdapter(nn.Module):
    """Identity embeddings [N, embedding_dim] -> tokens [N, num_tokens, cross_attention_dim]."""

    def __init__(self, config: IdentityAdapterConfig) -> None:
        super().__init__()
        self.config = config
        self.fc1 = nn.Linear(config.embedding_dim, config.hidden_dim)
        self.fc2 = nn.Linear(config.hidden_dim, config.num_tokens * config.cross_attention_dim)
        self.norm = nn.LayerNorm(config.cross_attention_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        tokens = self.fc2(nn.functional.gelu(self.fc1(embedding)))
        return self.norm(tokens.reshape(-1, self.config.num_tokens, self.config.cross_attention_dim))

    def null_tokens(self, count: int) -> torch.Tensor:
        """The null identity: tokens of the zero embedding, [count, num_tokens, cross_attention_dim]."""
        zeros = torch.zeros(count, self.config.embedding_dim, device=self.fc1.weight.device)
        return self(zeros)


def save_identity_adapter(adapter: IdentityAdapter, folder: Path) -> None:
    """Write the adapter's two files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().float().contiguous().cpu() for name, tensor in adapter.state_dict().items()
    }
    save_file(state, str(folder / ADAPTER_WEIGHTS))
    document = {"format": ADAPTER_FORMAT, **asdict(adapter.config)}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def load_identity_adapter(folder: Path) -> IdentityAdapter:
    """Read the adapter from `folder`; `ModelError` names the file and what is wrong with it."""
    config_path, weights_path = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    try:
        document = json.loads(config_path.read_text())
        if document.pop("format", None) != ADAPTER_FORMAT:
            raise ValueError(f"format is not {ADAPTER_FORMAT!r}")
        config = IdentityAdapterConfig(**document)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{config_path}: not an identity adapter config ({exc})") from None
    adapter = IdentityAdapter(config)
    try:
        adapter.load_state_dict(load_file(str(weights_path)))
    except (OSError, SafetensorError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{weights_path}: weights do not match {config_path} ({first})") from None
    return adapter.eval()
