"""Per-region summaries of a compact label array: sizes, centroids, mean probabilities, root direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RegionStats:
    """Rows 0..n-1 describe labels 1..n."""

    count: np.ndarray  # (n,) voxels
    centroid: np.ndarray  # (n, 3) RAS mm
    types: np.ndarray  # (n, 8) mean probabilities of types 1..8, normalised to sum 1
    fg: np.ndarray  # (n,) mean foreground probability
    skew: np.ndarray | None = None  # (n,) apex skew along the occlusal normal (> 0: roots point superior)

    def main_type(self, row: int) -> int:
        """0-based index of the region's most probable type (0 = central incisor)."""
        return int(np.argmax(self.types[row]))


def index_groups(keys: np.ndarray) -> list[np.ndarray]:
    """The indices of equal ``keys``, one array per distinct key, in increasing key order (indices ascending)."""
    if not len(keys):
        return []
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return [order[a:b] for a, b in zip(starts, [*starts[1:], len(order)], strict=True)]


def label_sums(labels: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """(count, columns) sums of the columns of ``values`` (N, columns) over each label 0..count-1."""
    return np.stack([np.bincount(labels, weights=values[:, c], minlength=count) for c in range(values.shape[1])], 1)


def region_peaks(labels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(max label + 1,) each label's deepest point (mm inside the foreground); thin for roots, thick for crowns."""
    peak = np.zeros(int(labels.max()) + 1)
    np.maximum.at(peak, labels, depth)
    return peak


def region_stats(labels: np.ndarray, types: np.ndarray, fg: np.ndarray, ras: np.ndarray) -> RegionStats:
    """Voxel counts, centroids, mean type and foreground probabilities of labels 1..max."""
    n = int(labels.max())
    count = np.bincount(labels, minlength=n + 1)[1:].astype(np.float64)
    safe = np.maximum(count, 1)[:, None]
    centroid = label_sums(labels, ras, n + 1)[1:] / safe
    mean_types = label_sums(labels, types, n + 1)[1:] / safe
    mean_fg = np.bincount(labels, weights=fg, minlength=n + 1)[1:] / safe[:, 0]
    total = np.maximum(mean_types.sum(axis=1, keepdims=True), 1e-6)
    return RegionStats(count, centroid, mean_types / total, mean_fg)


def apex_skew(labels: np.ndarray, ras: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Skewness of each region's voxels along the occlusal normal: > 0 when the root points superior."""
    return height_skew(labels, ras @ normal)


def height_skew(labels: np.ndarray, height: np.ndarray, n: int | None = None) -> np.ndarray:
    """Skewness of each region's voxel heights (labels 1..n, n = the largest label unless given)."""
    n = int(labels.max()) if n is None else n
    count = np.maximum(np.bincount(labels, minlength=n + 1), 1)
    mean = np.bincount(labels, weights=height, minlength=n + 1) / count
    centred = height - mean[labels]
    var = np.bincount(labels, weights=centred**2, minlength=n + 1) / count
    third = np.bincount(labels, weights=centred**3, minlength=n + 1) / count
    return (third / np.maximum(var, 1e-6) ** 1.5)[1:]


# A single arch's roots point the way of its teeth's median apex skew when it is at least this clear.
CLEAR_SKEW = 0.05


def root_direction(labels: np.ndarray, ras: np.ndarray, normal: np.ndarray) -> float:
    """+1 when the regions' roots point along ``normal`` (an upper arch), -1 against it, 0 when unclear: the
    sign of the volume-weighted median of their apex skews."""
    skew = apex_skew(labels, ras, normal)
    size = np.bincount(labels, minlength=len(skew) + 1)[1:].astype(np.float64)
    keep = size > 0
    if not keep.any():
        return 0.0
    order = np.argsort(skew[keep])
    cumulative = np.cumsum(size[keep][order])
    median = float(skew[keep][order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
    return float(np.sign(median)) if abs(median) >= CLEAR_SKEW else 0.0
