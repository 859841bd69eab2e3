"""A neighbour's root that drained into a lateral incisor or canine goes back (instances.neighbour_roots)."""

from __future__ import annotations

import numpy as np
import pytest

from TeethSegmentationLib.instances.foreground import sparse_foreground
from TeethSegmentationLib.instances.neighbour_roots import return_neighbour_roots
from TeethSegmentationLib.instances.numbering import Assignment

SPACING = np.full(3, 0.5)
VOXEL_MM3 = 0.125

# Two lower teeth on a 0.5 mm grid, i along the arch, k up (the occlusal normal), crowns at k 25-40:
# the receiver (numbered 32) at i 3-8, its root i 4-7; its mesial neighbour (31) at i 10-15, its root i 10-13.
# Their roots touch through a bridge at k 11-15 (the foreground fused them), so below k 15 the neighbour's root
# drained into the receiver: the receiver's label holds two apical branches, k 5-11 apart.
RECEIVER_ROOT = (slice(4, 8), slice(8, 12), slice(5, 25))
RECEIVER_CROWN = (slice(3, 9), slice(8, 12), slice(25, 40))
NEIGHBOUR_ROOT = (slice(10, 14), slice(8, 12), slice(5, 25))
NEIGHBOUR_CROWN = (slice(10, 16), slice(8, 12), slice(25, 40))
BRIDGE = (slice(8, 10), slice(8, 12), slice(11, 15))
LEAK_BELOW_K = 15  # the neighbour's root under this level drained into the receiver


def _case(
    fdi: tuple[int, int] = (31, 32), leak_type: int | None = None, touching: bool = True,
    apex_type: int | None = None, coronal_type: int | None = None,
):
    """(labels, sparse, RAS points, assignment, smoothed types, truth) of the two teeth: label 1 the neighbour
    (``fdi[0]``), label 2 the receiver (``fdi[1]``). Each tooth's voxels are typed as its own tooth, the leaked
    root as ``leak_type`` (default: its own tooth's type) and the receiver's own root beside it as ``apex_type``
    (default: the receiver's type), and the receiver from the fused stretch up as ``coronal_type``.
    ``touching=False`` parts the neighbour's root by a gap just above the leaked part, so nothing labelled as the
    neighbour touches it."""
    mask = np.zeros((20, 20, 45), bool)
    truth_grid = np.zeros(mask.shape, np.int32)
    for box, owner in ((RECEIVER_ROOT, 2), (RECEIVER_CROWN, 2), (BRIDGE, 2), (NEIGHBOUR_ROOT, 1), (NEIGHBOUR_CROWN, 1)):
        mask[box] = True
        truth_grid[box] = owner
    if not touching:  # a dark gap across the neighbour's root, just above the part that drained away
        mask[NEIGHBOUR_ROOT[0], NEIGHBOUR_ROOT[1], LEAK_BELOW_K:LEAK_BELOW_K + 2] = False
    sparse = sparse_foreground(mask, SPACING)
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    truth = truth_grid[tuple(ijk.T)]
    leaked = (truth == 1) & (ijk[:, 2] < LEAK_BELOW_K)
    labels = np.where(leaked, 2, truth).astype(np.int32)
    own_type = [fdi[0] % 10, fdi[1] % 10]
    smooth_type = np.where(truth == 1, own_type[0], own_type[1]).astype(np.uint8)
    if leak_type is not None:
        smooth_type[leaked] = leak_type
    if apex_type is not None:  # the receiver's own root below the fused stretch
        smooth_type[(truth == 2) & (ijk[:, 2] < BRIDGE[2].start)] = apex_type
    if coronal_type is not None:  # the receiver from the fused stretch up: bridge, upper root and crown
        smooth_type[(truth == 2) & (ijk[:, 2] >= BRIDGE[2].start)] = coronal_type
    ras = sparse.ras_points(np.diag([0.5, 0.5, 0.5, 1.0]))
    upper = fdi[1] // 10 in (1, 2)
    if upper:  # an upper tooth's roots point up: mirror the teeth along the normal
        ras = ras * np.array([1.0, 1.0, -1.0])
    assignment = Assignment(np.array(fdi), np.full(2, upper), np.array([-3.0, -6.0]), np.array([0.0, 0.0, 1.0]),
                            0.0, False)
    return labels, sparse, ras, assignment, smooth_type, truth


@pytest.mark.parametrize("fdi", [(31, 32), (32, 33), (11, 12), (22, 23)])
def test_a_neighbours_root_drained_into_a_lateral_incisor_or_canine_goes_back(fdi):
    """The receiver holds two roots: its own, typed as itself, and its mesial neighbour's, typed as the neighbour
    and drained in through the fused stretch. The neighbour's root goes back, and the receiver keeps all of its own
    voxels, the bridge included. Upper teeth (roots pointing up) too."""
    labels, sparse, ras, assignment, smooth_type, truth = _case(fdi)
    assert (labels != truth).sum() > 100  # the leak this test is about
    given = labels.copy()

    fixed, moved = return_neighbour_roots(labels, sparse, ras, assignment, smooth_type, VOXEL_MM3)

    assert moved
    assert np.array_equal(fixed, truth)
    assert np.array_equal(labels, given)  # the input is not changed in place


@pytest.mark.parametrize(("case", "why"), [
    ({"leak_type": 2}, "the second branch is typed as the receiver itself: a second root of its own"),
    ({"apex_type": 1}, "both branches typed as the neighbour: no root of the receiver's own type to tell them by"),
    ({"coronal_type": 1}, "the neighbour's type reaches over most of the receiver: more than a root's worth"),
    ({"fdi": (51, 52)}, "primary incisors: left to the child's rules"),
    ({"fdi": (33, 34)}, "a premolar receiver: premolars and molars can have two roots"),
    ({"touching": False}, "the neighbour does not touch the branch: it is no root of that tooth"),
])
def test_a_second_branch_stays_unless_it_is_the_numbered_neighbours_root(case, why):
    labels, sparse, ras, assignment, smooth_type, _truth = _case(**case)

    fixed, moved = return_neighbour_roots(labels, sparse, ras, assignment, smooth_type, VOXEL_MM3)

    assert not moved, why
    assert np.array_equal(fixed, labels)


def test_a_single_rooted_tooth_without_a_fork_is_left_alone():
    """No leak: the receiver's apical half is one root, so nothing moves even though the teeth touch."""
    labels, sparse, ras, assignment, smooth_type, truth = _case()
    fixed, moved = return_neighbour_roots(truth.astype(np.int32), sparse, ras, assignment, smooth_type, VOXEL_MM3)
    assert not moved
    assert np.array_equal(fixed, truth)


def test_the_instance_step_gives_neighbours_roots_back_with_the_smoothed_types(monkeypatch):
    """label_teeth runs the step on its numbered teeth with one smoothed type per foreground voxel, and numbers
    what the step returns: here a step that hands all of 17 to 16 leaves fewer teeth."""
    from synthetic_arch import make_arch, probabilities

    from TeethSegmentationLib.instances import teeth

    arch = make_arch()
    inputs = (*probabilities(arch.labels), arch.ijk_to_ras)
    before = teeth.label_teeth(*inputs)
    smoothed, calls = [], []

    def record_smoothed(*args, **kwargs):
        smoothed.append(teeth_smoothed_argmax(*args, **kwargs))
        return smoothed[-1]

    def hand_17_to_16(labels, sparse, ras, assignment, smooth_type, voxel_mm3):
        calls.append((len(labels), len(sparse.flat), len(ras), smooth_type))
        number = {int(f): label for label, f in enumerate(assignment.fdi, start=1)}
        return np.where(labels == number[17], number[16], labels), True

    teeth_smoothed_argmax = teeth.smoothed_argmax
    monkeypatch.setattr(teeth, "smoothed_argmax", record_smoothed)
    monkeypatch.setattr(teeth, "return_neighbour_roots", hand_17_to_16)
    after = teeth.label_teeth(*inputs)

    n, n_sparse, n_ras, smooth_type = calls[0]
    assert n == n_sparse == n_ras
    assert smooth_type is smoothed[0]  # the smoothed argmax of the markers, not the raw types
    assert 17 in [t.fdi for t in before.teeth]
    assert len(after.teeth) < len(before.teeth)
