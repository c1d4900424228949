"""Loss terms of the two iFADIT training phases, one function each (all return a scalar, batch-averaged).

Phase 1 (disentangling reconstruction; E_attr and M learn, G and the recognizer are frozen):
`pixel_loss`, `perceptual_loss`, `identity_loss`, `coarse_loss`, `attribute_cycle_loss`, `offset_loss`.
Phase 2 (key-aware flow training; F and the re-read correction learn):
`anonymity_loss`, `diversity_loss`, `naturalness_loss`, `moment_loss`, `recoverability_loss`, `fidelity_loss`,
`wrong_key_loss`, `consistency_loss`.
Descriptors are the recognizer's raw outputs (dlib: same person when L2 < 0.6); codes are standardised.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

MMD_BANDWIDTHS = (0.5, 1.0, 2.0, 4.0)  # Gaussian kernel widths of the MMD terms, relative to sqrt(dim)


def pixel_loss(img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel error (L1) between two image batches in [-1, 1]."""
    return (img - target).abs().mean()


def perceptual_loss(features: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """LPIPS-style distance on feature maps of a frozen network (here the recognizer's residual blocks).

    Each feature vector is normalised to unit length over channels, then squared differences are summed
    over channels and averaged over positions, images and layers.
    """
    if len(features) != len(targets) or not features:
        raise ValueError("perceptual_loss needs the same non-zero number of feature maps on both sides")
    terms = [
        (F.normalize(a, dim=1, eps=1e-6) - F.normalize(b, dim=1, eps=1e-6)).square().sum(dim=1).mean()
        for a, b in zip(features, targets, strict=True)
    ]
    return torch.stack(terms).mean()


def identity_loss(descriptor: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of descriptors [N, D]: 0 when they point the same way."""
    return (1.0 - F.cosine_similarity(descriptor, target, dim=1)).mean()


def coarse_loss(img: torch.Tensor, target: torch.Tensor, size: int = 8) -> torch.Tensor:
    """L1 between `size`x`size` area-downsampled images: pose, light and background of a swap, not identity."""
    return pixel_loss(F.adaptive_avg_pool2d(img, size), F.adaptive_avg_pool2d(target, size))


def attribute_cycle_loss(z_attr_rendered: torch.Tensor, z_attr_source: torch.Tensor) -> torch.Tensor:
    """Mean squared error of E_attr(render) against the (detached) attribute code it was rendered from."""
    return F.mse_loss(z_attr_rendered, z_attr_source.detach())


def offset_loss(offsets: torch.Tensor) -> torch.Tensor:
    """Mean squared W+ offset from w_avg: keeps the mapper where the generator renders faces."""
    return offsets.square().mean()


def _separation_hinge(a: torch.Tensor, b: torch.Tensor, threshold: float, margin: float) -> torch.Tensor:
    """mean(relu(threshold + margin - ||a - b||_2)) over rows."""
    return F.relu(threshold + margin - (a - b).norm(dim=1)).mean()


def anonymity_loss(
    anonymized: torch.Tensor, original: torch.Tensor, threshold: float, margin: float
) -> torch.Tensor:
    """Hinge on the descriptor distance original -> anonymized: 0 once it is ≥ threshold + margin."""
    return _separation_hinge(anonymized, original, threshold, margin)


def diversity_loss(
    surrogate_a: torch.Tensor, surrogate_b: torch.Tensor, threshold: float, margin: float
) -> torch.Tensor:
    """Hinge on the descriptor distance between one face's surrogates under two keys (as `anonymity_loss`)."""
    return _separation_hinge(surrogate_a, surrogate_b, threshold, margin)


def wrong_key_loss(
    restored_wrong: torch.Tensor, original: torch.Tensor, threshold: float, margin: float
) -> torch.Tensor:
    """Hinge on the descriptor distance original -> restored with a wrong key (random or one bit off)."""
    return _separation_hinge(restored_wrong, original, threshold, margin)


def _kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Mean of Gaussian kernels between the rows of `a` and `b` (batched as `torch.cdist`), widths relative to
    sqrt(dim)."""
    scale = 2.0 * a.shape[-1]
    d2 = torch.cdist(a, b).square()
    return sum(torch.exp(-d2 / (scale * w * w)) for w in bandwidths) / len(bandwidths)  # type: ignore[return-value]


def naturalness_loss(
    surrogate: torch.Tensor, real: torch.Tensor, bandwidths: Sequence[float] = MMD_BANDWIDTHS
) -> torch.Tensor:
    """Biased squared MMD between surrogate and real standardised codes (Gaussian kernels, several widths).

    Bandwidths are relative to sqrt(dim), the typical distance between standardised codes; 0 when both sets
    are the same, larger as the surrogates drift off the distribution of real identity codes.
    """
    return (
        _kernel(surrogate, surrogate, bandwidths).mean()
        + _kernel(real, real, bandwidths).mean()
        - 2 * _kernel(surrogate, real, bandwidths).mean()
    )


def key_spread_loss(
    surrogates: torch.Tensor, reference: torch.Tensor, bandwidths: Sequence[float] = MMD_BANDWIDTHS
) -> torch.Tensor:
    """Mean over faces of the MMD between one face's surrogate codes under many keys [F, K, D] and real
    standardised codes [M, D] (`naturalness_loss` per face; the reference's own term is computed once).

    Naturalness only asks the pooled surrogates of a batch to look real; a flow can meet it while sending each
    face to a handful of surrogates whatever the key (docs/history/ifadit.md counts them).
    Here the keys of one face must spread over identities as real people do, so two keys differ about as often
    as two strangers, and a wrong key lands on a random identity.
    """
    within = _kernel(surrogates, surrogates, bandwidths).mean(dim=(1, 2))
    cross = _kernel(surrogates, reference.expand(len(surrogates), -1, -1), bandwidths).mean(dim=(1, 2))
    return (within - 2 * cross).mean() + _kernel(reference, reference, bandwidths).mean()


def moment_loss(surrogate: torch.Tensor) -> torch.Tensor:
    """Per-dimension mean² + (second moment - 1)² of standardised surrogate codes, averaged over dimensions.

    Real codes have mean 0 and variance 1 in every dimension by construction (standardised with the training
    statistics). Unlike the MMD, whose Gaussian kernels stop pulling once a code is far off, this term pulls
    back codes at any distance.
    """
    return (surrogate.mean(dim=0).square() + (surrogate.square().mean(dim=0) - 1).square()).mean()


def recoverability_loss(restored_code: torch.Tensor, original_code: torch.Tensor) -> torch.Tensor:
    """Mean squared error between F^-1(correction(re-read surrogate)) and the original identity code."""
    return F.mse_loss(restored_code, original_code)


def fidelity_loss(reread: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Mean descriptor distance between what the recognizer reads from a rendered surrogate and the surrogate
    code it was rendered from: 0 when the generator draws exactly the identity the flow asked for."""
    return (reread - code).norm(dim=1).mean()


def consistency_loss(surrogate_a: torch.Tensor, surrogate_b: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the surrogate codes of two views of one face under one key."""
    return F.mse_loss(surrogate_a, surrogate_b)
