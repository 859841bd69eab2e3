"""Third molars forming in their crypts reach the instance step whole (inference/forming_molars.py): cusp tips
too small for the speck filter one by one are joined into one crown."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from synthetic_arch import make_arch, probabilities

from TeethSegmentationLib.inference.forming_molars import (
    CUSP_GAP_MM,
    _closing,
    bridged_cusps,
    forming_third_molars,
    holds_primary_teeth,
)
from TeethSegmentationLib.instances.teeth import label_teeth


def _balls(shape, centres, radius_vox: float) -> np.ndarray:
    grid = np.indices(shape).reshape(3, -1).T
    inside = np.zeros(len(grid), bool)
    for c in centres:
        inside |= np.linalg.norm(grid - np.asarray(c), axis=1) <= radius_vox
    return inside.reshape(shape)


def _typed(mask_by_class: dict[int, np.ndarray], shape) -> tuple[np.ndarray, np.ndarray]:
    probs = np.zeros((14, *shape), np.float16)
    probs[0] = 1
    for cls, mask in mask_by_class.items():
        probs[:, mask] = 0
        probs[cls, mask] = 1
    return 1.0 - probs[0].astype(np.float32), probs


def test_cusps_within_reach_are_bridged_where_they_touch_the_kept_teeth() -> None:
    shape, spacing = (60, 40, 40), np.array([0.5, 0.5, 0.5])
    cusps = _balls(shape, [(20, 20, 20), (28, 20, 20), (24, 27, 20)], 2.5)  # 1.25 mm cusps, 1.5 mm gaps
    apart = _balls(shape, [(50, 20, 20), (56, 20, 20)], 2.0)  # a pair no kept tooth reaches
    big = np.zeros(shape, bool)
    big[2:14, 5:35, 5:35] = True  # an erupted third molar: 1,400 mm3
    big[5:14, 15:25, 5:20] = False  # its furcation-like notch stays open
    primary = np.zeros(shape, bool)
    primary[45:60, 30:40, 30:40] = True  # a primary molar: 187 mm3
    foreground, probs = _typed({8: cusps | apart | big, 12: primary}, shape)
    gate = np.zeros(shape, bool)
    gate[:40] = True  # the cusps and the big molar lie inside what stage 2 was asked about, the pair beyond
    bridges = bridged_cusps(foreground, probs, gate, spacing, 0.5)
    assert ndimage.label(cusps)[1] == 3 and ndimage.label(bridges)[1] == 1 and (bridges & cusps).sum() == cusps.sum()
    assert not bridges[apart].any() and not bridges[big].any() and not bridges[5:14, 15:25, 5:20].any()
    reach = ndimage.distance_transform_edt(~cusps, sampling=spacing)
    assert reach[bridges].max() <= CUSP_GAP_MM  # nothing further from a cusp than the closing's radius
    gate[45:60, 30:40, 30:40] = True
    kept = forming_third_molars(gate, foreground.copy(), probs, spacing, 0.5)
    assert ndimage.label(kept > 0.5)[1] == 3  # the crown (one piece now), the big molar and the primary molar
    assert np.allclose(kept[bridges & ~cusps], 0.51) and not kept[apart].any()


def test_only_a_childs_scan_has_its_cusps_bridged() -> None:
    """In an adult's scan small third-molar pieces are fragments or bone: they stay apart (and the speck filter
    drops them)."""
    shape, spacing = (60, 40, 40), np.array([0.5, 0.5, 0.5])
    cusps = _balls(shape, [(20, 20, 20), (28, 20, 20)], 2.5)
    primary = np.zeros(shape, bool)
    primary[45:60, 30:40, 30:40] = True
    adult = _typed({8: cusps}, shape)
    child = _typed({8: cusps, 12: primary}, shape)
    tiny = _typed({8: cusps, 12: primary & (np.indices(shape)[0] < 48)}, shape)  # 37 mm3 typed primary
    gate = np.ones(shape, bool)
    assert holds_primary_teeth(*child, gate, spacing, 0.5) and not holds_primary_teeth(*adult, gate, spacing, 0.5)
    assert not holds_primary_teeth(*tiny, gate, spacing, 0.5)
    assert not holds_primary_teeth(*child, ~primary, spacing, 0.5)  # primary-typed only past the margin: bone
    for case, pieces in ((adult, 2), (tiny, 2), (child, 1)):
        kept = forming_third_molars(gate, case[0].copy(), case[1], spacing, 0.5)
        assert ndimage.label(kept[:40] > 0.5)[1] == pieces  # the two cusps, apart or bridged


def test_a_third_molar_in_cusp_tips_each_under_the_speck_size_is_found_as_one_tooth() -> None:
    arch = make_arch(spacing=0.5)
    tooth = arch.labels == 48
    centre = np.argwhere(tooth).mean(axis=0)
    towards = centre - np.argwhere(arch.labels == 47).mean(axis=0)
    towards /= np.linalg.norm(towards)
    across = np.cross(towards, [0.0, 0.0, 1.0])
    across /= np.linalg.norm(across)
    centres = [centre, centre + 8 * towards, centre + 4 * towards + 7 * across]
    labels = arch.labels.copy()
    labels[tooth] = 0
    for n in range(1, 6):
        labels[labels == 10 + n] = 50 + n  # a child's: the upper right teeth primary ones
    cusps = _balls(labels.shape, centres, 3.2)  # 1.6 mm: 17 mm3 each, under the instance step's 20 mm3
    labels[cusps] = 48
    assert ndimage.label(cusps)[1] == 3
    teeth_prob, type_probs = probabilities(labels, noise=0.0, num_classes=14)
    near = ndimage.binary_dilation(labels > 0, iterations=4)
    spacing = np.linalg.norm(arch.ijk_to_ras[:3, :3], axis=0)
    cut = label_teeth(teeth_prob * near, type_probs, arch.ijk_to_ras)
    joined = label_teeth(forming_third_molars(near, teeth_prob.copy(), type_probs, spacing, 0.5), type_probs,
                         arch.ijk_to_ras)
    assert 48 not in {t.fdi for t in cut.teeth}
    assert (joined.fdi_map[cusps] == 48).mean() > 0.9
    assert {t.fdi for t in joined.teeth} == {t.fdi for t in cut.teeth} | {48}


def test_the_closing_at_the_edge_of_the_grid_is_the_closing_of_the_pieces_alone() -> None:
    """Outside the array is background: two cusps cut by the grid's edge are closed as if nothing lay beyond."""
    spacing = np.array([0.5, 0.5, 0.6])
    mask = _balls((20, 24, 18), [(1, 6, 8), (1, 15, 8)], 3.0)  # both cut by the first face
    reach = np.ceil(CUSP_GAP_MM / spacing).astype(int) + 1
    wide = np.pad(mask, 15)
    ball = np.linalg.norm((np.indices((13, 13, 11)).T - [6, 6, 5]).T * spacing[:, None, None, None], axis=0)
    reference = ndimage.binary_closing(wide, structure=ball <= CUSP_GAP_MM)[15:-15, 15:-15, 15:-15]
    closed = _closing(mask, spacing, reach)
    assert np.array_equal(closed, reference | mask) and (closed & ~mask).any()
