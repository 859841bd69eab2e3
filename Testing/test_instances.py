"""Instances: splitting touching teeth and FDI numbering on synthetic arches (and the phantom when present)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from synthetic_arch import make_arch, probabilities

from TeethSegmentationLib.fdi import FDI_NUMBERS, mirror_fdi_map
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.teeth import InstanceResult, label_teeth
from TeethSegmentationLib.metrics import evaluate_pair
from TeethSegmentationLib.phantom import make_phantom

SPACING = 0.6


def ellipsoids(shape, spacing, items) -> np.ndarray:
    """Label map of ellipsoids: items = [(label, centre_mm, semi_axes_mm)]; later items do not overwrite."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * spacing for n in shape], indexing="ij"), axis=-1)
    labels = np.zeros(shape, dtype=np.uint8)
    for label, centre, semi in items:
        inside = (((grid - np.array(centre)) / np.array(semi)) ** 2).sum(axis=-1) <= 1
        labels[inside & (labels == 0)] = label
    return labels


def run(labels: np.ndarray, affine: np.ndarray, seed: int = 0, swap: float = 0.0) -> InstanceResult:
    teeth_prob, type_probs = probabilities(labels, seed=seed, swap_fraction=swap)
    return label_teeth(teeth_prob, type_probs, affine)


def best_overlaps(instance_map: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """For each truth label: the fraction of it covered by its best instance (instances used once)."""
    result = {}
    for label in np.unique(truth[truth > 0]):
        ids, counts = np.unique(instance_map[truth == label], return_counts=True)
        counts = np.where(ids > 0, counts, 0)
        result[int(label)] = counts.max() / (truth == label).sum()
    return result


@pytest.mark.parametrize(
    "items",
    [
        # two touching teeth of different types (a premolar against a molar)
        [(14, (12, 12, 12), (3.6, 4.5, 6)), (16, (20.5, 12, 12), (5.0, 5.5, 6))],
        # two touching central incisors (same type) side by side
        [(11, (12, 12, 12), (4.4, 3.5, 5.5)), (21, (20.6, 12, 12), (4.4, 3.5, 5.5))],
        # three in a row: 13, 14, 15
        [(13, (10, 12, 12), (3.9, 4, 6)), (14, (17.6, 12, 12), (3.7, 4.5, 6)), (15, (24.8, 12, 12), (3.5, 4.5, 6))],
    ],
)
def test_touching_teeth_are_split(items):
    shape = (50, 40, 40)
    truth = ellipsoids(shape, 0.6, items)
    assert len(np.unique(truth)) == len(items) + 1
    grown = ellipsoids(shape, 0.6, [(label, c, tuple(s * 1.06 for s in semi)) for label, c, semi in items])
    assert (np.unique(grown[truth == 0]) > 0).any()  # the grown shapes touch: the mask is one component
    result = run(grown, np.diag([0.6, 0.6, 0.6, 1.0]))
    overlaps = best_overlaps(result.instance_map, grown)
    assert len(np.unique(result.instance_map[result.instance_map > 0])) == len(items)
    assert min(overlaps.values()) >= 0.9, overlaps


def identification(result: InstanceResult, truth: np.ndarray) -> dict:
    return evaluate_pair(result.fdi_map, truth, (SPACING,) * 3)


@pytest.fixture(scope="module")
def full_arch():
    return make_arch(spacing=SPACING)


def test_full_dentition_is_numbered(full_arch):
    result = run(full_arch.labels, full_arch.ijk_to_ras)
    metrics = identification(result, full_arch.labels)
    assert metrics["identification_accuracy"] == 1.0, metrics["misidentified"]
    assert sorted(t.fdi for t in result.teeth) == sorted(FDI_NUMBERS)
    assert metrics["dice_per_tooth"] > 0.9
    assert all(0 < t.confidence <= 1 for t in result.teeth)
    assert result.fdi_map.dtype == np.uint8 and result.fdi_map.shape == full_arch.labels.shape


def test_missing_teeth_keep_the_others_numbers():
    arch = make_arch(spacing=SPACING, missing=(12, 18, 37, 46))
    result = run(arch.labels, arch.ijk_to_ras)
    metrics = identification(result, arch.labels)
    assert metrics["identification_accuracy"] == 1.0, metrics["misidentified"]
    assert {12, 18, 37, 46}.isdisjoint(t.fdi for t in result.teeth)


def test_mirrored_volume_swaps_quadrants(full_arch):
    mirrored = full_arch.labels[::-1].copy()  # RAS x is the i axis here; same ijk_to_ras = anatomy mirrored
    result = run(mirrored, full_arch.ijk_to_ras)
    metrics = identification(result, mirror_fdi_map(mirrored))
    assert metrics["identification_accuracy"] == 1.0, metrics["misidentified"]


def test_noisy_types_are_voted_away(full_arch):
    result = run(full_arch.labels, full_arch.ijk_to_ras, seed=3, swap=0.3)
    metrics = identification(result, full_arch.labels)
    assert metrics["identification_accuracy"] >= 0.97, metrics["misidentified"]


@pytest.mark.parametrize("gap", [5.0, -0.8])
def test_open_and_closed_bite(gap):
    arch = make_arch(spacing=SPACING, bite_gap_mm=gap)
    result = run(arch.labels, arch.ijk_to_ras)
    metrics = identification(result, arch.labels)
    assert metrics["identification_accuracy"] >= 0.97, metrics["misidentified"]


@pytest.mark.parametrize("jaw", ["upper", "lower"])
def test_single_arch(jaw):
    arch = make_arch(spacing=SPACING, jaws=(jaw,), missing=(18, 28, 38, 48))
    result = run(arch.labels, arch.ijk_to_ras)
    metrics = identification(result, arch.labels)
    assert metrics["identification_accuracy"] == 1.0, metrics["misidentified"]
    assert {t.jaw for t in result.teeth} == {jaw}


def test_midline_off_centre_turned_and_flipped_grid():
    arch = make_arch(spacing=SPACING, centre_ras=(14.0, -9.0, 6.0), yaw_deg=12.0, pitch_deg=10.0, flip_i=True)
    result = run(arch.labels, arch.ijk_to_ras)
    metrics = identification(result, arch.labels)
    assert metrics["identification_accuracy"] >= 0.97, metrics["misidentified"]


def test_empty_input_gives_empty_result():
    shape = (10, 10, 10)
    probs = np.zeros((9, *shape), np.float32)
    probs[0] = 1
    result = label_teeth(np.zeros(shape, np.float32), probs, np.eye(4))
    assert result.teeth == [] and not result.fdi_map.any() and result.warnings


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        label_teeth(np.zeros((4, 4, 4)), np.zeros((9, 4, 4, 5)), np.eye(4))
    with pytest.raises(TypeError):
        InstanceOptions(no_such_option=1)


def test_phantom_numbering_from_truth_derived_probabilities():
    """Truth-derived probabilities (smoothed one-hot, 20% of the voxels with a neighbouring type) over several
    phantoms. The phantom's ~1 mm grid leaves lower central incisors 5 voxels wide, where two of them can fuse:
    hence the mean over seeds, and a looser bound per seed."""
    scores = []
    for seed in range(4):
        case = make_phantom(seed, size="small", convention="ras_identity")
        truth = np.asarray(case.labels.array).astype(np.uint8)
        teeth_prob, type_probs = probabilities(truth, seed=seed, swap_fraction=0.2)
        result = label_teeth(teeth_prob, type_probs, case.labels.ijk_to_ras)
        metrics = evaluate_pair(result.fdi_map, truth, case.labels.spacing)
        assert metrics["identification_accuracy"] >= 0.9, (seed, metrics["misidentified"])
        scores.append(metrics["identification_accuracy"])
    assert np.mean(scores) >= 0.95, scores


def test_cut_along_arch_finds_the_contact_of_fused_teeth_only():
    from TeethSegmentationLib.instances.fused import cut_along_arch

    rng = np.random.default_rng(0)
    fused = np.concatenate([rng.normal(0, 1.6, 4000), rng.normal(8.5, 1.6, 4000)])  # two crowns 8.5 mm apart
    parts = cut_along_arch(fused, 2, dip=0.75)
    assert set(parts) == {0, 1} and abs(fused[parts == 0].max() - 4.25) < 1.0
    single = rng.normal(0, 2.5, 8000)  # one broad tooth: no contact, no cut
    assert set(cut_along_arch(single, 2, dip=0.75)) == {0}


def test_phantom_numbered_from_the_teeth_mask_alone():
    """Uniform type probabilities: splitting fused neighbours by their width along the arch and numbering by
    the spacing of the teeth must still number a realistic phantom (missing teeth included)."""
    from TeethSegmentationLib.io.orientation import reorient_to_ras
    from TeethSegmentationLib.io.resample import resample_to_spacing

    case = make_phantom(10000, size="realistic", fov="crop")
    labels = resample_to_spacing(reorient_to_ras(case.labels), 0.5, order=0)
    truth = np.asarray(labels.array)
    teeth_prob = ndi.gaussian_filter((truth > 0).astype(np.float32), 0.7)
    uniform = np.full((9, *truth.shape), 1 / 9, dtype=np.float32)
    result = label_teeth(teeth_prob, uniform, labels.ijk_to_ras)
    metrics = evaluate_pair(result.fdi_map, truth, labels.spacing)
    assert metrics["predicted_teeth"] == metrics["truth_teeth"] == 30
    assert metrics["identification_accuracy"] >= 0.95, metrics["misidentified"]


def test_distance_map_in_a_worker_thread_is_the_same_to_the_bit():
    """The instance step computes the distance map in a worker beside the types: the values it reads are
    scipy's own, whether computed there or in line."""
    from concurrent.futures import ThreadPoolExecutor

    from TeethSegmentationLib.instances.foreground import sparse_foreground

    mask = ndi.binary_opening(np.random.default_rng(3).random((30, 26, 22)) > 0.4)
    spacing = np.array([0.4, 0.5, 0.6])
    inline = sparse_foreground(mask, spacing)
    with ThreadPoolExecutor(1) as pool:
        aside = sparse_foreground(mask, spacing, pool)
    edt = ndi.distance_transform_edt(np.pad(mask, 1), sampling=spacing).astype(np.float32)
    np.testing.assert_array_equal(aside.dist, inline.dist)
    np.testing.assert_array_equal(inline.dist, edt.reshape(-1)[inline.flat])


def _type_probabilities(mask: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """float16 14-class probabilities: classes mixing at random, or one tooth's type (3) sure on one half of the
    mask and unsure on the other, where another type (5) is a little likelier (a tooth's rim)."""
    if kind == "mixed":
        logits = ndi.uniform_filter(rng.normal(size=(14, *mask.shape)), (1, 5, 5, 5)) * 8
        probs = np.exp(logits - logits.max(axis=0))
        probs /= probs.sum(axis=0)
    else:
        probs = rng.uniform(0.0, 0.01, size=(14, *mask.shape))
        half = 39  # inside a tile: most of it sure, the rest unsure
        probs[3, :half], probs[3, half:], probs[5, half:] = 0.9, 0.25, 0.3
        probs[0] = 1 - probs[1:].sum(axis=0)
    probs = probs.astype(np.float16)
    probs[3:5, 30:40, 35:46, 10:22] = 0.5  # exact ties between classes 3 and 4
    return probs


@pytest.mark.parametrize("kind", ["mixed", "rim"])
@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (0.3, 0.5, 0.75)])
def test_smoothed_types_in_tiles_are_the_whole_box_filter_to_the_bit(spacing, kind):
    """The types are smoothed only in the tiles that hold foreground, and only for the classes that can win
    there: each voxel's class is the one a box filter over the foreground's whole box gives (ties to the lower
    class)."""
    from TeethSegmentationLib.instances import foreground

    rng = np.random.default_rng(5)
    mask = np.zeros((60, 50, 44), dtype=bool)
    mask[6:54, 8:20, 5:40] = ndi.binary_opening(rng.random((48, 12, 35)) > 0.3)  # an arm, and a blob far off
    mask[30:40, 35:46, 10:22] = True
    probs = _type_probabilities(mask, kind, rng)
    sparse = foreground.sparse_foreground(mask, np.array(spacing))
    lo, hi = sparse.lo + 1, sparse.lo + np.array(sparse.shape) - 1
    size = [max(1, int(round(1.5 / s)) | 1) for s in spacing]
    box = probs[1:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float32)
    smoothed = np.stack([ndi.uniform_filter(channel, size, mode="nearest") for channel in box])
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape)) - 1
    expected = np.argmax(smoothed[(slice(None), *ijk)], axis=0) + 1
    assert len(expected) > 1000 and len(np.unique(expected)) >= 2
    np.testing.assert_array_equal(foreground.smoothed_argmax(probs, sparse, np.array(spacing), 1.5), expected)


def test_index_groups_gathers_equal_keys_in_key_order():
    from TeethSegmentationLib.instances.regions import index_groups

    groups = index_groups(np.array([5, 2, 5, 0, 2, 2], dtype=np.uint8))
    assert [g.tolist() for g in groups] == [[3], [1, 4, 5], [0, 2]]
    assert index_groups(np.array([], dtype=np.int64)) == []


def test_a_lone_speck_in_an_adults_scan_gets_no_number():
    """A 14-class model splits every scan with a child's sizes (a resorbed primary incisor of 20 mm3 is a tooth).
    In an adult's scan a lone 28 mm3 speck (a fragment of an implant in the gap of a missing 45) is no tooth: it
    neither takes the free number nor stays as an unnumbered tooth, and the other teeth keep theirs."""
    arch = make_arch(spacing=SPACING)
    ijk = np.argwhere(arch.labels == 45)
    centre = ijk.mean(axis=0)
    truth = np.where(arch.labels == 45, 0, arch.labels).astype(np.uint8)
    grid = np.indices(truth.shape).transpose(1, 2, 3, 0)
    speck = (((grid - centre) * SPACING) ** 2).sum(axis=-1) <= 1.9**2  # a ball of 28.7 mm3
    assert speck.sum() * SPACING**3 > InstanceOptions().min_speck_mm3
    scan = np.where(speck, 45, truth).astype(np.uint8)
    teeth_prob, type_probs = probabilities(scan, num_classes=14)
    result = label_teeth(teeth_prob, type_probs, arch.ijk_to_ras)
    assert not result.unassigned and not (result.fdi_map[speck] > 0).any()
    assert sum("speck of 29 mm3" in warning for warning in result.warnings) == 1
    metrics = identification(result, truth)
    assert metrics["identification_accuracy"] == 1.0, metrics["misidentified"]
    assert sorted(t.fdi for t in result.teeth) == sorted(f for f in FDI_NUMBERS if f != 45)
