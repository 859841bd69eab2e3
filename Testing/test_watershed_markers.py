"""Markers of the instance step's watershed: a child's small anterior tooth that has no core of its own."""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.instances.foreground import sparse_foreground
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.watershed import drain, markers, unmarked_markers

SPACING = np.array([0.5, 0.5, 0.5])


def _central_and_thin_lateral(lateral_thickness: int = 4):
    """A central incisor (a 5 mm cube, type 1) touching a thin, resorbing lateral incisor (type 2) whose depth
    stays under the 1.5 mm a core needs."""
    mask = np.zeros((30, 24, 24), bool)
    types = np.zeros(mask.shape, np.int64)
    mask[3:13, 7:17, 7:17], types[3:13, 7:17, 7:17] = True, 1
    lateral = (slice(13, 13 + lateral_thickness), slice(7, 17), slice(7, 17))
    mask[lateral], types[lateral] = True, 2
    sparse = sparse_foreground(mask, SPACING)
    smooth_type = types.reshape(-1)[sparse.input_flat(mask.shape)]
    return sparse, smooth_type


def test_an_unmarked_region_of_its_own_type_gets_a_marker_and_drains_to_it() -> None:
    sparse, smooth_type = _central_and_thin_lateral()
    plain = markers(sparse, smooth_type, InstanceOptions(), 32)
    assert set(np.unique(plain[smooth_type == 2])) == {0}  # no core in the lateral
    assert len(np.unique(plain[plain > 0])) == 1
    marked = unmarked_markers(sparse, smooth_type, plain, (1, 2), 100)
    assert np.array_equal(marked[plain > 0], plain[plain > 0])  # the markers there stay
    new = np.unique(marked[(marked > 0) & (plain == 0)])
    assert len(new) == 1 and (smooth_type[marked == new[0]] == 2).all()
    regions = drain(sparse, marked, SPACING)
    assert len(np.unique(regions[smooth_type == 2])) == 1 and len(np.unique(regions)) == 2
    before = drain(sparse, plain, SPACING)
    assert len(np.unique(before)) == 1  # without it the lateral drained into the central incisor


def test_no_marker_for_other_types_or_for_a_region_smaller_than_a_tooth() -> None:
    sparse, smooth_type = _central_and_thin_lateral()
    plain = markers(sparse, smooth_type, InstanceOptions(), 32)
    assert np.array_equal(unmarked_markers(sparse, smooth_type, plain, (1, 3), 100), plain)
    assert np.array_equal(unmarked_markers(sparse, smooth_type, plain, (1, 2), 401), plain)  # the lateral: 400


def test_type_regions_split_by_jaw_mark_a_lower_tooth_touching_an_upper_one_of_its_type() -> None:
    """Upper and lower primary lateral incisors (one type, 11) touching across the bite: the upper one has a core,
    the narrow lower one has none. Whole, their type region holds the upper marker and the lower tooth drains into
    it; taken in each jaw apart, the lower part gets a marker of its own."""
    mask = np.zeros((24, 24, 34), bool)
    types = np.zeros(mask.shape, np.int64)
    mask[7:17, 7:17, 15:27], types[7:17, 7:17, 15:27] = True, 11  # upper, 5 x 5 x 6 mm
    mask[9:15, 9:15, 8:15], types[9:15, 9:15, 8:15] = True, 11  # lower, 3 mm wide: no core; under the plane z = 15
    sparse = sparse_foreground(mask, SPACING)
    smooth_type = types.reshape(-1)[sparse.input_flat(mask.shape)]
    plain = markers(sparse, smooth_type, InstanceOptions(), 32)
    upper = np.unravel_index(sparse.input_flat(mask.shape), mask.shape)[2] >= 15
    assert len(np.unique(plain[plain > 0])) == 1 and not plain[~upper].any()
    assert np.array_equal(unmarked_markers(sparse, smooth_type, plain, (11,), 100), plain)
    marked = unmarked_markers(sparse, smooth_type, plain, (11,), 100, jaw=upper)
    new = np.unique(marked[(marked > 0) & (plain == 0)])
    assert len(new) == 1 and not upper[marked == new[0]].any()
    regions = drain(sparse, marked, SPACING)
    lower_region = regions == regions[marked == new[0]][0]
    assert len(np.unique(regions)) == 2 and (lower_region & ~upper).sum() >= 0.8 * (~upper).sum()
    assert (lower_region & upper).sum() <= 0.1 * upper.sum()
    assert len(np.unique(drain(sparse, plain, SPACING))) == 1  # whole, the lower tooth drained into the upper
