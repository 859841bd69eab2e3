"""The occlusal plane of the split regions, found before merging (which must not merge across the bite)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from TeethSegmentationLib.instances import numbering
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.regions import height_skew, label_sums

# A weak dip in a closed bite still counts as two arches when the regions' centroids form two layers this
# similar in bulk and region count (a single arch parted at the tooth necks gives a slighter root layer).
SIMILAR_LAYERS = 0.6
# A layer of regions whose median deepest point is under this share of the other layer's is roots, not an arch.
THIN_LAYER = 0.6
SKEW_STRIDE = 4


class OcclusalPlane(NamedTuple):
    normal: np.ndarray  # unit vector, superior
    height: float  # the plane is (x . normal) == height
    two_arches: bool  # False: a single arch, and the plane is only approximate

    def known(self) -> tuple[np.ndarray, float] | None:
        """(normal, height) when the plane lies between two arches; numbering then trusts it."""
        return (self.normal, self.height) if self.two_arches else None


def find_occlusal_plane(labels: np.ndarray, ras: np.ndarray, peak: np.ndarray) -> OcclusalPlane:
    """The occlusal plane from the regions' centroids, the voxels' height profile and the regions' deepest
    points (``regions.region_peaks``; thin layers are roots)."""
    count = int(labels.max()) + 1
    size = np.maximum(np.bincount(labels, minlength=count), 1)[1:, None]
    centroids = label_sums(labels, ras, count)[1:] / size
    # Each centroid counts with its region's size: two 23-41 mm3 false finds 35 mm above a crop's teeth tilted a
    # plane of equal votes 30 degrees, and the upper molars were numbered as lower ones.
    normal = numbering.occlusal_normal(centroids, weights=size)
    heights = ras @ normal
    height, two = numbering.occlusal_plane(heights)
    if not two:
        upper, threshold, two, _ = numbering.split_jaws(centroids, np.zeros(len(centroids)), normal, weights=size[:, 0])
        bulk = np.array([size[upper].sum(), size[~upper].sum()], dtype=np.float64)
        two = (
            two
            and bulk.min() >= SIMILAR_LAYERS * bulk.max()
            and min(upper.sum(), (~upper).sum()) >= SIMILAR_LAYERS * max(upper.sum(), (~upper).sum())
        )
        height = threshold if two else height
    if two and _one_arch(labels, heights, peak[1:], centroids @ normal > height):
        two = False
    if two:
        normal, height = _refit_between_jaws(centroids, ras, normal, height)
    return OcclusalPlane(normal, height, two)


def _one_arch(labels: np.ndarray, heights: np.ndarray, peak: np.ndarray, above: np.ndarray) -> bool:
    """Jaw from the teeth themselves: two layers are two arches only if the regions' own roots agree (the
    upper layer's do not point down, the lower's not up: an impacted canine above an upper arch is not a
    second arch) and both layers hold crowns (roots parted from their crowns at the necks form a layer of
    thin regions: the median deepest point of one layer under ``THIN_LAYER`` x the other's)."""
    if above.all() or not above.any():
        return False  # the plane does not part the regions: nothing to judge them by
    if roots_deny(labels, heights, above):
        return True
    layers = sorted(float(np.median(peak[side])) for side in (above, ~above))
    return layers[0] < THIN_LAYER * layers[1]


def crossed_regions(
    labels: np.ndarray, ras: np.ndarray, plane: OcclusalPlane, opts: InstanceOptions, voxel_mm3: float
) -> np.ndarray:
    """(n,) whether each of labels 1..n lies far on both sides of ``plane``: at least ``straddle_fraction`` of
    its voxels, and ``min_tooth_mm3``, more than ``straddle_margin_mm`` above it and as many below (upper and
    lower teeth fused at the bite, or a plane drawn through teeth)."""
    n = int(labels.max(initial=0))
    height = ras @ plane.normal - plane.height
    count = np.bincount(labels, minlength=n + 1)[1:]
    above = np.bincount(labels, weights=height > opts.straddle_margin_mm, minlength=n + 1)[1:]
    below = np.bincount(labels, weights=height < -opts.straddle_margin_mm, minlength=n + 1)[1:]
    both = np.minimum(above, below)
    return (both >= opts.straddle_fraction * count) & (both * voxel_mm3 >= opts.min_tooth_mm3)


def roots_deny(labels: np.ndarray, heights: np.ndarray, above: np.ndarray) -> bool:
    """Whether the regions' own roots deny that the regions ``above`` the plane and those below are an upper
    and a lower arch (``numbering.roots_contradict``); ``heights``: each voxel's along the normal."""
    every = SKEW_STRIDE  # a sample of the voxels is plenty for a skew, and 4x cheaper
    return numbering.roots_contradict(height_skew(labels[::every], heights[::every], len(above)), above)


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
