"""iFADIT: identity code through a key-conditioned invertible flow, rendered by a StyleGAN2 generator (see `model`)."""

from ifadit.models.ifadit.checkpoint import load_ifadit, read_ifadit_config, save_ifadit
from ifadit.models.ifadit.flow import FlowConfig, KeyedFlow, condition_from_key
from ifadit.models.ifadit.model import IfaditConfig, IfaditModel

__all__ = [
    "FlowConfig",
    "IfaditConfig",
    "IfaditModel",
    "KeyedFlow",
    "condition_from_key",
    "load_ifadit",
    "read_ifadit_config",
    "save_ifadit",
]
