"""The Backend protocol every anonymizer implements, and the name registry that builds them.

A backend works on canonical face crops only (ifadit.faces.align geometry, `crop_size` px): the pipeline
detects, aligns at the backend's `crop_size`, calls `anonymize_crops`, and pastes the result back with
ifadit.faces.blend. Backends therefore never see whole frames, and all share the same face stage.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Protocol

import numpy as np

from ifadit.errors import BackendUnavailable

# name -> "module:factory"; modules are imported on demand so heavy optional backends cost nothing unused.
BACKENDS: dict[str, str] = {
    "blur": "ifadit.backends.classic:BlurBackend",
    "pixelate": "ifadit.backends.classic:PixelateBackend",
    "mask": "ifadit.backends.classic:MaskBackend",
    "none": "ifadit.backends.overlay:KeepBackend",
    "img": "ifadit.backends.overlay:ImageBackend",
    "ifadit": "ifadit.backends.ifadit:IfaditBackend",
    "id2face": "ifadit.backends.id2face:Id2FaceBackend",
    "reverse-personalization": "ifadit.backends.reverse_personalization:ReversePersonalizationBackend",
}


class Backend(Protocol):
    """Replaces the faces in a batch of canonical crops; reversible backends can undo it with the key."""

    name: str
    reversible: bool  # restore_crops(anonymize_crops(x, k), k) brings the identity back
    crop_size: int  # side of the canonical crops it expects, in pixels
    colour_match: bool  # whether paste-back should match its crops' colours to the frame at the seam

    def anonymize_crops(self, crops: np.ndarray, key: bytes | None) -> np.ndarray:
        """[N, S, S, 3] uint8 -> [N, S, S, 3] uint8 anonymized crops."""
        ...

    def restore_crops(
        self, crops: np.ndarray, key: bytes | None, pasted_at: float | None = None
    ) -> np.ndarray:
        """Undo `anonymize_crops` with the same key; `BackendUnavailable` for non-reversible backends.
        `pasted_at`: the face-ellipse scale paste-back used when these crops were re-cut from a photo (None:
        they are the backend's own output), for backends that model how their output was published."""
        ...


def not_reversible(name: str) -> BackendUnavailable:
    """The error a non-reversible backend raises from `restore_crops`."""
    return BackendUnavailable(
        f"backend {name!r} is not reversible: its output cannot be restored from pixels",
        hint="only images anonymized with --seal-original can be restored exactly",
    )


def backend_factory(name: str) -> Any:
    """The class or function that builds backend `name` (imports its module)."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}") from None
    module_name, _, factory = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"backend {name!r} needs a package that is not installed ({exc.name})",
            hint="install the matching extra, e.g. pip install 'ifadit[diffusion]'",
        ) from exc
    return getattr(module, factory)


def backend_parameters(name: str) -> set[str]:
    """The option names backend `name`'s constructor takes (e.g. model_dir, device)."""
    return set(inspect.signature(backend_factory(name)).parameters)


def is_reversible(name: str) -> bool:
    """Whether backend `name` restores from pixels, read from its class without building it (no model load)."""
    return bool(getattr(backend_factory(name), "reversible", False))


def get_backend(name: str, **options: Any) -> Backend:
    """Build a backend by registry name; `options` go to its constructor (`ValueError` names any it lacks)."""
    unknown = sorted(set(options) - backend_parameters(name))
    if unknown:
        raise ValueError(f"backend {name!r} has no option {', '.join(unknown)}")
    backend: Backend = backend_factory(name)(**options)
    return backend
