"""ID²Face model folders: `model.safetensors` (VAE, attribute encoder, harmonizer, denoiser, identity mean) +
`config.json` (`Id2FaceConfig`, sha256, model id) + optional `model_card.json`.

Stored as every recognizer-built model is (`ifadit.models.recognizer_model`): the recognizer's weights are not
in the folder, its file's sha256 is.
"""

from __future__ import annotations

from ifadit.models.id2face.config import Id2FaceConfig
from ifadit.models.id2face.model import Id2FaceModel
from ifadit.models.recognizer_model import RecognizerModelFormat

ID2FACE_FORMAT: RecognizerModelFormat[Id2FaceConfig, Id2FaceModel] = RecognizerModelFormat(
    kind="id2face-model",
    label="ID²Face",
    default_name="id2face",
    parse=Id2FaceConfig.from_dict,
    build=Id2FaceModel,
)
save_id2face = ID2FACE_FORMAT.save
load_id2face = ID2FACE_FORMAT.load
