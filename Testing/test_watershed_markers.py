"""Markers of the instance step's watershed: a child's small anterior tooth that has no core of its own, and an
adult's tooth that lost its core (a premolar's root beside a canine, its metal crown called background)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_arch import probabilities

from TeethSegmentationLib.instances.foreground import SparseForeground, sparse_foreground
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.teeth import label_teeth
from TeethSegmentationLib.instances.watershed import drain, markers, other_class_markers, unmarked_markers

SPACING = np.array([0.5, 0.5, 0.5])
ROD, CONTACT = np.s_[14:19, 9:14, 5:45], np.s_[13:14, 10:12, 19:21]


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


def _tooth_and_coreless_neighbour(
    tooth_type: int, neighbour_type: int, other_side: int = 0
) -> tuple[SparseForeground, np.ndarray, np.ndarray]:
    """A tooth with a core (a 5 x 5 x 10 mm box of ``tooth_type``) and, 0.5 mm beside it, a coreless part of another
    tooth (a 2.5 mm thick rod, 20 mm long: ``neighbour_type``) that touches it over a 1 mm square, as (sparse,
    smoothed types, mask); with ``other_side``, a second tooth of that type touching the rod from beyond."""
    mask = np.zeros((32, 24, 50), bool)
    types = np.zeros(mask.shape, np.int64)
    mask[3:13, 7:17, 10:30], types[3:13, 7:17, 10:30] = True, tooth_type
    for part in ROD, CONTACT:
        mask[part], types[part] = True, neighbour_type
    if other_side:
        mask[20:30, 7:17, 10:30], types[20:30, 7:17, 10:30] = True, other_side
        mask[19:20, 10:12, 25:27], types[19:20, 10:12, 25:27] = True, neighbour_type
    sparse = sparse_foreground(mask, SPACING)
    return sparse, types.reshape(-1)[sparse.input_flat(mask.shape)], mask


def _with_other_class_markers(
    tooth_type: int, neighbour_type: int, min_voxels: int = 320, other_side: int = 0
) -> tuple[SparseForeground, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sparse, smoothed types, plain markers, their drain, markers with other_class_markers')."""
    sparse, smooth_type, _mask = _tooth_and_coreless_neighbour(tooth_type, neighbour_type, other_side)
    plain = markers(sparse, smooth_type, InstanceOptions(), 32)
    regions = drain(sparse, plain, SPACING)
    return sparse, smooth_type, plain, regions, other_class_markers(sparse, smooth_type, plain, regions, min_voxels)


def test_a_coreless_part_of_another_class_gets_a_marker_and_its_own_region() -> None:
    sparse, smooth_type, plain, regions, marked = _with_other_class_markers(3, 4)  # a canine, a premolar's root
    assert not plain[smooth_type == 4].any() and len(np.unique(plain[plain > 0])) == 1
    assert len(np.unique(regions)) == 1  # without a marker the root drains into the canine
    assert np.array_equal(marked[plain > 0], plain[plain > 0])
    new = np.unique(marked[(marked > 0) & (plain == 0)])
    assert len(new) == 1 and (smooth_type[marked == new[0]] == 4).all()
    again = drain(sparse, marked, SPACING)
    assert len(np.unique(again)) == 2 and len(np.unique(again[smooth_type == 3])) == 1
    assert _share_apart(again[smooth_type == 4], again[smooth_type == 3][0]) >= 0.95  # the contact may go either way


def _share_apart(labels: np.ndarray, other: int) -> float:
    """The share of ``labels`` under its most common label, 0 when that label is ``other``."""
    values, counts = np.unique(labels, return_counts=True)
    return 0.0 if values[np.argmax(counts)] == other else float(counts.max() / counts.sum())


@pytest.mark.parametrize(
    "tooth_type, neighbour_type, min_voxels",
    [
        (4, 5, 320),  # one premolar typed 4 and 5 in parts
        (6, 7, 320),  # one molar's halves
        (1, 2, 320),  # incisors
        (12, 4, 320),  # a premolar-typed part beneath a primary molar: the child pass's
        (3, 4, 1005),  # the root holds 1,004 voxels (125.5 mm3): smaller than a tooth
    ],
)
def test_no_marker_for_a_part_of_the_same_class_a_primary_neighbour_or_a_fragment(
    tooth_type: int, neighbour_type: int, min_voxels: int
) -> None:
    _sparse, _types, plain, _regions, marked = _with_other_class_markers(tooth_type, neighbour_type, min_voxels)
    assert np.array_equal(marked, plain)


@pytest.mark.parametrize("other_side, marked", [(5, False), (6, True)])
def test_a_coreless_part_touching_a_tooth_of_its_own_class_too_gets_no_marker(other_side: int, marked: bool) -> None:
    """A premolar-typed rod between a canine and a premolar (one of whose parts it may be) stays unmarked; between a
    canine and a molar it is a tooth of its own."""
    _sparse, smooth_type, plain, regions, more = _with_other_class_markers(3, 4, other_side=other_side)
    assert len(np.unique(regions[smooth_type == 4])) == 2  # without a marker the rod drains into both teeth
    assert np.array_equal(more, plain) != marked


def test_a_coreless_part_that_touches_no_marked_tooth_gets_no_marker_from_this_rule() -> None:
    mask = np.zeros((12, 12, 50), bool)
    mask[ROD[0].start - 10 : ROD[0].stop - 10, 4:9, 5:45] = True  # the rod alone: a leftover region of its own
    sparse = sparse_foreground(mask, SPACING)
    smooth_type = np.full(len(sparse.flat), 4, np.int64)
    plain = markers(sparse, smooth_type, InstanceOptions(), 32)
    assert not plain.any()
    assert np.array_equal(other_class_markers(sparse, smooth_type, plain, drain(sparse, plain, SPACING), 320), plain)


def test_the_instance_step_keeps_a_coreless_premolar_root_apart_from_the_canine_it_touches() -> None:
    """End to end through label_teeth: the root is not numbered as the canine."""
    _sparse, _types, mask = _tooth_and_coreless_neighbour(3, 4)
    labels = np.zeros(mask.shape, np.uint8)
    labels[mask], labels[3:13, 7:17, 10:30] = 34, 33
    teeth_prob, type_probs = probabilities(labels, sigma=0.0, noise=0.02)
    affine = np.diag([*SPACING, 1.0])
    result = label_teeth(teeth_prob, type_probs, affine)
    canine = np.unique(result.fdi_map[labels == 33])
    assert len(canine) == 1 and canine[0] > 0 and len(result.teeth) + len(result.unassigned) == 2
    assert _share_apart(result.fdi_map[labels == 34], canine[0]) >= 0.95
