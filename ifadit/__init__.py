"""ifadit: reversible, key-managed face anonymization (image and model half)."""

from ifadit.errors import BackendUnavailable, IfaditError, InputError, ManifestError, ModelError, NoFaceError

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "IfaditError",
    "InputError",
    "ManifestError",
    "ModelError",
    "NoFaceError",
    "__version__",
]
