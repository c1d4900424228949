"""Key-conditioned invertible flow F(z_id ; c(k)) over identity codes, built from FrEIA coupling blocks.

`KeyedFlow.forward(z, c)` maps an identity code to its surrogate under condition `c`; `inverse` undoes
it exactly (fp32 round trip ≤ 1e-5) for every condition. The condition is not chosen by a user: it is
derived from a vault key's 256-bit material by `condition_from_key` (HKDF-SHA256 through the vault's
recipe layer, info naming the purpose and the model id) and mapped to a standard-normal vector, so keys
stay secrets and the same key always gives the same condition.

Each coupling subnet's last layer starts at zero (FrEIA's stacked blocks diverge otherwise, see
ENVIRONMENT.md), so a fresh flow is a fixed orthogonal permutation of its input: training (phase 2)
is what makes surrogates differ per key.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import numpy as np
import torch
from torch import nn

from keyvault.envelope import hkdf_sha256

CONDITION_INFO = b"ifadit/flow-condition/v1"


@dataclass(frozen=True)
class FlowConfig:
    """Shape of the keyed flow; saved beside its weights."""

    dim: int = 128  # identity code size (dlib descriptor)
    cond_dim: int = 64  # key condition size
    blocks: int = 8  # AllInOneBlock coupling blocks
    hidden: int = 256  # hidden width of each coupling subnet
    clamp: float = 2.0  # soft clamp of the affine log-scales

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def _subnet(hidden: int) -> Callable[[int, int], nn.Module]:
    def build(dims_in: int, dims_out: int) -> nn.Module:
        last = nn.Linear(hidden, dims_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        return nn.Sequential(
            nn.Linear(dims_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), last
        )

    return build


class KeyedFlow(nn.Module):
    """Invertible map of identity codes [N, dim] conditioned on key vectors [N, cond_dim]."""

    def __init__(self, config: FlowConfig = FlowConfig()) -> None:
        super().__init__()
        self.config = config
        self.inn = Ff.SequenceINN(config.dim)
        for _ in range(config.blocks):
            self.inn.append(
                Fm.AllInOneBlock,
                cond=0,
                cond_shape=(config.cond_dim,),
                subnet_constructor=_subnet(config.hidden),
                affine_clamping=config.clamp,
                permute_soft=True,
            )

    def _check(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.dim:
            raise ValueError(f"identity codes must be [N, {self.config.dim}], got {tuple(z.shape)}")
        if c.ndim == 1:
            c = c.expand(z.shape[0], -1)
        if c.shape != (z.shape[0], self.config.cond_dim):
            raise ValueError(f"conditions must be [N, {self.config.cond_dim}] or [{self.config.cond_dim}]")
        return c

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Surrogate codes F(z ; c)."""
        out, _ = self.inn(z, c=[self._check(z, c)], jac=False)
        return out

    def inverse(self, z_surrogate: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Original codes F⁻¹(z' ; c)."""
        out, _ = self.inn(z_surrogate, c=[self._check(z_surrogate, c)], rev=True, jac=False)
        return out

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that learn (FrEIA keeps its fixed permutations as frozen parameters)."""
        return [p for p in self.parameters() if p.requires_grad]


def flip_bit(key: bytes, bit: int) -> bytes:
    """`key` with bit `bit` (0 = lowest bit of byte 0) flipped."""
    out = bytearray(key)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def condition_from_key(material: bytes, model_id: str, cond_dim: int) -> torch.Tensor:
    """The standard-normal condition vector c(k) [cond_dim] for 256-bit key `material` and a model.

    HKDF-SHA256 expands the material (info = purpose ‖ model id) to uniform 32-bit words, which
    Box–Muller turns into Gaussians: deterministic, and independent across keys and models.
    """
    if len(material) != 32:
        raise ValueError("key material must be 32 bytes")
    pairs = (cond_dim + 1) // 2
    stream = hkdf_sha256(material, info=CONDITION_INFO + b"|" + model_id.encode("utf-8"), length=8 * pairs)
    words = np.frombuffer(stream, dtype="<u4").astype(np.float64).reshape(pairs, 2)
    uniform = (words + 0.5) / 2.0**32  # strictly inside (0, 1)
    u1, u2 = uniform[:, 0], uniform[:, 1]
    radius = np.sqrt(-2.0 * np.log(u1))
    normal = np.concatenate([radius * np.cos(2 * math.pi * u2), radius * np.sin(2 * math.pi * u2)])
    return torch.from_numpy(normal[:cond_dim].astype(np.float32))
