"""A fine-tuned model mixed with its parent in weight space: each weight ``share`` x the fine-tuned value plus
``1 - share`` x the parent's (WiSE-FT: Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022).

Fine-tuning on one or two scans moves the weights towards those scans; part of that move fits them, part is noise
that costs other scans. Half-way between parent and child kept what fine-tuning gained and lost less elsewhere
(``scripts/benchmark_finetune.py`` on its dev seeds, README). Both models share one architecture and, with the
batch-norm layers frozen during fine-tuning (the default), one set of normalisation statistics, so the mix is a
model of the same kind; with ``--train-norm`` the running statistics are mixed like the weights. Integer buffers
(batch-norm step counters) are the fine-tuned model's. The parent may sit on another device (segmenting the user's
cases moved it there): each of its tensors goes to the fine-tuned one's device and dtype first.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from TeethSegmentationLib.nets.model_file import TeethModel


def mixed_state(
    parent: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], share: float
) -> dict[str, torch.Tensor]:
    """``share`` x ``tuned`` + (1 - ``share``) x ``parent``, tensor by tensor; both must hold the same tensors."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"The fine-tuned share of the weights must be between 0 and 1, not {share}.")
    if parent.keys() != tuned.keys():
        raise ValueError("The fine-tuned model and its parent do not have the same layers.")
    mixed = {}
    for name, value in tuned.items():
        before = parent[name]
        if before.shape != value.shape:
            raise ValueError(f"Layer {name} has shape {tuple(value.shape)}, its parent's {tuple(before.shape)}.")
        if value.is_floating_point():
            mixed[name] = torch.lerp(before.to(device=value.device, dtype=value.dtype), value, share)
        else:
            mixed[name] = value.clone()
    return mixed


def mix_with_parent(tuned: TeethModel, parent: TeethModel, share: float) -> TeethModel:
    """``tuned`` with each stage's weights mixed with ``parent``'s (in place; returned). A stage the parent lacks
    keeps its fine-tuned weights."""
    for stage, net in tuned.nets.items():
        before = parent.nets.get(stage)
        if before is not None:
            net.load_state_dict(mixed_state(before.state_dict(), net.state_dict(), share))
    return tuned
