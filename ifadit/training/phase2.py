"""Phase 2, key-aware training of the keyed flow F and the re-read correction (E_attr, M, G, recognizer frozen).

Each step draws, per face, a key k, a second key k2 and a wrong key k' (one bit of k flipped for even rows, a
fresh random key for odd rows), all 32 random bytes from torch's generator turned into conditions by
`condition_from_key` (HKDF; the same distribution as any vault key under any model id). Two augmented views
v1, v2 of each face (shift, brightness, contrast) are encoded; then
  anonymity       surrogates G(M(F(z_id(v1); c_k), z_attr)) and under c_k2 are ≥ threshold + margin from v1
  diversity       the two surrogates are ≥ threshold + margin apart (as rendered; the augmented `published`
                  copy below is for re-reading only)
                  (both also on the surrogate codes themselves, read as descriptors: a direct signal that makes F
                  key-dependent even while the mapper barely follows z_id)
  naturalness     MMD between surrogate codes and real codes (z_id of v1 and v2)
  key spread      per face, the surrogate codes under `spread_keys` more keys (flow only, nothing rendered) are
                  compared by MMD with `spread_reference` real training codes drawn at the start of the run: the
                  keys of one face must spread over identities as real people do (without it the flow sends each
                  face to a handful of identities whatever the key, so keys differ only by luck)
  moments         surrogate codes keep the per-dimension mean 0 / variance 1 of standardised real codes
  recoverability  F^-1(correction(z_id(published)); c_k) ≈ z_id(v1), where `published` is the surrogate image
                  rounded to uint8, shifted and colour-jittered as paste-back, re-detection and colour matching do
  fidelity        the recognizer reads from `published` the surrogate code it was rendered from (descriptor
                  distance): restore starts from that re-read, and F^-1 amplifies its error (the generator draws
                  surrogate codes less faithfully than real ones; docs/model.md, "Phase 2")
  wrong key       F^-1(correction(...); c_k'), projected by `plausible_code` as restore does, is ≥ threshold +
                  margin from v1, as a code and rendered with the attributes read from `published` (without the
                  projection the hinge is met by codes thrown far out, which restore then pulls back near the
                  original, so wrong keys restore)
  consistency     F(z_id(v1); c_k) ≈ F(z_id(v2); c_k)
Sample grid columns: original | anonymized under 3 keys | restored (key 1) | restored with key 1 one bit off.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ifadit.models.ifadit.checkpoint import load_ifadit
from ifadit.models.ifadit.flow import condition_from_key, flip_bit
from ifadit.models.ifadit.model import IfaditModel, plausible_code, uint8_levels
from ifadit.training import ifadit_losses as L
from ifadit.training.cpu import controlled
from ifadit.training.data import load_crops, to_model_range
from ifadit.training.options import Phase2Options, RunControl
from ifadit.training.phase1 import grid_faces, real_descriptors
from ifadit.training.runner import (
    PhaseState,
    grid_image,
    load_state,
    model_folder,
    prepare_run,
    random_batch,
    run_loop,
    save_state,
)

TRAINING_MODEL_ID = "ifadit-training"  # model id in the HKDF info of training keys (any id gives N(0, I))


def random_keys(count: int) -> list[bytes]:
    """`count` keys of 32 random bytes from torch's global generator."""
    return [bytes(row.tolist()) for row in torch.randint(0, 256, (count, 32), dtype=torch.uint8)]


def conditions(keys: list[bytes], cond_dim: int, model_id: str = TRAINING_MODEL_ID) -> torch.Tensor:
    """Stacked `condition_from_key` vectors [len(keys), cond_dim]."""
    return torch.stack([condition_from_key(k, model_id, cond_dim) for k in keys])


def augment_view(x: torch.Tensor, shift: int, jitter: float) -> torch.Tensor:
    """A second photo of the same faces: random translation (edge-replicated), brightness and contrast."""
    n, _, h, w = x.shape
    if shift > 0:
        padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
        dx, dy = torch.randint(0, 2 * shift + 1, (2, n)).tolist()
        x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    gain = (1 + jitter * (2 * torch.rand(n, 1, 1, 1) - 1)).to(x.device)
    bias = (jitter * (2 * torch.rand(n, 1, 1, 1) - 1)).to(x.device)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * gain + mean + bias).clamp(-1, 1)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """Round to the 256 levels of a uint8 image; gradients pass straight through."""
    return img + (uint8_levels(img) - img).detach()


def phase2_losses(
    model: IfaditModel, x: torch.Tensor, options: Phase2Options, reference: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted phase-2 loss on images `x` [N,3,R,R] (keys and views drawn here) and its terms; `reference`
    holds real standardised identity codes [M, D] for the key-spread term."""
    n, cond_dim = len(x), model.config.flow.condition_size
    keys, keys2 = random_keys(n), random_keys(n)
    bits = torch.randint(0, 256, (n,)).tolist()
    fresh = random_keys(n)
    wrong = [
        flip_bit(k, b) if i % 2 == 0 else f for i, (k, b, f) in enumerate(zip(keys, bits, fresh, strict=True))
    ]
    c, c2, c_wrong = (conditions(k, cond_dim).to(x.device) for k in (keys, keys2, wrong))
    c_spread = conditions(random_keys(n * options.spread_keys), cond_dim).to(x.device)
    v1, v2 = augment_view(x, options.shift, options.jitter), augment_view(x, options.shift, options.jitter)
    with torch.no_grad():
        desc1, desc2 = model.descriptor(torch.cat([v1, v2])).chunk(2)
        z1, z2 = model.standardise(desc1), model.standardise(desc2)
        z_attr = model.encoder(v1)
    sur, sur2 = model.flow(torch.cat([z1, z1]), torch.cat([c, c2])).chunk(2)
    spread = model.flow(z1.repeat_interleave(options.spread_keys, 0), c_spread).view(
        n, options.spread_keys, -1
    )
    anon, anon2 = model.render(torch.cat([sur, sur2]), torch.cat([z_attr, z_attr])).chunk(2)
    published = augment_view(quantize(anon), options.shift, options.jitter)  # what restore will read back
    # `published` is for re-reading only: its shift and jitter alone move a descriptor, so a distance between
    # surrogates measured on it would count augmentation as diversity
    desc_published, desc_anon, desc_anon2 = model.descriptor(torch.cat([published, anon, anon2])).chunk(3)
    read = model.correction(model.standardise(desc_published))
    back = model.flow.inverse(torch.cat([read, read]), torch.cat([c, c_wrong]))
    z_back, z_wrong = back.chunk(2)
    desc_wrong, desc_wrong_render = wrong_key_readings(model, z_wrong, published)
    thr, margin = options.threshold, options.margin
    code, code2 = model.destandardise(sur), model.destandardise(sur2)  # surrogate codes as descriptors
    terms = {
        "anonymity": torch.stack(
            [L.anonymity_loss(d, desc1, thr, margin) for d in (desc_anon, desc_anon2, code, code2)]
        ).mean(),
        "diversity": (
            L.diversity_loss(desc_anon, desc_anon2, thr, margin) + L.diversity_loss(code, code2, thr, margin)
        )
        / 2,
        "naturalness": L.naturalness_loss(torch.cat([sur, sur2]), torch.cat([z1, z2])),
        "key_spread": L.key_spread_loss(spread, reference),
        "moments": L.moment_loss(torch.cat([sur, sur2])),
        "recoverability": L.recoverability_loss(z_back, z1),
        "fidelity": L.fidelity_loss(desc_published, code),
        "wrong_key": (
            L.wrong_key_loss(desc_wrong, desc1, thr, margin)
            + L.wrong_key_loss(desc_wrong_render, desc1, thr, margin)
        )
        / 2,
        "consistency": L.consistency_loss(sur, model.flow(z2, c)),
    }
    weights = options.loss_weights()
    loss = sum((weights[k] * v for k, v in terms.items()), torch.zeros([]))
    stats = {k: float(v.detach()) for k, v in terms.items()}
    stats["loss"] = float(loss.detach())
    stats["anon_dist"] = float((desc_anon - desc1).norm(dim=1).mean().detach())
    stats["key_dist"] = float((desc_anon - desc_anon2).norm(dim=1).mean().detach())
    stats["key_code_dist"] = float((code - code2).norm(dim=1).mean().detach())
    stats["spread_far"] = far_key_pairs(model.destandardise(spread.detach()), thr)
    stats["restore_dist"] = float((model.destandardise(z_back) - desc1).norm(dim=1).mean().detach())
    stats["wrong_dist"] = float((desc_wrong - desc1).norm(dim=1).mean().detach())
    stats["wrong_render_dist"] = float((desc_wrong_render - desc1).norm(dim=1).mean().detach())
    return loss, stats


def wrong_key_readings(
    model: IfaditModel, z_wrong: torch.Tensor, published: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a wrong-key restore shows, as descriptors: (the code restore renders, i.e. F^-1's output projected
    by `plausible_code`; that code rendered with the attributes read from the published surrogate)."""
    z_shown = plausible_code(z_wrong)
    with torch.no_grad():
        z_attr = model.encoder(published)
    return model.destandardise(z_shown), model.descriptor(model.render(z_shown, z_attr))


def far_key_pairs(codes: torch.Tensor, threshold: float) -> float:
    """Share of key pairs whose surrogate codes of one face [F, K, D] (as descriptors) are ≥ `threshold` apart."""
    dist = torch.cdist(codes, codes)
    pairs = ~torch.eye(codes.shape[1], dtype=torch.bool, device=codes.device)
    return float((dist[:, pairs] >= threshold).float().mean())


def phase2_parameters(model: IfaditModel) -> list[nn.Parameter]:
    """Freeze E_attr and the mapper; return what phase 2 learns (the flow and the re-read correction)."""
    model.encoder.requires_grad_(False)
    model.mapper.requires_grad_(False)
    return [*model.flow.trainable_parameters(), *model.correction.parameters()]


def phase2_step(
    state: PhaseState, batch_u8: torch.Tensor, options: Phase2Options, reference: torch.Tensor
) -> dict[str, float]:
    """One Adam step of the flow and the correction on a uint8 NCHW batch."""
    state.model.train()
    x = to_model_range(batch_u8.to(state.model.id_mean.device))
    loss, stats = phase2_losses(state.model, x, options, reference)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if options.clip_grad > 0:
        learning = [p for group in state.optimizer.param_groups for p in group["params"]]
        stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(learning, options.clip_grad))
    state.optimizer.step()
    return stats


def sample_keys(count: int = 3) -> list[bytes]:
    """Fixed, public keys for sample grids (never use them for real data)."""
    return [hashlib.sha256(f"ifadit sample key {i}".encode()).digest() for i in range(count)]


def phase2_grid(model: IfaditModel, faces: torch.Tensor) -> np.ndarray:
    """original | anonymized under 3 keys | restored with key 1 | restored with key 1 one bit off."""
    model.eval()
    keys = sample_keys(3)
    c = conditions([*keys, flip_bit(keys[0], 0)], model.config.flow.condition_size).to(faces.device)
    with torch.no_grad():
        anon = [model.anonymize(faces, c[i]) for i in range(3)]
        restored = model.restore(anon[0], c[0])
        wrong = model.restore(anon[0], c[3])
    return grid_image([faces, *anon, restored, wrong])


def train_phase2(
    options: Phase2Options, control: RunControl | None = None, recognizer: nn.Module | None = None
) -> PhaseState:
    """Train (or resume) phase 2 in `options.out` from a phase-1 model; returns the final state.

    `control`: how the run is driven (`RunControl`); `recognizer`: a stand-in for the torch dlib recognizer.
    """
    with controlled(control) as run:
        resume, device = run.resume, run.device
        model, _, _ = load_ifadit(model_folder(Path(options.encoder)), recognizer=recognizer)
        model = model.to(device)
        crops = load_crops(Path(options.data), model.config.resolution)
        prepare_run(options, resume)
        state = PhaseState(
            model, torch.optim.Adam(phase2_parameters(model), lr=options.lr, betas=(0.9, 0.99))
        )
        if resume:
            load_state(state, Path(options.out))
        else:
            torch.manual_seed(options.seed)
        faces = grid_faces(crops, options.grid, options.seed).to(device)
        reference = model.standardise(real_descriptors(model, crops, options.spread_reference, options.seed))
        run_loop(
            state,
            options,
            run,
            train_step=lambda: phase2_step(state, random_batch(crops, options.batch), options, reference),
            sample_grid=lambda: phase2_grid(model, faces),
            save=lambda: save_state(state, options),
        )
    return state
