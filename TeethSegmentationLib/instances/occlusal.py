"""The occlusal plane of the split regions, found before merging (which must not merge across the bite)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from TeethSegmentationLib.instances import numbering
from TeethSegmentationLib.instances.regions import label_sums

# A weak dip in a closed bite still counts as two arches when the regions' centroids form two layers this
# similar in bulk and region count (a single arch parted at the tooth necks gives a slighter root layer).
SIMILAR_LAYERS = 0.6


class OcclusalPlane(NamedTuple):
    normal: np.ndarray  # unit vector, superior
    height: float  # the plane is (x . normal) == height
    two_arches: bool  # False: a single arch, and the plane is only approximate

    def known(self) -> tuple[np.ndarray, float] | None:
        """(normal, height) when the plane lies between two arches; numbering then trusts it."""
        return (self.normal, self.height) if self.two_arches else None


def find_occlusal_plane(labels: np.ndarray, ras: np.ndarray) -> OcclusalPlane:
    """The occlusal plane from the regions' centroids and the voxels' height profile."""
    count = int(labels.max()) + 1
    size = np.maximum(np.bincount(labels, minlength=count), 1)[1:, None]
    centroids = label_sums(labels, ras, count)[1:] / size
    normal = numbering.occlusal_normal(centroids)
    height, two = numbering.occlusal_plane(ras @ normal)
    if not two:
        upper, threshold, two, _ = numbering.split_jaws(centroids, np.zeros(len(centroids)), normal)
        bulk = np.array([size[upper].sum(), size[~upper].sum()], dtype=np.float64)
        two = (
            two
            and bulk.min() >= SIMILAR_LAYERS * bulk.max()
            and min(upper.sum(), (~upper).sum()) >= SIMILAR_LAYERS * max(upper.sum(), (~upper).sum())
        )
        height = threshold if two else height
    if two:
        normal, height = _refit_between_jaws(centroids, ras, normal, height)
    return OcclusalPlane(normal, height, two)


def _refit_between_jaws(
    centroids: np.ndarray, ras: np.ndarray, normal: np.ndarray, height: float
) -> tuple[np.ndarray, float]:
    """Two arches: the gap between them tilts a normal fitted to all centroids wherever one jaw lacks teeth
    the other has. Refit it with each jaw centred on itself, from a first split along the scanner's S axis
    (patients are scanned about upright) or, failing that, along the first normal."""
    z_height, z_two = numbering.occlusal_plane(ras[:, 2])
    plane = (np.array([0.0, 0.0, 1.0]), z_height) if z_two else (normal, height)
    for _ in range(2):
        refit = numbering.occlusal_normal(centroids, centroids @ plane[0] > plane[1])
        refit_height, refit_two = numbering.occlusal_plane(ras @ refit)
        if not refit_two:
            break
        plane = (refit, refit_height)
    return plane
