"""Resampling volumes and label maps (``order=0``) onto other grids, slab by slab to bound memory."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from TeethSegmentationLib.io.volume import Volume, translation

SLAB_VOXELS = 8_000_000  # output voxels resampled at a time: bounds the temporaries on a 300 M voxel CBCT


def resample_to_spacing(volume: Volume, spacing_mm: float | Sequence[float], order: int = 1) -> Volume:
    """Same directions and physical extent (centred), new voxel size; float32 for order >= 1, same dtype for 0."""
    new_spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    if np.any(new_spacing <= 0):
        raise ValueError(f"spacing must be positive, not {spacing_mm}")
    old_spacing = volume.spacing
    old_shape = np.asarray(volume.shape)
    new_shape = np.maximum(1, np.round(old_shape * old_spacing / new_spacing)).astype(int)
    scale = new_spacing / old_spacing  # source voxels per output voxel
    start = (old_shape - 1) / 2 - (new_shape - 1) / 2 * scale  # keeps the centre of the extent fixed
    out_to_src = np.eye(4)
    out_to_src[:3, :3] = np.diag(scale)
    out_to_src[:3, 3] = start
    matrix = volume.ijk_to_ras @ out_to_src
    array = _resample_array(volume.array, out_to_src, tuple(new_shape), order, mask_outside=False)
    return Volume(array, matrix, volume.space, dict(volume.meta))


def resample_to_reference(volume: Volume, reference: Volume, order: int = 0, cval: float = 0) -> Volume:
    """``volume`` on ``reference``'s grid (any geometry); outside ``volume``'s extent is ``cval``."""
    out_to_src = np.linalg.inv(volume.ijk_to_ras) @ reference.ijk_to_ras
    array = _resample_array(volume.array, out_to_src, reference.shape, order, mask_outside=True, cval=cval)
    return Volume(array, reference.ijk_to_ras.copy(), reference.space, dict(reference.meta))


def interpolate_to_reference(volume: Volume, reference: Volume) -> Volume:
    """Linear interpolation of ``volume`` onto ``reference``'s grid, float32, 0 outside ``volume``'s extent.
    Axis-aligned grids go one axis at a time (:func:`linear_by_axes`, about 10x faster than scipy's affine
    path, equal within float32 rounding); oblique ones through :func:`resample_to_reference`."""
    out_to_src = np.linalg.inv(volume.ijk_to_ras) @ reference.ijk_to_ras
    linear = out_to_src[:3, :3]
    if not np.allclose(linear, np.diag(np.diag(linear)), rtol=0, atol=1e-12):
        return resample_to_reference(volume, reference, order=1)
    out = np.empty(reference.shape, dtype=np.float32)
    scale = np.diag(linear)
    for lo, hi in _slabs(out.shape):
        offset = out_to_src[:3, 3] + np.array([lo * scale[0], 0.0, 0.0])
        out[lo:hi] = linear_by_axes(volume.array, scale, offset, (hi - lo, *out.shape[1:]))
        out[lo:hi][_outside(volume.shape, out_to_src, (lo, 0, 0), out[lo:hi].shape)] = 0
    return Volume(out, reference.ijk_to_ras.copy(), reference.space, dict(reference.meta))


def linear_by_axes(src: np.ndarray, scale: np.ndarray, offset: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
    """``ndimage.affine_transform(src, scale, offset, order=1, mode="nearest")`` for a diagonal matrix, in float32,
    as a gather and a weighted sum per axis: source position k x scale + offset, clamped to the edges. The first
    axis goes first: a slab of output rows then reads only the source rows it needs."""
    out = np.asarray(src)
    for axis in (0, 1, 2):
        size = src.shape[axis]
        position = np.clip(np.arange(out_shape[axis], dtype=np.float64) * scale[axis] + offset[axis], 0, size - 1)
        below = np.floor(position).astype(np.intp)
        above = np.minimum(below + 1, size - 1)
        weight = (position - below).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
        low = np.take(out, below, axis=axis).astype(np.float32, copy=False)
        high = np.take(out, above, axis=axis).astype(np.float32, copy=False)
        high -= low  # low + (high - low) x weight, in place: a head's paste makes arrays of 20 M voxels
        high *= weight
        low += high
        out = low
    return out


def _output_dtype(dtype: np.dtype, order: int) -> np.dtype:
    return np.dtype(dtype) if order == 0 else np.dtype(np.float32)


def _resample_array(
    src: np.ndarray,
    out_to_src: np.ndarray,
    out_shape: Sequence[int],
    order: int,
    mask_outside: bool,
    cval: float = 0,
) -> np.ndarray:
    """Resample slab by slab along the output's first axis, reading only the source box each slab needs."""
    out = np.empty(tuple(out_shape), dtype=_output_dtype(src.dtype, order))
    for lo, hi in _slabs(out.shape):
        out[lo:hi] = _resample_box(src, out_to_src, (lo, 0, 0), (hi - lo, *out.shape[1:]), order, cval, out.dtype)
        if mask_outside:
            out[lo:hi][_outside(src.shape, out_to_src, (lo, 0, 0), out[lo:hi].shape)] = cval
    return out


def _slabs(shape: Sequence[int]) -> Iterator[tuple[int, int]]:
    step = max(1, SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))  # read at call time: tests shrink it
    for lo in range(0, shape[0], step):
        yield lo, min(shape[0], lo + step)


def _resample_box(
    src: np.ndarray,
    out_to_src: np.ndarray,
    out_lo: Sequence[int],
    out_shape: Sequence[int],
    order: int,
    cval: float,
    dtype: np.dtype,
) -> np.ndarray:
    """Output voxels ``out_lo + [0, out_shape)`` from the source box they fall in; 'nearest' at the source edges."""
    box = _source_box(out_to_src, out_lo, out_shape, src.shape, margin=order + 1)
    if box is None:
        return np.full(tuple(out_shape), cval, dtype=dtype)
    src_lo, src_hi = box
    matrix = translation(-np.asarray(src_lo)) @ out_to_src @ translation(out_lo)
    linear = matrix[:3, :3]
    if np.allclose(linear, np.diag(np.diag(linear)), rtol=0, atol=1e-12):
        linear = np.diag(linear)  # a 1-D matrix takes scipy's fast zoom/shift path
    sub = src[src_lo[0] : src_hi[0], src_lo[1] : src_hi[1], src_lo[2] : src_hi[2]]
    if order == 0 and linear.ndim == 1:
        return nearest_by_axes(sub, linear, matrix[:3, 3], out_shape).astype(dtype, copy=False)
    out = np.empty(tuple(out_shape), dtype=dtype)
    ndimage.affine_transform(sub, linear, matrix[:3, 3], output=out, order=order, mode="nearest", prefilter=False)
    return out


def nearest_by_axes(
    src: np.ndarray, scale: np.ndarray, offset: np.ndarray, out_shape: Sequence[int]
) -> np.ndarray:
    """``ndimage.affine_transform(src, scale, offset, order=0, mode="nearest")`` for a diagonal matrix, as one
    gather per axis: its zoom/shift path picks, per axis, source voxel round-half-up((k + offset / scale) x
    scale), clamped to the edges, so the voxels are the same (tested on random grids, ties and flips included);
    a head's labels pasted onto its 0.25 mm grid take 0.01 s instead of 0.15."""
    shift = np.asarray(offset, dtype=np.float64) / scale  # as scipy divides before its C loop
    out = src
    for axis in (2, 1, 0):  # the last axis first, on the smallest array
        position = (np.arange(out_shape[axis], dtype=np.float64) + shift[axis]) * scale[axis]
        index = np.clip(np.floor(position + 0.5), 0, src.shape[axis] - 1).astype(np.intp)
        out = np.take(out, index, axis=axis)
    return out


def _box_corners(lo: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """The 8 corner voxels (homogeneous rows) of the box ``lo + [0, shape)``."""
    ranges = [(lo[d], lo[d] + shape[d] - 1) for d in range(3)]
    return np.array([[*c, 1.0] for c in itertools.product(*ranges)], dtype=np.float64)


def _source_box(
    out_to_src: np.ndarray, out_lo: Sequence[int], out_shape: Sequence[int], src_shape: Sequence[int], margin: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Source voxels needed for an output box: bounds of its mapped corners plus ``margin``, clipped."""
    points = (_box_corners(out_lo, out_shape) @ out_to_src.T)[:, :3]
    lo = np.floor(points.min(axis=0)).astype(int) - margin
    hi = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    if np.any(hi <= 0) or np.any(lo >= np.asarray(src_shape)):
        return None
    return np.maximum(lo, 0), np.minimum(hi, src_shape)


def _outside(
    src_shape: Sequence[int], out_to_src: np.ndarray, out_lo: Sequence[int], out_shape: Sequence[int]
) -> np.ndarray:
    """Output voxels whose centre falls outside the source's extent (half a voxel beyond the edge centres)."""
    grids = [np.arange(out_lo[d], out_lo[d] + out_shape[d], dtype=np.float64) for d in range(3)]
    linear = out_to_src[:3, :3]
    if np.array_equal(linear, np.diag(np.diag(linear))):  # axis-aligned: one test per axis, broadcast
        coords = [out_to_src[d, 3] + linear[d, d] * grids[d] for d in range(3)]
        out = [(c < -0.5) | (c >= src_shape[d] - 0.5) for d, c in enumerate(coords)]
        return out[0][:, None, None] | out[1][None, :, None] | out[2][None, None, :]
    outside = np.zeros(tuple(out_shape), dtype=bool)
    for d in range(3):
        coord = out_to_src[d, 3] + sum(
            out_to_src[d, e] * grids[e].reshape([-1 if a == e else 1 for a in range(3)]) for e in range(3)
        )
        outside |= (coord < -0.5) | (coord >= src_shape[d] - 0.5)
    return outside
