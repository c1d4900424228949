"""Key material in memory, and the one way code outside the vault turns it into purpose-bound values.

Models and backends need numbers drawn from a key (a flow condition, a sampling seed) but must never handle
the cryptography themselves: they call `KeyMaterial.derive` with a label naming the purpose and the model,
and get HKDF-SHA256 output that is independent across labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keyvault.envelope import hkdf_sha256


@dataclass(frozen=True)
class KeyMaterial:
    """Secret key bytes; the repr never shows them."""

    material: bytes = field(repr=False)

    def derive(self, info: bytes, length: int) -> bytes:
        """`length` bytes of HKDF-SHA256 output bound to `info` (purpose and context, e.g. a model id)."""
        if not self.material:
            raise ValueError("key material is empty")
        return hkdf_sha256(self.material, info=info, length=length)
