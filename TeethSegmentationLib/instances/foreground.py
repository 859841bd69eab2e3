"""The foreground of the teeth probability as compact per-voxel arrays, and per-voxel lookups into the inputs."""

from __future__ import annotations

import functools
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.io.volume import bounding_box


@dataclass
class SparseForeground:
    """The foreground voxels of a padded crop, as compact arrays (one entry per voxel)."""

    shape: tuple[int, int, int]  # padded crop shape
    lo: np.ndarray  # ijk of padded voxel (0, 0, 0) in the input grid
    flat: np.ndarray  # flat indices into the padded crop
    lookup: np.ndarray  # padded-crop-sized int32: compact index or -1
    depth: np.ndarray | Future  # mm to the background; a Future while a worker still computes it

    @property
    def dist(self) -> np.ndarray:
        """float32 mm to the background of the compact voxels (waits for the worker the first time)."""
        if isinstance(self.depth, Future):
            self.depth = self.depth.result()
        return self.depth

    def input_flat(self, shape: tuple[int, ...]) -> np.ndarray:
        """Flat indices of the compact voxels in the input grid."""
        ijk = np.stack(np.unravel_index(self.flat, self.shape)) + self.lo[:, None]
        return np.ravel_multi_index(tuple(ijk), shape)

    def ras_points(self, affine: np.ndarray) -> np.ndarray:
        """(N, 3) RAS millimetres of the compact voxels."""
        ijk = np.stack(np.unravel_index(self.flat, self.shape), axis=1) + self.lo
        return ijk @ affine[:3, :3].T + affine[:3, 3]


def foreground_mask(teeth_prob: np.ndarray, threshold: float, min_voxels: int) -> np.ndarray | None:
    """Probability above ``threshold``, components under ``min_voxels`` dropped; None when nothing is left."""
    mask = teeth_prob > threshold
    if not mask.any():
        return None
    components, count = ndi.label(mask)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    if not keep[1:].any():
        return None
    return keep[components]


def sparse_foreground(mask: np.ndarray, spacing: np.ndarray, pool: Executor | None = None) -> SparseForeground:
    """Crop to the mask's box, pad by one voxel (every voxel then has all 26 neighbours), distance map (in
    ``pool`` when given: it takes a third of the instance step, and scipy lets go of the GIL meanwhile)."""
    lo, hi = bounding_box(mask)
    crop = np.pad(mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], 1)
    flat = np.flatnonzero(crop)
    lookup = np.full(crop.size, -1, dtype=np.int32)
    lookup[flat] = np.arange(len(flat), dtype=np.int32)
    depth = pool.submit(foreground_depth, crop, spacing, flat) if pool else foreground_depth(crop, spacing, flat)
    return SparseForeground(crop.shape, lo - 1, flat, lookup, depth)


def foreground_depth(crop: np.ndarray, spacing: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """float32 mm to the background of the voxels ``flat`` of ``crop``: ``ndi.distance_transform_edt``'s values,
    with its distances worked out only there (its feature transform is the same; the rest of the box, some
    nine tenths of it, is background) by the same arithmetic, so the same to the bit."""
    spacing = np.asarray(spacing, dtype=np.float64)
    nearest = ndi.distance_transform_edt(crop, sampling=spacing, return_distances=False, return_indices=True)
    ijk = np.unravel_index(flat, crop.shape)
    offset = np.stack([nearest[axis].reshape(-1)[flat] - ijk[axis] for axis in range(3)]).astype(np.float64)
    offset *= spacing[:, None]
    np.multiply(offset, offset, offset)
    return np.sqrt(np.add.reduce(offset, axis=0)).astype(np.float32)


def gather_types(type_probs: np.ndarray, sparse: SparseForeground, first: int = 1, stop: int = 9) -> np.ndarray:
    """(N, stop - first) probabilities of classes first..stop-1 (default the types 1..8) of the compact voxels."""
    index = sparse.input_flat(type_probs.shape[1:])
    return np.stack([type_probs[c].reshape(-1)[index] for c in range(first, stop)], axis=1).astype(np.float32)


def smoothed_argmax(
    type_probs: np.ndarray, sparse: SparseForeground, spacing: np.ndarray, smooth_mm: float
) -> np.ndarray:
    """Class 1..8 (1..13 with a 14-class model) per compact voxel after a box filter of about ``smooth_mm``
    (removes the per-voxel speckle); ties go to the lower class.

    ``ndi.uniform_filter(..., mode="nearest")`` over the foreground's box, worked out only in the tiles of
    ``SMOOTH_TILE`` voxels that hold foreground (about half of the box), each with a halo of half the filter:
    the filter keeps a running sum in double precision, exact for these values, so a line's sums do not depend
    on where it starts and each voxel gets the whole box's value to the bit."""
    size = tuple(max(1, int(round(smooth_mm / s)) | 1) for s in spacing)
    halo = np.array(size) // 2
    shape = np.array(sparse.shape) - 2
    origin = sparse.lo + 1  # the box's voxel (0, 0, 0) in the input grid
    inner = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) - 1
    tile = inner // SMOOTH_TILE
    tile_id = np.ravel_multi_index(tuple(tile.T), tuple(-(-shape // SMOOTH_TILE)))
    order = np.argsort(tile_id, kind="stable")
    starts = np.flatnonzero(np.diff(tile_id[order], prepend=-1))
    result = np.zeros(len(sparse.flat), dtype=np.uint8)
    for first, stop in zip(starts, [*starts[1:], len(order)], strict=True):
        members = order[first:stop]
        lo = np.maximum(tile[members[0]] * SMOOTH_TILE - halo, 0)
        hi = np.minimum((tile[members[0]] + 1) * SMOOTH_TILE + halo, shape)
        window = (slice(1, None),) + tuple(slice(int(a), int(b)) for a, b in zip(origin + lo, origin + hi, strict=True))
        block = as_float32(type_probs[window])
        for axis, n in enumerate(size, start=1):
            if n > 1:
                ndi.uniform_filter1d(block, n, axis, output=block, mode="nearest")
        at = tuple((inner[members] - lo).T)
        result[members] = np.argmax(block[(slice(None), *at)], axis=0) + 1
    return result


SMOOTH_TILE = 12  # voxels a side: smaller tiles leave out more empty box, but each costs a few calls


def as_float32(array: np.ndarray) -> np.ndarray:
    """A float32 copy; float16 (the networks' stored probabilities) through a table of all 65536 values, which
    gives numpy's own conversion's bits four times faster."""
    if array.dtype != np.float16:
        return array.astype(np.float32)
    return np.take(_half_to_single(), array.view(np.uint16))


@functools.cache
def _half_to_single() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


def neighbour_offsets(shape: tuple[int, int, int], spacing: np.ndarray, full: bool = True) -> list[tuple[int, float]]:
    """(flat offset, length in mm) of the 26 (or 6) neighbours in a C-ordered array of ``shape``."""
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    result = []
    for d in np.ndindex(3, 3, 3):
        step = np.array(d) - 1
        if not step.any() or (not full and np.abs(step).sum() != 1):
            continue
        result.append((int(step @ strides), float(np.linalg.norm(step * spacing))))
    return result
