"""FDI assignment from per-instance summaries: jaws, arch order, gaps, midline, dynamic programme."""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.fdi import FDI_NUMBERS, mirror_fdi
from TeethSegmentationLib.instances.numbering import align_arch, assign_fdi, occlusal_plane


def arch_teeth(fdis, midline_x=0.0, pitch_deg=0.0, confusion=0.1):
    """Centroids on elliptic arches (upper above z=0, lower below) and type probabilities favouring the truth."""
    centroids, probs = [], []
    pitch = np.radians(pitch_deg)
    for fdi in fdis:
        q, t = divmod(fdi, 10)
        sign = 1.0 if q in (1, 4) else -1.0
        angle = (t - 0.5) / 8.0 * np.radians(85)
        x, y = midline_x + sign * 30 * np.sin(angle), -45 * (1 - np.cos(angle))
        z = 8.0 if q in (1, 2) else -8.0
        y, z = y * np.cos(pitch) - z * np.sin(pitch), y * np.sin(pitch) + z * np.cos(pitch)
        centroids.append((x, y, z))
        p = np.full(8, confusion / 7)
        p[t - 1] = 1 - confusion
        probs.append(p)
    return np.array(centroids), np.array(probs)


def test_full_and_gapped_dentitions():
    for missing in ((), (12, 18, 37, 46), (14, 24, 34, 44, 18, 28, 38, 48)):
        fdis = [f for f in FDI_NUMBERS if f not in missing]
        centroids, probs = arch_teeth(fdis, midline_x=7.0, pitch_deg=12.0)
        result = assign_fdi(centroids, probs, np.zeros(len(fdis)))
        assert result.fdi.tolist() == fdis


def test_mirror_swaps_quadrants():
    fdis = list(FDI_NUMBERS)
    centroids, probs = arch_teeth(fdis)
    centroids[:, 0] *= -1
    result = assign_fdi(centroids, probs, np.zeros(len(fdis)))
    assert result.fdi.tolist() == [mirror_fdi(f) for f in fdis]


def test_central_incisors_straddling_a_wrong_midline_go_one_to_each_side():
    probs = np.eye(8)[[1, 0, 0, 1]] * 0.9 + 0.1 / 8  # types 2, 1, 1, 2 from right to left
    positions = np.array([14.0, 6.0, 1.0, -7.0])  # midline estimate 2.5 mm too far left
    assert align_arch(probs, positions, upper=True).tolist() == [12, 11, 21, 22]


def test_more_than_eight_on_a_side_leaves_one_unnumbered():
    probs = np.eye(8)[[7, 6, 5, 5, 4, 3, 2, 1, 0]] * 0.9 + 0.1 / 8
    positions = np.arange(9, 0, -1) * 7.0
    numbers = align_arch(probs, positions, upper=False).tolist()
    assert numbers.count(0) == 1 and sorted(n for n in numbers if n) == [41, 42, 43, 44, 45, 46, 47, 48]


def test_single_arch_jaw_from_root_direction():
    fdis = [f for f in FDI_NUMBERS if f // 10 in (3, 4)]
    centroids, probs = arch_teeth(fdis)
    lower = assign_fdi(centroids, probs, np.full(len(fdis), -0.4))
    assert lower.fdi.tolist() == fdis and not lower.two_arches
    upper = assign_fdi(centroids, probs, np.full(len(fdis), 0.4))
    assert upper.fdi.tolist() == [f - 10 if f // 10 == 3 else f - 30 for f in fdis]


def test_occlusal_plane_profile():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(6, 3, 5000), rng.normal(-6, 3, 5000)])
    height, found = occlusal_plane(two)
    assert found and abs(height) < 1.5
    one = np.concatenate([rng.normal(0, 2, 8000), rng.uniform(0, 15, 2000)])
    assert not occlusal_plane(one)[1]


def test_position_prior_numbers_an_arch_with_a_gap_when_types_say_nothing():
    from TeethSegmentationLib.instances.numbering import UPPER_WIDTHS_MM, align_arch

    centres = np.cumsum(UPPER_WIDTHS_MM) - UPPER_WIDTHS_MM / 2
    present = [t for t in range(1, 9) if t not in (2, 8)]  # 12/22 missing with open gaps, no third molars
    positions = np.array([centres[t - 1] for t in present] + [-centres[t - 1] for t in present]) * 1.05
    uniform = np.full((len(positions), 8), 1 / 8)
    numbers = align_arch(uniform, positions, upper=True)
    assert list(numbers) == [10 + t for t in present] + [20 + t for t in present]


def test_confident_types_outweigh_the_position_prior():
    from TeethSegmentationLib.instances.numbering import align_arch

    positions = np.array([4.0, 14.0])  # a central incisor, then a canine pushed mesially into a gap
    probs = np.full((2, 8), 0.001)
    probs[0, 0], probs[1, 2] = 0.99, 0.99
    assert list(align_arch(probs, positions, upper=True)) == [11, 13]


def test_an_open_gap_reads_as_a_missing_tooth_when_types_say_nothing():
    """16 extracted with its space kept: the molars behind it keep 17 and 18, on a larger than typical arch."""
    from TeethSegmentationLib.instances.numbering import UPPER_WIDTHS_MM, align_arch

    centres = np.cumsum(UPPER_WIDTHS_MM) - UPPER_WIDTHS_MM / 2
    right = [t for t in range(1, 9) if t != 6]
    positions = np.array([centres[t - 1] for t in right] + [-centres[t - 1] for t in range(1, 9)]) * 1.12
    uniform = np.full((len(positions), 8), 1 / 8)
    numbers = align_arch(uniform, positions, upper=True)
    assert list(numbers) == [10 + t for t in right] + [20 + t for t in range(1, 9)]


def test_spacing_alignment_places_nothing_without_items():
    from TeethSegmentationLib.instances.numbering import _spacing_alignment, slot_centres_mm

    total, chosen = _spacing_alignment(np.zeros((0, 16)), np.ones(16), np.zeros(0), slot_centres_mm(True))
    assert chosen == [] and total == -16.0


def test_normal_within_jaws_is_not_tilted_by_teeth_one_jaw_lacks():
    """Upper right molars extracted, lower ones present: all centroids together tilt the fitted normal towards
    the lone lower molars; centring each jaw on itself does not."""
    from TeethSegmentationLib.instances.numbering import occlusal_normal

    x = np.linspace(-25, 25, 14)
    upper = np.stack([x, -0.06 * x**2, np.full_like(x, 8.0)], axis=1)[np.abs(x) < 12 + 30 * (x < 0)]
    lower = np.stack([x, -0.06 * x**2, np.full_like(x, -8.0)], axis=1)
    centroids = np.concatenate([upper, lower])
    is_upper = np.arange(len(centroids)) < len(upper)
    tilt = np.degrees(np.arccos(occlusal_normal(centroids)[2]))
    assert tilt > 5.0
    assert np.degrees(np.arccos(occlusal_normal(centroids, is_upper)[2])) < 1.0


def _loop_alignment(score, gap, pos, centres):
    """The programme as first written, one earlier item at a time: the reference the vectorised one must match."""
    from TeethSegmentationLib.instances import numbering as nb

    n, m = score.shape
    skipped = np.concatenate([[0.0], np.cumsum(gap)])
    between = skipped[1:, None] - skipped[None, :-1]
    expected = centres[:, None] - centres[None, :]
    valid = np.triu(np.ones((m, m), dtype=bool), k=1)
    sigma = nb.SPACING_SIGMA_MM + nb.SPACING_SIGMA_FRACTION * np.abs(expected)
    best, back = np.full((n, m), -np.inf), np.full((n, m, 2), -1, dtype=int)
    for i in range(n):
        best[i] = score[i] - skipped[:-1] - nb.UNPLACED_PRICE * i
        for k in range(i):
            pair = -0.5 * nb.SPACING_WEIGHT * (((pos[k] - pos[i]) - expected) / sigma) ** 2
            cand = np.where(valid, best[k][:, None] + between + pair - nb.UNPLACED_PRICE * (i - k - 1), -np.inf)
            prev = np.argmax(cand, axis=0)
            value = cand[prev, np.arange(m)] + score[i]
            better = value > best[i]
            best[i][better] = value[better]
            back[i][better] = np.stack([np.full(better.sum(), k), prev[better]], axis=1)
    return nb._backtrack(best, back, skipped, n)


def test_vectorised_alignment_matches_the_loop_bit_for_bit():
    """Random arches, and coarse scores and positions full of ties: the same totals (to the bit) and slots."""
    from TeethSegmentationLib.instances.numbering import GAP_PRICE, _spacing_alignments, slot_centres_mm

    rng = np.random.default_rng(5)
    gap = np.tile(GAP_PRICE[::-1], 2)
    for trial in range(40):
        n = int(rng.integers(1, 19))
        coarse = trial % 2 == 0
        score = np.round(rng.normal(-2, 2, (3, n, 16))) if coarse else rng.normal(-2, 2, (3, n, 16))
        pos = np.sort(np.round(rng.uniform(-45, 45, n)) if coarse else rng.uniform(-45, 45, n))[::-1]
        centres = np.stack([s * slot_centres_mm(trial % 3 == 0) for s in (0.9, 1.0, 1.1)])
        got = _spacing_alignments(score, gap, pos, centres)
        for s in range(3):
            assert got[s] == _loop_alignment(score[s], gap, pos, centres[s])


def test_nearest_grid_point_searches_few_points_and_finds_the_whole_grids_argmin():
    """Each point's foot point on the arch is searched only where it can lie: the index is the argmin over the
    whole grid to the bit, the first one on ties, for points on, near, far from and beyond the curve."""
    from TeethSegmentationLib.instances.numbering import nearest_grid_point

    rng = np.random.default_rng(2)
    grid = -3.0 + np.arange(-80.0, 80.0, 0.25)
    curve = -0.03 * grid**2 + 0.1 * grid + 2.0
    uu = np.concatenate([rng.uniform(-40, 40, 3000), grid[100:110] + 0.125, [-85.0, 85.0]])
    vv = np.concatenate([np.interp(uu[:3000], grid, curve) + rng.normal(0, 6, 3000), np.full(12, 40.0)])
    whole = np.argmin((uu[:, None] - grid[None]) ** 2 + (vv[:, None] - curve[None]) ** 2, axis=1)
    np.testing.assert_array_equal(nearest_grid_point(uu, vv, grid, curve), whole)


def closed_bite_with_a_piece_above(piece_voxels: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(labels, ras) of the voxels: ten upper and ten lower box 'teeth' (4x4x8 mm, 0.5 mm voxels) meeting at
    z = 0, so the height profile has no dip, and a small piece (a root tip, a false find) 30 mm above them."""
    grid = np.stack(np.meshgrid(*(np.arange(0, 4, 0.5),) * 2, np.arange(0, 8, 0.5), indexing="ij"), -1).reshape(-1, 3)
    boxes = [grid + [6.0 * n, 0.0, 0.0 if upper else -8.0] for upper in (True, False) for n in range(10)]
    boxes.append(grid[:piece_voxels] + [20.0, 0.0, 30.0])
    labels = np.concatenate([np.full(len(box), n + 1) for n, box in enumerate(boxes)])
    return labels, np.concatenate(boxes)


def test_a_small_piece_far_above_a_closed_bite_does_not_make_it_one_arch():
    """A 2.5 mm3 piece 30 mm above a closed bite drew the jaws' two-means split to itself (it alone 'above'),
    so the scan was read as a single arch and every upper tooth got a lower number (an in-family crop under
    bf16 networks, whose watershed cut a canine's root tip off). Each region now counts with its size."""
    from TeethSegmentationLib.instances.numbering import split_jaws
    from TeethSegmentationLib.instances.occlusal import find_occlusal_plane

    labels, ras = closed_bite_with_a_piece_above()
    size = np.bincount(labels)[1:]
    centroids = np.stack([ras[labels == n].mean(axis=0) for n in range(1, len(size) + 1)])
    up = np.array([0.0, 0.0, 1.0])
    assert split_jaws(centroids, np.zeros(len(size)), up)[0].sum() == 1  # unweighted: the piece alone is upper
    upper, height, two, _ = split_jaws(centroids, np.zeros(len(size)), up, weights=size)
    assert two and upper[:10].all() and not upper[10:20].any() and -4 < height < 4
    plane = find_occlusal_plane(labels, ras, np.ones(len(size) + 1))
    assert plane.two_arches and abs(plane.height) < 4
