"""Choosing an engine and, on Ray GPU actors, a backend's device (no Ray start needed)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ifadit.backends import base
from ifadit.backends.classic import BlurBackend
from ifadit.pipeline.batch import SerialEngine, engine_for
from ifadit.pipeline.ray_engine import RayEngine, backend_for


@dataclass(frozen=True)
class DeviceBackend(BlurBackend):
    """A blur that records the device it was built for (tests only)."""

    device: str = "cpu"


def test_engine_for_names() -> None:
    assert isinstance(engine_for("serial"), SerialEngine)
    ray = engine_for("ray", address="auto", workers=3, gpus_per_worker=0.5)
    assert ray == RayEngine(address="auto", workers=3, gpus_per_worker=0.5) and ray.name == "ray"
    with pytest.raises(ValueError, match="--engine ray only"):
        engine_for("serial", address="auto")
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        engine_for("spark")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        RayEngine(workers=0)


def test_gpu_actors_put_device_backends_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.BACKENDS, "device-test", f"{__name__}:DeviceBackend")
    assert backend_for("device-test", gpu=True).device == "cuda"  # type: ignore[attr-defined]
    assert backend_for("device-test", gpu=False).device == "cpu"  # type: ignore[attr-defined]
    assert isinstance(backend_for("blur", gpu=True), BlurBackend)  # no device parameter: stays on the CPU
    with pytest.raises(ValueError, match="unknown backend"):
        backend_for("nope", gpu=True)
