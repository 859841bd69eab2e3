"""The contacts network's start: a copy of the tooth-type network with a one-channel head.

The contacts network (stage 2b) marks where two teeth touch: the interface between neighbouring teeth, a learned
cue for the instance step (issue 12: touching crowns split at their contact). It sees what stage 2 sees, on the
same grid, so it starts from stage 2's trained layers, which already tell tooth from tooth by type; only its head
is new. The head starts near "no contact" (sigmoid(-3) ~ 0.05): contacts are a few percent of the tooth voxels.
"""

from __future__ import annotations

import copy

import torch

from TeethSegmentationLib.nets.unet import UNet

CONTACT_BIAS = -3.0


def contacts_from_types(types_net: UNet) -> UNet:
    """A contacts network (one logit channel) starting from a copy of ``types_net`` (not changed)."""
    net = copy.deepcopy(types_net)
    old = types_net.head
    head = torch.nn.Conv3d(old.in_channels, 1, 1)
    with torch.no_grad():
        head.weight.mul_(0.1)
        head.bias.fill_(CONTACT_BIAS)
    net.head = head
    net.config = {**types_net.config, "out_channels": 1}
    return net
