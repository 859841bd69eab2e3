"""Validation during training: held-out cases through the same sliding-window predictor as ``segment``.

As nnU-Net validates through its real predictor: the Dice that picks the best weights is measured the
way the model will be used (Gaussian-weighted windows, the same window size, the same activations).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

from TeethSegmentationLib.inference.stages import predict_contacts, predict_teeth, predict_types
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.metrics import dice_from_counts, overlap_counts
from TeethSegmentationLib.nets.model_file import TeethModel
from TeethSegmentationLib.training.dataset import PreparedCase, stage_target


def predict_case_labels(
    model: TeethModel, case: PreparedCase, stage: str, region: tuple[slice, ...], device: torch.device
) -> np.ndarray:
    """uint8 hard labels of ``region`` of a prepared case: teeth 0/1, classes 0..8 (``stage`` types) or
    contacts 0/1."""
    image = Volume(case.image[region].astype(np.float32), np.eye(4))
    if stage == "teeth":
        return (predict_teeth(model, image, device).array > 0.5).astype(np.uint8)
    teeth = None
    if model.types_input == "image+teeth":  # stands in for stage 1's probability: the smoothed true teeth
        teeth = ndimage.gaussian_filter((case.labels[region] > 0).astype(np.float32), 1.0)
    if stage == "contacts":
        return (predict_contacts(model, image, teeth, device) > 0.5).astype(np.uint8)
    return predict_types(model, image, teeth, device).argmax(axis=0).astype(np.uint8)


def validation_dice(
    model: TeethModel, cases: list[PreparedCase], stage: str, device: torch.device, margin: int | None = None
) -> dict[str, float]:
    """Dice per class over the held-out voxels ("teeth" for the teeth stage, "1".."8" for types, "contacts")
    plus "mean"; all voxels, or those of the teeth box grown by ``margin``. Puts the network back in the mode it
    was in."""
    net = getattr(model, f"{stage}_net")
    binary = stage in ("teeth", "contacts")
    classes = [1] if binary else list(range(1, model.num_classes))
    inter, total = np.zeros(len(classes)), np.zeros(len(classes))
    was_training = net.training
    try:
        for case in cases:
            region = tuple(slice(int(a), int(b)) for a, b in zip(*case.region(margin), strict=True))
            pred = predict_case_labels(model, case, stage, region, device)
            target = stage_target(case.labels[region], case.kind, stage, model.num_classes)
            counts = overlap_counts(pred, target, classes)
            inter, total = inter + counts[0], total + counts[1]
    finally:
        net.train(was_training)
    names = [stage] if binary else [str(c) for c in classes]
    scores = dict(zip(names, dice_from_counts(inter, total).tolist(), strict=True))
    finite = [v for v in scores.values() if not math.isnan(v)]
    scores["mean"] = float(np.mean(finite)) if finite else float("nan")
    return scores

