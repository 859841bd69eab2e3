"""Where DICOM slices lie: checked geometry fields, and slices put onto an even grid at their true positions.

A volume has one slice step. A series with a missing slice or mixed slice spacing is resampled along
the slice normal onto an even grid between its first and last slice, each output slice interpolated
from the two real slices around it; slices are never spread evenly over the span as if nothing were
missing. A gap far wider than the series' own step is refused: interpolating across it would invent
anatomy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from TeethSegmentationLib.errors import InputError

log = logging.getLogger(__name__)

EVEN_TOLERANCE = 0.02  # relative spread of the steps still taken as one spacing (rounded positions)
MAX_GAP_STEPS = 4.0  # a gap wider than this many of the smallest steps is refused


def checked_orientation(row: np.ndarray, col: np.ndarray, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """ImageOrientationPatient's row and column cosines, which must be finite and two perpendicular directions."""
    if not (np.isfinite(row).all() and np.isfinite(col).all()) or min(np.linalg.norm(row), np.linalg.norm(col)) < 0.5:
        raise InputError(
            f"The DICOM series in {where.name} has an invalid ImageOrientationPatient ({[*row, *col]}): "
            "it must hold two unit direction vectors; re-export the series."
        )
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 0.1:
        raise InputError(
            f"The DICOM series in {where.name} has an ImageOrientationPatient whose row and column directions "
            "are not perpendicular; re-export the series."
        )
    return row, col


def checked_pixel_spacing(spacing: tuple[float, float], where: Path) -> tuple[float, float]:
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InputError(
            f"The DICOM series in {where.name} has PixelSpacing {list(spacing)[::-1]}; it must be positive. "
            "Re-export the series."
        )
    return spacing


def checked_positions(positions: np.ndarray, where: Path) -> np.ndarray:
    if not np.isfinite(positions).all():
        raise InputError(
            f"The DICOM series in {where.name} has a non-finite (NaN or infinite) ImagePositionPatient; "
            "re-export the series."
        )
    return positions


def sort_slices(positions: np.ndarray, normal: np.ndarray, where: Path) -> np.ndarray:
    """Order along the slice normal; two slices at one position mean several acquisitions mixed up."""
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    steps = np.diff(distance[order])
    if steps.size and np.min(steps) < 1e-4:
        raise InputError(
            f"The DICOM series in {where.name} has several slices at the same position; "
            "export one acquisition per series (or pick a single series with --series UID)."
        )
    return order


def even_slices(stack: np.ndarray, positions: np.ndarray, normal: np.ndarray, where: Path) -> tuple[np.ndarray, int]:
    """``stack`` (slices on the last axis, sorted) on an even grid of its smallest step: (stack, slice count).

    Evenly spaced series come back unchanged."""
    distance = positions @ normal
    steps = np.diff(distance)
    if steps.size < 2 or np.ptp(steps) <= EVEN_TOLERANCE * np.min(steps):
        return stack, stack.shape[-1]
    step = float(np.min(steps))
    if np.max(steps) > MAX_GAP_STEPS * step:
        raise InputError(
            f"The DICOM series in {where.name} has a gap of {np.max(steps):.2f} mm between slices that are "
            f"otherwise {step:.2f} mm apart (slices are missing); export the complete series."
        )
    count = int(round((distance[-1] - distance[0]) / step)) + 1
    targets = np.linspace(distance[0], distance[-1], count)
    log.warning(
        "DICOM slice steps in %s vary from %.3g to %.3g mm (missing or mixed slices); resampled onto %d even "
        "slices at their true positions.", where.name, step, np.max(steps), count,
    )
    return _interpolate(stack, distance, targets), count


def _interpolate(stack: np.ndarray, distance: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Linear interpolation along the last axis, slice by slice, in the stack's own type."""
    out = np.empty((*stack.shape[:-1], len(targets)), dtype=stack.dtype)
    upper = np.clip(np.searchsorted(distance, targets, side="right"), 1, len(distance) - 1)
    for k, (t, hi) in enumerate(zip(targets, upper, strict=True)):
        lo = hi - 1
        weight = (t - distance[lo]) / (distance[hi] - distance[lo])
        value = (1 - weight) * stack[..., lo].astype(np.float32) + weight * stack[..., hi].astype(np.float32)
        out[..., k] = np.rint(value) if out.dtype.kind in "iu" else value
    return out
