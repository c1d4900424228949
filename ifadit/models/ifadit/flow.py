"""Key-conditioned invertible flow F(z_id ; c(k)) over identity codes, built from FrEIA coupling blocks.

`KeyedFlow.forward(z, c)` maps an identity code to its surrogate under condition `c`; `inverse` undoes
it exactly (fp32 round trip ≤ 1e-5) for every condition. The condition is not chosen by a user: it is
derived from a vault key's 256-bit material by `condition_from_key` (HKDF-SHA256 through the vault's
recipe layer, info naming the purpose and the model id) and mapped to a standard-normal vector, so keys
stay secrets and the same key always gives the same condition.

Each coupling subnet's last layer starts at zero (FrEIA's stacked blocks diverge otherwise), so a fresh flow
is a fixed orthogonal permutation of its input: training (phase 2) is what makes surrogates differ per key.

With `rotation_dim` m > 0 the flow first applies a keyed rotation (`KeyedRotation`): the top m principal
directions of the whitened identity codes are turned by an orthogonal matrix drawn from the key (the last m*m
entries of the condition), the other directions pass unchanged. It needs no training, sends every key to a
fresh point of the code distribution, and carries the re-read error of a rendered surrogate back unamplified;
m keeps the rotation inside the directions the decoder renders (see docs/model.md, "Keyed rotation"). A gain
s ≥ 1 (a stored buffer, so part of the model id) lengthens the turned coordinates s times: surrogates a little
more distinctive than the average face, so two keys' surrogates and the original lie further apart, and a
re-read error comes back divided by s (see docs/model.md, "Keyed rotation").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import FrEIA.framework as Ff
import FrEIA.modules as Fm
import numpy as np
import torch
from torch import nn

CONDITION_INFO = b"ifadit/flow-condition/v1"
BLOCK_INFO = b"ifadit/flow-condition/v1/block-%d"  # purpose of the derivations after the first
BLOCK_SIZE = 2040  # HKDF-SHA256 derives at most 255 * 32 bytes: 1,020 Box-Muller pairs of 32-bit words


@dataclass(frozen=True)
class FlowConfig:
    """Shape of the keyed flow; saved beside its weights."""

    dim: int = 128  # identity code size (dlib descriptor)
    cond_dim: int = 64  # key condition size
    blocks: int = 8  # AllInOneBlock coupling blocks
    hidden: int = 256  # hidden width of each coupling subnet
    clamp: float = 2.0  # soft clamp of the affine log-scales
    rotation_dim: int = 0  # principal directions turned by the keyed rotation (0: no rotation)

    def __post_init__(self) -> None:
        if not 0 <= self.rotation_dim <= self.dim:
            raise ValueError(f"rotation_dim must be in 0..{self.dim}, got {self.rotation_dim}")

    @property
    def condition_size(self) -> int:
        """Length of a condition vector: the coupling blocks' part, then the rotation's m*m entries."""
        return self.cond_dim + self.rotation_dim**2

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


def haar_orthogonal(gaussian: torch.Tensor) -> torch.Tensor:
    """Orthogonal matrices [N, m, m], Haar-distributed when `gaussian` [N, m, m] holds standard normals (QR in
    float64 with the signs of R's diagonal moved into Q, so the map is deterministic)."""
    q, r = torch.linalg.qr(gaussian.double())
    return (q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)).to(gaussian.dtype)


class KeyedRotation(nn.Module):
    """z -> z + C_m (s Q - I) W_m (z - mean): the top m whitened principal coordinates turned by Q, times s.

    W_m [m, dim] are the top m rows of the whitening of the codes it was fitted on, C_m [dim, m] the matching
    columns of its inverse (W_m C_m = I), so the map is exactly invertible (Q transposed, divided by the gain
    s) and touches only the span of C_m. Unfitted (fresh) it is the identity map.
    """

    code_mean: torch.Tensor  # [dim] mean of the fitted codes
    whiten_top: torch.Tensor  # [m, dim] W_m
    colour_top: torch.Tensor  # [dim, m] C_m
    gain: torch.Tensor  # [] s, 1 for a pure rotation

    def __init__(self, dim: int, m: int) -> None:
        super().__init__()
        self.m = m
        self.register_buffer("code_mean", torch.zeros(dim))
        self.register_buffer("whiten_top", torch.zeros(m, dim))
        self.register_buffer("colour_top", torch.zeros(dim, m))
        self.register_buffer("gain", torch.ones(()))

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
        # Models saved before the gain existed stored none: they are pure rotations.
        state_dict.setdefault(prefix + "gain", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def fit(self, codes: torch.Tensor, gain: float = 1.0) -> None:
        """Whitening from identity codes [N, dim] (N > dim), e.g. standardised codes of training faces."""
        if gain < 1.0:
            raise ValueError(f"the rotation gain must be at least 1 (a pure rotation), got {gain}")
        mean = codes.double().mean(0)
        values, vectors = torch.linalg.eigh(torch.cov((codes.double() - mean).T))
        top_values, top_vectors = values.flip(0)[: self.m], vectors.flip(1)[:, : self.m]
        with torch.no_grad():
            self.code_mean.copy_(mean)
            self.whiten_top.copy_((top_vectors / top_values.sqrt()).T)
            self.colour_top.copy_(top_vectors * top_values.sqrt())
            self.gain.fill_(gain)

    def turn(self, z: torch.Tensor, rotation: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """`z` [N, dim] with its top coordinates turned by `rotation` [N, m, m] and scaled by the gain (both
        undone when `inverse`)."""
        u = (z - self.code_mean) @ self.whiten_top.T
        if inverse:
            turned = torch.einsum("nij,nj->ni", rotation.transpose(-1, -2), u / self.gain)
        else:
            turned = self.gain * torch.einsum("nij,nj->ni", rotation, u)
        return z + (turned - u) @ self.colour_top.T


class KeyedFlow(nn.Module):
    """Invertible map of identity codes [N, dim] conditioned on key vectors [N, condition_size]."""

    def __init__(self, config: FlowConfig = FlowConfig()) -> None:
        super().__init__()
        self.config = config
        self.rotation = KeyedRotation(config.dim, config.rotation_dim) if config.rotation_dim else None
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
        size = self.config.condition_size
        if c.ndim == 1:
            c = c.expand(z.shape[0], -1)
        if c.shape != (z.shape[0], size):
            raise ValueError(f"conditions must be [N, {size}] or [{size}]")
        return c

    def _rotation(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """The rotations [n, m, m] of conditions `c` (checked): one QR for a single condition [size] shared by
        the batch, one per row for [n, size]."""
        m = self.config.rotation_dim
        gaussian = c[..., self.config.cond_dim :].reshape(-1, m, m)
        return haar_orthogonal(gaussian).expand(n, m, m) if c.ndim == 1 else haar_orthogonal(gaussian)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Surrogate codes F(z ; c): the keyed rotation (if any), then the coupling blocks."""
        rows = self._check(z, c)
        if self.rotation is not None:
            z = self.rotation.turn(z, self._rotation(c, len(z)))
        if self.config.blocks:
            z, _ = self.inn(z, c=[rows[:, : self.config.cond_dim]], jac=False)
        return z

    def inverse(self, z_surrogate: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Original codes F⁻¹(z' ; c)."""
        rows = self._check(z_surrogate, c)
        z = z_surrogate
        if self.config.blocks:
            z, _ = self.inn(z, c=[rows[:, : self.config.cond_dim]], rev=True, jac=False)
        if self.rotation is not None:
            z = self.rotation.turn(z, self._rotation(c, len(z)), inverse=True)
        return z

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that learn (FrEIA keeps its fixed permutations as frozen parameters)."""
        return [p for p in self.parameters() if p.requires_grad]


def flip_bit(key: bytes, bit: int) -> bytes:
    """`key` with bit `bit` (0 = lowest bit of byte 0) flipped."""
    out = bytearray(key)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _gaussians(material: bytes, info: bytes, count: int) -> np.ndarray:
    """`count` (≤ BLOCK_SIZE) standard normals from one HKDF-SHA256 derivation under `info`: uniform 32-bit
    words, paired by Box–Muller (the cosines, then the sines)."""
    from keyvault import KeyMaterial  # cryptography loads here: training without keys runs without it

    pairs = (count + 1) // 2
    words = np.frombuffer(KeyMaterial(material).derive(info, 8 * pairs), dtype="<u4").astype(np.float64)
    uniform = (words.reshape(pairs, 2) + 0.5) / 2.0**32  # strictly inside (0, 1)
    u1, u2 = uniform[:, 0], uniform[:, 1]
    radius = np.sqrt(-2.0 * np.log(u1))
    return np.concatenate([radius * np.cos(2 * math.pi * u2), radius * np.sin(2 * math.pi * u2)])[:count]


def condition_from_key(material: bytes, model_id: str, cond_dim: int) -> torch.Tensor:
    """The standard-normal condition vector c(k) [cond_dim] for 256-bit key `material` and a model.

    HKDF-SHA256 expands the material (info = purpose ‖ model id) to uniform 32-bit words, which Box–Muller
    turns into Gaussians: deterministic, and independent across keys and models. One derivation gives at most
    BLOCK_SIZE numbers; a longer condition continues with derivations under their own purpose (block 1, 2, …),
    so a condition of up to BLOCK_SIZE numbers is what it always was.
    """
    if len(material) != 32:
        raise ValueError("key material must be 32 bytes")
    model = b"|" + model_id.encode("utf-8")
    blocks = [_gaussians(material, CONDITION_INFO + model, min(cond_dim, BLOCK_SIZE))]
    for index, start in enumerate(range(BLOCK_SIZE, cond_dim, BLOCK_SIZE), start=1):
        count = min(cond_dim - start, BLOCK_SIZE)
        blocks.append(_gaussians(material, BLOCK_INFO % index + model, count))
    return torch.from_numpy(np.concatenate(blocks).astype(np.float32))
