"""Write a float16 copy of an iFADIT or ID²Face model folder, so a shipped weights file stays under 16 MiB.

    python scripts/float16_copy.py runs/id2face64/model runs/id2face64/model16
    python scripts/float16_copy.py runs/ft4/model runs/ft4/model16 --keep-float32 flow. --keep-float32 correction.

`--keep-float32 PREFIX` keeps the tensors whose names start with PREFIX in float32: the iFADIT flow amplifies
the rounding of its weights (a float16 flow gave other surrogates and other restore rates than the float32
one it was copied from), so a model whose flow and correction were trained on a float16 base ships them in
float32 and the copy computes exactly what was trained.
The copy keeps the name, config and model card; its weights (and so its sha256 and model id) are new, so
measure the copy itself before shipping it (scripts/ship_ifadit.py and scripts/ship_id2face.py check that the
figures belong to the shipped weights). Loading gives float32 parameters holding the rounded values.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from ifadit.models.id2face.checkpoint import ID2FACE_FORMAT, load_id2face, save_id2face
from ifadit.models.ifadit.checkpoint import IFADIT_FORMAT, load_ifadit, save_ifadit
from ifadit.models.model_folder import CONFIG_FILE
from ifadit.models.precision import float16_except, precision_label


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="model folder (model.safetensors + config.json)")
    parser.add_argument("target", type=Path, help="folder to write the float16 copy to (created)")
    parser.add_argument(
        "--keep-float32",
        action="append",
        default=[],
        metavar="PREFIX",
        help="keep tensors whose names start with PREFIX (e.g. 'flow.') in float32; repeatable",
    )
    args = parser.parse_args()

    def copy_precision(model: nn.Module) -> dict[str, torch.dtype]:
        try:
            return float16_except(model, args.keep_float32)
        except ValueError as exc:
            raise SystemExit(f"--keep-float32: {exc}") from None

    config = json.loads((args.source / CONFIG_FILE).read_text())
    card_path = args.source / "model_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    name = str(config["name"])
    if config.get("kind") == IFADIT_FORMAT.kind:
        model, source_id, _ = load_ifadit(args.source)
        dtypes = copy_precision(model)
        copy_id = save_ifadit(model, args.target, name=name, card=card, dtype=dtypes)
    elif config.get("kind") == ID2FACE_FORMAT.kind:
        id2face, source_id, _ = load_id2face(args.source)
        dtypes = copy_precision(id2face)
        copy_id = save_id2face(id2face, args.target, name=name, card=card, dtype=dtypes)
    else:
        raise SystemExit(
            f"{args.source / CONFIG_FILE}: not an iFADIT or ID²Face model (kind {config.get('kind')!r})"
        )
    print(f"{source_id} -> {copy_id} in {args.target} ({precision_label(dtypes)})")


if __name__ == "__main__":
    main()
