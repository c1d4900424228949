"""Official-pickle loader: NVIDIA's layout lands tensor by tensor, and pickles that call code are refused."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ifadit.errors import ModelError
from ifadit.models.stylegan2.legacy import load_official_generator
from ifadit.models.stylegan2.networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

INIT_KWARGS = {
    "z_dim": 16,
    "w_dim": 16,
    "c_dim": 0,
    "img_resolution": 16,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2},
    "synthesis_kwargs": {"channel_base": 256, "channel_max": 32, "num_fp16_res": 2, "conv_clamp": 256},
}
# Source code that NVIDIA's loader would exec(); ours must never run it.
EVIL_SOURCE = "import pathlib\npathlib.Path({marker!r}).write_text('pwned')\n"


class FakeEasyDict(dict):
    """Pickles as dnnlib.util.EasyDict (registered in a fake module by the `nvidia_modules` fixture)."""

    __module__ = "dnnlib.util"
    __qualname__ = "EasyDict"


def fake_reconstruct(meta: dict[str, Any]) -> None:
    raise AssertionError("never called: only its name is pickled")


fake_reconstruct.__module__ = "torch_utils.persistence"
fake_reconstruct.__qualname__ = "_reconstruct_persistent_obj"


class Persistent:
    """Pickles like a @persistent_class network: _reconstruct_persistent_obj(meta)."""

    def __init__(self, class_name: str, state: dict[str, Any], source: str) -> None:
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": source,
            "class_name": class_name,
            "state": state,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        return (fake_reconstruct, (self.meta,))


@pytest.fixture()
def nvidia_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register `torch_utils.persistence` and `dnnlib.util` so pickle writes NVIDIA's global names."""
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = fake_reconstruct  # type: ignore[attr-defined]
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = FakeEasyDict  # type: ignore[attr-defined]
    for name, module in {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": persistence,
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": util,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)


def as_record(module: torch.nn.Module, source: str, init_kwargs: dict[str, Any] | None = None) -> Persistent:
    """A module tree in the shape of NVIDIA's pickled __dict__ (parameters, buffers, submodules, attributes)."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": OrderedDict(
            (k, torch.nn.Parameter(v.detach().clone(), requires_grad=False))
            for k, v in module._parameters.items()
            if v is not None
        ),
        "_buffers": OrderedDict((k, v.clone()) for k, v in module._buffers.items() if v is not None),
        "_non_persistent_buffers_set": set(),
        "_modules": OrderedDict((k, as_record(m, source)) for k, m in module._modules.items()),
        "_backward_hooks": OrderedDict(),
        "weight_gain": np.float64(0.125),  # NVIDIA's gains are numpy scalars
        "_init_args": (),
    }
    if init_kwargs is not None:
        state["_init_kwargs"] = FakeEasyDict(
            {k: FakeEasyDict(v) if isinstance(v, dict) else v for k, v in init_kwargs.items()}
        )
    return Persistent(type(module).__name__, state, source)


def official_pickle(tmp_path: Path, G: Generator) -> tuple[Path, Path]:
    marker = tmp_path / "pwned.txt"
    source = EVIL_SOURCE.format(marker=str(marker))
    D = Discriminator(DiscriminatorConfig(img_resolution=16, channel_base=256, channel_max=32))
    data = {
        "G": as_record(G, source, INIT_KWARGS),
        "D": as_record(D, source, {"c_dim": 0, "img_resolution": 16, "img_channels": 3}),
        "G_ema": as_record(G, source, INIT_KWARGS),
        "augment_pipe": None,
        "training_set_kwargs": FakeEasyDict(path="ffhq.zip", resolution=16, xflip=True),
    }
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path, marker


def test_official_layout_loads_every_tensor_without_running_its_source(
    tmp_path: Path, nvidia_modules: None
) -> None:
    torch.manual_seed(3)
    config = GeneratorConfig(
        img_resolution=16,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        channel_base=256,
        channel_max=32,
        conv_clamp=256,
    )
    G = Generator(config).eval()
    G.mapping.w_avg.normal_()
    path, marker = official_pickle(tmp_path, G)

    loaded = load_official_generator(path)

    assert not marker.exists()  # the embedded module source never ran
    assert loaded.config == config
    ours, theirs = G.state_dict(), loaded.state_dict()
    assert set(ours) == set(theirs)
    for key, tensor in ours.items():
        assert torch.equal(theirs[key], tensor), key
    z = torch.randn(2, 16)
    img = loaded(z, noise_mode="const")
    assert img.shape == (2, 3, 16, 16)
    torch.testing.assert_close(img, G(z, noise_mode="const"))


def test_a_mismatched_tensor_is_reported_by_name(tmp_path: Path, nvidia_modules: None) -> None:
    G = Generator(
        GeneratorConfig(
            img_resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=32
        )
    )
    kwargs = {**INIT_KWARGS, "synthesis_kwargs": {"channel_base": 512, "channel_max": 32}}
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"G_ema": as_record(G, "", kwargs)}, protocol=4))
    with pytest.raises(ModelError, match="wrong shape"):
        load_official_generator(path)


class CallsSystem:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("payload", ["system", "eval", "nested"])
def test_pickles_that_call_code_are_refused(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "hacked.txt"
    evil: Any = {
        "system": CallsSystem(f"touch {marker}"),
        "eval": CallsEval(),
        "nested": {"G_ema": OrderedDict(weight=torch.zeros(2), hook=CallsSystem(f"touch {marker}"))},
    }[payload]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(ModelError, match="refused to load: global (posix|os|builtins|__builtin__)"):
        load_official_generator(path)
    assert not marker.exists()


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        load_official_generator(tmp_path / "absent.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError, match="not a readable network pickle"):
        load_official_generator(junk)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"G": 1}))
    with pytest.raises(ModelError, match="no 'G_ema' network"):
        load_official_generator(plain)
