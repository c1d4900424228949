"""`ifadit models fetch-faceres`'s converter on a synthetic tfjs package: our MobileNet v1's names, shapes and
graph, zero weights. Everything up to the pinned digest runs (layouts, dequantization, graph checks); the
digest then refuses the foreign weights and nothing is written. No network, no npm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ifadit.errors import ModelError
from ifadit.models.faceres import BLOCKS, FaceRes
from ifadit.models.faceres_convert import MEMBERS, fetch_faceres

SAME = "U0FNRQ=="  # base64 of "SAME", as tfjs stores the padding attribute
MOBILENET_STRIDES = [2] + [s for _, s in BLOCKS for s in (s, 1)]  # conv1, then each block's dw and pw


def tfjs_weights() -> dict[str, np.ndarray]:
    """FaceRes's tensors under their tfjs names and layouts (HWIO, depthwise HWC1), zero-valued."""
    shapes = {name: tuple(t.shape) for name, t in FaceRes().state_dict().items()}
    conv1 = shapes["conv1.weight"]
    weights = {
        "conv1/convolution/merged_input": shape_hwio(conv1),
        "conv1_bn/batchnorm_1/sub": np.zeros(conv1[0], np.float32),
    }
    for i in range(1, len(BLOCKS) + 1):
        dw, pw = shapes[f"layers.conv_dw_{i}.weight"], shapes[f"layers.conv_pw_{i}.weight"]
        weights[f"conv_dw_{i}/depthwise_kernel"] = np.zeros((dw[2], dw[3], dw[0], 1), np.float32)
        weights[f"conv_dw_{i}_bn/batchnorm_1/mul"] = np.ones(dw[0], np.float32)
        weights[f"conv_dw_{i}_bn/batchnorm_1/sub"] = np.zeros(dw[0], np.float32)
        weights[f"conv_pw_{i}/convolution/merged_input"] = shape_hwio(pw)
        weights[f"conv_pw_{i}_bn/batchnorm_1/sub"] = np.zeros(pw[0], np.float32)
    weights["conv1_relu/Cast"] = np.array(6.0, np.float32)
    weights["global_pooling/Mean/reduction_indices"] = np.array([1, 2], np.int32)
    return weights


def shape_hwio(oihw: tuple[int, ...]) -> np.ndarray:
    """Zeros in the tfjs HWIO layout of a torch OIHW shape."""
    return np.zeros((oihw[2], oihw[3], oihw[1], oihw[0]), np.float32)


def write_package(folder: Path, strides: list[int]) -> Path:
    """A package folder holding models/faceres.json (graph + float16 manifest) and models/faceres.bin."""
    weights = tfjs_weights()
    manifest: list[dict[str, Any]] = []
    blob = b""
    for name, value in weights.items():
        entry = {"name": name, "shape": list(value.shape), "dtype": str(value.dtype)}
        if value.dtype == np.float32:
            entry["quantization"] = {"dtype": "float16"}
            blob += value.astype("<f2").tobytes()
        else:
            blob += value.astype("<i4").tobytes()
        manifest.append(entry)
    ops = ["Conv2D"] + [op for _ in BLOCKS for op in ("DepthwiseConv2dNative", "Conv2D")]
    nodes = [
        {"op": op, "attr": {"strides": {"list": {"i": ["1", str(s), str(s), "1"]}}, "padding": {"s": SAME}}}
        for op, s in zip(ops, strides, strict=True)
    ]
    graph = {"modelTopology": {"node": nodes}, "weightsManifest": [{"weights": manifest}]}
    (folder / "models").mkdir(parents=True)
    (folder / MEMBERS[0]).write_text(json.dumps(graph))
    (folder / MEMBERS[1]).write_bytes(blob)
    return folder


def test_a_package_found_in_node_modules_converts_up_to_the_pinned_digest(tmp_path: Path) -> None:
    write_package(tmp_path / "node_modules" / "@vladmandic" / "human-models", MOBILENET_STRIDES)
    (tmp_path / "case").mkdir()
    target = tmp_path / "out" / "faceres.safetensors"
    with pytest.raises(ModelError, match="converted weights have digest .*, expected"):
        fetch_faceres(target, search_from=tmp_path / "case")  # found in a folder above
    assert not target.exists()


def test_a_graph_that_is_not_our_mobilenet_is_refused(tmp_path: Path) -> None:
    package = write_package(tmp_path / "package", [1] + MOBILENET_STRIDES[1:])
    with pytest.raises(ModelError, match="are not MobileNet v1's"):
        fetch_faceres(tmp_path / "faceres.safetensors", package)
