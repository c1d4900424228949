"""Build an iFADIT model whose keyed flow is the keyed rotation alone, on the phase-1 parts of a trained model.

    python scripts/rotation_model.py pretrained/ifadit-64 runs/rot32/model --rotation-dim 32
    python scripts/rotation_model.py runs/enc64/model runs/rot40c/model --rotation-dim 40 --correction-draws 2 \\
        --reread-refinements 2

The new model keeps the base model's attribute encoder, mapper, identity statistics and generator. Its flow
has no coupling blocks and a `KeyedRotation` of the top `--rotation-dim` principal directions, lengthened
`--rotation-gain` times, fitted on the standardised identity codes of the first `--fit-faces` crops of the
training cache. Its re-read correction is the identity map (the base's was trained for the base's flow), or
with `--correction-draws N` fitted by regression on every training crop rendered under N random keys
(`ifadit.training.correction`: the one trained part, with a held-out split of the faces).
`--reread-refinements K` sets how many render-and-read steps restore spends on the re-read surrogate code
(`IfaditModel.reread`; config only, not part of the model id). The build is deterministic (same base and
faces, same model id). Tensors are stored float16 except the flow's (float32), and the correction's when
fitted, like `ifadit models quantize --keep-float32 flow. [--keep-float32 correction.]`; measure the result with
scripts/eval_ifadit.py before shipping it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm import tqdm

from ifadit.models.ifadit.checkpoint import load_ifadit, save_ifadit
from ifadit.models.ifadit.model import IfaditModel
from ifadit.models.precision import float16_except, precision_label, round_to_precision
from ifadit.training.correction import correction_pairs, fit_correction
from ifadit.training.data import load_crops, to_model_range


def rotation_model(
    base: IfaditModel,
    rotation_dim: int,
    faces: torch.Tensor,
    reread_refinements: int = 0,
    rotation_gain: float = 1.0,
) -> IfaditModel:
    """`base`'s phase-1 parts with a fresh rotation-only flow fitted on the identity codes of `faces`."""
    flow = replace(base.config.flow, blocks=0, rotation_dim=rotation_dim)
    config = replace(base.config, flow=flow, reread_refinements=reread_refinements)
    # Seeds the fresh correction's hidden layers (its output is exactly 0): same build, same model id.
    torch.manual_seed(0)
    model = IfaditModel(config, base.generator, base.recognizer)
    for name in ("encoder", "mapper"):
        getattr(model, name).load_state_dict(getattr(base, name).state_dict())
    model.set_identity_stats(base.id_mean, base.id_std)
    with torch.no_grad():
        codes = torch.cat([model.encode(batch)[0] for batch in faces.split(64)])
    assert model.flow.rotation is not None
    model.flow.rotation.fit(codes, rotation_gain)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path, help="trained iFADIT model folder whose phase-1 parts are kept")
    parser.add_argument("target", type=Path, help="folder to write the new model to (created)")
    parser.add_argument("--rotation-dim", type=int, default=32, help="principal directions the key turns")
    parser.add_argument(
        "--rotation-gain",
        type=float,
        default=1.0,
        help="length factor of the turned coordinates (1: a pure rotation; >1: more distinctive surrogates)",
    )
    parser.add_argument("--train-cache", type=Path, default=Path("cache/celeba-train-64.npz"))
    parser.add_argument(
        "--fit-faces", type=int, default=2000, help="training crops the whitening is fitted on"
    )
    parser.add_argument(
        "--correction-draws",
        type=int,
        default=0,
        help="random keys per training crop for fitting the re-read correction (0: identity map)",
    )
    parser.add_argument("--correction-steps", type=int, default=3000, help="Adam steps of that fit")
    parser.add_argument(
        "--reread-refinements",
        type=int,
        default=0,
        help="render-and-read steps restore spends refining the re-read surrogate code (IfaditModel.reread)",
    )
    args = parser.parse_args()
    base, base_id, _ = load_ifadit(args.base)
    # The new model stores its phase-1 parts in float16: fit the rotation and correction on those values.
    round_to_precision(base, float16_except(base, ["flow."]))
    crops = load_crops(args.train_cache, base.config.generator.img_resolution)
    model = rotation_model(
        base,
        args.rotation_dim,
        to_model_range(crops[: args.fit_faces]),
        args.reread_refinements,
        args.rotation_gain,
    )
    command = (
        f"python scripts/rotation_model.py {args.base} {args.target} --rotation-dim {args.rotation_dim} "
        f"--rotation-gain {args.rotation_gain:g} --fit-faces {args.fit_faces} --reread-refinements {args.reread_refinements}"
    )
    rotation: dict[str, object] = {
        "base_model_id": base_id,
        "rotation_dim": args.rotation_dim,
        "rotation_gain": args.rotation_gain,
        "fit_faces": min(args.fit_faces, len(crops)),
        "train_cache": str(args.train_cache),
        "reread_refinements": args.reread_refinements,
    }
    if args.correction_draws:
        with tqdm(total=len(crops) * args.correction_draws, desc="render pairs", unit="face") as bar:
            pairs = correction_pairs(model, crops, args.correction_draws, base_id, on_batch=bar.update)
        fit = fit_correction(model, pairs, steps=args.correction_steps)
        rotation["correction"] = {
            "draws": args.correction_draws,
            "steps": args.correction_steps,
            **asdict(fit),
        }
        command += f" --correction-draws {args.correction_draws} --correction-steps {args.correction_steps}"
    card = {"rotation": {**rotation, "command": command}}
    dtypes = float16_except(model, ["flow.", "correction."] if args.correction_draws else ["flow."])
    model_id = save_ifadit(model, args.target, name="ifadit", card=card, dtype=dtypes)
    print(f"{base_id} -> {model_id} in {args.target} ({precision_label(dtypes)})")
    print(json.dumps(card["rotation"]))


if __name__ == "__main__":
    main()
