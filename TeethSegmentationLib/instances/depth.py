"""The foreground's distance map (mm to the background), exact, worked out component by component.

The values are ``ndi.distance_transform_edt``'s at the foreground voxels, to the bit, from scipy's own feature
transform on each component's box grown by one voxel (a fifth to two fifths less than the whole foreground's
box on most crops; nothing less where the teeth are one component). A voxel's nearest background voxel always
lies in that box: clamping it into the box brings it no farther, and another component's voxel there is never
nearer than some background voxel (every 6-connected path to it, all inside the box the two span, crosses the
background), so the other components can count as background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.instances.regions import index_groups


def foreground_depth(crop: np.ndarray, spacing: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """float32 mm to the background of the voxels ``flat`` of ``crop`` (a mask padded by one voxel)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    components, _count = ndi.label(crop)
    owner = components.reshape(-1)[flat]
    depth = np.empty(len(flat), dtype=np.float32)
    for members in index_groups(owner):
        label = owner[members[0]]
        ijk = np.stack(np.unravel_index(flat[members], crop.shape))
        lo, hi = ijk.min(axis=1) - 1, ijk.max(axis=1) + 2
        depth[members] = _distances(components[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] == label,
                                    ijk - lo[:, None], spacing)
    return depth


def _distances(box: np.ndarray, ijk: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distances of the voxels ``ijk`` of ``box`` to its nearest zero voxel: scipy's feature transform, and the
    distance to the feature by the arithmetic scipy uses."""
    nearest = ndi.distance_transform_edt(box, sampling=spacing, return_distances=False, return_indices=True)
    local = tuple(ijk)
    offset = np.stack([nearest[axis][local] - local[axis] for axis in range(3)]).astype(np.float64)
    offset *= spacing[:, None]
    np.multiply(offset, offset, offset)
    return np.sqrt(np.add.reduce(offset, axis=0)).astype(np.float32)
