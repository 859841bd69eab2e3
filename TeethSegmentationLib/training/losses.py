"""Training losses (the Dice metric on label maps is ``metrics.dice``).

Stage 1 (binary teeth, one logit channel): soft Dice on the sigmoid. Stage 2 (9 classes): soft Dice
on the softmax, averaged over the classes present in the batch, plus a binary soft Dice of teeth vs
background (1 - p_background). Either can add cross-entropy.
All functions are pure: tensors in, a scalar tensor (or numbers) out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1.0


def soft_dice_binary(logits: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """1 - soft Dice of ``sigmoid(logits)`` [B, 1, ...] against a 0/1 ``target`` [B, ...], over the whole batch."""
    prob = torch.sigmoid(logits.float()).flatten()
    truth = target.float().flatten()
    intersection = (prob * truth).sum()
    return 1.0 - (2.0 * intersection + smooth) / (prob.sum() + truth.sum() + smooth)


def soft_dice_multiclass(
    logits: torch.Tensor, target: torch.Tensor, include_background: bool = False, smooth: float = SMOOTH
) -> torch.Tensor:
    """1 - soft Dice of ``softmax(logits)`` [B, C, ...] against class indices [B, ...].

    The mean runs over the classes present in ``target`` (background only when asked, or when the
    batch holds nothing else), so a batch without incisors does not reward predicting none.
    """
    batch, num_classes = logits.shape[:2]
    prob = torch.softmax(logits.float(), dim=1).reshape(batch, num_classes, -1)
    classes = target.long().reshape(batch, 1, -1)
    # Each class's intersection sums the probability of the true class over its voxels: no one-hot array
    # (14 x the patch), 4x faster with its gradient.
    flat = classes.reshape(-1)
    intersection = torch.zeros(num_classes, dtype=prob.dtype, device=prob.device)
    intersection.index_add_(0, flat, prob.gather(1, classes).reshape(-1))
    counts = torch.bincount(flat, minlength=num_classes).to(prob.dtype)
    dice = (2.0 * intersection + smooth) / (prob.sum(dim=(0, 2)) + counts + smooth)
    present = counts > 0
    if not include_background:
        present[0] = False
    if not bool(present.any()):
        present[0] = True
    return 1.0 - dice[present].mean()


def stage_loss(logits: torch.Tensor, target: torch.Tensor, with_ce: bool = False) -> torch.Tensor:
    """The training loss of either stage: binary when ``logits`` has one channel, categorical otherwise."""
    if logits.shape[1] == 1:
        loss = soft_dice_binary(logits, target)
        if with_ce:
            loss = loss + F.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float())
        return loss
    # Teeth vs background on its own, so type mix-ups do not cost the fine foreground its shape:
    # logit(p_teeth) = logsumexp(tooth logits) - background logit.
    teeth_logit = torch.logsumexp(logits[:, 1:].float(), dim=1, keepdim=True) - logits[:, :1].float()
    loss = soft_dice_multiclass(logits, target) + soft_dice_binary(teeth_logit, target > 0)
    if with_ce:
        loss = loss + F.cross_entropy(logits.float(), target.long())
    return loss
