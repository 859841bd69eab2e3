"""Widening a 9-class tooth-type network into a 14-class one (primary types 1..5 as classes 9..13).

A mixed-dentition model then starts from a trained adult model instead of from scratch: every layer is
kept, and each new primary class starts as a copy of the permanent class at the same place along the
arch (primary canine <- canine, primary molars <- premolars), its bias lowered so that an adult scan
still reads as permanent teeth until training teaches the difference.
"""

from __future__ import annotations

import copy

import torch

from TeethSegmentationLib.fdi import NUM_CLASSES, NUM_CLASSES_MIXED, PRIMARY_CLASS_OFFSET, PRIMARY_TYPES
from TeethSegmentationLib.nets.unet import UNet

PRIMARY_BIAS_OFFSET = -2.0  # logits: a new primary class starts e^2 ~ 7x less likely than its permanent source


def widen_to_mixed(net: UNet) -> UNet:
    """A 14-class copy of a 9-class types network (``net`` itself is not changed)."""
    if net.config["out_channels"] != NUM_CLASSES:
        raise ValueError(f"only a {NUM_CLASSES}-class network can be widened, not {net.config['out_channels']}")
    wide = copy.deepcopy(net)
    old = net.head
    head = torch.nn.Conv3d(old.in_channels, NUM_CLASSES_MIXED, 1)
    source = list(range(NUM_CLASSES)) + list(PRIMARY_TYPES)  # row of the old head each new row copies
    with torch.no_grad():
        head.weight.copy_(old.weight[source])
        head.bias.copy_(old.bias[source])
        head.bias[PRIMARY_CLASS_OFFSET + 1 :] += PRIMARY_BIAS_OFFSET
    wide.head = head
    wide.config = {**net.config, "out_channels": NUM_CLASSES_MIXED}
    return wide
