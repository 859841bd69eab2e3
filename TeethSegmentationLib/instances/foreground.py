"""The foreground of the teeth probability as compact per-voxel arrays, and per-voxel lookups into the inputs."""

from __future__ import annotations

import functools
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.instances.depth import foreground_depth
from TeethSegmentationLib.instances.regions import index_groups
from TeethSegmentationLib.io.volume import bounding_box


@dataclass
class SparseForeground:
    """The foreground voxels of a padded crop, as compact arrays (one entry per voxel)."""

    shape: tuple[int, int, int]  # padded crop shape
    lo: np.ndarray  # ijk of padded voxel (0, 0, 0) in the input grid
    flat: np.ndarray  # flat indices into the padded crop
    lookup: np.ndarray  # padded-crop-sized int32: compact index or -1
    depth: np.ndarray | Future  # mm to the background; a Future while a worker still computes it
    contact: np.ndarray | None = None  # per compact voxel: where the contacts network puts two teeth touching
    _parting: np.ndarray | None = field(default=None, repr=False)

    @property
    def dist(self) -> np.ndarray:
        """float32 mm to the background of the compact voxels (waits for the worker the first time)."""
        if isinstance(self.depth, Future):
            self.depth = self.depth.result()
        return self.depth

    @property
    def parting(self) -> np.ndarray:
        """The distance map with the contacts at 0: what parts the markers and keeps regions apart (a contact is
        a neck between two teeth however deep it lies). The distance map itself without a contacts network."""
        if self.contact is None:
            return self.dist
        if self._parting is None:
            self._parting = np.where(self.contact, np.float32(0.0), self.dist)
        return self._parting

    def input_flat(self, shape: tuple[int, ...]) -> np.ndarray:
        """Flat indices of the compact voxels in the input grid."""
        ijk = np.stack(np.unravel_index(self.flat, self.shape)) + self.lo[:, None]
        return np.ravel_multi_index(tuple(ijk), shape)

    def ras_points(self, affine: np.ndarray) -> np.ndarray:
        """(N, 3) RAS millimetres of the compact voxels."""
        ijk = np.stack(np.unravel_index(self.flat, self.shape), axis=1) + self.lo
        return ijk @ affine[:3, :3].T + affine[:3, 3]


def foreground_mask(teeth_prob: np.ndarray, threshold: float, min_voxels: int) -> np.ndarray | None:
    """Probability above ``threshold``, components under ``min_voxels`` dropped; None when nothing is left.
    The components are found within the box of what is above the threshold (the same ones, in less time)."""
    above = teeth_prob > threshold
    box = bounding_box(above)
    if box is None:
        return None
    inner = tuple(slice(int(a), int(b)) for a, b in zip(*box, strict=True))
    components, count = ndi.label(above[inner])
    keep = np.bincount(components.ravel(), minlength=count + 1) >= min_voxels
    keep[0] = False
    if not keep[1:].any():
        return None
    mask = np.zeros_like(above)
    mask[inner] = keep[components]
    return mask


def sparse_foreground(
    mask: np.ndarray, spacing: np.ndarray, pool: Executor | None = None, contacts: np.ndarray | None = None
) -> SparseForeground:
    """Crop to the mask's box, pad by one voxel (every voxel then has all 26 neighbours), distance map (in
    ``pool`` when given: it takes a third of the instance step, and scipy lets go of the GIL meanwhile), and
    ``contacts`` (where two teeth touch, on the mask's grid) per compact voxel."""
    lo, hi = bounding_box(mask)
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    crop = np.pad(mask[box], 1)
    flat = np.flatnonzero(crop)
    lookup = np.full(crop.size, -1, dtype=np.int32)
    lookup[flat] = np.arange(len(flat), dtype=np.int32)
    depth = pool.submit(foreground_depth, crop, spacing, flat) if pool else foreground_depth(crop, spacing, flat)
    contact = None if contacts is None else np.pad(contacts[box], 1).reshape(-1)[flat]
    return SparseForeground(crop.shape, lo - 1, flat, lookup, depth, contact)


def gather_types(type_probs: np.ndarray, sparse: SparseForeground, first: int = 1, stop: int = 9) -> np.ndarray:
    """(N, stop - first) probabilities of classes first..stop-1 (default the types 1..8) of the compact voxels,
    one contiguous column a class (Fortran order): the per-region sums (``regions.label_sums``) read columns."""
    index = sparse.input_flat(type_probs.shape[1:])
    columns = np.empty((len(index), stop - first), dtype=np.float32, order="F")
    for c in range(first, stop):
        columns[:, c - first] = type_probs[c].reshape(-1)[index]
    return columns


def smoothed_argmax(
    type_probs: np.ndarray, sparse: SparseForeground, spacing: np.ndarray, smooth_mm: float
) -> np.ndarray:
    """Class 1..8 (1..13 with a 14-class model) per compact voxel after a box filter of about ``smooth_mm``
    (removes the per-voxel speckle); ties go to the lower class.

    ``ndi.uniform_filter(..., mode="nearest")`` over the foreground's box, worked out only in the tiles of
    ``SMOOTH_TILE`` voxels that hold foreground (about half of the box), each with a halo of half the filter:
    the filter keeps a running sum in double precision, exact for these values, so a line's sums do not depend
    on where it starts and each voxel gets the whole box's value to the bit. In a tile, a class whose largest
    probability there is below the likeliest class's smallest mean at the tile's voxels cannot win (a mean is
    no larger than the largest value it averages) and is left out: most tiles lie inside one tooth."""
    size = tuple(max(1, int(round(smooth_mm / s)) | 1) for s in spacing)
    halo = np.array(size) // 2
    shape = np.array(sparse.shape) - 2
    origin = sparse.lo + 1  # the box's voxel (0, 0, 0) in the input grid
    inner = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) - 1
    tile = inner // SMOOTH_TILE
    tile_id = np.ravel_multi_index(tuple(tile.T), tuple(-(-shape // SMOOTH_TILE)))
    result = np.zeros(len(sparse.flat), dtype=np.uint8)
    for members in index_groups(tile_id):
        lo = np.maximum(tile[members[0]] * SMOOTH_TILE - halo, 0)
        hi = np.minimum((tile[members[0]] + 1) * SMOOTH_TILE + halo, shape)
        window = (slice(1, None),) + tuple(slice(int(a), int(b)) for a, b in zip(origin + lo, origin + hi, strict=True))
        result[members] = _tile_argmax(type_probs[window], size, tuple((inner[members] - lo).T)) + 1
    return result


def _tile_argmax(raw: np.ndarray, size: tuple[int, ...], at: tuple[np.ndarray, ...]) -> np.ndarray:
    """Index of the largest box-filtered class (the first on ties) at the voxels ``at`` of one tile's classes."""
    bound = _class_maxima(raw)
    likeliest = int(np.argmax(bound))
    best = _box_filtered(raw[likeliest : likeliest + 1], size)[(0, *at)]
    rivals = np.flatnonzero(bound >= best.min())
    rivals = rivals[rivals != likeliest]
    if not len(rivals):
        return np.full(len(best), likeliest)
    values = _box_filtered(raw[rivals], size)[(slice(None), *at)]
    classes = np.append(rivals, likeliest)
    rank = np.argsort(classes)
    return classes[rank][np.argmax(np.vstack([values, best])[rank], axis=0)]


def _class_maxima(raw: np.ndarray) -> np.ndarray:
    """Each class's largest value in a block, as float32 (an upper bound, never below it). Non-negative halves
    order as their bits do (a negative one's bits are larger still: the bound only grows)."""
    if raw.dtype != np.float16:
        return raw.max(axis=(1, 2, 3)).astype(np.float32)
    return _half_to_single()[raw.view(np.uint16).max(axis=(1, 2, 3))]


def _box_filtered(raw: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``ndi.uniform_filter1d`` along the three spatial axes of a (classes, i, j, k) block, as float32."""
    block = as_float32(raw)
    for axis, n in enumerate(size, start=1):
        if n > 1:
            ndi.uniform_filter1d(block, n, axis, output=block, mode="nearest")
    return block


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
