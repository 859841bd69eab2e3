"""Reorienting volumes to RAS axes and back: exact axis permutations and flips, no resampling."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from TeethSegmentationLib.io.volume import Volume


@dataclass(frozen=True)
class Reorientation:
    """Result axis ``a`` is source axis ``permutation[a]``, reversed where ``flips[a]``; exact and invertible."""

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    source_shape: tuple[int, int, int]

    @property
    def is_identity(self) -> bool:
        return self.permutation == (0, 1, 2) and not any(self.flips)


def ras_reorientation(ijk_to_ras: np.ndarray, shape: Sequence[int]) -> Reorientation:
    """The axis permutation and flips that bring the array axes closest to +R, +A, +S."""
    directions = np.asarray(ijk_to_ras, dtype=np.float64)[:3, :3]
    directions = directions / np.linalg.norm(directions, axis=0)
    best = max(itertools.permutations(range(3)), key=lambda p: sum(abs(directions[a, p[a]]) for a in range(3)))
    flips = tuple(bool(directions[a, best[a]] < 0) for a in range(3))
    return Reorientation(tuple(best), flips, tuple(int(n) for n in shape))  # type: ignore[arg-type]


def apply_reorientation(volume: Volume, r: Reorientation, copy: bool = True) -> Volume:
    """Permute/flip the array (a contiguous copy, or a view when not ``copy``; no interpolation) and adjust
    the matrix to match. A view writes through: a label map pasted into it lands in the source array."""
    if volume.shape != r.source_shape:
        raise ValueError(f"volume shape {volume.shape} is not the reorientation's source shape {r.source_shape}")
    array = np.transpose(volume.array, r.permutation)
    matrix = np.eye(4)
    matrix[:, 3] = volume.ijk_to_ras[:, 3]
    for a, (src, flip) in enumerate(zip(r.permutation, r.flips, strict=True)):
        column = volume.ijk_to_ras[:3, src]
        matrix[:3, a] = -column if flip else column
        if flip:
            array = np.flip(array, axis=a)
            matrix[:3, 3] += column * (r.source_shape[src] - 1)
    meta = {**volume.meta, "reorientation": r}
    return Volume(np.ascontiguousarray(array) if copy else array, matrix, volume.space, meta)


def undo_reorientation(volume: Volume, r: Reorientation) -> np.ndarray:
    """The array of a volume on the reoriented grid, put back in the source's axis order (exact)."""
    array = volume.array
    for a, flip in enumerate(r.flips):
        if flip:
            array = np.flip(array, axis=a)
    array = np.transpose(array, np.argsort(r.permutation))
    if array.shape[:3] != r.source_shape:
        raise ValueError(f"array shape {array.shape} does not undo to the source shape {r.source_shape}")
    return np.ascontiguousarray(array)


def reorient_to_ras(volume: Volume, copy: bool = True) -> Volume:
    """Axes along +R, +A, +S as closely as possible; ``meta['reorientation']`` says how to go back.
    ``copy=False``: a view of the same voxels (no memory for a whole-head scan)."""
    return apply_reorientation(volume, ras_reorientation(volume.ijk_to_ras, volume.shape), copy)


def reorient_like(volume_ras: Volume, original: Volume) -> Volume:
    """Bring a volume on ``reorient_to_ras(original)``'s grid back onto ``original``'s grid exactly."""
    r = ras_reorientation(original.ijk_to_ras, original.shape)
    return Volume(undo_reorientation(volume_ras, r), original.ijk_to_ras.copy(), original.space, dict(original.meta))
