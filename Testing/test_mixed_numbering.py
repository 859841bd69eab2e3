"""Numbering a mixed dentition from instance summaries: primary teeth, erupted permanent teeth and permanent
teeth developing beneath their predecessors; adult summaries keep the adults' numbers."""

from __future__ import annotations

import numpy as np
import pytest

from TeethSegmentationLib.fdi import FDI_NUMBERS, is_primary
from TeethSegmentationLib.instances.mixed import (
    assign_teeth,
    beneath_another,
    developing_mask,
    is_mixed,
    long_axis_normal,
    occlusal_layers,
    second_molars_first,
    settle_crowded,
    split_layers,
)
from TeethSegmentationLib.instances.numbering import assign_fdi, roots_contradict
from TeethSegmentationLib.instances.options import InstanceOptions

# Mesio-distal crown widths (mm): permanent types 1..8, primary types 1..5 (Wheeler's tables, rounded).
PERMANENT = {True: (8.5, 6.5, 7.5, 7.0, 6.5, 10.0, 9.0, 8.5), False: (5.0, 5.5, 7.0, 7.0, 7.0, 11.0, 10.5, 10.0)}
PRIMARY = {True: (6.5, 5.1, 7.0, 7.3, 8.2), False: (4.2, 4.1, 5.0, 7.7, 9.9)}
_U = np.linspace(-32, 32, 6401)
_V = -50 * (1 - np.sqrt(np.clip(1 - (_U / 32) ** 2, 0, 1)))
_ARC = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(_U), np.diff(_V)))])
_ARC -= np.interp(0.0, _U, _ARC)


def _on_arch(s: float, inset: float = 0.0) -> np.ndarray:
    k = int(np.argmin(np.abs(_ARC + s)))  # + s: the patient's right is +x
    point = np.array([-_U[k], _V[k]])
    return point * (1 - inset / 40.0)  # towards the middle of the arch (lingual)


def mixed_arch(erupted: dict[bool, set[int]], forming: dict[bool, set[int]], confusion: float = 0.2, seed: int = 0):
    """Instance summaries of a mixed dentition. ``erupted[jaw]``: places 1..8 holding an erupted permanent
    tooth (the others up to 5 hold a primary one); ``forming[jaw]``: places with a developing permanent tooth
    (beneath the primary predecessor, or behind the last molar). Returns (truth, developing truth, centroids,
    permanent probabilities (N, 8), primary probabilities (N, 5), extent (N, 2))."""
    rng = np.random.default_rng(seed)
    truth, deep, centroids, perm, prim, extent = [], [], [], [], [], []
    for upper in (True, False):
        sign_z = 1.0 if upper else -1.0
        for side, (q_perm, q_prim) in ((1, (1, 5) if upper else (4, 8)), (-1, (2, 6) if upper else (3, 7))):
            s = 0.0
            places = sorted({*range(1, 6), *erupted[upper]} | {t for t in forming[upper] if t <= 5})
            centre_of = {}
            for t in range(1, 9):
                if t <= 5:
                    width = PERMANENT[upper][t - 1] if t in erupted[upper] else PRIMARY[upper][t - 1]
                elif t in erupted[upper]:
                    width = PERMANENT[upper][t - 1]
                else:
                    width = PERMANENT[upper][t - 1]
                centre_of[t] = s + width / 2
                s += width
            for t in places:
                if t > 5 and t not in erupted[upper]:
                    continue
                primary = t <= 5 and t not in erupted[upper]
                xy = _on_arch(side * centre_of[t])
                tip = 1.0 + rng.normal(0, 0.3)
                centroids.append((xy[0], xy[1], sign_z * (tip + 9.0)))
                extent.append(sorted((sign_z * tip, sign_z * (tip + 20.0))))
                p = np.full(13, confusion / 12)
                p[(8 if primary else 0) + t - 1] = 1 - confusion
                perm.append(p[:8]), prim.append(p[8:])
                truth.append(10 * (q_prim if primary else q_perm) + t)
                deep.append(False)
            for t in sorted(forming[upper]):
                xy = _on_arch(side * centre_of[t], inset=2.0)
                tip = 9.0 + rng.normal(0, 1.0) + (3.0 if t >= 7 else 0.0)
                centroids.append((xy[0], xy[1], sign_z * (tip + 5.0)))
                extent.append(sorted((sign_z * tip, sign_z * (tip + 10.0))))
                p = np.full(13, confusion / 12)
                p[t - 1] = 1 - confusion
                perm.append(p[:8]), prim.append(p[8:])
                truth.append(10 * q_perm + t)
                deep.append(True)
    arrays = (np.array(centroids), np.array(perm), np.array(prim), np.array(extent))
    return np.array(truth), np.array(deep), *arrays


AGE_9 = ({True: {1, 2, 6}, False: {1, 2, 6}}, {True: {3, 4, 5, 7}, False: {3, 4, 5, 7}})
AGE_6 = ({True: {6}, False: {6}}, {True: {1, 2, 3, 4, 5, 7}, False: {1, 2, 3, 4, 5, 7}})
AGE_11 = ({True: {1, 2, 4, 6}, False: {1, 2, 3, 4, 6}}, {True: {3, 5, 7, 8}, False: {5, 7, 8}})


@pytest.mark.parametrize("age", [AGE_6, AGE_9, AGE_11], ids=["6", "9", "11"])
def test_mixed_arch_numbers_both_sets_and_the_developing_teeth(age):
    truth, deep, centroids, perm, prim, extent = mixed_arch(*age)
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.developing is not None and result.developing.tolist() == deep.tolist()
    assert result.fdi.tolist() == truth.tolist()
    assert any(is_primary(n) for n in result.fdi) and len(set(result.fdi.tolist())) == len(truth)


def test_primary_second_molar_in_front_of_the_first_permanent_molar_and_premolars_beneath():
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_9)
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    number = dict(zip(result.fdi.tolist(), range(len(truth)), strict=True))
    pos = result.arch_position_mm
    assert pos[number[16]] > pos[number[55]] > pos[number[54]] > 0  # distal (right) is larger
    for predecessor, successor in ((54, 14), (55, 15), (53, 13), (84, 44), (73, 33)):
        assert abs(pos[number[predecessor]] - pos[number[successor]]) < 3.0
        assert result.developing[number[successor]] and not result.developing[number[predecessor]]


def test_occlusal_plane_parts_the_primary_teeth_of_a_closed_bite():
    # Centroid heights (mm from a first guess of the plane) of a 6-year-old phantom's primary teeth. In the
    # closed bite the upper crowns reach 6 mm below that guess and the lower canines' tips 2 mm short of it,
    # so every plane cuts some crowns; the plane that cut fewest (at +0.1) sent the upper primary molars to the
    # lower jaw and shifted the lower arch by one place.
    upper = [1.1, 0.3, 3.9, -0.7, -1.2, 0.8, 0.3, 4.0, -0.7, -1.3]
    lower = [-6.6, -7.9, -8.8, -6.9, -8.0, -9.0]
    cut = split_layers(np.array(upper + lower), np.ones(len(upper + lower), dtype=bool))
    assert min(upper) > cut > max(lower)


def _bite_of_46110() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 6-year-old dev phantom (seed 46110): (x, y, height) of its erupted primary instances, heights along the
    plane of its primary molars (the last eight). Its upper primary incisors overlap the lower ones by their
    overbite and were fused with them across the bite (the first three). Returns (instances, molars, the normal
    of its long axes: 7.5 degrees off that plane)."""
    layer = np.array([
        (-2.6, -1.4, 3.2), (3.8, -1.9, 2.9), (-7.0, -4.4, 2.7),
        (7.9, -5.2, 8.6), (-6.9, -5.6, 8.5), (8.1, -7.4, -2.7), (-8.3, -7.6, -2.9), (10.6, -9.6, 7.8),
        (-10.8, -10.1, 8.0), (12.3, -13.6, -3.4), (-11.7, -13.7, -3.3), (-14.3, -15.4, 4.9), (14.6, -15.6, 4.8),
        (-15.8, -21.4, -3.5), (16.0, -21.7, -3.7), (-17.6, -22.6, 5.0), (16.8, -23.3, 5.3)])
    tilt = np.radians(-7.5)
    return layer, np.arange(len(layer)) >= 9, np.array([0.0, np.sin(tilt), np.cos(tilt)])


def test_the_numberings_tilt_comes_from_the_primary_molars_not_the_incisors_overbite():
    """From the long axes' normal, a refit to all primary teeth tilts the plane 16 degrees off the molars' plane and
    puts the three front instances below it (in 46110 both upper primary central incisors were numbered as lower
    ones); the molars' contacts make a plane, and it parts every instance."""
    layer, molars, axes = _bite_of_46110()
    primary = np.ones(len(layer), dtype=bool)
    front = slice(0, 3)
    normal, height = occlusal_layers(layer, primary, axes, tilt_known=True, max_turn_deg=12.0)
    assert (layer[front] @ normal < height).all()
    normal, height = occlusal_layers(layer, primary, axes, tilt_known=True, max_turn_deg=12.0, tilt_from=molars)
    assert np.degrees(np.arccos(normal[2])) < 1.0
    assert (np.sign(layer[:, 2]) == np.sign(layer @ normal - height)).all()


def test_a_childs_numbering_puts_the_incisors_fused_across_the_bite_in_their_jaw(monkeypatch):
    """The same instances through the numbering (read as primary incisors, canines and molars): with the tilt
    from the primary molars every one goes to the jaw its height says; from all primary teeth (what the numbering
    did before) the front three go to the lower jaw."""
    from TeethSegmentationLib.instances import mixed

    layer, _molars, axes = _bite_of_46110()
    kinds = [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]  # primary types: incisors, canines, then molars
    primary_probs = np.full((len(layer), 5), 0.01)
    primary_probs[np.arange(len(layer)), kinds] = 0.95
    permanent_probs = np.full((len(layer), 8), 0.001)
    height = layer @ axes
    extent = np.stack([height - 3.0, height + 3.0], axis=1)
    found = mixed.assign_mixed(layer, permanent_probs, primary_probs, np.zeros(len(layer)), extent, axis_normal=axes)
    assert (found.upper == (layer[:, 2] > 0)).all()
    monkeypatch.setattr(mixed, "MIN_POSTERIOR", len(layer) + 1)  # too few molars: all primary teeth refit the tilt
    found = mixed.assign_mixed(layer, permanent_probs, primary_probs, np.zeros(len(layer)), extent, axis_normal=axes)
    assert not found.upper[:3].any()


def test_resorbing_root_pieces_do_not_make_a_layer_of_their_own():
    # A 6-year-old dev phantom (seed 46110) as the watershed left it: (height mm, voxels) of its primary regions.
    # The lower primary molars' resorbing roots, parted from their crowns by the premolar crypts, are ten small
    # pieces 5-7 mm below the lower crowns. Counted like teeth they made that gap the most even one, and the
    # lower primary crowns went to the upper jaw; weighed by size, the bite parts the crowns.
    upper = [(10.4, 366), (6.0, 2480), (5.7, 2425), (4.1, 3755), (3.9, 3507), (3.2, 1991), (3.1, 1999),
             (0.8, 1012), (0.0, 1636), (-0.4, 2821)]
    lower = [(-3.4, 2736), (-3.5, 2902), (-4.0, 2000), (-4.3, 723), (-4.3, 2119), (-4.3, 1068)]
    roots = [(-9.6, 243), (-9.7, 356), (-9.8, 355), (-10.0, 360), (-10.0, 239), (-10.2, 160), (-10.4, 291),
             (-10.5, 230), (-11.3, 287), (-11.5, 201)]
    heights, sizes = np.array(upper + lower + roots).T
    primary = np.ones(len(heights), dtype=bool)
    top_of_lower = max(h for h, _ in lower)
    assert split_layers(heights, primary) < top_of_lower  # by count: between the lower crowns and their roots
    cut = split_layers(heights, primary, sizes)
    assert min(h for h, _ in upper) > cut > top_of_lower


@pytest.mark.parametrize("age", [AGE_6, AGE_9, AGE_11], ids=["6", "9", "11"])
def test_developing_teeth_numbered_by_place_and_depth_when_their_types_say_nothing(age):
    truth, deep, centroids, perm, prim, extent = mixed_arch(*age)
    perm[deep], prim[deep] = 0.75 / 8, 0.25 / 5  # flat: a forming crown the network cannot type
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == truth.tolist()


def _looks(perm: np.ndarray, prim: np.ndarray, rows: np.ndarray, permanent_type: int | None = None) -> None:
    """Make ``rows`` look to the network like the permanent type of their place (or ``permanent_type``)."""
    for i in np.flatnonzero(rows):
        place = int(np.argmax(prim[i])) + 1
        prim[i] = 0.01
        perm[i] = 0.01
        perm[i, (permanent_type or place) - 1] = 0.9


def test_an_erupted_tooth_over_its_forming_successor_is_primary_whatever_it_looks_like():
    # The network calls the primary incisors permanent ones (their crowns differ in size only); the successor
    # forming beneath each tells them apart.
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_9)
    incisors = np.isin(truth, [51, 52, 61, 62, 71, 72, 81, 82])
    _looks(perm, prim, incisors)
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert not incisors.any() or result.fdi.tolist() == truth.tolist()
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_6)
    incisors = np.isin(truth, [51, 52, 61, 62, 71, 72, 81, 82])
    _looks(perm, prim, incisors)
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == truth.tolist()


def test_a_successor_erupting_behind_its_primary_incisor_is_told_apart_from_it():
    # A dev 8-year-old: the upper permanent centrals halfway out (crown tips 3 mm beyond the jaw's level, short
    # of the developing depth) behind the primary centrals, which hang 2 mm below the other crowns and look
    # permanent to the network. Both sat in the erupted layer and fought for one place: one became 11, the
    # other no number.
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_6)
    for predecessor, successor in ((51, 11), (61, 21)):
        i, j = int(np.flatnonzero(truth == predecessor)[0]), int(np.flatnonzero(truth == successor)[0])
        extent[i], centroids[i, 2] = (-2.0, 18.0), 7.0
        extent[j], centroids[j, 2] = (4.0, 14.0), 9.0
    _looks(perm, prim, np.isin(truth, [51, 61]))
    assert not developing_mask(extent, centroids[:, 2] > 0)[np.isin(truth, [11, 21])].any()
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == truth.tolist()
    assert result.developing.tolist() == deep.tolist()


def test_beneath_another_marks_the_deeper_of_two_teeth_at_one_place():
    positions = np.array([3.8, 3.6, 9.0, 14.0])
    tips = np.array([6.8, -1.6, 12.0, 0.0])  # an erupting 11 behind 51; 12 forming 5 mm away; 53
    assert beneath_another(positions, tips).tolist() == [True, False, False, False]
    assert not beneath_another(positions, np.array([2.0, -1.6, 12.0, 0.0])).any()  # 3.6 mm apart: neighbours


def test_beneath_another_marks_a_germ_that_reaches_the_bite_by_its_centroid():
    positions, tips = np.array([-30.0, -29.3, -38.8]), np.array([0.2, 1.7, -0.3])  # 65, 25's region, 26
    assert not beneath_another(positions, tips).any()  # the tips alone: side by side
    centres = np.array([4.7, 17.2, 7.3])
    assert beneath_another(positions, tips, centres).tolist() == [False, True, False]
    crowded = np.array([4.7, 13.2, 7.3])  # 8.5 mm: a permanent lateral incisor crowded onto a primary canine
    assert not beneath_another(positions, tips, crowded).any()


def test_a_germ_whose_region_took_its_predecessors_root_tip_does_not_take_its_place():
    """A forming 25 whose region reached the bite through a sliver of 65's root, with 65 typed as a permanent
    second molar (dev 6-9 years): 65 keeps place 5 and 25 is developing beneath it."""
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_9)
    germ, predecessor = int(np.flatnonzero(truth == 25)[0]), int(np.flatnonzero(truth == 65)[0])
    extent[germ, 0] = 1.5
    centroids[germ, 2], centroids[predecessor, 2] = 17.0, 5.0  # crypt above a crown on resorbing roots
    perm[predecessor], prim[predecessor] = 0.02, 0.02
    perm[predecessor, 6], prim[predecessor, 4] = 0.6, 0.15
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == truth.tolist()
    assert result.developing.tolist() == deep.tolist()


def test_a_deep_piece_read_as_a_primary_canine_is_a_root_and_takes_no_forming_number():
    """A piece of 53's root, deep in the jaw and read as a primary canine (dev 9-year-old): without the rule it
    took 13, the forming canine took 12 and the erupted 12 became 52. A forming premolar read as a primary molar
    (its shell of cusps, at 6 years) keeps its number."""
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_9)
    root = np.full(13, 0.01)
    root[2], root[8 + 2] = 0.4, 0.5
    centroids = np.vstack([centroids, centroids[int(np.flatnonzero(truth == 53)[0])] + [0.5, 0.5, 5.0]])
    extent = np.vstack([extent, [9.8, 17.4]])
    perm, prim = np.vstack([perm, root[:8]]), np.vstack([prim, root[8:]])
    premolar = int(np.flatnonzero(truth == 15)[0])
    perm[premolar], prim[premolar] = 0.02, 0.02
    perm[premolar, 4], prim[premolar, 3] = 0.35, 0.5
    result = assign_teeth(centroids, perm, np.zeros(len(centroids)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == [*truth.tolist(), 0]
    assert not result.developing[-1] and result.developing[premolar]


def test_a_scan_with_more_teeth_than_an_adult_is_read_as_mixed_even_when_no_tooth_looks_primary():
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_6)
    assert len(truth) > 36
    _looks(perm, prim, truth > 50)
    assert is_mixed(perm, prim) and not is_mixed(perm[:32], prim[:32])
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == truth.tolist()


@pytest.mark.parametrize(
    ("age", "teeth"), [(AGE_9, [55, 65, 75, 85]), (AGE_6, [17, 27, 37, 47])], ids=["erupted", "forming"]
)
def test_a_childs_tooth_that_looks_like_a_third_molar_is_the_second_molar_of_its_set(age, teeth):
    # Erupted: a primary second molar has a permanent first molar's likeness on short roots, and no third molar
    # has erupted in a child's mouth. Forming: third molars start to calcify at 7-10 years, after the second
    # molars' crowns are complete, and the network reads a 6-year-old's forming second molars as third molars.
    truth, deep, centroids, perm, prim, extent = mixed_arch(*age)
    _looks(perm, prim, np.isin(truth, teeth), permanent_type=8)
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.fdi.tolist() == truth.tolist()


def test_four_primary_teeth_do_not_tilt_the_plane():
    # At 11-12 years the last primary teeth may be two upper canines and two lower second molars: two points per
    # jaw leave the plane's pitch free, so the plane's tilt comes from all teeth.
    age_12 = ({True: {1, 2, 4, 5, 6, 7}, False: {1, 2, 3, 4, 6, 7}}, {True: {3, 8}, False: {5, 8}})
    truth, deep, centroids, perm, prim, extent = mixed_arch(*age_12)
    left = np.isin(truth, [63, 75])
    centroids[left] += (0.0, 2.0, 1.0)  # some asymmetry, as in any mouth
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert result.normal[2] > 0.99
    assert result.fdi.tolist() == truth.tolist()


def _adult(confusion: float = 0.1):
    fdis = list(FDI_NUMBERS)
    centroids, perm, extent = [], [], []
    for n in fdis:
        q, t = divmod(n, 10)
        upper = q in (1, 2)
        widths = PERMANENT[upper]
        s = sum(widths[: t - 1]) + widths[t - 1] / 2
        xy = _on_arch((1 if q in (1, 4) else -1) * s)
        z = 1.0 if upper else -1.0
        centroids.append((xy[0], xy[1], 10 * z))
        extent.append(sorted((z, 21 * z)))
        p = np.full(8, confusion / 7)
        p[t - 1] = 1 - confusion
        perm.append(p)
    return fdis, np.array(centroids), np.array(perm), np.array(extent)


def test_adult_scan_keeps_todays_numbers_and_never_gets_primary_ones():
    fdis, centroids, perm, extent = _adult()
    today = assign_fdi(centroids, perm, np.zeros(len(fdis)))
    # A 14-class model that sees no primary tooth, and a 9-class model (no primary probabilities at all).
    prim = np.full((len(fdis), 5), 0.01)
    for primary_probs in (prim, None):
        result = assign_teeth(centroids, perm, np.zeros(len(fdis)), primary_probs=primary_probs, extent=extent)
        assert result.fdi.tolist() == today.fdi.tolist() == fdis
        assert result.developing is None and not any(is_primary(n) for n in result.fdi)
    # Three instances that look primary (a retained primary tooth, network slips) are not a child's scan.
    prim[[3, 12, 25]] = 0.9
    assert not is_mixed(perm, prim)
    assert assign_teeth(centroids, perm, np.zeros(len(fdis)), primary_probs=prim, extent=extent).fdi.tolist() == fdis


def test_an_adult_upper_arch_in_two_layers_is_not_a_childs_two_jaws():
    """Network slips can make an adult's upper-only scan look like a child's (four or more instances mostly
    primary), and its crowns and parted roots like two jaws. Every tooth's roots point up, so the lower "jaw"
    is denied and the adults' numbering decides: no primary numbers."""
    fdis, centroids, perm, extent = _adult()
    upper = [i for i, n in enumerate(fdis) if n // 10 in (1, 2)]
    layers = np.vstack([centroids[upper], centroids[upper] + [0.0, 0.0, 12.0]])  # crowns, and roots above them
    perm = np.vstack([perm[upper], perm[upper]])
    extent = np.vstack([extent[upper], extent[upper] + 12.0])
    prim = np.full((len(layers), 5), 0.01)
    prim[[2, 5, 10, 20, 26]] = 0.3  # five slips: primary probabilities 1.5 against permanent 1
    roots_up = np.full(len(layers), 0.6)
    assert is_mixed(perm, prim) and roots_contradict(roots_up, layers[:, 2] > 16.0)
    result = assign_teeth(layers, perm, roots_up, primary_probs=prim, extent=extent)
    assert result.developing is None and not any(is_primary(n) for n in result.fdi)


def test_a_childs_jaws_stand_when_their_roots_point_apart():
    """The phantoms' children: median apex skew +0.03..+0.42 in the upper jaw, -0.01..-0.48 in the lower."""
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_9)
    skew = np.where(centroids[:, 2] > 0, 0.3, -0.3)
    result = assign_teeth(centroids, perm, skew, primary_probs=prim, extent=extent)
    assert result.developing is not None and result.fdi.tolist() == truth.tolist()


def test_developing_mask_uses_each_jaws_own_level():
    upper = np.array([True] * 6 + [False] * 6)
    extent = np.array([[1, 20]] * 4 + [[9, 19], [3.5, 22]] + [[-20, -1]] * 4 + [[-19, -9], [-22, -4.0]], float)
    assert developing_mask(extent, upper).tolist() == [False] * 4 + [True, False] + [False] * 4 + [True, False]


def test_long_axis_normal_follows_the_teeth_not_their_layers():
    # Twelve upright teeth (8 x 8 x 16 mm, 0.5 mm voxels), in two layers offset along a slope (as forming teeth
    # lie deeper and further back), the whole tilted 20 degrees about x: the normal is the teeth's axis.
    tilt = np.radians(20.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    grid = np.stack(np.meshgrid(*(np.arange(-4, 4.01, 0.5),) * 2, np.arange(-8, 8.01, 0.5), indexing="ij"), -1)
    tooth = grid.reshape(-1, 3)
    points, labels = [], []
    for k in range(12):
        layer = k // 6
        centre = np.array([(k % 6 - 2.5) * 9.0, -15.0 * layer, -12.0 * layer + 2.0 * (k % 6)])
        points.append((tooth + centre) @ rotation.T)
        labels.append(np.full(len(tooth), k + 1))
    normal = long_axis_normal(np.concatenate(labels), np.concatenate(points), np.array([0.0, 0.0, 1.0]))
    expected = rotation @ np.array([0.0, 0.0, 1.0])
    assert np.degrees(np.arccos(min(1.0, float(normal @ expected)))) < 1.0


def test_long_axis_normal_is_not_rolled_by_regions_lying_on_their_side():
    # Ten upright teeth (6 x 6 x 16 mm) along an arch tilted 20 degrees about x, and two wide regions lying on
    # their side, their long axes 15 degrees off horizontal: a pair of central incisors fused side by side and a
    # primary molar's crown (16 x 8 x 6 mm). Voting with the teeth, such regions rolled a dev 6-year-old's normal
    # by 9-16 degrees, which put the primary molars of one side in the other jaw; only axes near the estimate vote.
    def rotation(axis: int, degrees: float) -> np.ndarray:
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        a, b = [i for i in range(3) if i != axis]
        r = np.eye(3)
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        return r

    tilt = rotation(0, 20.0)

    def block(half: tuple[float, float, float], centre: tuple[float, float, float], roll: float = 0.0) -> np.ndarray:
        axes = [np.arange(-h, h + 0.01, 0.5) for h in half]
        box = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3) @ rotation(1, roll).T
        return (box + centre) @ tilt.T

    regions = [block((3, 3, 8), ((k - 4.5) * 8.0, -abs(k - 4.5) * 4.0, 0.0)) for k in range(10)]
    regions += [block((8, 4, 3), (0.0, 8.0, -14.0), 15.0), block((8, 4, 3), (-20.0, -10.0, -14.0), 15.0)]
    labels = np.concatenate([np.full(len(r), k + 1) for k, r in enumerate(regions)])
    normal = long_axis_normal(labels, np.concatenate(regions), np.array([0.0, 0.0, 1.0]))
    expected = tilt @ np.array([0.0, 0.0, 1.0])
    assert np.degrees(np.arccos(min(1.0, float(normal @ expected)))) < 1.0


def test_a_child_plane_is_not_drawn_through_one_arch_whose_roots_are_parted():
    """An adult upper-only scan whose teeth the type boundary cut in two (crowns with the lower roots, and the
    upper roots), and whose front crowns voted primary types: the child's plane between the two layers would
    make the crowns a lower jaw. Both layers have their roots pointing up, so the adults' plane stands."""
    from synthetic_arch import make_arch

    from TeethSegmentationLib.instances.mixed import child_plane
    from TeethSegmentationLib.instances.occlusal import OcclusalPlane

    arch = make_arch(spacing=0.5, jaws=("upper",), missing=(18, 28))
    flat = np.flatnonzero(arch.labels)
    fdi = arch.labels.ravel()[flat].astype(int)
    ijk = np.stack(np.unravel_index(flat, arch.labels.shape), axis=1)
    ras = ijk @ arch.ijk_to_ras[:3, :3].T + arch.ijk_to_ras[:3, 3]
    labels, primary = np.zeros(len(flat), np.int32), np.zeros(len(flat), bool)
    for n, tooth in enumerate(fdi == f for f in np.unique(fdi)):
        z = ras[tooth, 2]
        upper_root = z > z.min() + 0.55 * (z.max() - z.min())
        labels[tooth] = np.where(upper_root, 2 * n + 2, 2 * n + 1)
        primary[tooth] = ~upper_root & (fdi[tooth] % 10 <= 3)
    types = np.zeros((len(flat), 13))
    types[~primary, 0], types[primary, 8] = 1.0, 1.0
    adults = OcclusalPlane(np.array([0.0, 0.0, 1.0]), 0.0, False)
    assert child_plane(adults, labels, ras, types, InstanceOptions(), 0.125) is adults


def _box_teeth(boxes: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, ras) of upright 6 x 6 mm boxes on a 0.5 mm grid, one region each: (x centre, z low, z high)."""
    labels, points = [], []
    for k, (x, low, high) in enumerate(boxes):
        grid = np.mgrid[x - 3 : x + 3 : 0.5, -3:3:0.5, low:high:0.5].reshape(3, -1).T
        points.append(grid)
        labels.append(np.full(len(grid), k + 1, dtype=np.int32))
    return np.concatenate(labels), np.concatenate(points)


def _adult_in_fragments() -> tuple[np.ndarray, np.ndarray]:
    """An adult's teeth split into more regions than an adult has teeth: 14 lower teeth, 10 upper ones parted
    into crown and root, 4 upper ones whole. The centroids' widest gap lies between the upper crowns and roots,
    so a child's plane drawn from the centroid layers runs through the 4 whole upper teeth."""
    xs = np.arange(14) * 8.0
    lower = [(x, -8.0, -0.5) for x in xs]
    parted = [part for x in xs[:10] for part in ((x, 0.5, 5.0), (x, 6.0, 22.0))]
    whole = [(x, 0.5, 22.0) for x in xs[10:]]
    return _box_teeth(lower + parted + whole)


def test_crossed_regions_are_the_regions_far_on_both_sides_of_a_plane():
    from TeethSegmentationLib.instances.occlusal import OcclusalPlane, crossed_regions

    labels, ras = _box_teeth([(0.0, -8.0, -0.5), (8.0, 0.5, 8.0), (16.0, -8.0, 8.0), (24.0, -1.0, 1.0)])
    opts = InstanceOptions()
    bite = OcclusalPlane(np.array([0.0, 0.0, 1.0]), 0.0, True)
    assert crossed_regions(labels, ras, bite, opts, 0.125).tolist() == [False, False, True, False]
    tilted = np.array([0.0, np.sin(0.1), np.cos(0.1)])
    assert crossed_regions(labels, ras, OcclusalPlane(tilted, 4.0, True), opts, 0.125)[1]


def test_the_adults_plane_stands_where_a_childs_plane_runs_through_teeth():
    """Over-split regions of an adult scan (36+) read as a child's by their count alone. Where the adults' plane
    found two arches and the child's plane, from the centroids' layers, would run through more regions, the
    adults' plane stands (a fine-tuned model's crop: a child's plane tilted 6 degrees cut three upper incisors
    at their edges), with primary teeth among the regions too. Without two arches found, the child's plane is
    drawn."""
    from TeethSegmentationLib.instances.mixed import MIN_PRIMARY, MIXED_COUNT, child_plane
    from TeethSegmentationLib.instances.occlusal import OcclusalPlane, crossed_regions

    labels, ras = _adult_in_fragments()
    assert labels.max() >= MIXED_COUNT
    types = np.zeros((len(labels), 13))
    types[:, 0] = 1.0
    opts = InstanceOptions()
    adults = OcclusalPlane(np.array([0.0, 0.0, 1.0]), 0.0, True)
    assert child_plane(adults, labels, ras, types, opts, 0.125) is adults
    single = OcclusalPlane(np.array([0.0, 0.0, 1.0]), 0.0, False)
    drawn = child_plane(single, labels, ras, types, opts, 0.125)
    assert drawn is not single and crossed_regions(labels, ras, drawn, opts, 0.125).sum() == 4
    lower_primary = labels <= MIN_PRIMARY
    types[lower_primary, 0], types[lower_primary, 8] = 0.0, 1.0
    assert child_plane(adults, labels, ras, types, opts, 0.125) is adults
    through_teeth = OcclusalPlane(np.array([0.0, 0.0, 1.0]), 12.0, True)  # through every upper root and tooth
    assert child_plane(through_teeth, labels, ras, types, opts, 0.125) is not through_teeth


def test_a_few_primary_teeth_do_not_turn_the_long_axes_normal():
    # A 6-year-old whose network calls only nine primary teeth primary (the rest look permanent): the refit
    # to them leans on the incisors, whose centroids stand 1 mm higher than the rest, and tilted the normal
    # 27 degrees, which sent a lower first molar to the upper jaw. The long axes' normal stands.
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_6)
    few = np.isin(truth, [51, 61, 52, 62, 71, 81, 72, 82, 73])
    _looks(perm, prim, (truth > 50) & ~few)
    centroids[np.isin(truth, [51, 61, 71, 81])] += (0.0, 0.0, 1.0)
    result = assign_teeth(
        centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent, axis_normal=np.array([0.0, 0, 1])
    )
    assert result.normal[2] > np.cos(np.radians(12.0))
    assert result.fdi.tolist() == truth.tolist()


def test_a_forming_third_molar_behind_an_erupted_second_molar_keeps_its_number():
    age_13 = ({True: {1, 2, 3, 4, 5, 6, 7}, False: {1, 2, 3, 4, 5, 6, 7}}, {True: {8}, False: {8}})
    truth, deep, centroids, perm, prim, extent = mixed_arch(*age_13)
    result = assign_teeth(centroids, perm, np.zeros(len(truth)), primary_probs=prim, extent=extent)
    assert sorted(result.fdi[deep].tolist()) == [18, 28, 38, 48]


def test_second_molars_first_keeps_a_third_molar_behind_a_second():
    assert second_molars_first(np.array([18, 28, 0, 15]), {16, 26, 27, 55}).tolist() == [17, 28, 0, 15]
    assert second_molars_first(np.array([17, 18]), {16, 17, 18}).tolist() == [17, 18]


def _overbite(truth: np.ndarray, centroids: np.ndarray, extent: np.ndarray, teeth: list[int]) -> None:
    """Lower ``teeth`` (upper primary incisors) so that their centroids fall 1.5 mm below the plane, as the
    overbite leaves a resorbing upper primary incisor over the lower incisors' tips."""
    rows = np.isin(truth, teeth)
    drop = centroids[rows, 2] + 1.5
    centroids[rows, 2] -= drop
    extent[rows] -= drop[:, None]


def test_an_upper_primary_incisor_below_the_plane_goes_to_the_jaw_with_room_for_it():
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_6)
    _overbite(truth, centroids, extent, [51, 61])
    upper = centroids[:, 2] > 0  # a plane at height 0: both on the lower jaw's side, on its primary centrals
    incisors = np.isin(truth, [51, 61])
    assert not upper[incisors].any()
    settled = settle_crowded(centroids, upper, deep, np.array([0.0, 0, 1]), 0.0)
    assert settled[incisors].all() and (settled[~incisors] == upper[~incisors]).all()


def test_a_tooth_on_the_plane_with_no_room_in_the_other_jaw_stays():
    truth, deep, centroids, perm, prim, extent = mixed_arch(*AGE_6)
    _overbite(truth, centroids, extent, [51])
    rows = np.isin(truth, [52, 61])  # the upper jaw has no room either: its neighbours crowd 51's place
    centroids[rows] = centroids[truth == 51] + [0.0, 0.0, 10.0]
    upper = centroids[:, 2] > 0
    assert not settle_crowded(centroids, upper, deep, np.array([0.0, 0, 1]), 0.0)[truth == 51].any()


def _retained_canines(look_primary: bool, impacted: bool = True):
    """An adult's summaries with two more upper canines at the occlusal level, labial to and below the
    permanent canines (``impacted``: those high in the maxilla, else beside them at the occlusal level)."""
    fdis, centroids, perm, extent = _adult()
    canines = [fdis.index(13), fdis.index(23)]
    centroids = np.vstack([centroids, centroids[canines] + [0.0, 1.0, -1.0]])
    extent = np.vstack([extent, extent[canines] - 1.0])
    if impacted:
        centroids[canines, 2] += 8.0
        extent[canines] += 8.0
    prim = np.full((len(centroids), 5), 0.01)
    perm = np.vstack([perm, np.full((2, 8), 0.02)])
    (prim if look_primary else perm)[-2:, 2] = 0.9
    return fdis, centroids, perm, prim, extent


def test_a_retained_primary_canine_in_an_adults_scan_takes_its_primary_number():
    """At 12 years or for life. An unnumbered tooth that looks permanent (a supernumerary), or one that looks
    primary with no successor deeper at its place (a piece of an adult's tooth), stays unnumbered."""
    for look_primary, impacted, extra in ((True, True, [53, 63]), (False, True, [0, 0]), (True, False, [0, 0])):
        fdis, centroids, perm, prim, extent = _retained_canines(look_primary, impacted)
        result = assign_teeth(centroids, perm, np.zeros(len(centroids)), primary_probs=prim, extent=extent)
        assert result.developing is None
        assert result.fdi.tolist() == fdis + extra, (look_primary, impacted)


@pytest.mark.parametrize(("impacted", "extra"), [(True, [53, 63]), (False, [0, 0])])
def test_a_retained_primary_tooth_read_half_as_permanent_takes_its_successors_place(impacted, extra):
    """A retained primary tooth that the network reads half as permanent (a 12-year-old's lower primary molars:
    0.28-0.50 of their type probability primary) takes the primary number of the one successor beneath it;
    with no successor it stays unnumbered."""
    fdis, centroids, perm, prim, extent = _retained_canines(False, impacted)
    prim[-2:, 2], perm[-2:, 2] = 0.35, 0.5
    result = assign_teeth(centroids, perm, np.zeros(len(centroids)), primary_probs=prim, extent=extent)
    assert result.developing is None
    assert result.fdi.tolist() == fdis + extra
