"""Shamir T-of-N shares of the service KEK, and the unseal progress that collects them.

The split and combine are ``pyshamir`` (a port of HashiCorp Vault's ``shamir`` package: GF(2^8), one
polynomial per byte, the share's last byte its x coordinate). A share is printed as
``ifadit-share:<base64>``; nothing of the shares is stored. Combining does not authenticate, so the
rebuilt KEK is checked by the caller (``state``) by opening the audit signing key sealed under it:
wrong shares are refused, and the progress starts again.
"""

from __future__ import annotations

import base64
import binascii
import threading

from pyshamir import combine, split

from keyvault.envelope import KEY_BYTES
from keyvault.service.errors import UnsealError

SHARE_PREFIX = "ifadit-share:"
SHARE_BYTES = KEY_BYTES + 1  # the KEK's bytes plus the x coordinate
MAX_SHARES = 255  # GF(2^8) has 255 non-zero x coordinates


def check_split(shares: int, threshold: int) -> None:
    """Refuse a split HashiCorp's scheme cannot make (``ValueError``: a usage error)."""
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise ValueError(f"need 2 <= threshold <= shares <= {MAX_SHARES} (got {threshold} of {shares})")


def split_kek(kek: bytes, shares: int, threshold: int) -> list[str]:
    """``shares`` printable shares of ``kek``, any ``threshold`` of which rebuild it."""
    check_split(shares, threshold)
    return [
        SHARE_PREFIX + base64.b64encode(bytes(part)).decode("ascii") for part in split(kek, shares, threshold)
    ]


def parse_share(text: str) -> bytes:
    """The share's bytes; ``UnsealError`` for anything that is not a well-formed share."""
    body = text.strip().removeprefix(SHARE_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise UnsealError("not an unseal share (expected ifadit-share:<base64>)") from None
    if len(raw) != SHARE_BYTES or raw[-1] == 0:
        raise UnsealError(f"not an unseal share (expected {SHARE_BYTES} bytes with a non-zero x coordinate)")
    return raw


class Unsealer:
    """Shares submitted so far (by x coordinate); ``add`` returns the rebuilt KEK once ``threshold`` arrived."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._shares: dict[int, bytes] = {}
        self._lock = threading.Lock()

    @property
    def progress(self) -> int:
        """How many distinct shares were submitted since the last reset."""
        return len(self._shares)

    def add(self, text: str) -> bytes | None:
        """Record one share; the combined candidate KEK when this was the ``threshold``-th, else None."""
        share = parse_share(text)
        with self._lock:
            known = self._shares.get(share[-1])
            if known is not None:
                if known == share:
                    raise UnsealError(
                        "this share was already submitted", hint="the next custodian submits theirs"
                    )
                self._shares.clear()
                raise UnsealError("two different shares with the same x coordinate: progress reset")
            self._shares[share[-1]] = share
            if len(self._shares) < self.threshold:
                return None
            parts = list(self._shares.values())
            self._shares.clear()
        return bytes(combine(parts))

    def reset(self) -> None:
        """Forget the shares submitted so far."""
        with self._lock:
            self._shares.clear()
