"""Probe (issue 28): can inversion by optimisation lift iFADIT's reconstruction and restore?

On evaluation crops of `reid/dlib-johns` (never used in training), aligned at the model's crop size as
`ifadit eval` aligns them (`ifadit.eval.reid.load_reid_set`), this measures on one CPU thread:

a. encoder reconstruction G(M(z_id, E_attr(x))): PSNR / SSIM against the crop, and the share that faceres and
   dlib (C++) verify as the crop's person at the project's thresholds;
b. optimised reconstruction: Adam on latents, from the encoders' codes, for each of `--steps`, with the same
   figures and seconds per face. Variants (`--variants`):
   - `codes`: z_id and z_attr both free (the flow's input z_id may drift from the recognizer's reading);
   - `attr`: z_id fixed at the recognizer's code (the flow's input stays an identity code), z_attr free;
   - `codes-id`: as `codes`, plus a torch-dlib descriptor term (the training recognizer; faceres stays
     out of every loss) as the perceptual proxy;
   - `wplus`: the W+ code itself free: the generator's ceiling at this size, not an anonymizer (no identity
     code is left to turn);
c. for each code variant, the round trip under a key (`evaluation_keys`, `backend.condition`: HKDF of the key
   material under the model id): surrogate y = G(M(F_k(z*), a*)) published as uint8; restore from y alone by
   (i) the shipped restore (`IfaditModel.restore`: corrected re-read + refinements, E_attr), and (ii) the
   issue's proposal: from that reading, Adam on both codes to fit y, then F_k^-1 (`plausible_code`) and G.
   Reported: restore vs crop (PSNR / SSIM / faceres / dlib), y vs crop (anonymity: want ~0), restore under an
   unrelated key vs crop (want ~0), and the error of the recovered surrogate code against F_k(z*).

Writes a sheet (original | encoder recon | optimised recon | surrogate | restore, optionally more columns) of
the first `--sheet-faces` faces and, with `--json`, every figure.

Example:
    python scripts/inversion_probe.py --data ../shared/data/reid/dlib-johns --faces 24 --steps 100,300 \\
        --sheet /tmp/inv-probe-sheet.png --json runs/inversion-probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ifadit.backends.ifadit import IfaditBackend
from ifadit.eval.recovery import psnr, ssim
from ifadit.eval.reid import load_reid_set
from ifadit.eval.reversible import evaluation_keys
from ifadit.faces.distance import paired_distances
from ifadit.faces.recognize import Recognizer, crops_to_img
from ifadit.faces.registry import get_recognizer
from ifadit.models.ifadit.model import RENDER_NOISE_MODE, IfaditModel, plausible_code
from ifadit.training.runner import to_uint8

CODE_VARIANTS = ("codes", "attr", "codes-id")
ALL_VARIANTS = (*CODE_VARIANTS, "wplus")


@dataclass
class Fit:
    """Latents after a number of Adam steps, and the wall seconds spent to reach them."""

    z_id: torch.Tensor | None  # [N, id_dim] (None for the W+ variant)
    z_attr: torch.Tensor | None  # [N, attr_dim]
    ws: torch.Tensor | None  # [N, num_ws, w_dim] (W+ variant only)
    seconds: float
    mse: float


class Scorer:
    """PSNR / SSIM / faceres / dlib of uint8 crops against the originals (embedded once)."""

    def __init__(self, original: np.ndarray, recognizers: list[Recognizer]) -> None:
        self.original = original
        self.recognizers = recognizers
        self.reference = {r.name: r.embed(original) for r in recognizers}

    def matches(self, crops: np.ndarray) -> dict[str, float]:
        out = {}
        for r in self.recognizers:
            d = np.asarray(paired_distances(r.embed(crops), self.reference[r.name], r.metric))
            out[r.name] = float(np.mean(d < r.threshold))
        return out

    def __call__(self, crops: np.ndarray) -> dict[str, float]:
        return {
            "psnr": float(np.mean([psnr(a, b) for a, b in zip(self.original, crops, strict=True)])),
            "ssim": float(np.mean([ssim(a, b) for a, b in zip(self.original, crops, strict=True)])),
            **self.matches(crops),
        }


def fit_codes(
    model: IfaditModel,
    target: torch.Tensor,
    z_id: torch.Tensor,
    z_attr: torch.Tensor,
    steps: list[int],
    lr: float,
    free_id: bool,
    id_weight: float = 0.0,
) -> dict[int, Fit]:
    """Adam on (z_id if `free_id`, z_attr) to minimise the pixel MSE of their render to `target` (plus
    `id_weight` times the squared torch-dlib descriptor distance); a snapshot at every count in `steps`."""
    z_id = z_id.clone().requires_grad_(free_id)
    z_attr = z_attr.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z_attr, z_id] if free_id else [z_attr], lr=lr)
    with torch.no_grad():
        target_desc = model.descriptor(target) if id_weight else None
    snapshots: dict[int, Fit] = {}
    start, mse = time.monotonic(), float("nan")
    for step in range(1, max(steps) + 1):
        render = model.render(z_id, z_attr)
        pixel = (render - target).square().mean()
        loss = pixel
        if id_weight:
            loss = loss + id_weight * (model.descriptor(render) - target_desc).square().sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mse = float(pixel.detach())
        if step in steps:
            snapshots[step] = Fit(
                z_id.detach().clone(), z_attr.detach().clone(), None, time.monotonic() - start, mse
            )
    return snapshots


def fit_wplus(
    model: IfaditModel, target: torch.Tensor, ws: torch.Tensor, steps: list[int], lr: float
) -> dict[int, Fit]:
    """Adam on the W+ code itself (the generator's ceiling)."""
    ws = ws.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([ws], lr=lr)
    snapshots: dict[int, Fit] = {}
    start = time.monotonic()
    for step in range(1, max(steps) + 1):
        loss = (model.generator.synthesis(ws, noise_mode=RENDER_NOISE_MODE) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in steps:
            snapshots[step] = Fit(
                None, None, ws.detach().clone(), time.monotonic() - start, float(loss.detach())
            )
    return snapshots


def wplus_roundtrip(
    model: IfaditModel,
    ws_fit: torch.Tensor,
    z_id0: torch.Tensor,
    z_attr0: torch.Tensor,
    c: torch.Tensor,
    c_other: torch.Tensor,
    steps: list[int],
    args: argparse.Namespace,
    score: Scorer,
    figures: dict[str, dict[str, object]],
) -> list[tuple[str, np.ndarray]]:
    """(c) for the W+ fit, with the identity swapped inside W+: y = G(w* - M(z, a) + M(F_k(z), a)) for the
    encoders' codes (z, a); restore fits W+ to y, reads (z', a') from y and renders
    G(w_y - M(z', a') + M(F_k^-1(z'), a')). The residual w* - M(z, a) keeps whatever the mapper does not
    explain, identity detail included: the anonymity figure says how much of it survives."""
    n = len(ws_fit)
    with torch.no_grad():
        ws_sur = ws_fit - model.mapped(z_id0, z_attr0) + model.mapped(model.surrogate(z_id0, c), z_attr0)
        y = to_uint8(model.generator.synthesis(ws_sur, noise_mode=RENDER_NOISE_MODE))
        y_img = crops_to_img(y)
        z_read, a_read = model.reread(y_img)
        ws_read = model.mapped(z_read, a_read)
    figures["surrogate wplus-swap"] = score(y)
    print(row("c. surrogate wplus-swap (anonymity)", figures["surrogate wplus-swap"]))
    cols: list[tuple[str, np.ndarray]] = [("surrogate", y)]
    for kr, refit in fit_wplus(model, y_img, ws_read, steps, args.lr_wplus).items():
        assert refit.ws is not None
        with torch.no_grad():

            def back_with(cond: torch.Tensor, fitted: torch.Tensor = refit.ws) -> np.ndarray:
                turned = model.mapped(plausible_code(model.flow.inverse(z_read, cond)), a_read)
                return to_uint8(
                    model.generator.synthesis(fitted - ws_read + turned, noise_mode=RENDER_NOISE_MODE)
                )

            back, wrong = back_with(c), back_with(c_other)
            # the same W+ fit of y with the exact codes instead of the re-read: what a perfect reading would give
            oracle = to_uint8(model.generator.synthesis(
                refit.ws - ws_sur + ws_fit, noise_mode=RENDER_NOISE_MODE
            ))  # fmt: skip
        label = f"restore-opt wplus-swap r{kr}"
        figures[label] = {
            **score(back),
            "wrong_key": score.matches(wrong),
            "s_per_face": refit.seconds / n,
            "mse_to_y": refit.mse,
            "ws_error": float((refit.ws - ws_sur).norm(dim=2).mean()),
        }
        print(row(
            f"   restore opt wplus-swap r{kr}", figures[label],
            f"{refit.seconds / n:5.2f} s/face  mse to y {refit.mse:.4f}  wrong-key "
            + " ".join(f"{r} {v:.3f}" for r, v in figures[label]["wrong_key"].items()),
        ))  # fmt: skip
        figures[f"restore-oracle-codes wplus-swap r{kr}"] = score(oracle)
        print(
            row(
                f"   (exact codes instead of re-read) r{kr}",
                figures[f"restore-oracle-codes wplus-swap r{kr}"],
            )
        )
        if kr == steps[-1]:
            cols.append((f"restore r{kr}", back))
    return cols


def render_fit(model: IfaditModel, fit: Fit) -> torch.Tensor:
    with torch.no_grad():
        if fit.ws is not None:
            return model.generator.synthesis(fit.ws, noise_mode=RENDER_NOISE_MODE)
        assert fit.z_id is not None and fit.z_attr is not None
        return model.render(fit.z_id, fit.z_attr)


def sheet(columns: list[tuple[str, np.ndarray]], path: Path, faces: int, scale: int = 2) -> None:
    """Rows = faces, columns = labelled uint8 crop arrays [N,S,S,3], upscaled `scale` times (nearest)."""
    side = columns[0][1].shape[1] * scale
    label_h = 14
    canvas = Image.new("RGB", (side * len(columns), label_h + side * faces), "white")
    draw = ImageDraw.Draw(canvas)
    for j, (label, crops) in enumerate(columns):
        draw.text((j * side + 2, 1), label[: side // 6], fill="black")
        for i in range(faces):
            tile = Image.fromarray(crops[i]).resize((side, side), Image.NEAREST)
            canvas.paste(tile, (j * side, label_h + i * side))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def row(label: str, figures: dict[str, float], extra: str = "") -> str:
    return (
        f"{label:<34} {figures['psnr']:6.2f} {figures['ssim']:6.3f} {figures['faceres']:8.3f} "
        f"{figures['dlib']:6.3f}  {extra}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/reid/dlib-johns"))
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    parser.add_argument("--faces", type=int, default=24, help="crops, spread evenly over the set")
    parser.add_argument("--steps", default="100,300", help="Adam step counts to report (one run, snapshots)")
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS), help=f"of {', '.join(ALL_VARIANTS)}")
    parser.add_argument(
        "--roundtrip", default="codes,attr,wplus", help="code variants whose last snapshot goes through (c)"
    )
    parser.add_argument("--lr", type=float, default=0.05, help="Adam rate on the codes (standardised units)")
    parser.add_argument("--lr-wplus", type=float, default=0.01, help="Adam rate on W+")
    parser.add_argument("--id-weight", type=float, default=0.05, help="torch-dlib term weight (codes-id)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation key set")
    parser.add_argument("--sheet", type=Path, default=Path("/tmp/inv-probe-sheet.png"))
    parser.add_argument("--sheet-variant", default="codes")
    parser.add_argument("--sheet-faces", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


@dataclass
class Probe:
    """What every step of the probe shares: the model, the crops, the judges, the keys, the figures."""

    args: argparse.Namespace
    model: Any
    img: torch.Tensor
    score: Scorer
    c: torch.Tensor
    c_other: torch.Tensor
    n: int
    steps: list[int]
    figures: dict[str, Any]
    sheet_cols: list[tuple[str, np.ndarray]]


def encoder_and_shipped(probe: Probe) -> tuple[torch.Tensor, torch.Tensor]:
    """a. the encoders' reconstruction, and the shipped round trip for reference; the encoders' codes."""
    model, img, score, figures = probe.model, probe.img, probe.score, probe.figures
    with torch.no_grad():
        z_id0, z_attr0 = model.encode(img)
        encoder_recon = to_uint8(model.render(z_id0, z_attr0))
        shipped_y = to_uint8(model.anonymize(img, probe.c))
        shipped_restore = to_uint8(model.restore(crops_to_img(shipped_y), probe.c))
    figures["encoder_recon"] = score(encoder_recon)
    print(row("a. encoder recon", figures["encoder_recon"]))
    figures["shipped_surrogate"] = score(shipped_y)
    figures["shipped_restore"] = score(shipped_restore)
    print(row("   shipped surrogate (anonymity)", figures["shipped_surrogate"]))
    print(row("   shipped restore", figures["shipped_restore"]))
    probe.sheet_cols.append(("encoder", encoder_recon))
    return z_id0, z_attr0


def codes_roundtrip(probe: Probe, fit: Fit, name: str, variant: str) -> None:
    """c. the round trip from fitted codes under the key: surrogate, shipped restore, optimised restore."""
    model, score, figures, c, args, n = probe.model, probe.score, probe.figures, probe.c, probe.args, probe.n
    assert fit.z_id is not None and fit.z_attr is not None
    with torch.no_grad():
        exact_sur = model.surrogate(fit.z_id, c)
        y = to_uint8(model.render(exact_sur, fit.z_attr))
        y_img = crops_to_img(y)
        restored = to_uint8(model.restore(y_img, c))
        z_read, a_read = model.reread(y_img)
    figures[f"surrogate {name}"] = score(y)
    figures[f"restore-shipped {name}"] = score(restored)
    print(row(f"c. surrogate {name} (anonymity)", figures[f"surrogate {name}"]))
    read_err = float((z_read - exact_sur).norm(dim=1).mean())
    print(row(f"   restore shipped {name}", figures[f"restore-shipped {name}"], f"code err {read_err:.2f}"))
    for kr, refit in fit_codes(model, y_img, z_read, a_read, probe.steps, args.lr, free_id=True).items():
        assert refit.z_id is not None and refit.z_attr is not None
        with torch.no_grad():
            back = to_uint8(model.render(plausible_code(model.flow.inverse(refit.z_id, c)), refit.z_attr))
            wrong = to_uint8(
                model.render(plausible_code(model.flow.inverse(refit.z_id, probe.c_other)), refit.z_attr)
            )
        err = float((refit.z_id - exact_sur).norm(dim=1).mean())
        label = f"restore-opt {name} r{kr}"
        figures[label] = {
            **score(back),
            "wrong_key": score.matches(wrong),
            "s_per_face": refit.seconds / n,
            "mse_to_y": refit.mse,
            "surrogate_code_error": err,
        }
        print(row(
            f"   restore opt {name} r{kr}", figures[label],
            f"{refit.seconds / n:5.2f} s/face  code err {err:.2f}  wrong-key "
            + " ".join(f"{r} {v:.3f}" for r, v in figures[label]["wrong_key"].items()),
        ))  # fmt: skip
        if variant == args.sheet_variant and kr == probe.steps[-1]:
            probe.sheet_cols += [("surrogate", y), (f"restore r{kr}", back)]
    if variant == args.sheet_variant:
        probe.sheet_cols.append(("shipped restore", restored))


def fits_of(probe: Probe, variant: str, z_id0: torch.Tensor, z_attr0: torch.Tensor) -> dict[int, Fit]:
    """b. the optimised fits of one variant, by step count."""
    args = probe.args
    if variant == "wplus":
        with torch.no_grad():
            ws0 = probe.model.mapped(z_id0, z_attr0)
        return fit_wplus(probe.model, probe.img, ws0, probe.steps, args.lr_wplus)
    return fit_codes(
        probe.model, probe.img, z_id0, z_attr0, probe.steps, args.lr, free_id=variant != "attr",
        id_weight=args.id_weight if variant == "codes-id" else 0.0,
    )  # fmt: skip


def report_fit(probe: Probe, fit: Fit, name: str, z_id0: torch.Tensor) -> np.ndarray:
    """b. one fit's reconstruction scored and printed; the reconstruction."""
    recon = to_uint8(render_fit(probe.model, fit))
    n = probe.n
    probe.figures[f"recon {name}"] = {**probe.score(recon), "s_per_face": fit.seconds / n, "mse": fit.mse}
    extra = f"{fit.seconds / n:5.2f} s/face  mse {fit.mse:.4f}"
    if fit.z_id is not None:
        drift = float((fit.z_id - z_id0).norm(dim=1).mean())
        probe.figures[f"recon {name}"]["z_id_drift"] = drift
        extra += f"  |z_id-z_id0| {drift:.2f}"
    print(row(f"b. recon {name}", probe.figures[f"recon {name}"], extra))
    return recon


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    backend = IfaditBackend(model_dir=args.model)
    faces = load_reid_set(args.data, size=backend.crop_size, limit=args.faces)
    key, _, other_key, _ = evaluation_keys(args.seed)
    probe = Probe(
        args=args,
        model=backend.model.eval(),
        img=crops_to_img(faces.crops),
        score=Scorer(faces.crops, [get_recognizer("faceres"), get_recognizer("dlib")]),
        c=backend.condition(key),
        c_other=backend.condition(other_key),
        n=len(faces.crops),
        steps=sorted(int(s) for s in args.steps.split(",")),
        figures={},
        sheet_cols=[("original", faces.crops)],
    )
    print(
        f"model {backend.model_id}; {probe.n} crops of {args.data.name} at {backend.crop_size} px; 1 thread"
    )
    print(f"{'':<34} {'PSNR':>6} {'SSIM':>6} {'faceres':>8} {'dlib':>6}")
    z_id0, z_attr0 = encoder_and_shipped(probe)
    roundtrips, last = args.roundtrip.split(","), probe.steps[-1]
    for variant in args.variants.split(","):
        for k, fit in fits_of(probe, variant, z_id0, z_attr0).items():
            name = f"{variant}@{k}"
            recon = report_fit(probe, fit, name, z_id0)
            if variant == args.sheet_variant and k == last:
                probe.sheet_cols.append((name, recon))
            if k != last or variant not in roundtrips:
                continue
            if variant == "wplus":
                assert fit.ws is not None
                cols = wplus_roundtrip(
                    probe.model, fit.ws, z_id0, z_attr0, probe.c, probe.c_other, probe.steps, args,
                    probe.score, probe.figures,
                )  # fmt: skip
                probe.sheet_cols += cols if variant == args.sheet_variant else []
            else:
                codes_roundtrip(probe, fit, name, variant)
    sheet(probe.sheet_cols, args.sheet, min(args.sheet_faces, probe.n))
    print(f"sheet: {args.sheet} ({', '.join(label for label, _ in probe.sheet_cols)})")
    if args.json is not None:
        results = {
            "model_id": backend.model_id,
            "faces": probe.n,
            "steps": probe.steps,
            "figures": probe.figures,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
