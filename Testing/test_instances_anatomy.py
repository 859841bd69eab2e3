"""Instances that respect tooth anatomy: multi-rooted teeth, roots parted from their crowns, single arches,
teeth that cannot be numbered (synthetic arches with textbook roots, truth-derived probabilities)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from synthetic_arch import make_arch, probabilities

from TeethSegmentationLib.fdi import UNNUMBERED_LABEL_BASE, is_unnumbered
from TeethSegmentationLib.instances.teeth import InstanceResult, label_teeth
from TeethSegmentationLib.metrics import evaluate_pair

THREE_ROOTED = (16, 17, 26, 27)
TWO_ROOTED = (36, 37, 46, 47, 14, 24)


def run(labels: np.ndarray, affine: np.ndarray, sigma: float = 0.7) -> InstanceResult:
    teeth_prob, type_probs = probabilities(labels, seed=0, sigma=sigma)
    return label_teeth(teeth_prob, type_probs, affine)


def roots_seen(mask: np.ndarray) -> int:
    """The most separate parts of a tooth in any axial slice: its roots below the furcation."""
    return max(ndi.label(mask[:, :, k])[1] for k in np.flatnonzero(mask.any(axis=(0, 1))))


def one_instance(result: InstanceResult, truth: np.ndarray, fdi: int) -> tuple[int, float]:
    """(the FDI label covering most of the truth tooth, the share of it that label covers)."""
    values, counts = np.unique(result.fdi_map[truth == fdi], return_counts=True)
    return int(values[np.argmax(counts)]), float(counts.max() / counts.sum())


@pytest.fixture(scope="module")
def rooted_arch():
    return make_arch(spacing=0.6, roots="anatomic")


def test_multi_rooted_teeth_are_one_instance_each(rooted_arch):
    truth = rooted_arch.labels
    assert all(roots_seen(truth == f) >= 3 for f in THREE_ROOTED)  # dark furcations between three roots
    assert all(roots_seen(truth == f) >= 2 for f in TWO_ROOTED)
    result = run(truth, rooted_arch.ijk_to_ras)
    for fdi in THREE_ROOTED + TWO_ROOTED:
        value, share = one_instance(result, truth, fdi)
        assert value == fdi and share >= 0.97, (fdi, value, share)
    metrics = evaluate_pair(result.fdi_map, truth, (0.6,) * 3)
    assert metrics["identification_accuracy"] == 1.0 and metrics["predicted_teeth"] == 32  # crowns still split
    assert metrics["dice_per_tooth"] > 0.95


def test_roots_parted_by_a_thin_gap_join_their_crowns():
    detached = (16, 14, 36, 45)
    arch = make_arch(spacing=0.5, roots="anatomic", detached=detached, gap_mm=0.5)
    assert all(ndi.label(arch.labels == f)[1] == 2 for f in detached)  # the gap parts root and crown
    result = run(arch.labels, arch.ijk_to_ras, sigma=0.5)
    for fdi in detached:
        assert one_instance(result, arch.labels, fdi) == (fdi, pytest.approx(1.0, abs=0.02))
    assert not result.unassigned and len(result.teeth) == 32


@pytest.mark.parametrize("jaw", ["lower", "upper"])
def test_single_arch_with_parted_roots_keeps_its_jaw(jaw):
    """Every root parted at the neck: a layer of crowns over a layer of roots is one arch, not two."""
    quadrants = (3, 4) if jaw == "lower" else (1, 2)
    teeth = tuple(10 * q + t for q in quadrants for t in range(1, 8))
    arch = make_arch(spacing=0.5, roots="anatomic", jaws=(jaw,), detached=teeth, gap_mm=1.0,
                     missing=tuple(10 * q + 8 for q in quadrants))
    result = run(arch.labels, arch.ijk_to_ras, sigma=0.5)
    assert {int(v) // 10 for v in np.unique(result.fdi_map) if v} == set(quadrants)
    assert evaluate_pair(result.fdi_map, arch.labels, (0.5,) * 3)["identification_accuracy"] == 1.0


def test_lower_only_phantom_gives_only_lower_teeth():
    try:
        from TeethSegmentationLib.phantom import make_phantom

        case = make_phantom(0, size="small", fov="lower", convention="ras_identity")
    except (ImportError, TypeError, ValueError):
        pytest.skip("the phantom has no lower-only field of view yet")
    truth = np.asarray(case.labels.array).astype(np.uint8)
    result = run(truth, case.labels.ijk_to_ras)
    assert {int(v) // 10 for v in np.unique(result.fdi_map) if v} <= {3, 4}
    assert {t.jaw for t in result.teeth} == {"lower"}


def test_a_tooth_without_a_free_number_is_kept_unnumbered():
    arch = make_arch(spacing=0.6, jaws=("upper",))
    labels = arch.labels.copy()
    where = np.argwhere(labels == 14).mean(axis=0)  # a supernumerary premolar palatal to 14
    centre = where * 0.6 + arch.ijk_to_ras[:3, 3] + np.array([-10.0, 0.0, 0.0])
    grid = np.stack(np.meshgrid(*[np.arange(n) * 0.6 for n in labels.shape], indexing="ij"), -1)
    blob = (((grid + arch.ijk_to_ras[:3, 3] - centre) / [2.6, 3.0, 5.0]) ** 2).sum(-1) <= 1
    assert not labels[ndi.binary_dilation(blob, iterations=2)].any()
    labels[blob] = 15
    result = run(labels, arch.ijk_to_ras)
    assert len(result.teeth) == 16 and len(result.unassigned) == 1
    extra = result.unassigned[0]
    assert extra.label == UNNUMBERED_LABEL_BASE and not extra.numbered and extra.fdi == 0
    assert is_unnumbered(extra.label) and (result.fdi_map == extra.label).sum() == extra.voxel_count
    assert any("Unnumbered tooth 1" in w for w in result.warnings)


@pytest.mark.slow
def test_upper_only_phantom_with_an_impacted_canine_stays_upper():
    """The shipped model on an upper-only phantom whose canine sits high above the arch: that canine once
    made the arch a 'lower arch' below it (identification 0.07); the teeth's own roots say upper."""
    from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_volume
    from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model
    from TeethSegmentationLib.phantom import make_phantom

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("the default model has not been built")
    case = make_phantom(52000, size="realistic", fov="upper", family="A")
    result = segment_volume(case.image, load_model(DEFAULT_MODEL_PATH), SegmentOptions(device="cpu"))
    assert {int(v) // 10 for v in np.unique(result.fdi.array) if 0 < v < UNNUMBERED_LABEL_BASE} == {1, 2}
    metrics = evaluate_pair(result.fdi.array, np.asarray(case.labels.array), case.labels.spacing)
    assert metrics["identification_accuracy"] >= 0.9, metrics["misidentified"]


@pytest.mark.parametrize(("along_mm", "joins"), [(0.5, True), (8.0, False)])
def test_an_unnumbered_piece_beside_its_tooth_joins_it(along_mm, joins):
    """A piece at the tooth's place along the arch (its palatal part) joins it; one a tooth further along the
    arch (a supernumerary between two slots' worth of teeth) stays apart."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment
    from TeethSegmentationLib.instances.pieces import join_pieces

    mask = np.zeros((30, 20, 20), bool)
    mask[2:16, 4:16, 4:16] = True  # the molar
    mask[16:24, 6:14, 6:14] = True  # a smaller piece touching it
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    labels = np.where(ijk[:, 0] < 16, 1, 2).astype(np.int32)
    assignment = Assignment(np.array([16, 0]), np.array([True, True]), np.array([30.0, 30.0 + along_mm]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    joined_labels, joined = join_pieces(labels, sparse, assignment, ijk * 0.5)
    assert joined == joins
    assert (len(np.unique(joined_labels)) == 1) == joins


def test_a_join_keeps_the_fragments_the_merges_dropped_out_of_every_tooth():
    """Voxels labelled 0 (a lone fragment the merges dropped, under an adult's min_tooth_mm3) stay 0 when a piece
    joins its tooth; they used to become an instance of their own (label 1), every other label one up."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment
    from TeethSegmentationLib.instances.pieces import join_pieces

    mask = np.zeros((30, 30, 20), bool)
    mask[2:16, 4:16, 4:16] = True  # the molar
    mask[16:24, 6:14, 6:14] = True  # a smaller piece touching it
    mask[4:7, 22:25, 4:7] = True  # a fragment apart, dropped by the merges
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    fragment = ijk[:, 1] >= 22
    labels = np.where(fragment, 0, np.where(ijk[:, 0] < 16, 1, 2)).astype(np.int32)
    assignment = Assignment(np.array([16, 0]), np.array([True, True]), np.array([30.0, 30.5]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    joined_labels, joined = join_pieces(labels, sparse, assignment, ijk * 0.5)
    assert joined
    assert np.all(joined_labels[fragment] == 0)
    assert np.all(joined_labels[~fragment] == 1)


def test_a_tooth_in_three_pieces_joins_through_the_middle_one():
    """Two unnumbered pieces in a row beside a numbered root: the far piece touches only the middle one, and
    their shared face is the broadest, so it comes first; it joins once the middle piece has joined."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment
    from TeethSegmentationLib.instances.pieces import join_pieces

    mask = np.zeros((30, 20, 20), bool)
    mask[2:12, 4:16, 4:16] = True  # the numbered part: 1440 voxels
    mask[12, 8:12, 8:12] = True  # the middle piece: a neck of 16 faces on the numbered part ...
    mask[13:17, 5:15, 5:15] = True  # ... and its body
    mask[17:21, 5:15, 5:15] = True  # the far piece, touching the middle one through 100 faces
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    labels = np.digitize(ijk[:, 0], [12, 17]).astype(np.int32) + 1
    assignment = Assignment(np.array([25, 0, 0]), np.array([True, True, True]), np.array([30.0, 30.5, 31.0]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    joined_labels, joined = join_pieces(labels, sparse, assignment, ijk * 0.5)
    assert joined and len(np.unique(joined_labels)) == 1


@pytest.mark.parametrize(("neighbour_voxels", "joins"), [(2000, True), (1550, True), (600, False)])
def test_a_crown_larger_than_its_numbered_root_joins_it_when_together_they_are_one_tooth(neighbour_voxels, joins):
    """The watershed can cut a premolar into an unnumbered crown and a numbered root, the crown the larger part.
    It joins when crown + root are no bigger than a whole tooth of that jaw (1.25 x the largest other numbered
    one: a second molar can be larger than the first), and stays an unnumbered tooth when they would make a
    giant."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment
    from TeethSegmentationLib.instances.pieces import join_pieces

    mask = np.zeros((40, 40, 20), bool)
    mask[2:10, 4:14, 4:14] = True  # the numbered root: 800 voxels
    mask[10:20, 4:14, 4:14] = True  # the unnumbered crown below it: 1000 voxels
    side = round(neighbour_voxels ** (1 / 3))
    mask[25 : 25 + side, 25 : 25 + side, 2 : 2 + round(neighbour_voxels / side**2)] = True  # a numbered molar
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    labels = np.where(ijk[:, 0] >= 25, 3, np.where(ijk[:, 0] < 10, 1, 2)).astype(np.int32)
    assignment = Assignment(np.array([15, 0, 16]), np.array([True, True, True]), np.array([25.0, 25.5, 33.0]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    joined_labels, joined = join_pieces(labels, sparse, assignment, ijk * 0.5)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)


def _molar_halves_case(piece: str, child: bool = False):
    """A lower right arch 42-45 with a first molar's mesial half numbered 46 (5.5 mm of its 11 along the arch) and
    beside it an unnumbered ``piece``: "distal", the molar's other half, end to end with it; or "long", a 22 mm
    bar along the buccal face whose centroid lies at the half's place. Returns (labels, sparse, ras, assignment)."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import ArchFit, Assignment, arch_positions

    a = -0.003  # a nearly straight lower right arch, v = a u^2 (mm)
    fit = ArchFit(np.zeros(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), 0.0, (a, 0.0, 0.0), True)
    boxes = [((lo, hi), (-4.0, 4.0)) for lo, hi in [(3.0, 8.5), (9.0, 16.0), (16.5, 23.5), (24.0, 31.0), (31.5, 37.0)]]
    boxes.append(((37.0, 42.5), (-4.0, 4.0)) if piece == "distal" else ((23.25, 45.25), (4.0, 8.0)))
    mask = np.zeros((100, 60, 20), bool)
    region = np.zeros(mask.shape, np.int32)
    for k, ((lo, hi), (front, back)) in enumerate(boxes, start=1):
        v = 20.0 + a * ((lo + hi) / 2) ** 2  # the arch at the box's middle, 20 mm into the grid (0.5 mm voxels)
        box = (slice(round(lo * 2), round(hi * 2)), slice(round((v + front) * 2), round((v + back) * 2)), slice(0, 20))
        mask[box], region[box] = True, k
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    ras = ijk * 0.5 - np.array([0.0, 20.0, 0.0])
    labels = region[tuple(ijk.T)]
    centroids = np.stack([ras[labels == k].mean(axis=0) for k in range(1, len(boxes) + 1)])
    fdi = np.array([82, 83, 84, 85, 46, 0]) if child else np.array([42, 43, 44, 45, 46, 0])
    developing = np.zeros(len(boxes), bool) if child else None
    assignment = Assignment(fdi, np.zeros(len(boxes), bool), arch_positions(centroids, fit),
                            np.array([0.0, 0.0, 1.0]), 0.0, False, fits={False: fit}, developing=developing)
    return labels, sparse, ras, assignment


@pytest.mark.parametrize(("piece", "child", "joins"), [("distal", False, True), ("long", False, False),
                                                        ("distal", True, False)])
def test_a_molar_cut_in_two_halves_is_one_tooth_when_together_they_span_one_molar(piece, child, joins):
    """A lower first molar that the watershed cut mesio-distally: its mesial half numbered 46, its distal half (as
    big) left without a number, beside a missing 47 (dev jaws 40086). Together they are bigger than any other tooth
    of the jaw, yet no wider along the arch than one molar, so the half joins. A long piece at the half's place
    that spans two molars with it stays apart, and in a child's scan (a forming tooth beneath its primary
    predecessor spans no more than it) the size tests alone decide."""
    from TeethSegmentationLib.instances.pieces import join_pieces

    labels, sparse, ras, assignment = _molar_halves_case(piece, child)
    joined_labels, joined = join_pieces(labels, sparse, assignment, ras)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (5 if joins else 6)


def _stacked_case(root_box: tuple[slice, slice, slice], fdi: tuple[int, int, int], upper: bool = True):
    """A crown (numbered ``fdi[0]``), a piece touching it in ``root_box`` (``fdi[1]``) and a whole molar apart
    (``fdi[2]``); z is the occlusal normal. Returns (labels, sparse, RAS points, assignment)."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment

    mask = np.zeros((50, 24, 40), bool)
    crown = (slice(4, 14), slice(4, 14), slice(14, 24) if upper else slice(16, 26))
    mask[crown] = True  # 1000 voxels
    mask[root_box] = True
    mask[30:42, 4:16, 14:25] = True  # the molar: 1584 voxels
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    in_crown = np.all([(ijk[:, k] >= s.start) & (ijk[:, k] < s.stop) for k, s in enumerate(crown)], axis=0)
    labels = np.where(ijk[:, 0] >= 30, 3, np.where(in_crown, 1, 2)).astype(np.int32)
    ras = sparse.ras_points(np.diag([0.5, 0.5, 0.5, 1.0]))
    assignment = Assignment(np.array(fdi), np.full(3, upper), np.array([20.0, 20.5, 35.0]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    return labels, sparse, ras, assignment


@pytest.mark.parametrize("upper", [True, False])
def test_a_numbered_root_stacked_on_its_crown_joins_it(upper):
    """A single arch: a crown parted from its roots got one number and the roots the next (every tooth behind
    them then moves up one). Roots on top of the crown (above it in the upper jaw, below it in the lower one),
    at its place along the arch, are that tooth."""
    from TeethSegmentationLib.instances.pieces import join_stacked

    roots = (slice(6, 12), slice(6, 12), slice(24, 36) if upper else slice(4, 16))
    labels, sparse, ras, assignment = _stacked_case(roots, (13, 14, 16) if upper else (43, 44, 46), upper)
    joined_labels, joined = join_stacked(labels, sparse, ras, assignment)
    assert joined
    assert len(np.unique(joined_labels)) == 2
    assert (joined_labels == joined_labels[labels == 1][0]).sum() == (labels <= 2).sum()


def test_a_numbered_tooth_beside_another_is_not_stacked():
    """The next tooth along or across the arch touches the crown at its side: it keeps its number."""
    from TeethSegmentationLib.instances.pieces import join_stacked

    beside = (slice(14, 22), slice(4, 14), slice(14, 24))
    labels, sparse, ras, assignment = _stacked_case(beside, (13, 14, 16))
    assert join_stacked(labels, sparse, ras, assignment) == (labels, False)


def test_a_child_s_tooth_beneath_its_predecessor_is_not_stacked():
    """In a mixed dentition a developing successor lies under its primary predecessor: two teeth."""
    from TeethSegmentationLib.instances.pieces import join_stacked

    roots = (slice(6, 12), slice(6, 12), slice(24, 36))
    labels, sparse, ras, assignment = _stacked_case(roots, (53, 13, 16))
    assert join_stacked(labels, sparse, ras, assignment) == (labels, False)


def _parted_root_case(
    piece_box: tuple[slice, slice, slice], upper: bool = True, number: int = 0, crown_fdi: int | None = None,
    forming: bool | None = None,
):
    """A numbered primary canine's crown (10 x 10 x 10 voxels of 0.5 mm: 2.5 mm deep at its centre; or numbered
    ``crown_fdi``), a piece in ``piece_box`` numbered ``number`` (0: none) and a numbered molar apart; z is the
    occlusal normal. ``forming``: the mixed numbering ran, and the piece is a forming tooth (or not). Returns
    (labels, sparse, RAS points, spacing, assignment)."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment

    mask = np.zeros((50, 24, 50), bool)
    crown = (slice(4, 14), slice(4, 14), slice(20, 30))
    mask[crown] = True
    mask[piece_box] = True
    mask[30:42, 4:16, 20:31] = True  # the molar: 1584 voxels
    spacing = np.full(3, 0.5)
    sparse = sparse_foreground(mask, spacing)
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    in_crown = np.all([(ijk[:, k] >= s.start) & (ijk[:, k] < s.stop) for k, s in enumerate(crown)], axis=0)
    labels = np.where(ijk[:, 0] >= 30, 3, np.where(in_crown, 1, 2)).astype(np.int32)
    ras = sparse.ras_points(np.diag([0.5, 0.5, 0.5, 1.0]))
    fdi = (crown_fdi or (63 if upper else 73), number, 65 if upper else 75)
    developing = None if forming is None else np.array([False, forming, False])
    assignment = Assignment(np.array(fdi), np.full(3, upper), np.array([-15.0, -15.0, -28.0]),
                            np.array([0.0, 0.0, 1.0]), 0.0, True, developing=developing)
    return labels, sparse, ras, spacing, assignment


@pytest.mark.parametrize(("upper", "piece", "joins"), [
    (True, (slice(6, 12), slice(6, 12), slice(32, 46)), True),  # a root 1 mm above the upper crown
    (False, (slice(6, 12), slice(6, 12), slice(4, 18)), True),  # and below the lower one
    (True, (slice(6, 12), slice(6, 12), slice(35, 49)), False),  # 2.5 mm away: further than a thin gap
    (True, (slice(5, 14), slice(5, 14), slice(32, 41)), False),  # a germ as thick as the crown: a tooth
    (True, (slice(6, 12), slice(6, 12), slice(4, 18)), False),  # below an upper crown: the occlusal side
    (True, (slice(16, 28), slice(6, 12), slice(20, 30)), False),  # beside it along the arch, not on its axis
])
def test_an_unnumbered_root_parted_by_a_thin_gap_joins_its_numbered_tooth(upper, piece, joins):
    """A primary canine's root parted from its crown by a dark gap, as deep as 0.7-0.8 x its short crown, stays
    apart through the merges and gets no number once its successor has its place: it joins the crown whose axis
    it continues on the apical side. A germ as thick as the crown, a piece beyond a thin gap, on the occlusal
    side or beside the tooth, stays apart."""
    from TeethSegmentationLib.instances.pieces import join_parted_roots

    labels, sparse, ras, spacing, assignment = _parted_root_case(piece, upper)
    joined_labels, joined = join_parted_roots(labels, sparse, ras, spacing, assignment)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)
    if joins:
        assert np.all(joined_labels[labels == 2] == joined_labels[labels == 1][0])


def test_a_numbered_piece_beyond_a_thin_gap_keeps_its_number():
    """Only pieces left without a number join: a numbered one (a successor beneath its predecessor) stays."""
    from TeethSegmentationLib.instances.pieces import join_parted_roots

    labels, sparse, ras, spacing, assignment = _parted_root_case((slice(6, 12), slice(6, 12), slice(32, 46)),
                                                                 number=23)
    assert join_parted_roots(labels, sparse, ras, spacing, assignment) == (labels, False)


@pytest.mark.parametrize(("crown_fdi", "piece", "forming", "joins"), [
    (71, (slice(6, 12), slice(6, 12), slice(8, 20)), True, True),  # a root touching its crown at the neck
    (71, (slice(6, 12), slice(6, 12), slice(6, 18)), True, False),  # 1 mm apart: a successor in its crypt
    (71, (slice(4, 14), slice(4, 14), slice(8, 20)), True, False),  # as thick as the crown: a germ
    (41, (slice(6, 12), slice(6, 12), slice(8, 20)), True, False),  # under a permanent crown: a neighbour's germ
    (71, (slice(6, 12), slice(6, 12), slice(8, 20)), False, False),  # numbered as erupted: two teeth
])
def test_a_forming_tooth_that_is_its_primary_numbered_crowns_own_root_joins_it(crown_fdi, piece, forming, joins):
    """An erupting lower central incisor cut at its neck: the mixed numbering took its root, deeper in the jaw,
    for its successor forming beneath it (31) and the crown for the primary predecessor (71). A forming tooth
    that touches an erupted primary-numbered crown on its apical side, on its axis, smaller and thinner, is
    that crown's root; one beyond a gap, as thick as the crown, or under a permanent crown stays a tooth."""
    from TeethSegmentationLib.instances.pieces import join_parted_roots

    labels, sparse, ras, spacing, assignment = _parted_root_case(piece, False, 31, crown_fdi, forming)
    joined_labels, joined = join_parted_roots(labels, sparse, ras, spacing, assignment)
    assert joined == joins
    if joins:
        assert np.all(joined_labels[labels == 2] == joined_labels[labels == 1][0])
        assert len(np.unique(joined_labels)) == 2


WHOLE_MOLAR = (slice(2, 22), slice(2, 22), slice(2, 22))  # 10 mm a side in voxels of 0.5 mm
NARROW_MOLAR = (slice(2, 22), slice(2, 14), slice(2, 22))  # 6 mm across the arch


def _molar_and_part(
    molar: tuple[slice, slice, slice], part: tuple[slice, slice, slice] | np.ndarray,
    fdi: tuple[int, int, int] = (26, 27, 28), along_mm: float = 0.5,
):
    """A molar with ``part`` (a box, or a mask of the (50, 40, 24) grid; inside or beside it, not stacked)
    numbered apart, ``along_mm`` from it along the arch, and another tooth a tooth's width further; numbered
    ``fdi``. Returns (labels, sparse, RAS points, assignment)."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment

    mask = np.zeros((50, 40, 24), bool)
    part_mask = part if isinstance(part, np.ndarray) else np.zeros_like(mask)
    if not isinstance(part, np.ndarray):
        part_mask[part] = True
    mask[molar] = True
    mask |= part_mask
    mask[28:48, 2:22, 2:19] = True  # the other tooth: 6800 voxels
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    in_part = part_mask[tuple(ijk.T)]
    labels = np.where(ijk[:, 0] >= 28, 3, np.where(in_part, 2, 1)).astype(np.int32)
    ras = sparse.ras_points(np.diag([0.5, 0.5, 0.5, 1.0]))
    assignment = Assignment(np.array(fdi), np.full(3, True), np.array([30.0, 30.0 + along_mm, 42.0]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    return labels, sparse, ras, assignment


def _cut_molar(fdi: tuple[int, int, int], along_mm: float = 1.5):
    """A 10 mm molar whose upper corner (an eighth, beside and above the rest: not stacked) carries a number of
    its own, and a whole tooth apart. Returns (labels, sparse, RAS points, assignment)."""
    return _molar_and_part(WHOLE_MOLAR, (slice(12, 22),) * 3, fdi, along_mm)


@pytest.mark.parametrize(("fdi", "along_mm", "joins"), [
    ((26, 27, 28), 1.5, True),  # a molar's numbered corner, at the molar's place: one tooth
    ((26, 27, 28), 6.0, False),  # the same contact, but a tooth's width further along the arch
    ((11, 12, 13), 1.5, False),  # crowded incisors overlap at one place: two teeth
])
def test_a_numbered_part_beside_its_molar_joins_it(fdi, along_mm, joins):
    """The type boundary can cut a premolar or molar into numbered parts side by side (buccal and palatal); the
    part then takes the next number and every tooth behind it moves up one. Parts at the tooth's place along
    the arch that touch over a broad face or deep inside it are one tooth; incisors are not joined so."""
    from TeethSegmentationLib.instances.pieces import join_stacked

    labels, sparse, ras, assignment = _cut_molar(fdi, along_mm)
    joined_labels, joined = join_stacked(labels, sparse, ras, assignment)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)




@pytest.mark.parametrize(("molar", "part", "joins"), [
    (WHOLE_MOLAR, (slice(2, 22), slice(12, 22), slice(2, 22)), True),  # palatal half: a 10 % face, 5 mm deep
    (NARROW_MOLAR, (slice(2, 22), slice(2, 5), slice(2, 22)), True),  # buccal cusps, a third of the rest: 33 %, 1.5 mm
    (WHOLE_MOLAR, (slice(8, 16), slice(22, 30), slice(8, 16)), False),  # a small object at its side: 12 %, 2 mm
])
def test_parts_of_a_molar_side_by_side_join_by_a_broad_or_a_deep_contact(molar, part, joins):
    """Two numbered parts of one molar at its place along the arch touch over a broad face (a slab of buccal
    cusps, too big a share of the molar to be a fragment) or deep inside it (a palatal half, whose face is a tenth
    of it): either makes them one tooth. A small object that only rests against its side, with a narrow and
    shallow contact, stays apart."""
    from TeethSegmentationLib.instances.merge import adjacency
    from TeethSegmentationLib.instances.pieces import SIDE_SADDLE_MM, SIDE_SHARE, join_stacked

    labels, sparse, ras, assignment = _molar_and_part(molar, part)
    faces, saddle = adjacency(labels, sparse)[(1, 2)]
    broad, deep = faces >= SIDE_SHARE * (labels == 2).sum(), saddle >= SIDE_SADDLE_MM
    assert (broad or deep) == joins and not (broad and deep)  # each case shows one cue, or neither
    joined_labels, joined = join_stacked(labels, sparse, ras, assignment)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)


def _interlocked_half() -> np.ndarray:
    """The mesial half of WHOLE_MOLAR, cut by a ragged face (every other voxel of the distal half's first layer, in
    a checkerboard), as a type boundary meanders through a tooth: the faces make 30 % of a half, as dev jaws
    40051's, where a flat cut makes 10 %."""
    part = np.zeros((50, 40, 24), bool)
    part[2:12, 2:22, 2:22] = True
    j, k = np.meshgrid(np.arange(40), np.arange(24), indexing="ij")
    part[12] |= ((j + k) % 2 == 0) & (j >= 2) & (j < 22) & (k >= 2) & (k < 22)
    return part


@pytest.mark.parametrize(("part", "along_mm", "joins"), [
    ("ragged", 3.0, True),  # halves 0.46 x the width apart, a broad face deep inside: one tooth
    ("flat", 3.0, False),  # the same place, a flat cut: deep, but a 10 % face
    ("ragged", 4.0, False),  # 0.62 x apart: where different teeth touch
])
def test_halves_of_a_molar_join_by_a_broad_and_deep_contact(part, along_mm, joins):
    """A premolar or molar cut mesio-distally into two numbered halves: they lie about half its width apart along
    the arch, further than parts side by side, so there both cues of one tooth are asked, a broad face and a deep
    contact (touching different teeth lie further apart and touch over a narrow, shallow face)."""
    from TeethSegmentationLib.instances.merge import adjacency
    from TeethSegmentationLib.instances.pieces import SIDE_SADDLE_MM, SIDE_SHARE, join_stacked

    half = _interlocked_half() if part == "ragged" else (slice(2, 12), slice(2, 22), slice(2, 22))
    labels, sparse, ras, assignment = _molar_and_part(WHOLE_MOLAR, half, along_mm=along_mm)
    faces, saddle = adjacency(labels, sparse)[(1, 2)]
    share = faces / min((labels == 1).sum(), (labels == 2).sum())
    assert saddle >= SIDE_SADDLE_MM and (share >= SIDE_SHARE) == (part == "ragged")
    joined_labels, joined = join_stacked(labels, sparse, ras, assignment)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)


@pytest.mark.parametrize(("fdi", "developing", "along_mm", "joins"), [
    ((27, 28, 16), (True, True, False), 1.5, True),  # a forming molar's crown parted in two, at one place
    ((27, 28, 16), (True, True, False), 6.0, False),  # two forming teeth a tooth's width apart
    ((27, 28, 16), (False, True, False), 1.5, False),  # an erupted tooth and a forming one (its successor)
    ((64, 65, 16), (False, False, False), 1.5, True),  # an erupted primary molar and its corner
    ((64, 65, 16), (False, False, False), 3.0, True),  # 0.46 x a premolar's width apart: a primary molar is wider
    ((64, 65, 16), (False, False, False), 4.5, False),  # 0.69 x: the next tooth
    ((27, 28, 16), (True, True, False), 3.0, True),  # a forming molar's shell of cusps parted in halves
    ((11, 12, 16), (True, True, False), 3.0, False),  # forming incisors crowd in their crypts: two teeth
    ((51, 52, 16), (False, False, False), 1.5, False),  # erupted incisors overlap at one place when crowded
])
def test_the_parts_of_a_childs_tooth_at_one_place_join(fdi, developing, along_mm, joins):
    """In a child's scan only two parts side by side at one place along the arch join, both developing or both
    erupted premolars or molars: a forming molar's crown is a shell of cusps that the watershed can part, and a
    developing tooth beneath its predecessor is a tooth of its own. Erupted parts touching over a broad face may
    lie further apart in places (a primary second molar holds a premolar's place and is 1.4 x as wide), and so
    may the halves of a forming premolar or molar (each about a quarter of its width from its centre)."""
    from dataclasses import replace

    from TeethSegmentationLib.instances.pieces import join_stacked

    labels, sparse, ras, assignment = _cut_molar(fdi, along_mm)
    assignment = replace(assignment, developing=np.array(developing))
    joined_labels, joined = join_stacked(labels, sparse, ras, assignment)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)


def test_specks_far_above_the_teeth_do_not_tilt_the_occlusal_plane():
    """Two tooth-like specks (27 and 47 mm3) 28 mm above the upper molars: a plane fitted to every region's
    centroid alike tilted 30 degrees, found one arch in a closed bite, and numbered the upper molars as lower ones
    (a fine-tuned model's false finds in the sinus floor did this to an in-family crop). Each centroid now
    counts with its region's size."""
    arch = make_arch(spacing=0.6, bite_gap_mm=-0.8)
    assert arch.ijk_to_ras[2, 2] > 0
    truth = np.pad(arch.labels, ((0, 0), (0, 0), (0, 60)))  # room above the arch
    labels = truth.copy()
    to_ijk = np.linalg.inv(arch.ijk_to_ras)
    for fdi, edge in ((18, 5), (28, 6)):
        above = np.argwhere(truth == fdi).mean(axis=0) @ arch.ijk_to_ras[:3, :3].T + arch.ijk_to_ras[:3, 3]
        i, j, k = np.round(to_ijk[:3, :3] @ (above + [0.0, -6.0, 28.0]) + to_ijk[:3, 3]).astype(int)
        labels[i : i + edge, j : j + edge, k : k + edge] = 11
    result = run(labels, arch.ijk_to_ras)
    metrics = evaluate_pair(result.fdi_map, truth, (0.6,) * 3)
    assert metrics["identification_accuracy"] == 1.0, metrics["misidentified"]
    assert {t.jaw for t in result.teeth if t.fdi // 10 in (1, 2)} == {"upper"}


def _molar_with_a_fragment(fdi: tuple[int, int, int], along_mm: float, thickness: int = 3):
    """A 10 mm molar with a thin numbered fragment on its side (a cusp the type boundary cut off: 10 x 10 x
    ``thickness`` voxels, touching the molar over its 10 x 10 face, so the contact is shallow), and a whole tooth
    further along. Returns (labels, sparse, RAS points, assignment)."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.numbering import Assignment

    mask = np.zeros((60, 24, 24), bool)
    mask[2:22, 2:22, 2:22] = True  # the molar: 8000 voxels
    mask[22 : 22 + thickness, 7:17, 7:17] = True  # the fragment on its side
    mask[36:56, 2:22, 2:19] = True  # the next tooth: 6800 voxels
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    labels = np.digitize(ijk[:, 0], [22, 22 + thickness]).astype(np.int32) + 1
    ras = sparse.ras_points(np.diag([0.5, 0.5, 0.5, 1.0]))
    assignment = Assignment(np.array(fdi), np.full(3, False), np.array([30.0, 30.0 + along_mm, 42.0]),
                            np.array([0.0, 0.0, 1.0]), 0.0, False)
    return labels, sparse, ras, assignment


@pytest.mark.parametrize(("fdi", "along_mm", "thickness", "joins"), [
    ((45, 46, 47), 1.5, 3, True),  # a premolar's numbered cusp at its place: one tooth, and 46 stays 46
    ((45, 46, 47), 6.0, 3, False),  # the same fragment a tooth's width further along the arch
    ((45, 46, 47), 1.5, 12, False),  # 1200 voxels touching over 8 % of themselves: a neighbour's contact
    ((41, 42, 43), 1.5, 3, False),  # incisors: crowding overlaps them at one place
])
def test_a_small_numbered_fragment_at_a_back_tooth_s_place_joins_it(fdi, along_mm, thickness, joins):
    """A 31 mm3 piece of a lower second premolar took number 46, and every molar behind it moved up one (a dev
    lower-only scan, seed 43004: identification 0.69). A fragment's contact cannot be deep, so the rule for
    parts side by side (a contact at least 2.5 mm deep) missed it: a numbered piece at most a quarter of a
    premolar or molar, at its place, touching it over a quarter of its own voxels, joins it."""
    from TeethSegmentationLib.instances.pieces import join_stacked

    labels, sparse, ras, assignment = _molar_with_a_fragment(fdi, along_mm, thickness)
    joined_labels, joined = join_stacked(labels, sparse, ras, assignment)
    assert joined == joins
    assert len(np.unique(joined_labels)) == (2 if joins else 3)


def _stacked_pair(top_type: int, bottom_type: int) -> np.ndarray:
    """A small region (12 voxels of 0.5 mm a side) over one four times as big (22 x 22 x 14), joined by a thin neck,
    typed ``top_type`` and ``bottom_type`` (columns of a 14-class model's 13 types: 0-7 permanent, 8-12 primary);
    returns the regions after ``merge_regions`` (one label a region). The small one is as thick as a crown (not a
    root piece that ``roots.parted_roots`` would join)."""
    from TeethSegmentationLib.instances.foreground import sparse_foreground
    from TeethSegmentationLib.instances.merge import merge_regions
    from TeethSegmentationLib.instances.occlusal import OcclusalPlane
    from TeethSegmentationLib.instances.options import InstanceOptions
    from TeethSegmentationLib.instances.regions import region_peaks

    mask = np.zeros((32, 32, 34), bool)
    mask[5:27, 5:27, 2:16] = True  # the successor beneath
    mask[15:17, 15:17, 16:18] = True  # the thin neck between them
    mask[10:22, 10:22, 18:30] = True  # the primary crown above
    sparse = sparse_foreground(mask, np.full(3, 0.5))
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    labels = np.where(ijk[:, 2] >= 17, 1, 2).astype(np.int32)
    types = np.zeros((len(labels), 13), np.float32)
    types[labels == 1, top_type] = 1.0
    types[labels == 2, bottom_type] = 1.0
    ras = ijk * 0.5
    plane = OcclusalPlane(np.array([0.0, 0.0, 1.0]), -50.0, False)
    opts = InstanceOptions(min_tooth_mm3=20.0, fragment_fraction=0.1)  # a child's sizes
    peak = region_peaks(labels, sparse.dist)
    return merge_regions(labels, sparse, types, ras, plane, opts, 0.125, np.full(3, 0.5), peak)


@pytest.mark.parametrize(("top_type", "bottom_type", "regions"), [
    (8, 0, 2),  # a primary central incisor over its forming successor: two teeth
    (0, 0, 1),  # a permanent crown over its root, parted at the neck: one tooth
    (8, 8, 1),  # a primary crown over its resorbing root: one tooth
])
def test_a_primary_tooth_over_its_successor_is_not_merged_as_crown_and_root(top_type, bottom_type, regions):
    """A small region on top of a bigger one across a neck is a crown and its parted root, one tooth; but when one
    is typed primary and the other permanent it is a primary tooth and its successor forming beneath it."""
    merged = _stacked_pair(top_type, bottom_type)
    assert len(np.unique(merged)) == regions
