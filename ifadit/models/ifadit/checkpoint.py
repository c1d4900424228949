"""iFADIT model folders: `model.safetensors` (encoder, mapper, flow, correction, identity statistics and the
frozen generator) + `config.json` (`IfaditConfig`, sha256, model id) + optional `model_card.json`.

Stored as every recognizer-built model is (`ifadit.models.recognizer_model`): the recognizer's weights are not
in the folder, its file's sha256 is. The model id covers the generator too, as its weights are in the file.
"""

from __future__ import annotations

from torch import nn

from ifadit.models.ifadit.model import IfaditConfig, IfaditModel
from ifadit.models.recognizer_model import RecognizerModelFormat
from ifadit.models.stylegan2.networks import Generator


def _build(config: IfaditConfig, recognizer: nn.Module) -> IfaditModel:
    return IfaditModel(config, Generator(config.generator), recognizer)


IFADIT_FORMAT: RecognizerModelFormat[IfaditConfig, IfaditModel] = RecognizerModelFormat(
    kind="ifadit-model", label="iFADIT", default_name="ifadit", parse=IfaditConfig.from_dict, build=_build
)
save_ifadit = IFADIT_FORMAT.save
read_ifadit_config = IFADIT_FORMAT.read_config
load_ifadit = IFADIT_FORMAT.load
