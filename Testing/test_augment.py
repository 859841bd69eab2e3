"""Augmentation: pure numpy functions with an rng; spatial ones keep image and labels together."""

from __future__ import annotations

import numpy as np
import pytest

from TeethSegmentationLib.fdi import fdi_map_to_classes
from TeethSegmentationLib.training import augment


def _volume(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A bright box labelled 11 on the right (+x, high i) and 23 on the left, upper jaw."""
    image = np.zeros((n, n, n), dtype=np.float16)
    labels = np.zeros((n, n, n), dtype=np.uint8)
    labels[26:34, 15:25, 15:25] = 11
    labels[6:14, 15:25, 15:25] = 23
    image[labels > 0] = 1.0
    return image, labels


def test_rotation_matrix_is_orthonormal_and_random_matrix_respects_probabilities():
    r = augment.rotation_matrix(np.deg2rad([10, -7, 30]))
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1)
    rng = np.random.default_rng(0)
    assert augment.random_matrix(rng, augment.NO_AUGMENTATION) is None
    always = augment.AugmentParams(p_rotate=1, p_scale=1)
    matrix = augment.random_matrix(rng, always)
    scale = np.cbrt(np.linalg.det(matrix))
    assert 0.9 <= scale <= 1.1 and not np.allclose(matrix, np.eye(3) * scale)


def test_plain_patch_is_a_crop_padded_with_cval_outside():
    image, labels = _volume()
    img, lab = augment.sample_patch(image, labels, np.array([36, 20, 20]), (16, 16, 16), None, cval=-0.5)
    assert img.dtype == np.float32 and lab.dtype == np.uint8
    assert np.array_equal(lab[:12], labels[28:40, 12:28, 12:28])
    assert np.all(img[-4:] == -0.5) and np.all(lab[-4:] == 0)  # beyond the volume's edge


def test_identity_affine_equals_the_plain_crop():
    image, labels = _volume()
    center = np.array([21, 18, 23])
    plain = augment.sample_patch(image, labels, center, (16, 16, 16))
    affine = augment.sample_patch(image, labels, center, (16, 16, 16), np.eye(3))
    assert np.allclose(plain[0], affine[0]) and np.array_equal(plain[1], affine[1])


def test_rotation_moves_image_and_labels_together():
    image, labels = _volume()
    matrix = augment.rotation_matrix(np.deg2rad([12, -9, 40])) * 1.08
    img, lab = augment.sample_patch(image, labels, np.array([20, 20, 20]), (32, 32, 32), matrix)
    agree = np.mean((img > 0.5) == (lab > 0))
    assert agree > 0.97
    assert set(np.unique(lab)) == {0, 11, 23}  # nearest neighbour: no invented label values


def test_left_right_flip_swaps_quadrants_and_keeps_types():
    image, labels = _volume()
    img, lab = augment.flip_left_right(image, labels, fdi_labels=True)
    assert np.all(lab[6:14, 15:25, 15:25] == 21) and np.all(lab[26:34, 15:25, 15:25] == 13)
    assert np.array_equal(img, image[::-1])
    assert np.array_equal(fdi_map_to_classes(lab), fdi_map_to_classes(labels)[::-1])
    classes = fdi_map_to_classes(labels)
    _, flipped = augment.flip_left_right(image, classes, fdi_labels=False)
    assert np.array_equal(flipped, classes[::-1])


@pytest.mark.parametrize(
    "step",
    [augment.gain_offset, augment.gamma, augment.noise, augment.blur, augment.low_contrast, augment.eight_bit_export],
)
def test_intensity_steps_keep_shape_are_finite_and_reproducible(step):
    image = np.random.default_rng(1).normal(0.4, 0.3, (12, 12, 12)).astype(np.float32)
    a = step(image, np.random.default_rng(5))
    b = step(image, np.random.default_rng(5))
    assert a.shape == image.shape and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.array_equal(a, b) and not np.array_equal(a, image)


def test_eight_bit_export_has_at_most_256_levels_and_clips_like_normalisation():
    image = np.linspace(-0.5, 2.0, 4000, dtype=np.float32).reshape(10, 20, 20)
    for seed in range(5):
        out = augment.eight_bit_export(image, np.random.default_rng(seed))
        assert len(np.unique(out)) <= 256
        assert out.min() >= -0.5 and out.max() <= 2.0
        assert np.all(np.diff(out.ravel()) >= -1e-6)  # monotone: the window never reorders grey values


def test_gamma_keeps_the_patch_range():
    image = np.random.default_rng(2).uniform(-0.3, 1.4, (8, 8, 8)).astype(np.float32)
    out = augment.gamma(image, np.random.default_rng(0))
    assert out.min() == pytest.approx(image.min(), abs=1e-5) and out.max() == pytest.approx(image.max(), abs=1e-5)


def test_tissue_curve_is_increasing_and_changes_the_ratios_between_tissues():
    image = np.linspace(-0.3, 1.4, 400, dtype=np.float32).reshape(4, 10, 10)
    curves = [augment.tissue_curve(image, np.random.default_rng(seed)) for seed in range(20)]
    for out in curves:
        assert np.all(np.diff(out.ravel()) > 0)  # never reorders grey values, also outside [0, 1]
        assert out.ravel()[np.searchsorted(image.ravel(), 0.0)] == pytest.approx(0.0, abs=0.01)
    # two tissues (0.5 and 0.8): their ratio moves, which a gain, an offset or a gamma on [0, 1] could not all do
    ratios = [np.interp(0.8, image.ravel(), out.ravel()) / np.interp(0.5, image.ravel(), out.ravel()) for out in curves]
    assert np.ptp(ratios) > 0.1


def test_signal_noise_grows_with_the_grey_value():
    image = np.zeros((24, 24, 24), dtype=np.float32)
    image[12:] = 1.0
    rng = np.random.default_rng(0)
    diffs = [augment.signal_noise(image, rng, max_grain=0.0) - image for _ in range(10)]
    dark, bright = np.std([d[:12] for d in diffs]), np.std([d[12:] for d in diffs])
    assert bright > 3 * dark > 0


def test_augment_intensity_with_no_augmentation_is_the_identity():
    image = np.random.default_rng(3).normal(size=(6, 6, 6)).astype(np.float32)
    out = augment.augment_intensity(image, np.random.default_rng(0), augment.NO_AUGMENTATION)
    assert np.array_equal(out, image)


def test_augment_params_all_none_or_all_but_artefacts_and_other_scanners():
    assert augment.augment_params(False) == augment.NO_AUGMENTATION
    assert augment.augment_params(True) == augment.AugmentParams()  # the shipped recipe: no artefacts
    usual = augment.augment_params(True)
    assert usual.p_motion == usual.p_metal == 0 and min(usual.p_tissue_curve, usual.p_signal_noise) > 0
    artefacts = augment.augment_params(True, artefacts=True)
    assert {"p_motion": artefacts.p_motion, "p_metal": artefacts.p_metal} == augment.ARTEFACTS
    assert min(augment.ARTEFACTS.values()) > 0
    own = augment.augment_params(True, other_scanners=False, artefacts=True)
    assert own.p_tissue_curve == own.p_signal_noise == 0 and min(own.p_motion, own.p_metal) > 0
    assert min(own.p_rotate, own.p_8bit, own.p_noise) > 0
    image = np.random.default_rng(3).random((8, 8, 8)).astype(np.float32)
    only_scanner = augment.AugmentParams(**{**vars(augment.NO_AUGMENTATION), "p_tissue_curve": 1.0,
                                            "p_signal_noise": 1.0})
    assert not np.array_equal(augment.augment_intensity(image, np.random.default_rng(0), only_scanner), image)


def _plate_profile(image: np.ndarray) -> np.ndarray:
    return image.sum(axis=(1, 2)) / (image.shape[1] * image.shape[2])


def _plate(n: int = 40) -> np.ndarray:
    """A one-voxel bright plate across the middle of the first axis."""
    image = np.zeros((n, n, n), dtype=np.float32)
    image[n // 2] = 1.0
    return image


@pytest.mark.parametrize("seed", range(12))
def test_patient_motion_keeps_the_labelled_position_brightest_within_its_path(seed: int):
    """Either move (a faint copy, or a blur along the path) keeps the grey mass, leaves the plate's own place the
    brightest (the labels stay true), and spreads it no further than the largest movement in millimetres."""
    image = _plate()
    out = augment.patient_motion(image, np.random.default_rng(seed), spacing_mm=0.5, max_mm=3.0)
    profile = _plate_profile(out)
    assert out.dtype == np.float32 and np.isclose(profile.sum(), 1.0, atol=1e-4)
    assert int(np.argmax(profile)) == 20 and profile[20] < 1.0  # moved, but most of it where it was
    reached = np.flatnonzero(profile > 1e-4)
    assert reached.min() >= 20 - 6 and reached.max() <= 20 + 6  # 3 mm = 6 voxels of 0.5 mm


def test_patient_motion_is_drawn_in_millimetres():
    """The same draws spread a plate over half as many voxels on a grid twice as coarse."""
    positions = np.arange(40) - 20

    def spread(spacing_mm: float) -> float:
        out = []
        for seed in range(12):
            profile = _plate_profile(augment.patient_motion(_plate(), np.random.default_rng(seed), spacing_mm))
            out.append(np.sqrt((profile * positions**2).sum() / profile.sum()))
        return float(np.mean(out))

    fine, coarse = spread(0.5), spread(1.0)
    assert fine > 0.5 and 1.6 < fine / coarse < 2.4


def test_motion_at_probability_zero_draws_nothing():
    """Recipes without the moving patient keep every later draw of their patches: one draw per grey-value step."""
    image = np.random.default_rng(3).random((8, 8, 8)).astype(np.float32)
    rng, before = np.random.default_rng(0), np.random.default_rng(0)
    augment.augment_intensity(image, rng, augment.NO_AUGMENTATION)
    before.random(8)  # the eight steps of 2026-12-02 (8-bit ... signal noise)
    assert rng.random() == before.random()
    always = augment.AugmentParams(**{**vars(augment.NO_AUGMENTATION), "p_motion": 1.0, "max_motion_mm": 3.0})
    assert not np.allclose(augment.augment_intensity(_plate(), np.random.default_rng(0), always), _plate())


def _crown_beside_dentin(n: int = 40) -> np.ndarray:
    """Dentin (0.8) filling the patch, a metal crown (1.46, the top of a 16-bit scan) in its middle."""
    image = np.full((n, n, n), 0.8, dtype=np.float32)
    image[16:24, 16:24, 16:24] = 1.46
    return image


def test_metal_gets_one_level_blooms_and_casts_a_dark_halo_that_fades_in_millimetres():
    """Indices along the first axis from the crown's edge (index 23) at 0.5 mm: 24 is 0.5 mm away, 27 2 mm (past
    the largest blooming), 31 4 mm, 39 8 mm."""
    bloomed = []
    for seed in range(8):
        out = augment.metal_artefacts(_crown_beside_dentin(), np.random.default_rng(seed), spacing_mm=0.5)
        level = out[20, 20, 20]
        assert np.all(out[16:24, 16:24, 16:24] == level) and 1.0 <= level <= 2.0
        shown = out == level
        bloomed.append(np.count_nonzero(shown[24:, 20, 20]))
        assert np.count_nonzero(shown[:16, 20, 20]) == bloomed[-1]  # as far on both sides
        beside, further, far = out[27, 20, 20], out[31, 20, 20], out[39, 20, 20]
        assert 0.8 - 0.5 <= beside < further < 0.8 and 0.8 - far < 0.03
    assert max(bloomed) <= 3 and len(set(bloomed)) > 1  # 0-1.5 mm: up to three voxels, drawn
    coarse = augment.metal_artefacts(_crown_beside_dentin(), np.random.default_rng(0), spacing_mm=1.0)
    fine = augment.metal_artefacts(_crown_beside_dentin(), np.random.default_rng(0), spacing_mm=0.5)
    assert np.isclose(coarse[26, 20, 20], fine[29, 20, 20])  # 3 mm from the metal on both grids


def test_the_halo_leaves_air_at_the_normalisation_floor():
    image = np.full((24, 24, 24), -0.5, dtype=np.float32)  # air, clipped
    image[8:16, 8:16, 8:16] = 1.46
    out = augment.metal_artefacts(image, np.random.default_rng(0), 0.5)
    assert out.min() == -0.5


def test_a_patch_without_metal_keeps_its_grey_values():
    image = np.full((16, 16, 16), 0.8, dtype=np.float32)
    image[4:8, 4:8, 4:8] = 1.1  # enamel, not metal
    assert augment.metal_artefacts(image, np.random.default_rng(0), 0.5) is image


def _shells(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Two metal crown shells (1.46, 1 mm thick, 7 mm wide) over a dentin core (0.8), open at the bottom: one on a
    labelled tooth (36), one on an implant (unlabelled); a tooth without metal (35) between them."""
    image = np.full((n, n, n), 0.0, dtype=np.float32)
    labels = np.zeros(image.shape, dtype=np.uint8)
    for x0, label in ((4, 36), (32, 0)):
        crown = np.s_[x0 : x0 + 14, 17:31, 20:34]
        image[crown] = 1.46
        core = np.s_[x0 + 2 : x0 + 12, 19:29, 20:32]  # the shell's top is z 32-33, the core open below
        image[core] = 0.8
        labels[crown] = label
        image[x0 + 3 : x0 + 11, 20:28, 4:20] = 0.8  # the root (or the screw, for the implant: never mind)
        labels[x0 + 3 : x0 + 11, 20:28, 4:20] = label
    image[19:30, 17:31, 4:34], labels[19:30, 17:31, 4:34] = 0.8, 35
    return image, labels


def test_solid_crowns_fill_a_restored_tooth_s_shell_only():
    image, labels = _shells()
    metal = image > augment.METAL_LEVEL
    solid = augment.solid_crowns(metal, labels, spacing_mm=0.5)
    assert np.array_equal(solid & metal, metal)
    assert solid[10, 24, 26] and not metal[10, 24, 26]  # the restored tooth's core, under its shell
    assert not solid[38, 24, 26]  # the implant's core: not a tooth
    assert not solid[labels == 35].any()  # the tooth without metal between them
    assert not (solid & (labels == 36) & ~metal)[:, :, :16].any()  # the root below the crown stays
    assert np.array_equal(augment.solid_crowns(metal, np.zeros_like(labels), 0.5), metal)


def test_metal_artefacts_with_labels_show_some_restored_crowns_solid():
    image, labels = _shells()
    levels = []
    for seed in range(8):
        out = augment.metal_artefacts(image, np.random.default_rng(seed), 0.5, labels)
        levels.append(out[10, 24, 26] == out[5, 24, 33])  # the core at the shell's level: solid
        assert out[38, 24, 26] < 1.0  # the implant's core never
    assert 0 < sum(levels) < 8


def test_teeth_channel_is_a_noisy_smooth_mask_in_unit_range():
    mask = np.zeros((16, 16, 16), dtype=bool)
    mask[4:12, 4:12, 4:12] = True
    channel = augment.teeth_channel(mask, np.random.default_rng(0))
    assert channel.min() >= 0 and channel.max() <= 1
    assert channel[mask].mean() > 0.7 and channel[~mask].mean() < 0.3
