"""Backend options by name: the registry checks them against the constructor, engines pass them through."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ifadit.backends import base
from ifadit.backends.base import backend_parameters, get_backend
from ifadit.backends.classic import BlurBackend
from ifadit.pipeline.ray_engine import backend_for


@dataclass(frozen=True)
class DeviceBlur(BlurBackend):
    """Blur that records the device it was asked for."""

    device: str = "cpu"


def test_options_the_constructor_lacks_are_named() -> None:
    assert {"sigma", "crop_size"} <= backend_parameters("blur")
    assert get_backend("blur", sigma=0.1).sigma == 0.1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="backend 'blur' has no option identity_scale, model_dir"):
        get_backend("blur", model_dir="x", identity_scale=-6.0)


def test_engines_pass_options_and_a_chosen_device_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.BACKENDS, "device-blur", f"{__name__}:DeviceBlur")
    on_gpu = backend_for("device-blur", gpu=True, options=(("sigma", 0.2),))
    assert (on_gpu.sigma, on_gpu.device) == (0.2, "cuda")  # type: ignore[attr-defined]
    chosen = backend_for("device-blur", gpu=True, options=(("device", "cuda:1"),))
    assert chosen.device == "cuda:1"  # type: ignore[attr-defined]
    assert backend_for("device-blur", gpu=False).device == "cpu"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="has no option steps"):
        backend_for("blur", gpu=False, options=(("steps", 4),))
