"""Cuts of fused instances that a child's scan needs (instances.fused): a resorbing upper primary incisor on
the tip of the lower incisor across the bite, small primary incisors fused along the arch, and the two
permanent central incisors fused in their crypts. An adult's scan (no developing layer) is never cut by them."""

from __future__ import annotations

import numpy as np
import pytest

from TeethSegmentationLib.instances import numbering
from TeethSegmentationLib.instances.fused import (
    neck_across,
    split_across_bite,
    split_fused_central_incisors,
    split_wide_instances,
)
from TeethSegmentationLib.instances.numbering import Assignment
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.regions import region_stats

STEP = 0.25  # mm between the voxels' centres
VOXEL_MM3 = STEP**3
UP = np.array([0.0, 0.0, 1.0])


def _column(pieces: list[tuple[float, float, float]]) -> np.ndarray:
    """Voxel centres of a column along z made of (z from, z to, radius) cylinders."""
    axis = np.arange(-4.0, 4.0 + STEP / 2, STEP)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    points = []
    for low, high, radius in pieces:
        inside = x**2 + y**2 <= radius**2
        for z in np.arange(low, high, STEP):
            points.append(np.stack([x[inside], y[inside], np.full(inside.sum(), z)], axis=1))
    return np.concatenate(points)


def _one(upper: bool, developing: bool | None) -> Assignment:
    return Assignment(
        np.array([42]), np.array([upper]), np.array([7.0]), UP, 0.0, True,
        developing=None if developing is None else np.array([developing]),
    )


# A lower lateral incisor (bulk from -12 to -2.4 mm) whose tip touches, through a thin neck, the resorbing
# upper primary lateral incisor on the occlusal plane (height 0).
INCISOR_AND_PRIMARY = [(-12.0, -2.8, 2.5), (-2.8, -1.4, 0.6), (-1.4, 2.5, 1.8)]


def test_a_resorbing_upper_primary_incisor_is_cut_from_the_lower_incisor_at_their_neck():
    ras = _column(INCISOR_AND_PRIMARY)
    labels = np.ones(len(ras), dtype=np.int64)
    cut, changed = split_across_bite(labels, ras, _one(False, False), VOXEL_MM3, InstanceOptions())
    assert changed and set(np.unique(cut)) == {1, 2}
    assert ras[cut == 2, 2].min() > -3.0 and ras[cut == 1, 2].max() < -1.2  # at the neck
    assert ras[cut == 2, 2].max() == ras[:, 2].max()  # the part across the plane is the new tooth


def test_an_adults_incisor_or_a_crown_on_its_root_is_not_cut_across_the_bite():
    ras = _column(INCISOR_AND_PRIMARY)
    labels = np.ones(len(ras), dtype=np.int64)
    assert not split_across_bite(labels, ras, _one(False, None), VOXEL_MM3, InstanceOptions())[1]
    # A lower crown that reaches just past the plane, on its root through a neck: both parts lie below it.
    crown_on_root = _column([(-12.0, -2.8, 2.5), (-2.8, -1.4, 0.6), (-1.4, 0.4, 2.5)])
    labels = np.ones(len(crown_on_root), dtype=np.int64)
    assert not split_across_bite(labels, crown_on_root, _one(False, False), VOXEL_MM3, InstanceOptions())[1]


def test_neck_across_finds_only_a_neck_near_the_plane():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(-6.0, 2.0, 6000), rng.normal(1.5, 1.0, 2000)])
    assert -4.0 < neck_across(two, 0.75) < -0.5
    assert neck_across(rng.normal(-6.0, 2.5, 8000), 0.75) is None  # one tooth, no neck
    far = np.concatenate([rng.normal(-12.0, 1.5, 6000), rng.normal(-4.0, 1.5, 6000)])  # neck at -8: no
    assert neck_across(far, 0.75) is None


def _row_on_arch(centres_mm: list[float], widths_mm: list[float], sizes: list[int], fit: numbering.ArchFit):
    """Voxel clouds of teeth side by side along the arch curve of ``fit``: ``sizes[k]`` points about the arch
    point at arc length ``centres_mm[k]``, denser at the crown's middle than at its contacts."""
    rng = np.random.default_rng(1)
    grid = np.linspace(-60, 60, 4801)
    a, b, c = fit.coef
    curve = np.stack([grid, a * grid**2 + b * grid + c], axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(curve, axis=0).T))])
    arc -= np.interp(-b / (2 * a), grid, arc)
    clouds = []
    for centre, width, size in zip(centres_mm, widths_mm, sizes, strict=True):
        s = -(centre + rng.normal(0, width / 5, size))  # + arc position: the patient's right, -x
        uv = np.stack([np.interp(s, arc, curve[:, 0]), np.interp(s, arc, curve[:, 1])], axis=1)
        xyz = fit.origin + uv[:, :1] * fit.e_right + uv[:, 1:] * fit.e_front
        clouds.append(xyz + rng.normal(0, 1.0, (size, 3)) * [0.3, 0.3, 1.0])
    return np.concatenate(clouds)


def _arch_fit() -> numbering.ArchFit:
    s = np.linspace(-40, 40, 12)
    points = np.stack([s, -0.02 * s**2, np.zeros_like(s)], axis=1)
    return numbering.fit_arch(points, UP)


# A 6-year-old's primary teeth (Wheeler's crown widths, mm), central incisor to second molar.
PRIMARY_WIDTHS = {True: (6.5, 5.1, 7.0, 7.3, 8.2), False: (4.2, 4.1, 5.0, 7.7, 9.9)}


@pytest.mark.parametrize(("upper", "shares"), [(True, [1000, 1000, 3000]), (False, [1000, 1000, 1600])],
                         ids=["upper", "lower"])
def test_three_small_primary_teeth_fused_along_the_arch_are_cut_in_a_child_only(upper, shares):
    """The patient's left primary canine fused with the two resorbing primary incisors; the right side's primary
    teeth apart. Upper: each incisor a fifth of the three. Lower: the three are 2.4 x as wide as the permanent
    tooth the ratio expects there, which rounds to two teeth: a child's ratio is rounded up."""
    widths = PRIMARY_WIDTHS[upper]
    centres = np.cumsum(widths) - np.array(widths) / 2
    fit = _arch_fit()
    right = [_row_on_arch([c], [w], [2000], fit) for c, w in zip(centres, widths, strict=True)]
    fused = _row_on_arch(list(-centres[:3]), list(widths[:3]), shares, fit)
    left = [_row_on_arch([-c], [w], [2000], fit) for c, w in zip(centres[3:], widths[3:], strict=True)]
    clouds = [*right, fused, *left]
    ras = np.concatenate(clouds)
    labels = np.repeat(np.arange(1, len(clouds) + 1), [len(c) for c in clouds])
    position = numbering.arch_positions(np.stack([c.mean(axis=0) for c in clouds]), fit)
    n = len(clouds)
    for developing, teeth in ((np.zeros(n, dtype=bool), n + 2), (None, n if upper else n + 1)):
        assignment = Assignment(np.zeros(n, dtype=int), np.full(n, upper), position, UP, -6.0, True, [],
                                {upper: fit}, developing)
        cut, _ = split_wide_instances(labels, ras, assignment, 0.125, InstanceOptions())
        assert len(np.unique(cut)) == teeth


def test_developing_central_incisors_fused_across_the_midline_are_cut_beside_erupted_ones():
    """A 6-year-old's upper jaw: primary centrals at the occlusal level, the two permanent centrals fused in
    their crypts above them (one instance across the midline)."""
    fit = _arch_fit()
    erupted = _row_on_arch([-3.2, 3.2], [6.5, 6.5], [1100, 1100], fit)
    forming = _row_on_arch([-4.2, 4.2], [8.5, 8.5], [2500, 2500], fit) + [0.0, 0.0, 12.0]
    ras = np.concatenate([erupted, forming])
    labels = np.repeat([1, 2, 3], [1100, 1100, 5000])
    types = np.zeros((len(ras), 8))
    types[:, 0] = 1.0
    stats = region_stats(labels, types, np.ones(len(ras)), ras)
    position = numbering.arch_positions(stats.centroid, fit)
    assignment = Assignment(np.array([61, 51, 11]), np.array([True] * 3), position, UP, 6.0, True, [], {True: fit},
                            np.array([False, False, True]))
    cut, changed = split_fused_central_incisors(labels, ras, stats, assignment, 0.125, InstanceOptions())
    assert changed and len(np.unique(cut)) == 4
    halves = [numbering.arch_positions(ras[cut == k], fit) for k in np.unique(cut[labels == 3])]
    assert sorted(np.sign(np.median(h)) for h in halves) == [-1, 1]
    assignment.developing = None  # read as one layer: three central incisors, none cut
    assert not split_fused_central_incisors(labels, ras, stats, assignment, 0.125, InstanceOptions())[1]


def test_two_fused_teeth_with_a_sliver_of_a_third_are_cut_in_two():
    """An adult's lower central incisors fused across the midline together with a sliver of the lateral beside
    them: the span says three teeth, but a third part would hold under a quarter of the instance. The cut falls
    back to two parts at the deepest contact, between the central incisors (before: no cut at all)."""
    widths = (5.0, 5.5, 7.0, 7.0, 7.0)  # lower central incisor .. second premolar
    centres = np.cumsum(widths) - np.array(widths) / 2
    fit = _arch_fit()
    fused = _row_on_arch([centres[0], -centres[0], -centres[1]], [widths[0], widths[0], widths[1]],
                         [2000, 2000, 700], fit)
    right = [_row_on_arch([c], [w], [2000], fit) for c, w in zip(centres[1:], widths[1:], strict=True)]
    left = [_row_on_arch([-c], [w], [2000], fit) for c, w in zip(centres[2:], widths[2:], strict=True)]
    clouds = [fused, *right, *left]
    ras = np.concatenate(clouds)
    labels = np.repeat(np.arange(1, len(clouds) + 1), [len(c) for c in clouds])
    position = numbering.arch_positions(np.stack([c.mean(axis=0) for c in clouds]), fit)
    n = len(clouds)
    assignment = Assignment(np.zeros(n, dtype=int), np.zeros(n, dtype=bool), position, UP, 6.0, True, [],
                            {False: fit})
    cut, changed = split_wide_instances(labels, ras, assignment, 0.125, InstanceOptions())
    assert changed and len(np.unique(cut)) == n + 1
    arc = numbering.arch_positions(ras[labels == 1], fit)
    sides = [arc[cut[labels == 1] == value] for value in np.unique(cut[labels == 1])]
    assert sorted(len(side) for side in sides)[0] >= 1900  # each central incisor whole, the sliver with one
    assert all(np.all(side > -1.0) or np.all(side < 1.0) for side in sides)  # parted near the midline
