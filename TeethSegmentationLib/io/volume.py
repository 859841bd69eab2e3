"""Volume = voxel array + 4x4 IJK-to-RAS matrix, and the boxes cut from it.

World coordinates inside the engine are RAS millimetres. Files may be LPS or RAS: the convention
is converted at the edge (``io.read_write``) and remembered in ``Volume.space`` so that a label map
written for an input opens in Slicer exactly on top of it. Arrays are indexed [i, j, k] like NRRD.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse: also LPS -> RAS


@dataclass
class Volume:
    array: np.ndarray  # [i, j, k]
    ijk_to_ras: np.ndarray  # 4x4, maps (i, j, k, 1) to RAS millimetres
    space: str = "LPS"  # header convention to write back: "LPS" or "RAS"
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. source path, original header fields

    def __post_init__(self) -> None:
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if self.ijk_to_ras.shape != (4, 4):
            raise ValueError("ijk_to_ras must be a 4x4 matrix")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def directions(self) -> np.ndarray:
        """3x3 unit column vectors of the i, j, k axes in RAS."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """RAS position of voxel (0, 0, 0)'s centre."""
        return self.ijk_to_ras[:3, 3].copy()

    def with_array(self, array: np.ndarray) -> Volume:
        """Same geometry and convention, other voxels (e.g. a label map for this image)."""
        if array.shape[:3] != self.array.shape[:3]:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.array.shape}")
        return Volume(array, self.ijk_to_ras.copy(), self.space, dict(self.meta))

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        return ijk @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        ras = np.atleast_2d(np.asarray(ras, dtype=np.float64))
        return (ras - self.ijk_to_ras[:3, 3]) @ np.linalg.inv(self.ijk_to_ras[:3, :3]).T


def make_matrix(directions: np.ndarray, spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """4x4 ijk->world from unit column directions (3x3), voxel sizes and the first voxel's centre."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(directions, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    matrix[:3, 3] = origin
    return matrix



def translation(offset: Sequence[float]) -> np.ndarray:
    """4x4 matrix that shifts by ``offset`` (voxels or mm, whichever the matrix it composes with uses)."""
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) bounds of the non-zero voxels, ``hi`` exclusive, grown by ``margin`` and clipped; None if empty.
    Each axis is searched only within the bounds already found on the axes before it: one pass over the whole
    array, then over ever smaller parts of it (a head's label map: a third of the time)."""
    mask = np.asarray(mask)
    lo, hi, inside = [], [], mask
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(inside, axis=others))
        if hits.size == 0:
            return None
        first, last = int(hits[0]), int(hits[-1]) + 1
        inside = inside[(slice(None),) * axis + (slice(first, last),)]
        lo.append(max(0, first - margin))
        hi.append(min(mask.shape[axis], last + margin))
    return np.array(lo), np.array(hi)


def ras_box_to_ijk(volume: Volume, ras_lo: np.ndarray, ras_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The voxel box (lo inclusive, hi exclusive, clipped) of ``volume`` that covers an RAS box."""
    ijk = volume.ras_to_ijk_points(_box_corners(ras_lo, ras_hi))
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, volume.shape)
    hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, volume.shape)
    return lo, hi


def voxel_box_to_ras(volume: Volume, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RAS bounds of the voxel box ``lo:hi`` (voxel edges, not centres)."""
    ras = volume.ijk_to_ras_points(_box_corners(lo, hi) - 0.5)
    return ras.min(axis=0), ras.max(axis=0)


def _box_corners(lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """(8, 3) corners of the axis-aligned box ``lo``-``hi``."""
    return np.array(list(product(*zip(lo, hi, strict=True))), dtype=np.float64)


def crop(volume: Volume, lo_ijk: Sequence[int], hi_ijk: Sequence[int], copy: bool = True) -> Volume:
    """Sub-volume ``[lo, hi)`` (a copy, or a view that writes through) whose origin is the RAS centre of voxel
    ``lo``."""
    lo = np.clip(np.asarray(lo_ijk, dtype=int), 0, volume.shape)
    hi = np.clip(np.asarray(hi_ijk, dtype=int), lo, volume.shape)
    if np.any(hi <= lo):
        raise ValueError(f"empty crop box {lo.tolist()}..{hi.tolist()} of a volume of shape {volume.shape}")
    array = volume.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    array = array.copy() if copy else array
    return Volume(array, volume.ijk_to_ras @ translation(lo), volume.space, dict(volume.meta))


def crop_padded(array: np.ndarray, start: np.ndarray, shape: tuple[int, ...], cval: float) -> np.ndarray:
    """``array[start:start+shape]`` with ``cval`` wherever the box leaves the array."""
    out = np.full(shape, cval, dtype=array.dtype)
    lo = np.maximum(start, 0)
    hi = np.minimum(np.asarray(start) + shape, array.shape)
    if np.any(hi <= lo):
        return out
    src = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
    out[dst] = array[src]
    return out


def pad(volume: Volume, before: Sequence[int] | int, after: Sequence[int] | int, value: float = 0) -> Volume:
    """Grow the grid by constant voxels on each side; the origin moves so voxels stay in place."""
    before_ = np.broadcast_to(np.asarray(before, dtype=int), (3,))
    after_ = np.broadcast_to(np.asarray(after, dtype=int), (3,))
    array = np.pad(volume.array, list(zip(before_, after_, strict=True)), mode="constant", constant_values=value)
    return Volume(array, volume.ijk_to_ras @ translation(-before_), volume.space, dict(volume.meta))


def paste(part: Volume, reference: Volume, lo_ijk: Sequence[int], fill: float = 0) -> Volume:
    """``part`` (cropped at ``lo_ijk`` from ``reference``'s grid) placed back into a full grid filled with ``fill``."""
    lo = np.asarray(lo_ijk, dtype=int)
    hi = lo + np.asarray(part.shape)
    if np.any(lo < 0) or np.any(hi > np.asarray(reference.shape)):
        raise ValueError(f"part of shape {part.shape} at {lo.tolist()} does not fit in {reference.shape}")
    array = np.full(reference.shape, fill, dtype=part.array.dtype)
    array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = part.array
    return Volume(array, reference.ijk_to_ras.copy(), reference.space, dict(reference.meta))
