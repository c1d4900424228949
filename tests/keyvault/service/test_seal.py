"""Shamir shares of the service KEK (pyshamir, HashiCorp's scheme): T-1 shares rebuild nothing, T rebuild it."""

from __future__ import annotations

import base64

import pytest

from keyvault.envelope import random_key
from keyvault.service.errors import UnsealError
from keyvault.service.seal import SHARE_PREFIX, Unsealer, check_split, parse_share, split_kek


def test_any_threshold_shares_rebuild_the_kek() -> None:
    kek = random_key()
    shares = split_kek(kek, 5, 3)
    assert len(set(shares)) == 5 and all(s.startswith(SHARE_PREFIX) for s in shares)
    for chosen in ([0, 1, 2], [4, 2, 0], [1, 3, 4]):
        unsealer = Unsealer(3)
        assert unsealer.add(shares[chosen[0]]) is None
        assert unsealer.add(shares[chosen[1]]) is None and unsealer.progress == 2
        assert unsealer.add(shares[chosen[2]]) == kek
        assert unsealer.progress == 0


def test_fewer_than_threshold_shares_say_nothing_about_the_kek() -> None:
    kek = random_key()
    shares = split_kek(kek, 3, 3)
    unsealer = Unsealer(3)
    assert unsealer.add(shares[0]) is None and unsealer.add(shares[1]) is None
    assert kek not in b"".join(parse_share(s) for s in shares[:2])


def test_a_share_submitted_twice_is_refused_and_not_counted() -> None:
    shares = split_kek(random_key(), 3, 2)
    unsealer = Unsealer(2)
    unsealer.add(shares[0])
    with pytest.raises(UnsealError, match="already submitted"):
        unsealer.add(shares[0])
    assert unsealer.progress == 1


def test_a_wrong_share_rebuilds_a_different_key() -> None:
    kek = random_key()
    mine, other = split_kek(kek, 3, 2), split_kek(random_key(), 3, 2)
    unsealer = Unsealer(2)
    unsealer.add(mine[0])
    candidate = unsealer.add(other[1])
    assert candidate is not None and candidate != kek  # the service's KEK check refuses it (test_service)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ifadit-share:not base64!",
        SHARE_PREFIX + base64.b64encode(b"short").decode(),
        SHARE_PREFIX + base64.b64encode(bytes(33)).decode(),
    ],
)
def test_malformed_shares_are_refused(text: str) -> None:
    with pytest.raises(UnsealError, match="not an unseal share"):
        parse_share(text)


@pytest.mark.parametrize(("shares", "threshold"), [(1, 1), (3, 1), (2, 3), (256, 2)])
def test_impossible_splits_are_usage_errors(shares: int, threshold: int) -> None:
    with pytest.raises(ValueError, match="threshold"):
        check_split(shares, threshold)
