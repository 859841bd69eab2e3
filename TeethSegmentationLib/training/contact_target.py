"""The contacts network's target: the tooth voxels near another tooth, from an instance (FDI) label map.

A tooth voxel is a contact when a voxel of another tooth lies within ``radius`` voxels of it (a cube): a band
about 2 x radius + 1 voxels wide across each interface, on both teeth. With the fine grid's 0.5 mm and radius 2
the band is about 2 mm wide, wide enough for a light network to find; the instance step keeps its marker cores
out of it and takes it for a neck between two regions (``instances.foreground.SparseForeground.parting``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

CONTACT_RADIUS_VOXELS = 2


def contact_target(labels: np.ndarray, radius: int = CONTACT_RADIUS_VOXELS) -> np.ndarray:
    """uint8 0/1: the labelled voxels with a voxel of another (non-zero) label within ``radius`` voxels."""
    labels = np.asarray(labels)
    teeth = labels > 0
    if not teeth.any():
        return np.zeros(labels.shape, dtype=np.uint8)
    size = 2 * int(radius) + 1
    widest = np.iinfo(labels.dtype).max if labels.dtype.kind in "ui" else np.inf
    highest = ndi.maximum_filter(labels, size=size, mode="nearest")
    lowest = ndi.minimum_filter(np.where(teeth, labels, widest), size=size, mode="nearest")
    return (teeth & ((highest > labels) | (lowest < labels))).astype(np.uint8)
