"""`ifadit train ...`: the group of the training commands, each in its own module, registered here."""

from __future__ import annotations

import click

from ifadit_cli.train_generator import train_generator
from ifadit_cli.train_id2face import train_id2face_command
from ifadit_cli.train_ifadit import train_encoder, train_flow


@click.group("train")
def train_group() -> None:
    """Train the models of the lab: the StyleGAN2 face generator, then the iFADIT encoder and keyed flow.

    \b
    Example:
      ifadit train generator --data cache/celeba-train-64.npz --resolution 64 --out runs/gen64
    """


train_group.add_command(train_generator)
train_group.add_command(train_encoder)
train_group.add_command(train_flow)
train_group.add_command(train_id2face_command)


def register(group: click.Group) -> None:
    """Add the `train` group to the root command."""
    group.add_command(train_group)
