"""The contacts network: a light branch on the tooth-type network's trunk that marks where two teeth touch.

The interface between neighbouring teeth is a learned cue for the instance step (issue 12: touching crowns split
at their contact). The branch is a copy of the types network's last up block (the full-resolution decoder level)
with a one-channel head. It reads the trunk's features (the level below, upsampled, and the full-resolution skip),
so at inference it runs in the same pass as stage 2 (:class:`TypesAndContacts`) for about a quarter of stage 2's
arithmetic, and training it leaves stage 2 as it was: the trunk is frozen, and not part of the branch's weights.

A branch is attached to its trunk (:meth:`ContactsBranch.attach`): the model's types network, which the model file
loads beside it. The head starts near "no contact" (sigmoid(-3) ~ 0.05): contacts are a few percent of the teeth.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from TeethSegmentationLib.nets.unet import UNet, UpBlock

CONTACT_BIAS = -3.0
BRANCH_KIND = "types_branch"


class ContactsBranch(nn.Module):
    """The last up block and a one-logit head, on a (hidden) types trunk: ``forward(x)`` runs the frozen trunk in
    eval mode, then the branch. Its parameters and state dict are the branch's only."""

    def __init__(self, start_filters: int) -> None:
        super().__init__()
        self.config = {"kind": BRANCH_KIND, "start_filters": start_filters, "out_channels": 1}
        self.up = UpBlock(2 * start_filters, start_filters)
        self.head = nn.Conv3d(start_filters, 1, 1)
        object.__setattr__(self, "_trunk", None)  # not a submodule: not trained, not saved with the branch

    @property
    def trunk(self) -> UNet:
        if self._trunk is None:
            raise ValueError("the contacts branch is not attached to a types network")
        return self._trunk

    @property
    def divisor(self) -> int:
        return self.trunk.divisor

    def attach(self, types_net: UNet) -> ContactsBranch:
        if types_net.config["start_filters"] != self.config["start_filters"] or types_net.config["n_blocks"] < 2:
            raise ValueError("the contacts branch does not fit this types network")
        object.__setattr__(self, "_trunk", types_net)
        return self

    def branch(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(deep, skip))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trunk = self.trunk
        was_training = trunk.training
        trunk.eval()
        try:
            with torch.no_grad():
                deep, skip = trunk.last_up_inputs(x)
        finally:
            trunk.train(was_training)
        return self.branch(deep, skip)

    def _apply(self, fn: Any, recurse: bool = True) -> ContactsBranch:
        # Moving or re-laying out the branch moves its trunk too (the same device and memory format).
        if self._trunk is not None:
            self._trunk._apply(fn, recurse)
        return super()._apply(fn, recurse)


class TypesAndContacts(nn.Module):
    """Stage 2 and its contacts branch in one pass: the types logits, then the contact logit (C + 1 channels)."""

    def __init__(self, types_net: UNet, branch: ContactsBranch) -> None:
        super().__init__()
        self.types_net, self.contacts = types_net, branch
        self.config = {**types_net.config, "out_channels": types_net.config["out_channels"] + 1}
        self.divisor = types_net.divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep, skip = self.types_net.last_up_inputs(x)
        return torch.cat([self.types_net.last_up_and_head(deep, skip), self.contacts.branch(deep, skip)], dim=1)


def contacts_from_types(types_net: UNet) -> ContactsBranch:
    """A contacts branch attached to ``types_net`` (not changed), starting from a copy of its last up block."""
    branch = ContactsBranch(types_net.config["start_filters"]).attach(types_net)
    branch.up = copy.deepcopy(types_net.up[-1])
    with torch.no_grad():
        branch.head.weight.copy_(0.1 * types_net.head.weight[1:].mean(dim=0, keepdim=True))
        branch.head.bias.fill_(CONTACT_BIAS)
    return branch


def build_branch(config: dict[str, Any]) -> ContactsBranch:
    """An unattached branch from its ``config`` (a model file's contacts.arch)."""
    if config.get("kind") != BRANCH_KIND or config.get("out_channels") != 1:
        raise ValueError(f"not a contacts branch: {config}")
    return ContactsBranch(int(config["start_filters"]))
