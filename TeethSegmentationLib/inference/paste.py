"""The label map back from the fine grid onto the input's own grid.

The instance step labels the 0.5 mm grid; a scan's grid is usually finer (0.2-0.4 mm). Copying each input voxel
the label of the nearest fine voxel draws every tooth surface in 0.5 mm steps. Like nnU-Net, which resamples
its probabilities and not its labels, the paste interpolates the foreground probability and thresholds it on
the input grid: the surface then runs where the probability crosses the threshold between two fine voxels.
Which tooth a voxel belongs to still comes from the nearest labelled fine voxel (labels do not interpolate).

The probability is first made to agree with the instance step at every fine voxel centre: at least the
threshold in a labelled voxel, below it elsewhere. A speck the instance step dropped therefore never comes
back, a filled hole stays filled, and on the fine grid itself the paste gives the labels unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from TeethSegmentationLib.io.orientation import reorient_to_ras
from TeethSegmentationLib.io.resample import interpolate_to_reference, resample_to_reference
from TeethSegmentationLib.io.volume import Volume, crop, ras_box_to_ijk, voxel_box_to_ras

AGREEMENT_MARGIN = 1e-3  # how far a clamped probability sits from the threshold (float32-safe)


def agreeing_probability(labels: np.ndarray, foreground: np.ndarray, threshold: float) -> np.ndarray:
    """``foreground`` (float32) clamped to >= threshold + margin where ``labels`` > 0 and below the threshold
    elsewhere: thresholding it, or any interpolation of it, never disagrees with the labels at their voxels."""
    p = np.asarray(foreground, dtype=np.float32)
    high = np.float32(threshold + AGREEMENT_MARGIN)
    low = np.float32(threshold - AGREEMENT_MARGIN)
    return np.where(labels > 0, np.maximum(p, high), np.minimum(p, low))


def grown_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` with each background voxel next to a tooth (26-neighbourhood) given that tooth's label: an
    input voxel inside the interpolated surface always has a labelled fine voxel among its nearest one's
    neighbours, since the interpolation crosses the threshold only next to a labelled voxel."""
    return np.where(labels > 0, labels, ndimage.maximum_filter(labels, size=3))


def labels_to_input_grid(
    fine: Volume, reference: Volume, foreground: np.ndarray | None = None, threshold: float = 0.5
) -> np.ndarray:
    """A label map on any grid -> uint8 array on ``reference``'s grid; only the box it covers is resampled.
    With ``foreground`` (the probability on ``fine``'s grid that the labels were thresholded from) the
    surfaces come from its interpolation, else each voxel takes the nearest fine voxel's label."""
    out = np.zeros(reference.shape, dtype=np.uint8)
    paste_labels(fine, reference, out, foreground, threshold)
    return out


def paste_labels(
    fine: Volume, reference: Volume, out: np.ndarray, foreground: np.ndarray | None = None, threshold: float = 0.5
) -> np.ndarray:
    """Resample ``fine`` into the part of ``out`` (on ``reference``'s grid) it covers; returns that part (a view).

    The paste goes through ``out`` reoriented to RAS (a view): a RAS-aligned ``fine`` then maps onto it
    axis by axis, scipy's fast path, whatever the input's axis order and flips."""
    view = reorient_to_ras(Volume(out, reference.ijk_to_ras, reference.space), copy=False)
    ras_lo, ras_hi = voxel_box_to_ras(fine, np.zeros(3, int), np.array(fine.shape))
    lo, hi = ras_box_to_ijk(view, ras_lo, ras_hi)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    if np.any(hi <= lo):
        return view.array[box]
    target = crop(view, lo, hi, copy=False)
    if foreground is None:
        view.array[box] = resample_to_reference(fine, target, order=0).array
    else:
        view.array[box] = _smooth_labels(fine, foreground, target, threshold)
    return view.array[box]


def _smooth_labels(fine: Volume, foreground: np.ndarray, target: Volume, threshold: float) -> np.ndarray:
    probability = fine.with_array(agreeing_probability(fine.array, foreground, threshold))
    inside = interpolate_to_reference(probability, target).array > threshold
    labels = resample_to_reference(fine.with_array(grown_labels(fine.array)), target, order=0).array
    labels[~inside] = 0
    return labels
